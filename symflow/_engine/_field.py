r"""Modified equations of update rules whose direction is not the gradient of one loss.

Two sources of a direction replace :math:`-\nabla L`:

* a **vector field** :math:`F(\theta)` (``field=``): ``sf.GD()`` then steps
  :math:`\theta + hF(\theta)` (explicit Euler on :math:`F`), and a ``sf.Custom`` rule's
  ``grad(p)`` returns :math:`-F(p)`;
* a **stop-gradient loss** :math:`L(\theta, \bar\theta)` (``loss=`` with
  ``stop_gradient={copy: param}``): :math:`\bar\theta` are copies of some parameters that the
  gradient does not flow through (a target network, a teacher). ``grad(p)`` returns
  :math:`\nabla_\theta L(p, \bar\theta = p)` and ``grad(p, q)`` returns
  :math:`\nabla_\theta L(p, q)`, the held copies set to ``q`` (an EMA teacher in the memory).
  Without the second argument this is the field :math:`F(\theta) = -\nabla_\theta
  L(\theta, \bar\theta)|_{\bar\theta = \theta}`, which is in general not a gradient field.

Backward error analysis does not need a gradient: for explicit Euler on any field
(Hairer, Lubich & Wanner, *Geometric Numerical Integration*, 2nd ed. 2006, ch. IX.1)

.. math::  \dot\theta = F - \frac{h}{2} F'F + h^2\Bigl(\frac1{12} F''(F, F)
           + \frac13 F'F'F\Bigr) + O(h^3).

The result (:class:`~symflow._engine._field_result.FieldModifiedEquation`) says from which
order the flow is not a gradient field, and gives the coordinate-free terms (elementary
differentials of :math:`g = -F`) where the rule evaluates the direction at points only.

Example::

    >>> import sympy as sp, symflow as sf
    >>> x, y = sp.symbols("x y")
    >>> me = sf.modified_equation(sf.GD(), field=sp.Matrix([-y, x]), params=[x, y], order=1)
    >>> me.terms[1].T                      # -F'F/2: a rotation's Euler steps spiral out
    Matrix([[x/2, y/2]])
    >>> me.first_non_gradient_order
    0
"""

from __future__ import annotations

import sympy as sp

from .._core import _validate as v
from .._core._errors import SymflowError
from .._core._gradient import is_zero_expr
from .._core._guard import as_sympy
from .._core._symbols import h
from ..optimizers._base import check_optimizer
from ._algebra import ExprAlgebra, PolyAlgebra, expand_map
from ._bea import modified_field
from ._field_result import FieldModifiedEquation
from ._memory import reduce_on_manifold, relaxation_matrix, symbolic_rule
from ._point import at_point
from ._rings import coefficient_domains
from ._series import NotExpressible


class Direction:
    r"""What an optimizer's ``grad(point[, held])`` returns: :math:`-F` or a stop-gradient gradient.

    ``grad`` is the column :math:`-F(\theta)`; for a stop-gradient loss ``partial`` is
    :math:`\nabla_\theta L(\theta, \bar\theta)` in the parameters and the ``held`` symbols,
    and ``copies[j]`` the index of the parameter that ``held[j]`` copies.
    """

    def __init__(self, params, grad, loss=None, held=(), copies=()):
        self.params = tuple(params)
        self.grad = sp.ImmutableMatrix(grad)
        self.loss = loss
        self.held = tuple(held)
        self.copies = tuple(copies)
        self.partial = None if loss is None else sp.ImmutableMatrix(
            [sp.diff(loss, p) for p in self.params])
        #: the points about which grad's arguments are expanded: theta, then the copied params
        self.bases = self.params + tuple(self.params[j] for j in self.copies)
        self._derivatives = {}

    @property
    def field(self) -> sp.Matrix:
        """:math:`F = -` ``grad``."""
        return -sp.Matrix(self.grad)

    def oracle(self, point, held=None):
        """``grad(point)`` (held copies at the point) or ``grad(point, held)``."""
        dim = len(self.params)
        point = sp.Matrix(point) if isinstance(point, (list, tuple)) else point
        if not isinstance(point, sp.MatrixBase) or len(point) != dim:
            raise SymflowError(f"grad() was called with {point!r}; it takes a column Matrix of "
                               f"{dim} entries (one per parameter)")
        if held is None:
            return at_point(self.grad, dict(zip(self.params, point)))
        if self.partial is None:
            raise SymflowError("grad() was called with a second (held) point; only a "
                               "stop-gradient loss has one: pass loss= with stop_gradient=")
        held = sp.Matrix(held) if isinstance(held, (list, tuple)) else held
        if not isinstance(held, sp.MatrixBase) or len(held) != len(self.held):
            raise SymflowError(f"grad() was called with the held point {held!r}; it takes "
                               f"{len(self.held)} entries, one per stop-gradient copy "
                               f"{list(self.held)}")
        rule = dict(zip(self.params + self.held, list(point) + list(held)))
        return at_point(self.partial, rule)

    def derivative(self, i: int, beta: tuple):
        r""":math:`\partial^\beta` of ``grad_i``: over :math:`\theta` (``len(beta) = d``, the held
        copies moving with their parameters) or over :math:`(\theta, \bar\theta)`, at
        :math:`\bar\theta = \theta`."""
        key = (i, tuple(beta))
        if key in self._derivatives:
            return self._derivatives[key]
        if len(beta) == len(self.params):
            expr, symbols = self.grad[i], self.params
        else:
            expr, symbols = self.partial[i], self.params + self.held
        for s, e in zip(symbols, beta):
            if e:
                expr = sp.diff(expr, s, e)
        out = expr.xreplace({c: self.params[j] for c, j in zip(self.held, self.copies)})
        self._derivatives[key] = out
        return out


