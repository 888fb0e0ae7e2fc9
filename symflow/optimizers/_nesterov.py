"""Nesterov's accelerated gradient with constant momentum."""


from ._base import AbstractMemoryOptimizer, VelocityMemory, check_unit_interval


class Nesterov(VelocityMemory, AbstractMemoryOptimizer):
    r"""Nesterov momentum (Nesterov 1983; Sutskever et al., ICML 2013) with constant :math:`\beta`:

    .. math::

        y_n = \theta_n + \beta\,(\theta_n - \theta_{n-1}), \qquad
        \theta_{n+1} = y_n - h\,\nabla L(y_n).

    The memory is :math:`v_n = \theta_n - \theta_{n-1}` (:math:`v_0 = 0`). optax's
    ``sgd(h, momentum=beta, nesterov=True)`` (and PyTorch's) iterate the same sequence
    seen at the look-ahead point: their parameters are :math:`y_n = \theta_n + \beta v_n`
    and their trace is :math:`b_n = -v_n/h`.

    For fixed :math:`\beta` the leading reduced flow is heavy ball's,
    :math:`\dot\theta = -\nabla L/(1-\beta)`; the first correction differs:
    :math:`-h\,\frac{1 - \beta + 2\beta^2}{2(1-\beta)^3}\nabla^2 L\,\nabla L` (derive it with
    ``sf.modified_equation(sf.Nesterov(beta=sp.Symbol("beta")), ...)``).

    Example::

        >>> import sympy as sp, symflow as sf
        >>> x = sp.Symbol("x")
        >>> me = sf.modified_equation(sf.Nesterov(beta=sp.Rational(1, 2)), x**2 / 2, [x], 1)
        >>> me.terms[0], me.terms[1]
        (Matrix([[-2*x]]), Matrix([[-4*x]]))
    """

    name = "nesterov"
    #: :meth:`linear_limits` as formulas, for messages.
    limits_text = ("2*(1 + beta)/(1 + 2*beta)", "(1 - beta)**2/(1 + beta)**2")

    def __init__(self, beta):
        self.beta = check_unit_interval(beta, "beta")

    def hyperparameters(self) -> dict:
        return {"beta": self.beta}

    def linear_limits(self):
        r"""The roots of :math:`r^2 - (1-h\lambda)(1+\beta) r + (1-h\lambda)\beta` stay in the
        unit disc for :math:`h\lambda < 2(1+\beta)/(1+2\beta)` and collide at
        :math:`h\lambda = (1-\beta)^2/(1+\beta)^2`, which bounds the reduced series."""
        b = self.beta
        return 2 * (1 + b) / (1 + 2 * b), ((1 - b) / (1 + b)) ** 2

    def memory_size(self, dim: int) -> int:
        return dim

    def step_memory(self, theta, memory, grad, h):
        look = theta + self.beta * memory
        nxt = look - h * grad(look)
        return nxt, nxt - theta
