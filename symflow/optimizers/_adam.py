"""Adam: momentum on the gradient, scaled by a running root mean square."""

import sympy as sp

from ._base import AbstractMemoryOptimizer, check_positive, check_unit_interval


class Adam(AbstractMemoryOptimizer):
    r"""Adam (Kingma & Ba 2015) with optax's conventions (epsilon outside the root):

    .. math::

        m_{n+1} = \beta_1 m_n + (1-\beta_1)\, g_n, \quad
        v_{n+1} = \beta_2 v_n + (1-\beta_2)\, g_n^{2}, \quad
        \theta_{n+1} = \theta_n - h\, \frac{\hat m_{n+1}}{\sqrt{\hat v_{n+1}} + \epsilon},

    with :math:`g_n = \nabla L(\theta_n)` and, when ``bias_correction=True`` (optax's
    ``adam``), :math:`\hat m_{n+1} = m_{n+1}/(1-\beta_1^{n+1})`,
    :math:`\hat v_{n+1} = v_{n+1}/(1-\beta_2^{n+1})`; the powers :math:`\beta_i^n` are kept
    as two extra memory components so that the map stays autonomous. They decay to zero,
    so the bias correction changes the transient only, not the reduced flow.

    For fixed betas the leading flow is :math:`\dot\theta_i = -g_i/(|g_i| + \epsilon)`,
    sign descent smoothed by :math:`\epsilon`.

    Example::

        >>> import sympy as sp, symflow as sf
        >>> x = sp.Symbol("x")
        >>> adam = sf.Adam(beta1=sp.Rational(1, 2), beta2=sp.Rational(3, 4), eps=1)
        >>> me = sf.modified_equation(adam, x**2 / 2, [x], 0)
        >>> sp.simplify(me.terms[0][0].subs(x, 3))
        -3/4
    """

    name = "adam"

    def __init__(self, beta1, beta2, eps, bias_correction: bool = True):
        self.beta1 = check_unit_interval(beta1, "beta1")
        self.beta2 = check_unit_interval(beta2, "beta2")
        self.eps = check_positive(eps, "eps")
        self.bias_correction = bool(bias_correction)

    def hyperparameters(self) -> dict:
        return {"beta1": self.beta1, "beta2": self.beta2, "eps": self.eps}

    def _key(self):
        return super()._key() + (self.bias_correction,)

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
        step = sp.Matrix([scale1 * mi / (sp.sqrt(scale2 * vi) + self.eps)
                          for mi, vi in zip(m, v)])
        return theta - h * step, sp.Matrix(out)

    def __repr__(self) -> str:
        flag = "" if self.bias_correction else ", bias_correction=False"
        return f"Adam(beta1={self.beta1}, beta2={self.beta2}, eps={self.eps}{flag})"
