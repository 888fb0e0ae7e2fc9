r"""Modified equations (backward error analysis) of one-step optimizers.

For an optimizer map :math:`\theta_{n+1} = \Phi_h(\theta_n)` the *modified equation* is the
ODE :math:`\dot\theta = f_h(\theta) = \sum_{k\ge0} h^k f_k(\theta)` whose exact flow at time
:math:`t = nh` interpolates the iterates: truncating after :math:`h^p` leaves a global error
:math:`O(h^{p+1})` on bounded time intervals. For gradient descent
:math:`f_0 = -\nabla L` and :math:`f_1 = -\tfrac12 H\nabla L = -\nabla\bigl(\tfrac14\lVert\nabla
L\rVert^2\bigr)` (Barrett & Dherin 2021, *Implicit Gradient Regularization*).
"""

from __future__ import annotations

import sympy as sp

from .._core import _validate as v
from .._core._errors import SymflowError
from .._core._gradient import is_zero_expr
from .._core._progress import run_plan, set_later
from .._core._symbols import h
from .._trees._coordinate_free import coordinate_free_equation
from ..optimizers._base import check_optimizer
from ._algebra import expand_map
from ._bea import modified_field
from ._conversion import converted
from ._field import field_modified_equation
from ._game_pair import game_pair_equation, is_loss_pair
from ._memory import expand_reduced_map, symbolic_rule
from ._point import at_point
from ._result import ModifiedEquation
from ._state import not_relaxing_note, state_modified_equation
from ._tree_path import TREE, prefers_tree, tree_modified_equation

#: Cost of the stages after a loop over orders, as a multiple of the loop's own cost, for the
#: warning of a long run (:func:`~symflow._core._progress.run_plan`). Measured on Adam with
#: symbolic betas, orders 3 and 4: the backward error analysis and the conversion to
#: expressions after the memory manifold cost 1.3x to 1.6x the manifold.
MEMORY_LATER = 1.5
#: The conversion after the backward error analysis: 0.6x to 2x it for GD on the jet path
#: (d = 4, orders 3 and 4); up to 13x on the memory path (Adam, symbolic betas), where the
#: manifold loop has already predicted the whole run.
CONVERSION_LATER = 1.0


def _at(expr, params, point):
    """``expr`` with ``params`` set to ``point`` (see :func:`~symflow._engine._point.at_point`:
    derivatives of an undefined loss are evaluated there, as rules that take the gradient
    away from theta (extragradient, Nesterov, alternating GDA) need)."""
    return at_point(expr, dict(zip(params, point)))


def gradient_oracle(loss, params):
    """The gradient column of ``loss`` and a callable evaluating it at any point."""
    grad = sp.Matrix([sp.diff(loss, p) for p in params])

    def oracle(point):
        point = sp.Matrix(point) if isinstance(point, (list, tuple)) else point
        if not isinstance(point, sp.MatrixBase) or len(point) != len(params):
            raise SymflowError(
                f"grad() was called with {point!r}; it takes a column Matrix of "
                f"{len(params)} entries (one per parameter)"
            )
        return _at(grad, params, point)

    return grad, oracle


def _prepare(optimizer, loss, params, hyper):
    """Validate the inputs once; return them normalised, with the closed-form map
    (``None`` for an optimizer with memory: see :func:`state_map`)."""
    optimizer = check_optimizer(optimizer)
    params = v.check_params(params)
    allowed = v.check_symbols(hyper, "hyper", params) | v.check_constant_hyper(optimizer, params)
    loss = v.check_loss(loss, params, allowed)
    if has_memory(optimizer, params):
        state_map(optimizer, loss, params, allowed)  # validates the rule
        return optimizer, loss, params, allowed, None
    _, oracle = gradient_oracle(loss, params)
    phi = optimizer.step(sp.Matrix(params), oracle, h).applyfunc(v.rationalize)
    v.check_free_symbols(phi, params, allowed | {h}, f"the update rule of {optimizer!r}")
    check_power_series(phi, optimizer)
    return optimizer, loss, params, allowed, phi


def check_power_series(phi, optimizer) -> None:
    """Refuse a map that is not a power series in ``h`` at ``h = 0`` (``sqrt(h)``, ``1/h``)."""
    for e in phi.atoms(sp.Pow, sp.log):
        if not e.has(h):
            continue
        base, exp = (e.args[0], sp.Integer(-1)) if isinstance(e, sp.log) else e.as_base_exp()
        if (exp.is_Integer and exp >= 0) or not base.has(h) or \
                sp.simplify(base.xreplace({h: 0})) != 0:
            continue
        raise SymflowError(
            f"the update rule of {optimizer!r} holds {e}, which is not a power series in h "
            "at h = 0, so it has no modified equation in powers of h; for memory that "
            "forgets on the scale sqrt(h) (heavy ball or Nesterov with 1 - beta = c*sqrt(h)) "
            "use the slow-memory flow on the whole state: sf.modified_equation(..., "
            "reduce=False) or sf.state_modified_equation")


def has_memory(optimizer, params) -> bool:
    """True when the optimizer carries memory (momentum, moment estimates) for ``params``."""
    return optimizer.memory_size(len(params)) > 0


