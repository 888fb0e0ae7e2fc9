r"""Modified equations on the whole state :math:`z = (\theta, m)` of an optimizer with memory.

When the memory is itself slow, the map on :math:`z` is close to the identity and has a
modified equation of its own, with the memory as ODE variables. Examples:

- RMSprop with :math:`\rho = 1 - c h`: :math:`\dot v = c(g^2 - v)`,
  :math:`\dot\theta = -g/(\sqrt{v} + \epsilon)` plus :math:`O(h)` corrections (the
  RMSprop ODE; Ma, Wu & E 2022, *A qualitative study of the dynamic behavior for adaptive
  gradient algorithms*).
- heavy ball with :math:`1 - \beta = c\sqrt h`: in the velocity :math:`u = v/\sqrt h` and
  time :math:`s = n\sqrt h`, :math:`\dot\theta = u`, :math:`\dot u = -c u - \nabla L`, i.e.
  :math:`\ddot\theta + c\dot\theta = -\nabla L` (Polyak 1964; Su, Boyd & Candès 2016 for
  Nesterov), plus :math:`O(\sqrt h)` corrections.
- AdaGrad, whose accumulator never forgets: in :math:`w = h^2 s` and :math:`\tau = n h^2`.

The expansion variable is the optimizer's :meth:`~symflow.AbstractOptimizer.state_rule` step.
"""

from __future__ import annotations

import functools

import sympy as sp

from .._core import _validate as v
from .._core._errors import MemoryWarning, SymflowError
from .._core._gradient import expr_is_gradient, expr_potential
from .._core._symbols import h
from ..optimizers._base import check_optimizer
from ._bea import modified_field
from ._conversion import converted
from ._memory import _half_powers, gradient_functions
from ._ratjets import RationalJetAlgebra
from ._result import ModifiedEquation
from ._rings import coefficient_domains
from ._series import Evaluator, NotExpressible, SeriesOps


class StateModifiedEquation(ModifiedEquation):
    r"""The modified flow of the whole state :math:`(\theta, m)`.

    ``params`` holds the state coordinates (the parameters ``theta``, then the memory
    symbols ``memory``); ``step`` is the expansion variable, ``time`` the time the flow
    runs in, ``h_value`` the learning rate as a function of ``step``, and the memory
    variables are ``memory_scale`` times the optimizer's own memory. ``note`` says why
    this flow was returned when a reduced one was asked for (AdaGrad), else ``None``.
    """

    def __init__(self, optimizer, loss, theta, memory, order, hyper, algebra, raw,
                 state_rule, note=None):
        super().__init__(optimizer, loss, tuple(theta) + tuple(memory), order, hyper,
                         algebra, raw)
        self.theta, self.memory = tuple(theta), tuple(memory)
        self._state_rule = state_rule
        self.step, self.h_value, self.time = state_rule.step, state_rule.h_value, state_rule.time
        self.memory_scale = state_rule.memory_scale
        self.note = note

    def truncate(self, order: int):
        order = v.check_order(order)
        if order > self.order:
            raise SymflowError(f"got order={order}; derived to order {self.order} only")
        return StateModifiedEquation(self.optimizer, self.loss, self.theta, self.memory, order,
                                     self.hyper, self._alg, self._raw[: order + 1],
                                     self._state_rule, self.note)

    @functools.cached_property
    def gradient_orders(self):
        return tuple(expr_is_gradient(list(t), self.params) for t in self.terms)

    @functools.cached_property
    def potentials(self):
        return tuple(expr_potential(list(t), self.params) if ok else None
                     for t, ok in zip(self.terms, self.gradient_orders))

    @property
    def time_scale(self):
        return None

    def _time_text(self) -> str:
        return self.time

    def _text(self, limit=None) -> str:
        text = super()._text(limit).replace("Modified equation of", "Modified equation of the "
                                            "whole state of", 1)
        return text if self.note is None else f"{text}\n  note: {self.note}"


