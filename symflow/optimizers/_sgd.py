"""Minibatch stochastic gradient descent over a finite dataset."""

from __future__ import annotations

import numbers

import sympy as sp

from .._core._errors import SymflowError
from .._core._guard import to_sympy
from ._base import AbstractOptimizer


class SGD(AbstractOptimizer):
    r"""Minibatch SGD with batch size :math:`B`, learning rate :math:`h`:

    .. math::

        \theta_{n+1} = \theta_n - \frac{h}{B}\sum_{i\in\mathcal B_n}\nabla\ell_i(\theta_n),

    with :math:`\mathcal B_n` drawn from the :math:`N` samples with replacement (``replacement=True``)
    or without (``False``), independently at every step. Its deterministic :meth:`step`
    is the *mean* step, full-batch gradient descent on
    :math:`L = \tfrac1N\sum_i \ell_i`; the fluctuation
    :math:`\xi_n = \nabla L - \tfrac1B\sum_{i\in\mathcal B_n}\nabla\ell_i` has mean zero and
    covariance :math:`c_{N,B}\,\Sigma_1(\theta)` with
    :math:`\Sigma_1 = \tfrac1N\sum_i(\nabla\ell_i-\nabla L)(\nabla\ell_i-\nabla L)^\top` and

    .. math::

        c_{N,B} = \frac1B \ \text{(with replacement)},\qquad
        c_{N,B} = \frac{N-B}{B(N-1)} \ \text{(without replacement)}

    (the finite-population correction; Cochran, *Sampling Techniques*, 1977,
    2.6). :func:`symflow.sme` turns this into the stochastic
    modified equation :math:`d\Theta = -\nabla L\,dt + \sqrt{h\,c_{N,B}\Sigma_1}\,dW`
    (Li, Tai & E, *Stochastic modified equations and dynamics of stochastic gradient
    algorithms*, JMLR 20, 2019).

    ``batch_size`` is a positive integer or a SymPy symbol.

    Example::

        >>> import sympy as sp, symflow as sf
        >>> x = sp.Symbol("x")
        >>> sf.modified_equation(sf.SGD(batch_size=4), x**2 / 2, [x], order=1).terms[1]
        Matrix([[-x/2]])
        >>> sf.SGD(batch_size=4, replacement=False).noise_scale(10)
        1/6
    """

    name = "sgd"

    def __init__(self, batch_size, replacement: bool = True):
        if isinstance(batch_size, bool) or not (
                isinstance(batch_size, (numbers.Integral, sp.Integer, sp.Symbol))):
            raise SymflowError(
                f"got batch_size={batch_size!r}; batch_size must be a positive integer "
                "(or a SymPy symbol such as sp.Symbol('B', positive=True))")
        if not isinstance(batch_size, sp.Symbol) and int(batch_size) < 1:
            raise SymflowError(f"got batch_size={batch_size}; it must be at least 1")
        if not isinstance(replacement, bool):
            raise SymflowError(
                f"got replacement={replacement!r}; pass True (sample the minibatch with "
                "replacement) or False (without)")
        self.batch_size = batch_size if isinstance(batch_size, sp.Symbol) else int(batch_size)
        self.replacement = replacement

    def hyperparameters(self) -> dict:
        return {"batch_size": self.batch_size, "replacement": self.replacement}

    def step(self, theta, grad, h):
        return theta - h * grad(theta)

    def noise_scale(self, n_samples):
        r"""The factor :math:`c_{N,B}` of the minibatch-noise covariance for ``N = n_samples``."""
        b = to_sympy(self.batch_size, "batch_size")
        n = to_sympy(n_samples, "n_samples")
        if self.replacement:
            return 1 / b
        if n.is_number and b.is_number:
            if b > n:
                raise SymflowError(
                    f"batch_size={b} exceeds the N={n} samples; without replacement a "
                    "minibatch holds at most N samples")
            if n == 1:
                return sp.S.Zero
        return sp.factor((n - b) / (b * (n - 1)))

    @property
    def label(self) -> str:
        rep = "" if self.replacement else ", no replacement"
        return f"SGD(B={self.batch_size}{rep})"
