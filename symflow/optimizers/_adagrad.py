"""AdaGrad: gradient scaled by the root of the accumulated squares."""

import sympy as sp

from ._base import AbstractMemoryOptimizer, StateRule, check_nonnegative, check_positive


class AdaGrad(AbstractMemoryOptimizer):
    r"""AdaGrad (Duchi, Hazan & Singer, JMLR 12, 2011) with optax's conventions:

    .. math::

        s_{n+1} = s_n + \nabla L(\theta_n)^{2}, \qquad
        \theta_{n+1} = \theta_n - h\, \frac{\nabla L(\theta_n)}{\sqrt{s_{n+1} + \epsilon}},

    coordinate by coordinate, from :math:`s_0` = ``initial_accumulator_value`` (optax's
    name and default, 0.1): ``sf.AdaGrad(eps)`` is ``optax.adagrad(h, eps=eps)``.

    The accumulator never forgets (:math:`\partial s_{n+1}/\partial s_n = 1`), so there is
    no invariant manifold and no reduced flow on :math:`\theta` alone;
    :func:`symflow.modified_equation` says so (a :class:`~symflow.MemoryWarning`) and
    returns the flow on the whole state, in the scaled variables :math:`w = h^2 s` and
    time :math:`\tau = n h^2`, where both move at rate :math:`O(1)`:
    :math:`\theta' = -\nabla L/\sqrt{w}`, :math:`w' = (\nabla L)^2` at leading order.

    Example::

        >>> import sympy as sp, symflow as sf
        >>> x = sp.Symbol("x")
        >>> me = sf.modified_equation(sf.AdaGrad(eps=sp.Rational(1, 10)), x**2 / 2, [x], 0,
        ...                           reduce=False)
        >>> me.terms[0].T, me.time
        (Matrix([[-x/sqrt(w_x), x**2]]), 'tau = n*h**2')
    """

    name = "adagrad"
    #: :meth:`linear_limits` as formulas, for messages.
    limits_text = ("2", None)
    memory_relaxes = False

    def __init__(self, eps, initial_accumulator_value=sp.Rational(1, 10)):
        self.eps = check_positive(eps, "eps")
        self.initial_accumulator_value = check_nonnegative(initial_accumulator_value,
                                                           "initial_accumulator_value")

    def hyperparameters(self) -> dict:
        return {"eps": self.eps}

    def _key(self):
        return super()._key() + (self.initial_accumulator_value,)

    def linear_limits(self):
        r"""GD on :math:`P^{-1}H` with :math:`P = \sqrt{s + \epsilon}` growing: stable for
        :math:`h\lambda < 2` at the current accumulator; no reduced series (``None``)."""
        return sp.Integer(2), None

    def preconditioner(self, grad):
        """At the first step, the largest effective step: :math:`\\sqrt{s_0 + g^2 + \\epsilon}`."""
        return [sp.sqrt(self.initial_accumulator_value + g * g + self.eps) for g in grad]

    def memory_size(self, dim: int) -> int:
        return dim

    def memory_names(self, params) -> list[str]:
        return [f"s_{p}" for p in params]

    def state_rule(self, params) -> StateRule:
        r"""In :math:`w = h^2 s` and :math:`\tau = n h^2` (step :math:`\kappa = h^2`):
        :math:`w_{n+1} = w_n + \kappa g^2`,
        :math:`\theta_{n+1} = \theta_n - \kappa g / \sqrt{w_{n+1} + \kappa\epsilon}`."""
        kappa = sp.Symbol("kappa", positive=True)

        def rule(theta, w, grad, step):
            g = grad(theta)
            w_next = w + step * g.applyfunc(lambda c: c**2)
            update = sp.Matrix([gi / sp.sqrt(wi + step * self.eps)
                                for gi, wi in zip(g, w_next)])
            return theta - step * update, w_next

        return StateRule(rule, kappa, sp.sqrt(kappa), [f"w_{p}" for p in params],
                         "tau = n*h**2", kappa)

    def initial_memory(self, theta, grad, h):
        return sp.Matrix([self.initial_accumulator_value] * len(theta))

    def step_memory(self, theta, memory, grad, h):
        g = grad(theta)
        s = memory + g.applyfunc(lambda c: c**2)
        step = sp.Matrix([gi / sp.sqrt(si + self.eps) for gi, si in zip(g, s)])
        return theta - h * step, s