def not_relaxing_note(optimizer, warn: bool) -> str:
    """Why an optimizer has no reduced flow (its memory never relaxes); warns if ``warn``."""
    import warnings

    note = (f"the memory of {optimizer!r} does not relax (d memory_next / d memory = I at "
            "h = 0: it never forgets), so there is no invariant manifold and no flow on "
            "theta alone; this is the flow on the whole state")
    if warn:
        warnings.warn(f"{note}. Pass reduce=False to ask for it directly.", MemoryWarning,
                      stacklevel=3)
    return note


def state_modified_equation(optimizer, loss, params, order, hyper=(), progress=None,
                            note=None):
    r"""Modified equation of an optimizer with memory on its whole state, to ``step**order``.

    Example (RMSprop with :math:`\rho = 1 - c h`: the second moment becomes an ODE variable)::

        >>> import sympy as sp, symflow as sf
        >>> x, c = sp.symbols("x c", positive=True)
        >>> me = sf.state_modified_equation(sf.RMSprop(rho=1 - c*sf.h, eps=1), x**2/2, [x], 0,
        ...                                 hyper=[c])
        >>> me.terms[0].T
        Matrix([[-x/(sqrt(v_x) + 1), -c*v_x + c*x**2]])
    """
    optimizer = check_optimizer(optimizer)
    params = v.check_params(params)
    order = v.check_order(order)
    if not optimizer.memory_size(len(params)):
        raise SymflowError(f"{optimizer!r} has no memory; use sf.modified_equation")
    state_rule = optimizer.state_rule(params)
    rule, step = state_rule.rule, state_rule.step
    memory = tuple(sp.Symbol(n, real=True) for n in state_rule.names)
    clash = {str(s) for s in memory} & {str(s) for s in params}
    if clash:
        raise SymflowError(f"the memory names {sorted(clash)} clash with parameter names; "
                           "rename the parameters")
    allowed = (v.check_symbols(hyper, "hyper", params)
               | v.check_constant_hyper(optimizer, params)) - {h, step}
    loss = v.check_loss(loss, params, allowed)
    dim, fns = len(params), gradient_functions(len(params))

    def oracle(point):
        point = sp.Matrix(point)
        return sp.Matrix([f(*point) for f in fns])

    nxt, mem = rule(sp.Matrix(params), sp.Matrix(memory), oracle, step)
    A = (sp.Matrix(nxt) - sp.Matrix(params)).applyfunc(v.rationalize)
    B = (sp.Matrix(mem) - sp.Matrix(memory)).applyfunc(v.rationalize)
    for expr in (A, B):
        v.check_free_symbols(expr.replace(lambda e: e.func in fns, lambda e: sp.S.Zero),
                             tuple(params) + memory, allowed | {step}, f"the rule of {optimizer!r}")
    domain = coefficient_domains(allowed)[-1]
    alg = RationalJetAlgebra(params, loss, domain, order + 3,
                             n_atoms=8 * (dim + len(memory)) + 4 * _half_powers(list(A) + list(B)),
                             extra_coords=memory)
    ops = SeriesOps(alg, order + 1)
    grads = {f: (i, (lambda beta, i=i: alg.jet(tuple(int(k == i) + b for k, b in
                                                     enumerate(beta)))))
             for i, f in enumerate(fns)}
    ev = Evaluator(ops, params, step, {}, grads)
    try:
        series = [ev(e) for e in list(A) + list(B)]
    except NotExpressible as err:
        raise SymflowError(f"could not expand the rule of {optimizer!r} in {step}: {err}") from err
    if any(not alg.is_zero(s[0]) for s in series):
        fast = [str(n) for n, s in zip(tuple(params) + memory, series) if not alg.is_zero(s[0])]
        raise SymflowError(
            f"the state of {optimizer!r} jumps by O(1) per step in {fast}: with fixed "
            "hyperparameters the memory is fast, so use reduce=True (the flow on its "
            "invariant manifold); a flow on the whole state needs slow memory, e.g. "
            "beta = 1 - c*sf.h")
    coords = [alg.from_expr(s) for s in tuple(params) + memory]
    d = [tuple(coords)] + [tuple(s[k] for s in series) for k in range(1, order + 2)]
    raw = modified_field(alg, d, order, progress=progress)
    with converted(alg, raw, progress):
        return StateModifiedEquation(optimizer, loss, params, memory, order, allowed, alg, raw,
                                     state_rule, note)
