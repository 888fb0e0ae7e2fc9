"""Adam: momentum on the gradient, scaled by a running root mean square."""

import sympy as sp

from ._base import AbstractMemoryOptimizer, check_adaptive_eps, check_unit_interval


class Adam(AbstractMemoryOptimizer):
    r"""Adam (Kingma & Ba, ICLR 2015) with optax's conventions (:math:`\epsilon` outside the
    root, :math:`\epsilon_{\text{root}}` inside), coordinate by coordinate:

    .. math::

        m_{n+1} = \beta_1 m_n + (1-\beta_1)\, g_n, \quad
        v_{n+1} = \beta_2 v_n + (1-\beta_2)\, g_n^{2}, \quad
        \theta_{n+1} = \theta_n - h\, \frac{\hat m_{n+1}}
        {\sqrt{\hat v_{n+1} + \epsilon_{\text{root}}} + \epsilon},

    with :math:`g_n = \nabla L(\theta_n)`, :math:`m_0 = v_0 = 0` and, when
    ``bias_correction=True`` (optax's ``adam``), :math:`\hat m_{n+1} = m_{n+1}/(1-\beta_1^{n+1})`,
    :math:`\hat v_{n+1} = v_{n+1}/(1-\beta_2^{n+1})`; the powers :math:`\beta_i^n` are kept
    as two extra memory components so that the map stays autonomous. They decay to zero,
    so the bias correction changes the transient only, not the reduced flow.
    ``sf.Adam(b1, b2, eps, eps_root=r)`` is ``optax.adam(h, b1, b2, eps, eps_root=r)``.

    ``eps=0`` with ``eps_root > 0`` is the eps-free regime (``optax.adam(h, b1, b2, eps=0,
    eps_root=r)``); ``eps = eps_root = 0`` is refused (sign descent: no expansion in
    :math:`h` where a gradient component vanishes).

    For fixed betas the leading flow is :math:`\dot\theta_i = -g_i/(|g_i| + \epsilon)`
    (for :math:`\epsilon_{\text{root}} = 0`), sign descent smoothed by :math:`\epsilon`; the
    first correction is the implicit bias of Adam (Cattaneo, Klusowski & Shigida, *On the
    implicit bias of Adam*, ICML 2024). With :math:`1 - \beta_i = c_i h` both moments become
    ODE variables (``reduce=False``).

    Example::

        >>> import sympy as sp, symflow as sf
        >>> x = sp.Symbol("x")
        >>> adam = sf.Adam(beta1=sp.Rational(1, 2), beta2=sp.Rational(3, 4), eps=1)
        >>> me = sf.modified_equation(adam, x**2 / 2, [x], 0)
        >>> sp.simplify(me.terms[0][0].subs(x, 3))
        -3/4
    """

    name = "adam"
    #: :meth:`linear_limits` as formulas, for messages.
    limits_text = ("2*(1 + beta1)/(1 - beta1)",
                   "min((1 - sqrt(beta1))/(1 + sqrt(beta1)), 1 - beta2)")

    def __init__(self, beta1, beta2, eps, bias_correction: bool = True, eps_root=0):
        self.beta1 = check_unit_interval(beta1, "beta1")
        self.beta2 = check_unit_interval(beta2, "beta2")
        self.eps, self.eps_root = check_adaptive_eps(eps, eps_root, "Adam")
        self.bias_correction = bool(bias_correction)

    def hyperparameters(self) -> dict:
        out = {"beta1": self.beta1, "beta2": self.beta2, "eps": self.eps}
        return {**out, "eps_root": self.eps_root} if self.eps_root != 0 else out

    def _key(self):
        return super()._key() + (self.bias_correction,)

    @property
    def smooth_at_zero_gradient(self) -> bool:
        """Only with :math:`\\epsilon_{\\text{root}} > 0` (see the base class)."""
        return self.eps_root != 0

    def linear_limits(self):
        r"""With the preconditioner frozen, Adam is heavy ball on :math:`P^{-1}H` with
        momentum :math:`\beta_1` and step :math:`h(1-\beta_1)`: stable for
        :math:`h\lambda < 2(1+\beta_1)/(1-\beta_1)` (the adaptive edge of stability of
        Cohen et al., 2022), roots colliding at :math:`h\lambda = (1-\sqrt{\beta_1})/
        (1+\sqrt{\beta_1})`; the second moment's lag also needs :math:`h\lambda \ll 1-\beta_2`."""
        b1 = self.beta1
        return (2 * (1 + b1) / (1 - b1),
                sp.Min((1 - sp.sqrt(b1)) / (1 + sp.sqrt(b1)), 1 - self.beta2))

    def preconditioner(self, grad):
        return [sp.sqrt(g * g + self.eps_root) + self.eps for g in grad]

    def memory_size(self, dim: int) -> int:
        return 2 * dim + (2 if self.bias_correction else 0)

    def memory_names(self, params) -> list[str]:
        return ([f"m_{p}" for p in params] + [f"v_{p}" for p in params]
                + (["beta1_n", "beta2_n"] if self.bias_correction else []))

    def initial_memory(self, theta, grad, h):
        d = len(theta)
        return sp.Matrix([0] * (2 * d) + ([1, 1] if self.bias_correction else []))

    def step_memory(self, theta, memory, grad, h):
        d, b1, b2 = len(theta), self.beta1, self.beta2
        g = grad(theta)
        m = b1 * memory[:d, 0] + (1 - b1) * g
        v = b2 * memory[d:2 * d, 0] + (1 - b2) * g.applyfunc(lambda c: c**2)
        out = list(m) + list(v)
        scale1 = scale2 = 1
        if self.bias_correction:
            p1, p2 = b1 * memory[2 * d], b2 * memory[2 * d + 1]
            scale1, scale2 = 1 / (1 - p1), 1 / (1 - p2)
            out += [p1, p2]
        step = sp.Matrix([scale1 * mi / (sp.sqrt(scale2 * vi + self.eps_root) + self.eps)
                          for mi, vi in zip(m, v)])
        return theta - h * step, sp.Matrix(out)

    def __repr__(self) -> str:
        flag = "" if self.bias_correction else ", bias_correction=False"
        flag += f", eps_root={self.eps_root}" if self.eps_root != 0 else ""
        return f"Adam(beta1={self.beta1}, beta2={self.beta2}, eps={self.eps}{flag})"