# -- input checks ------------------------------------------------------------------------------

def check_field(field, params, allowed) -> Direction:
    """A column Matrix ``field`` of one expression per parameter, as a :class:`Direction`."""
    if isinstance(field, str):
        raise SymflowError(f"got field={field!r} (a string); pass a SymPy column Matrix, "
                           "parsing each component with sf.parse_expression")
    if isinstance(field, (list, tuple)):
        field = sp.Matrix(field) if all(isinstance(c, (sp.Basic, int, float))
                                        for c in field) else field
    if not isinstance(field, sp.MatrixBase):
        raise SymflowError(f"got field={v._describe(field)}; the field must be a SymPy column "
                           f"Matrix with one entry per parameter ({len(params)})")
    if field.shape != (len(params), 1):
        raise SymflowError(
            f"got a field of shape {field.shape} for {len(params)} parameters {list(params)}; "
            f"the field must be a column Matrix of shape ({len(params)}, 1)")
    field = sp.Matrix(field).applyfunc(lambda c: v.rationalize(as_sympy(c)))
    v.check_free_symbols(field, params, allowed, "the field")
    return Direction(params, -field)


def check_stop_gradient(loss, params, stop_gradient, allowed) -> Direction:
    r"""A loss :math:`L(\theta, \bar\theta)` and ``{copy: param}`` as a :class:`Direction`."""
    if not isinstance(stop_gradient, dict) or not stop_gradient:
        raise SymflowError(
            f"got stop_gradient={v._describe(stop_gradient)}; pass a dict {{copy: param}} "
            "mapping each held symbol of the loss to the parameter it copies, e.g. "
            "stop_gradient={wt: w}")
    held, copies = [], []
    for copy, param in stop_gradient.items():
        if not isinstance(copy, sp.Symbol) or copy == h or copy in params or copy in allowed:
            raise SymflowError(
                f"got the held copy {copy!r}; each key of stop_gradient must be a new SymPy "
                "symbol (not a parameter, hyperparameter or sf.h) standing for a copy of a "
                "parameter that the gradient does not flow through")
        if param not in params:
            raise SymflowError(f"got stop_gradient={{{copy}: {param!r}}}; {param!r} is not one of "
                               f"the parameters {list(params)}")
        held.append(copy)
        copies.append(params.index(param))
    loss = v.check_loss(loss, params, frozenset(allowed) | frozenset(held))
    unused = [c for c in held if c not in loss.free_symbols]
    if unused:
        raise SymflowError(f"the loss does not contain the held copies {unused}; without them "
                           "it is an ordinary loss (drop stop_gradient=)")
    partial = [sp.diff(loss, p) for p in params]
    if all(is_zero_expr(g) for g in partial):
        raise SymflowError(
            "the stop-gradient loss does not depend on the free parameters "
            f"{list(params)} (only on the held copies {held}), so its gradient vanishes and "
            "the rule never moves; the parameters must appear outside the held copies")
    diag = {c: params[j] for c, j in zip(held, copies)}
    grad = sp.Matrix([g.xreplace(diag) for g in partial])
    return Direction(params, grad, loss, held, copies)


# -- the derivation ----------------------------------------------------------------------------

class _CancellingAlgebra(ExprAlgebra):
    """Expressions whose zero test cancels fractions (``M_0 - theta`` must vanish exactly)."""

    def is_zero(self, a) -> bool:
        return a == 0 or sp.cancel(a) == 0


