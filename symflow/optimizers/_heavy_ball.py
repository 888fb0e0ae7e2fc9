"""Polyak's heavy-ball momentum."""

import sympy as sp

from ._base import AbstractMemoryOptimizer, VelocityMemory, check_unit_interval


class HeavyBall(VelocityMemory, AbstractMemoryOptimizer):
    r"""Heavy-ball momentum (Polyak 1964):

    .. math::

        \theta_{n+1} = \theta_n - h\,\nabla L(\theta_n) + \beta\,(\theta_n - \theta_{n-1}).

    The memory is the last displacement :math:`v_n = \theta_n - \theta_{n-1}`
    (:math:`v_0 = 0`):

    .. math::

        v_{n+1} = \beta v_n - h\,\nabla L(\theta_n), \qquad \theta_{n+1} = \theta_n + v_{n+1}.

    This is optax's ``sgd(h, momentum=beta)`` (and PyTorch's SGD with momentum): their
    trace :math:`b_{n+1} = \nabla L(\theta_n) + \beta b_n` is :math:`b_n = -v_n/h`.

    For fixed :math:`\beta \in [0, 1)` the velocity relaxes to
    :math:`v = -h\nabla L/(1-\beta) + O(h^2)` and the reduced flow is
    :math:`\dot\theta = -\frac{1}{1-\beta}\nabla L - h\,\frac{1+\beta}{2(1-\beta)^3}\,
    \nabla^2 L\,\nabla L + O(h^2)` (Kovachki & Stuart, *Continuous time analysis of momentum
    methods*, JMLR 22, 2021): time runs :math:`1/(1-\beta)` times faster than for GD. With
    :math:`1 - \beta = c\sqrt h` the limit is :math:`\ddot\theta + c\dot\theta = -\nabla L`
    instead (``reduce=False``).

    Example::

        >>> import sympy as sp, symflow as sf
        >>> x = sp.Symbol("x")
        >>> me = sf.modified_equation(sf.HeavyBall(beta=sp.Rational(1, 2)), x**2 / 2, [x], 1)
        >>> me.terms[0], me.terms[1], me.time_scale
        (Matrix([[-2*x]]), Matrix([[-6*x]]), 2)
    """

    name = "heavy_ball"
    #: :meth:`linear_limits` as formulas, for messages.
    limits_text = ("2*(1 + beta)", "(1 - sqrt(beta))**2")

    def __init__(self, beta):
        self.beta = check_unit_interval(beta, "beta")

    def hyperparameters(self) -> dict:
        return {"beta": self.beta}

    def linear_limits(self):
        r"""Stable for :math:`h\lambda < 2(1+\beta)`; the two roots of
        :math:`r^2 - (1 + \beta - h\lambda) r + \beta` collide at
        :math:`h\lambda = (1 - \sqrt\beta)^2`, which bounds the reduced series."""
        return 2 * (1 + self.beta), (1 - sp.sqrt(self.beta)) ** 2

    def memory_size(self, dim: int) -> int:
        return dim

    def step_memory(self, theta, memory, grad, h):
        velocity = self.beta * memory - h * grad(theta)
        return theta + velocity, velocity
