"""Nesterov's accelerated gradient with constant momentum."""

from ._base import AbstractMemoryOptimizer, VelocityMemory, check_unit_interval


class Nesterov(VelocityMemory, AbstractMemoryOptimizer):
    r"""Nesterov momentum (Nesterov 1983; Sutskever et al. 2013) with constant :math:`\beta`:

    .. math::

        y_n = \theta_n + \beta\,(\theta_n - \theta_{n-1}), \qquad
        \theta_{n+1} = y_n - h\,\nabla L(y_n).

    The memory is :math:`v_n = \theta_n - \theta_{n-1}` (:math:`v_0 = 0`). optax's and
    PyTorch's ``nesterov=True`` iterate the same sequence seen at the look-ahead point
    :math:`y_n`.

    Example::

        >>> import sympy as sp, symflow as sf
        >>> x = sp.Symbol("x")
        >>> sf.modified_equation(sf.Nesterov(beta=0), x**2 / 2, [x], 1).terms[1]
        Matrix([[-x/2]])
    """

    name = "nesterov"

    def __init__(self, beta):
        self.beta = check_unit_interval(beta, "beta")

    def hyperparameters(self) -> dict:
        return {"beta": self.beta}

    def memory_size(self, dim: int) -> int:
        return dim

    def step_memory(self, theta, memory, grad, h):
        look = theta + self.beta * memory
        nxt = look - h * grad(look)
        return nxt, nxt - theta