def state_map(optimizer, loss, params, allowed):
    r"""The closed-form map on the whole state :math:`(\theta, m)`.

    Returns ``(theta_next, memory_next, memory_symbols)`` with gradients of ``loss``
    substituted; the memory symbols stand for :math:`m_n`.
    """
    A, B, memory, fns = symbolic_rule(optimizer, params)
    grad, _ = gradient_oracle(loss, params)
    def concrete(expr):
        for i, f in enumerate(fns):
            expr = expr.replace(f, lambda *point, i=i: _at(grad[i], params, point))
        return v.rationalize(expr)

    theta_next = (sp.Matrix(params) + A).applyfunc(concrete)
    memory_next = B.applyfunc(concrete)
    what = f"the update rule of {optimizer!r}"
    for expr in (theta_next, memory_next):
        v.check_free_symbols(expr, tuple(params) + memory, allowed | {h}, what)
    return theta_next, memory_next, memory


def optimizer_map(optimizer, loss, params, hyper=()):
    r"""The closed-form one-step map :math:`\Phi_h(\theta)` as a SymPy column Matrix in ``sf.h``.

    For an optimizer with memory this is the map on the whole state: a pair
    ``(theta_next, memory_next)`` plus the tuple of memory symbols (see :func:`state_map`).
    """
    optimizer, loss, params, allowed, phi = _prepare(optimizer, loss, params, hyper)
    if phi is None:
        return state_map(optimizer, loss, params, allowed)
    return phi


def modified_equation(optimizer, loss=None, params=None, order=None, hyper=(), progress=None,
                      path="auto", reduce=True, field=None,
                      stop_gradient=None) -> ModifiedEquation:
    r"""Derive the modified equation of ``optimizer`` on ``loss`` up to ``h**order``, exactly.

    Without ``loss`` and ``params`` (``sf.modified_equation(optimizer, order=k)``) the result
    is coordinate-free: a :class:`~symflow.CoordinateFreeEquation` whose
    terms are exact combinations of elementary differentials of any loss (``-1/2 H g``,
    ``-1/12 T[g, g]``), for optimizers built from gradient evaluations (GD, heavy ball,
    Nesterov, ``Custom`` rules, gradient descent-ascent).

    Parameters
    ----------
    optimizer : AbstractOptimizer
        ``sf.GD()``, ``sf.Custom(update=...)``, ...
    loss : sympy.Expr or (sympy.Expr, sympy.Expr)
        A scalar expression in ``params`` (and declared hyperparameter symbols); for a
        game optimizer also a pair ``(L1, L2)``, each player descending its own loss (a
        general-sum game, :mod:`symflow._engine._game_pair`).
        Floats are read as the rationals they were written as (``0.1 -> 1/10``).
    params : sequence of sympy.Symbol
    order : int
        Highest power of the learning rate :math:`h` kept (``0`` is the gradient flow).
    hyper : sequence of sympy.Symbol
        Constant symbols in the loss (the optimizer's own hyperparameters are known).
    progress : bool or None
        Show a progress bar: None (default) once the derivation has run for a second,
        True from the start, False never.
    path : str
        Arithmetic: ``"polynomial"`` (exact sparse polynomials; polynomial losses),
        ``"jet"`` (polynomials in the derivatives of L; any loss), ``"general"`` (SymPy
        expressions), or ``"auto"`` (the first that applies, in that order); optimizers
        with memory may also use ``"rational"`` (rational functions of the derivatives of L
        and square roots: RMSprop, Adam). ``"tree"``: the coordinate-free form's exact tree
        coefficients contracted with the derivatives of L, left unexpanded
        (:mod:`symflow._engine._tree_path`; one-player optimizers built from gradients);
        ``"auto"`` takes it from 5 parameters on, or 3 for a non-polynomial loss.
        ``me.path`` says which was taken.
    reduce : bool
        For optimizers with memory: eliminate the memory on its invariant manifold and
        return the flow on theta alone (default), or ``False`` for the flow on the whole
        state :math:`(\theta, m)`, which exists when the memory is itself slow (e.g.
        ``beta = 1 - c*h``; see :func:`symflow.state_modified_equation`).
    field : sympy column Matrix, optional
        A vector field :math:`F(\theta)` instead of a loss: ``sf.GD()`` steps
        :math:`\theta + hF(\theta)` and a ``Custom`` rule's ``grad(p)`` returns :math:`-F(p)`
        (:mod:`symflow._engine._field`).
    stop_gradient : dict, optional
        ``{copy: param}``: ``loss`` is :math:`L(\theta, \bar\theta)` and each ``copy`` a held
        copy of ``param`` (no gradient flows through it); ``grad(p)`` holds the copies at
        ``p``, ``grad(p, q)`` at ``q`` (an EMA teacher kept in the memory).

    Examples
    --------
    ::

        >>> import sympy as sp, symflow as sf
        >>> x, y = sp.symbols("x y")
        >>> me = sf.modified_equation(sf.GD(), loss=(x*y - 1)**2 / 2, params=[x, y], order=2)
        >>> me.terms[0].T
        Matrix([[-x*y**2 + y, -x**2*y + x]])
        >>> me.gradient_orders  # the h^2 term, -H^2 g/3 - T[g,g]/12, is not a gradient
        (True, True, False)
        >>> print(sf.modified_equation(sf.GD(), order=1).field)  # any loss
        h^0: -g
        h^1: -1/2 H g
    """
    if is_loss_pair(optimizer, loss) and field is None and stop_gradient is None:
        return game_pair_equation(optimizer, loss, params, order, hyper, progress, path, reduce)
    if field is not None or stop_gradient is not None:
        return field_modified_equation(optimizer, loss, params, order, field, stop_gradient,
                                       hyper, progress, path, reduce)
    if loss is None or params is None or order is None:
        return _coordinate_free(optimizer, loss, params, order, hyper, progress, path, reduce)
    order = v.check_order(order)
    if path not in ("auto", "polynomial", "jet", "rational", "general", TREE):
        raise SymflowError(
            f"got path={path!r}; choose 'auto', 'polynomial', 'jet', 'rational', 'general' "
            "or 'tree'")
    optimizer, loss, params, allowed, phi = _prepare(optimizer, loss, params, hyper)
    if phi is None and (not reduce or not optimizer.memory_relaxes):
        if path == TREE:
            raise SymflowError("path='tree' applies to the reduced flow on theta only "
                               "(reduce=True, memory that relaxes)")
        note = None if optimizer.memory_relaxes else not_relaxing_note(optimizer, reduce)
        return state_modified_equation(optimizer, loss, params, order, hyper=hyper,
                                       progress=progress, note=note)
    if path == TREE or (path == "auto" and prefers_tree(optimizer, loss, params, order)):
        return tree_modified_equation(optimizer, loss, params, order, allowed, progress)
    if phi is None:
        with run_plan(f"sf.modified_equation({optimizer!r}, order={order}) on {len(params)} "
                      "parameters", later=MEMORY_LATER, cheaper=_cheaper(allowed, order)):
            algebra, d, manifold = expand_reduced_map(optimizer, loss, params, allowed,
                                                      order + 1, path, progress=progress)
            set_later(CONVERSION_LATER)
            raw = modified_field(algebra, d, order, progress=progress)
            with converted(algebra, list(raw) + list(manifold), progress):
                return ModifiedEquation(optimizer, loss, params, order, allowed, algebra, raw,
                                        manifold)
    if path == "rational":
        raise SymflowError("path='rational' applies to optimizers with memory only")
    with run_plan(f"sf.modified_equation({optimizer!r}, order={order}) on {len(params)} "
                  "parameters", later=CONVERSION_LATER, cheaper=_cheaper(allowed, order)):
        algebra, d = expand_map(optimizer, loss, phi, params, h, allowed, order + 1, path)
        return _map_equation(optimizer, loss, params, order, allowed, algebra, d, progress)


