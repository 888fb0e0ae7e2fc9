"""Polyak's heavy-ball momentum."""

from ._base import AbstractMemoryOptimizer, VelocityMemory, check_unit_interval


class HeavyBall(VelocityMemory, AbstractMemoryOptimizer):
    r"""Heavy-ball momentum (Polyak 1964):

    .. math::

        \theta_{n+1} = \theta_n - h\,\nabla L(\theta_n) + \beta\,(\theta_n - \theta_{n-1}).

    The memory is the last displacement :math:`v_n = \theta_n - \theta_{n-1}`
    (:math:`v_0 = 0`): :math:`v_{n+1} = \beta v_n - h\nabla L(\theta_n)`,
    :math:`\theta_{n+1} = \theta_n + v_{n+1}`. This is PyTorch's and optax's
    ``sgd(momentum=beta)`` with the buffer scaled by :math:`-h`. For fixed :math:`\beta`
    the leading flow is :math:`\dot\theta = -\nabla L/(1-\beta)`.

    Example::

        >>> import sympy as sp, symflow as sf
        >>> x = sp.Symbol("x")
        >>> me = sf.modified_equation(sf.HeavyBall(beta=sp.Rational(1, 2)), x**2 / 2, [x], 1)
        >>> me.terms[0], me.terms[1]
        (Matrix([[-2*x]]), Matrix([[-6*x]]))
    """

    name = "heavy_ball"

    def __init__(self, beta):
        self.beta = check_unit_interval(beta, "beta")

    def hyperparameters(self) -> dict:
        return {"beta": self.beta}

    def memory_size(self, dim: int) -> int:
        return dim

    def step_memory(self, theta, memory, grad, h):
        velocity = self.beta * memory - h * grad(theta)
        return theta + velocity, velocity
