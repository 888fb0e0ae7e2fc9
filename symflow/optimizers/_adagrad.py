"""AdaGrad: gradient scaled by the root of the accumulated squares."""

import sympy as sp

from ._base import AbstractMemoryOptimizer, check_positive


class AdaGrad(AbstractMemoryOptimizer):
    r"""AdaGrad (Duchi, Hazan & Singer 2011) with optax's conventions:

    .. math::

        s_{n+1} = s_n + \nabla L(\theta_n)^{2}, \qquad
        \theta_{n+1} = \theta_n - h\, \frac{\nabla L(\theta_n)}{\sqrt{s_{n+1} + \epsilon}},

    coordinate by coordinate, from :math:`s_0` = ``initial_accumulator`` (optax: 0.1).

    The accumulator never forgets (:math:`\partial s_{n+1}/\partial s_n = 1`), so there is
    no invariant manifold and no reduced flow on :math:`\theta` alone;
    :func:`symflow.modified_equation` returns the flow on the whole state, in the scaled
    variables :math:`w = h^2 s` and time :math:`\tau = n h^2` where both move at rate
    :math:`O(1)` (see :func:`symflow.state_modified_equation`).
    """

    name = "adagrad"
    memory_relaxes = False

    def __init__(self, eps, initial_accumulator=sp.Rational(1, 10)):
        self.eps = check_positive(eps, "eps")
        self.initial_accumulator = sp.nsimplify(initial_accumulator, rational=True)

    def hyperparameters(self) -> dict:
        return {"eps": self.eps}

    def _key(self):
        return super()._key() + (self.initial_accumulator,)

    def memory_size(self, dim: int) -> int:
        return dim

    def memory_names(self, params) -> list[str]:
        return [f"s_{p}" for p in params]

    def state_rule(self, params):
        r"""In :math:`w = h^2 s` and :math:`\tau = n h^2` (step :math:`\kappa = h^2`):
        :math:`w_{n+1} = w_n + \kappa g^2`,
        :math:`\theta_{n+1} = \theta_n - \kappa g / \sqrt{w_{n+1} + \kappa\epsilon}`."""
        kappa = sp.Symbol("kappa", positive=True)

        def rule(theta, w, grad, step):
            g = grad(theta)
            w_next = w + step * g.applyfunc(lambda c: c**2)
            update = sp.Matrix([gi / sp.sqrt(wi + step * self.eps) for gi, wi in zip(g, w_next)])
            return theta - step * update, w_next

        return rule, kappa, sp.sqrt(kappa), [f"w_{p}" for p in params], "tau = n*h**2"

    def initial_memory(self, theta, grad, h):
        return sp.Matrix([self.initial_accumulator] * len(theta))

    def step_memory(self, theta, memory, grad, h):
        g = grad(theta)
        s = memory + g.applyfunc(lambda c: c**2)
        step = sp.Matrix([gi / sp.sqrt(si + self.eps) for gi, si in zip(g, s)])
        return theta - h * step, s