def _cheaper(allowed, order) -> str:
    """How to make a long derivation cheaper (the advice of its CostWarning)."""
    tips = [f"ask for a lower order (each order below {order} is several times cheaper)"]
    if allowed:
        tips.append("give the hyperparameters numeric values (exact rationals)")
    tips.append("use path='tree' for one-player optimizers built from gradients, or fewer "
                "parameters")
    return "; ".join(tips)


def _map_equation(optimizer, loss, params, order, allowed, algebra, d, progress):
    identity = [algebra.from_expr(p) for p in params]
    if not all(is_zero_expr(algebra.to_expr(a - b)) for a, b in zip(d[0], identity)):
        raise SymflowError(
            f"the update rule of {optimizer!r} does not reduce to the identity at h = 0 "
            f"(it gives {list(map(algebra.to_expr, d[0]))}); a modified equation exists only "
            "for consistent maps theta_{n+1} = theta_n + O(h)"
        )
    raw = modified_field(algebra, d, order, progress=progress)
    with converted(algebra, raw, progress):
        return ModifiedEquation(optimizer, loss, params, order, allowed, algebra, raw)


def _coordinate_free(optimizer, loss, params, order, hyper, progress, path, reduce):
    """``modified_equation`` called without a loss: the coordinate-free form (or a clear error)."""
    if order is None and params is None and isinstance(loss, int):
        raise SymflowError(
            f"got loss={loss!r} and no params; for the coordinate-free form pass the order "
            f"by keyword: sf.modified_equation(optimizer, order={loss})")
    if order is None:
        raise SymflowError("got no order; pass order=k, the highest power of h to keep")
    if loss is not None or params is not None:
        got = "params" if loss is None else "loss"
        raise SymflowError(
            f"got {got} but not {'loss' if got == 'params' else 'params'}; pass both (a concrete "
            "loss and its parameter symbols) or neither (the coordinate-free form, "
            "sf.modified_equation(optimizer, order=k))")
    if hyper or path != "auto" or not reduce:
        raise SymflowError(
            "hyper=, path= and reduce= apply to a concrete loss; the coordinate-free form "
            "takes its symbols from the optimizer and always eliminates the memory")
    return coordinate_free_equation(optimizer, order, progress)