def _expand_plain(optimizer, direction, params, allowed, order, path):
    phi = optimizer.step(sp.Matrix(params), direction.oracle, h)
    if not isinstance(phi, sp.MatrixBase):
        phi = sp.Matrix(phi)
    phi = phi.applyfunc(v.rationalize)
    v.check_free_symbols(phi, params, allowed | {h}, f"the update rule of {optimizer!r}")
    paths = ("polynomial", "general") if path == "auto" else (path,)
    for i, p in enumerate(paths):
        try:
            return expand_map(optimizer, None, phi, params, h, allowed, order, p)
        except SymflowError:
            if i == len(paths) - 1:
                raise


def _expand_memory(optimizer, direction, params, allowed, order, path):
    """The reduced map of a rule with memory (an EMA teacher), expanded to ``h**order``."""
    A, B, memory, fns = symbolic_rule(optimizer, params, len(direction.held))
    inv = relaxation_matrix(B, memory)
    # exact fractions in the hyperparameters: a held copy evaluated at the memory needs
    # M_0 - theta to cancel exactly ((1 - tau)/(1 - tau) = 1), which iota-symbols would hide
    domain = coefficient_domains(allowed)[-1]
    dim, n_held = len(params), len(direction.held)
    sources = [direction.grad, [direction.derivative(i, (0,) * (dim + n_held))
                                for i in range(dim)] if n_held else []]
    candidates = []
    if path in ("auto", "polynomial"):
        try:
            alg = PolyAlgebra(params, domain)
            for col in sources:
                for c in col:
                    alg.from_expr(c)
            candidates.append(alg)
        except (ValueError, TypeError, sp.PolynomialError, sp.polys.polyerrors.CoercionFailed):
            pass
    if path in ("auto", "general"):
        candidates.append(_CancellingAlgebra(params))
    reasons = []
    for alg in candidates:
        def derivative(i, beta, alg=alg):
            return alg.from_expr(direction.derivative(i, tuple(beta)))
        try:
            d, manifold = reduce_on_manifold(alg, params, A, B, memory, fns, derivative, order,
                                             inv, bases=direction.bases)
            return alg, d, manifold
        except NotExpressible as err:
            reasons.append(f"{alg.kind}: {err}")
    raise SymflowError(f"could not expand the update rule of {optimizer!r} on its memory "
                       f"manifold ({'; '.join(reasons) or f'path={path!r}'}); a held point must "
                       "tend to the parameters it copies as h -> 0")


def field_modified_equation(optimizer, loss, params, order, field=None, stop_gradient=None,
                            hyper=(), progress=None, path="auto", reduce=True):
    r"""``sf.modified_equation`` with ``field=`` or ``stop_gradient=`` (see the module)."""
    optimizer = check_optimizer(optimizer)
    if params is None or order is None:
        raise SymflowError("field= and stop_gradient= need params=[...] and order=k (the "
                           "coordinate-free form is .coordinate_free of the result)")
    params = v.check_params(params)
    order = v.check_order(order)
    if field is not None and (loss is not None or stop_gradient is not None):
        raise SymflowError("got field= together with loss= or stop_gradient=; give either a "
                           "vector field, or a loss with its stop-gradient copies")
    if path not in ("auto", "polynomial", "general"):
        raise SymflowError(f"got path={path!r}; with field= or stop_gradient= choose 'auto', "
                           "'polynomial' or 'general' (jets are derivatives of one loss)")
    if not reduce:
        raise SymflowError("reduce=False (the flow on the whole state) is not available with "
                           "field= or stop_gradient=; the memory is eliminated on its manifold")
    allowed = v.check_symbols(hyper, "hyper", params) | v.check_constant_hyper(optimizer, params)
    if field is not None:
        direction = check_field(field, params, allowed)
    else:
        if loss is None:
            raise SymflowError("got stop_gradient= without loss=; pass the loss L(theta, "
                               "copies) whose held copies stop_gradient names")
        direction = check_stop_gradient(loss, params, stop_gradient, allowed)
    manifold = None
    if optimizer.memory_size(len(params)) > 0:
        if not optimizer.memory_relaxes:
            raise SymflowError(f"the memory of {optimizer!r} does not relax; field= and "
                               "stop_gradient= need a memory with an invariant manifold")
        algebra, d, manifold = _expand_memory(optimizer, direction, params, allowed, order + 1,
                                              path)
    else:
        algebra, d = _expand_plain(optimizer, direction, params, allowed, order + 1, path)
        if not all(is_zero_expr(algebra.to_expr(a) - p) for a, p in zip(d[0], params)):
            raise SymflowError(
                f"the update rule of {optimizer!r} does not reduce to the identity at h = 0 "
                f"(it gives {list(map(algebra.to_expr, d[0]))}); a modified equation exists "
                "only for consistent maps theta_{n+1} = theta_n + O(h)")
    raw = modified_field(algebra, d, order, progress=progress)
    return FieldModifiedEquation(optimizer, direction, params, order, allowed, algebra, raw,
                                 manifold)
