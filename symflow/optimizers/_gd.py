"""Plain gradient descent."""

import sympy as sp

from ._base import AbstractOptimizer


class GD(AbstractOptimizer):
    r"""Gradient descent with learning rate :math:`h`:

    .. math::  \theta_{n+1} = \theta_n - h\,\nabla L(\theta_n).

    Its modified equation starts :math:`\dot\theta = -\nabla L - \tfrac{h}{2} H \nabla L + O(h^2)`,
    the gradient flow of :math:`L + \tfrac{h}{4}\lVert\nabla L\rVert^2`
    (Barrett & Dherin, *Implicit Gradient Regularization*, ICLR 2021).

    Example::

        >>> import sympy as sp, symflow as sf
        >>> x = sp.Symbol("x")
        >>> sf.modified_equation(sf.GD(), loss=x**2 / 2, params=[x], order=1).terms[1]
        Matrix([[-x/2]])
    """

    name = "gd"
    #: :meth:`linear_limits` as formulas, for messages.
    limits_text = ("2", "1")

    def linear_limits(self):
        r"""Stable for :math:`h\lambda < 2`; the series converges for :math:`h\lambda < 1`
        (the exact field on a quadratic is :math:`\log(1 - h\lambda)\,\theta/h`)."""
        return sp.Integer(2), sp.Integer(1)

    def step(self, theta, grad, h):
        return theta - h * grad(theta)
