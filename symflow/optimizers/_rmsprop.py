"""RMSprop: gradient scaled by a running root mean square."""

import sympy as sp

from ._base import AbstractMemoryOptimizer, check_positive, check_unit_interval


class RMSprop(AbstractMemoryOptimizer):
    r"""RMSprop (Tieleman & Hinton 2012), coordinate by coordinate:

    .. math::

        v_{n+1} = \rho\, v_n + (1-\rho)\, \nabla L(\theta_n)^{2}, \qquad
        \theta_{n+1} = \theta_n - h\, \frac{\nabla L(\theta_n)}{\sqrt{\hat v_{n+1}} + \epsilon}

    (``eps_in_sqrt=False``, PyTorch's and the issue's convention), or with
    :math:`\sqrt{\hat v_{n+1} + \epsilon}` (``eps_in_sqrt=True``: optax's default, and the
    form of the RMSprop-as-ODE article in the seeds). With ``bias_correction=True``,
    :math:`\hat v_{n+1} = v_{n+1}/(1-\rho^{n+1})`, else :math:`\hat v = v`; ``v0`` is the
    initial second moment (optax's ``initial_scale``).

    For fixed :math:`\rho` the memory relaxes to :math:`v = (\nabla L)^2 + O(h)` and the
    leading flow is :math:`\dot\theta = -\nabla L / (|\nabla L| + \epsilon)`; with
    :math:`\rho = 1 - c h` the second moment becomes an ODE variable (see
    :func:`symflow.state_modified_equation`).

    Example::

        >>> import sympy as sp, symflow as sf
        >>> x = sp.Symbol("x")
        >>> me = sf.modified_equation(sf.RMSprop(rho=sp.Rational(1, 2), eps=1), x**2 / 2, [x], 0)
        >>> sp.simplify(me.terms[0][0].subs(x, 3))
        -3/4
    """

    name = "rmsprop"

    def __init__(self, rho, eps, eps_in_sqrt: bool = False, bias_correction: bool = False,
                 v0=0):
        self.rho = check_unit_interval(rho, "rho")
        self.eps = check_positive(eps, "eps")
        self.eps_in_sqrt = bool(eps_in_sqrt)
        self.bias_correction = bool(bias_correction)
        self.v0 = sp.nsimplify(v0, rational=True)

    def hyperparameters(self) -> dict:
        return {"rho": self.rho, "eps": self.eps}

    def _key(self):
        return super()._key() + (self.eps_in_sqrt, self.bias_correction, self.v0)

    def memory_size(self, dim: int) -> int:
        return dim + (1 if self.bias_correction else 0)

    def memory_names(self, params) -> list[str]:
        return [f"v_{p}" for p in params] + (["rho_n"] if self.bias_correction else [])

    def initial_memory(self, theta, grad, h):
        start = [self.v0] * len(theta) + ([1] if self.bias_correction else [])
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
        if self.eps_in_sqrt:
            denom = [sp.sqrt(scale * vi + self.eps) for vi in v]
        else:
            denom = [sp.sqrt(scale * vi) + self.eps for vi in v]
        step = sp.Matrix([gi / di for gi, di in zip(g, denom)])
        return theta - h * step, sp.Matrix(out)

    def __repr__(self) -> str:
        flags = ", eps_in_sqrt=True" if self.eps_in_sqrt else ""
        flags += ", bias_correction=True" if self.bias_correction else ""
        return f"RMSprop(rho={self.rho}, eps={self.eps}{flags})"
