"""RMSprop: gradient scaled by a running root mean square."""

import sympy as sp

from ._base import (
    AbstractMemoryOptimizer,
    check_adaptive_eps,
    check_nonnegative,
    check_unit_interval,
)


class RMSprop(AbstractMemoryOptimizer):
    r"""RMSprop (Tieleman & Hinton 2012), coordinate by coordinate, with optax's options:

    .. math::

        v_{n+1} = \rho\, v_n + (1-\rho)\, \nabla L(\theta_n)^{2}, \qquad
        \theta_{n+1} = \theta_n - h\, \frac{\nabla L(\theta_n)}{\sqrt{\hat v_{n+1}} + \epsilon}

    (``eps_in_sqrt=False``, PyTorch's convention), or with
    :math:`\sqrt{\hat v_{n+1} + \epsilon}` (``eps_in_sqrt=True``: optax's default, and the
    form of the RMSprop-as-ODE article in the seeds). With ``bias_correction=True``,
    :math:`\hat v_{n+1} = v_{n+1}/(1-\rho^{n+1})`, else :math:`\hat v = v`;
    :math:`v_0` = ``initial_scale``. ``sf.RMSprop(rho, eps, eps_in_sqrt=True)`` is
    ``optax.rmsprop(h, decay=rho, eps=eps)``; every option has optax's name and meaning.
    ``eps_root`` (as in optax's ``adam``) is added inside the root, :math:`\sqrt{\hat
    v_{n+1} + \epsilon_{\text{root}}}`: ``sf.RMSprop(rho, eps=0, eps_root=r)`` is the
    eps-free regime, ``optax.rmsprop(h, decay=rho, eps=r)``. ``eps = eps_root = 0`` is refused
    (the step is singular where a gradient component vanishes).

    For fixed :math:`\rho` the memory relaxes to :math:`v = (\nabla L)^2 + O(h)` and the
    leading flow is :math:`\dot\theta = -\nabla L / (|\nabla L| + \epsilon)` (or
    :math:`-\nabla L/\sqrt{(\nabla L)^2 + \epsilon}`); with :math:`\rho = 1 - c h` the second
    moment becomes an ODE variable, :math:`\dot v = c\,((\nabla L)^2 - v)` (``reduce=False``).

    Example::

        >>> import sympy as sp, symflow as sf
        >>> x = sp.Symbol("x")
        >>> me = sf.modified_equation(sf.RMSprop(rho=sp.Rational(1, 2), eps=1), x**2 / 2, [x], 0)
        >>> sp.simplify(me.terms[0][0].subs(x, 3))
        -3/4
    """

    name = "rmsprop"
    #: :meth:`linear_limits` as formulas, for messages.
    limits_text = ("2", "min(1, 1 - rho)")

    def __init__(self, rho, eps, eps_in_sqrt: bool = False, bias_correction: bool = False,
                 initial_scale=0, eps_root=0):
        self.rho = check_unit_interval(rho, "rho")
        self.eps_in_sqrt = bool(eps_in_sqrt)
        # eps in the root is a root term too: sqrt(v + eps) needs eps > 0 or eps_root > 0
        self.eps, self.eps_root = check_adaptive_eps(eps, eps_root, "RMSprop")
        self.bias_correction = bool(bias_correction)
        self.initial_scale = check_nonnegative(initial_scale, "initial_scale")

    def hyperparameters(self) -> dict:
        out = {"rho": self.rho, "eps": self.eps}
        return {**out, "eps_root": self.eps_root} if self.eps_root != 0 else out

    @property
    def smooth_at_zero_gradient(self) -> bool:
        """Only with a term inside the root (see the base class)."""
        return self.eps_in_sqrt or self.eps_root != 0

    def _key(self):
        return super()._key() + (self.eps_in_sqrt, self.bias_correction, self.initial_scale)

    def linear_limits(self):
        r"""With the preconditioner frozen RMSprop is GD on :math:`P^{-1}H`: stable for
        :math:`h\lambda < 2`, series radius 1; the second moment lags
        :math:`\rho/(1-\rho)` steps behind, so the reduced series also needs
        :math:`h\lambda \ll 1 - \rho` (a scale, not a sharp radius)."""
        return sp.Integer(2), sp.Min(1, 1 - self.rho)

    def preconditioner(self, grad):
        return [_root(g * g + self.eps_root, self.eps, self.eps_in_sqrt) for g in grad]

    def memory_size(self, dim: int) -> int:
        return dim + (1 if self.bias_correction else 0)

    def memory_names(self, params) -> list[str]:
        return [f"v_{p}" for p in params] + (["rho_n"] if self.bias_correction else [])

    def initial_memory(self, theta, grad, h):
        start = [self.initial_scale] * len(theta) + ([1] if self.bias_correction else [])
        return sp.Matrix(start)

    def step_memory(self, theta, memory, grad, h):
        d = len(theta)
        g = grad(theta)
        v = self.rho * memory[:d, 0] + (1 - self.rho) * g.applyfunc(lambda c: c**2)
        scale = 1
        out = list(v)
        if self.bias_correction:
            power = self.rho * memory[d]
            scale = 1 / (1 - power)
            out.append(power)
        step = sp.Matrix([gi / _root(scale * vi + self.eps_root, self.eps, self.eps_in_sqrt)
                          for gi, vi in zip(g, v)])
        return theta - h * step, sp.Matrix(out)

    def __repr__(self) -> str:
        flags = ", eps_in_sqrt=True" if self.eps_in_sqrt else ""
        flags += ", bias_correction=True" if self.bias_correction else ""
        flags += f", initial_scale={self.initial_scale}" if self.initial_scale else ""
        flags += f", eps_root={self.eps_root}" if self.eps_root != 0 else ""
        return f"RMSprop(rho={self.rho}, eps={self.eps}{flags})"


def _root(v, eps, eps_in_sqrt: bool):
    r""":math:`\sqrt{v + \epsilon}` or :math:`\sqrt{v} + \epsilon` (works on numbers and SymPy)."""
    return sp.sqrt(v + eps) if eps_in_sqrt else sp.sqrt(v) + eps
