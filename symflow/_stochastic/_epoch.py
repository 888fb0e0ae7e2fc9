r"""The mean flow of one epoch of SGD with random reshuffling.

Smith, Dherin, Barrett & De, *On the origin of implicit regularization
in stochastic gradient descent*, ICLR 2021. One epoch of SGD with random reshuffling over
:math:`m` batches with losses :math:`L_1, \dots, L_m` (:math:`L = \frac1m\sum_k L_k`) composes
:math:`m` gradient steps in a random order. The engine composes them symbolically, averages
the composed map over the :math:`m!` orders, and finds the modified flow of that mean map;
at first order it is the gradient flow of

.. math::

    \tilde L = L + \frac h4\lVert\nabla L\rVert^2
    + \frac h{4m}\sum_{k=1}^m\lVert\nabla L_k - \nabla L\rVert^2 .
"""

from __future__ import annotations

import copy
import functools
import itertools
import math
import numbers

import sympy as sp
from sympy.polys.rings import ring

from .._core import _validate as v
from .._core._display import NOT_COMPUTED, PENDING_LOSS, computed, shorten
from .._core._errors import SymflowError
from .._core._latex import LatexDisplay, aligned
from .._core._readable import readable
from .._core._symbols import h
from .._engine._modified import modified_equation
from .._engine._tree_path import (
    SplitDerivatives,
    TreeAlgebra,
    TreeModifiedEquation,
    TreeTerm,
    TreeValues,
    _combine,
)
from .._trees._bseries import BSeries
from ..optimizers import Custom
from ._dataset import as_dataset


def _grad(expr, params):
    return sp.Matrix([sp.diff(expr, p) for p in params])

class _SeriesMaps:
    """Truncated power series in ``h`` of maps: lists of coefficient columns d_0..d_K."""

    def __init__(self, params, grads, order, polynomial):
        self.params, self.order = tuple(params), order
        self.polynomial = polynomial
        if polynomial:
            self.ring, *gens = ring(self.params + (h,), sp.QQ)
            self.gens, self.h = gens[:-1], gens[-1]
            self.grads = [[self.ring(sp.expand(c)) for c in g] for g in grads]
        else:
            self.grads = grads

    def identity(self):
        return list(self.gens if self.polynomial else self.params)

    def step(self, current, k):
        """``current - h * grad_k(current)`` truncated after ``h**order``."""
        if self.polynomial:
            subs = list(zip(self.gens, current))
            out = []
            for c, g in zip(current, self.grads[k]):
                new = c - self.h * g.compose(subs)
                out.append(self.ring({m: co for m, co in new.terms() if m[-1] <= self.order}))
            return out
        eps = sp.Dummy("eps")
        shifted = {p: c.xreplace({h: eps}) for p, c in zip(self.params, current)}
        out = []
        for c, g in zip(current, self.grads[k]):
            comp = g.xreplace(shifted)
            series = sp.S.Zero
            deriv = comp
            for j in range(self.order):
                series += h ** (j + 1) * deriv.xreplace({eps: 0}) / math.factorial(j)
                deriv = sp.diff(deriv, eps)
            out.append(sp.expand(c - series))
        return out

    def to_expr(self, vec):
        if self.polynomial:
            return [p.as_expr() for p in vec]
        return vec


@functools.cache
def epoch_trees(m: int, order: int) -> tuple:
    r"""The mean epoch map and its modified field as combinations of coloured trees.

    A node of colour :math:`k` stands for batch :math:`k`'s loss (see
    :class:`symflow._engine._tree_path.SplitDerivatives`). The steps
    :math:`\theta \mapsto \theta - h\,g_k(\theta)` are composed as B-series in these trees
    (Taylor expansion of :math:`g_k` at the displaced point), averaged over the :math:`m!`
    orders, and backward error analysis on trees gives the field (Hairer, Lubich & Wanner,
    *Geometric Numerical Integration*, 2nd ed. 2006, ch. III.1 and IX.9; the splitting form
    of Araújo, Murua & Sanz-Serna 1997). The coefficients hold for every choice of losses.

    Returns ``(increments, field)``: ``increments[k]`` is ``{tree: c}`` with the mean map
    :math:`\theta + \sum_{k\ge1} h^k \sum_\tau c\,G(\tau)`, ``field[k]`` likewise the
    :math:`h^k` term of the modified field of the mean map (not yet divided by :math:`m`).

    Example::

        >>> inc, field = epoch_trees(2, 1)   # two batches: -(g_0 + g_1) - h/2 (H_0 g_0 + H_1 g_1)
        >>> field[0], field[1]
        ({(0,): -1, (1,): -1}, {(0, (0,)): -1/2, (1, (1,)): -1/2})
    """
    S = BSeries(sp.QQ, order + 1)
    minus_h = [S.K.zero, -S.K.one]
    cache = {(): S.theta()}

    def composed(prefix):
        if prefix not in cache:
            point = composed(prefix[:-1])
            cache[prefix] = S.add(point, S.times(minus_h, S.grad_at(point, prefix[-1])))
        return cache[prefix]

    total: dict = {}
    for perm in itertools.permutations(range(m)):
        total = S.add(total, composed(perm))
    share = S.K.from_sympy(sp.Rational(1, math.factorial(m)))
    d = [{} for _ in range(S.T + 1)]
    for k, t, c in S.split_point({key: c * share for key, c in total.items()}, "the epoch map"):
        d[k][t] = c
    f = S.modified_field(d, order)
    as_rational = S.K.to_sympy
    return (tuple({t: as_rational(c) for t, c in dk.items()} for dk in d),
            tuple({t: as_rational(c) for t, c in fk.items()} for fk in f))


class EpochFlow(LatexDisplay):
    r"""The mean flow of one reshuffled epoch, per unit time :math:`t = nh`.

    Attributes
    ----------
    terms : tuple of column Matrix
        ``terms[k]`` is the coefficient of :math:`h^k` (``terms[0] == -grad L``).
    modified_loss : sympy.Expr or None
        :math:`\tilde L` with ``field == -grad L~`` when every term is a gradient field.
    mean_map : column Matrix
        The composed map averaged over the :math:`m!` batch orders, to :math:`h^{p+1}`.
    path : str
        ``"tree"`` or ``"series"``: how the flow was derived (see :func:`epoch_mean_flow`).
    batch_losses, loss, params, order
    """

    def __init__(self, me, batch_losses, loss, params, mean_map):
        m = len(batch_losses)
        self.batch_losses, self.loss, self.params = tuple(batch_losses), loss, tuple(params)
        self.order, self.n_batches, self.mean_map = me.order, m, sp.ImmutableMatrix(mean_map)
        # the tree path's terms come expanded: dividing by m keeps them so
        expand = (lambda e: e) if me.path == "tree" else sp.expand
        self.terms = tuple(sp.ImmutableMatrix((sp.Matrix(t) / m).applyfunc(expand))
                           for t in me.terms)
        self.equation = me
        #: ``"tree"`` (coloured trees, potentials by structure) or ``"series"``.
        self.path = "tree" if me.path == "tree" else "series"

    @property
    def gradient_orders(self) -> tuple:
        """``gradient_orders[k]``: is ``terms[k]`` a gradient field (symmetric Jacobian)."""
        return self.equation.gradient_orders

    @functools.cached_property
    def modified_loss(self):
        r""":math:`\tilde L` with ``field == -grad L~`` (None when not a gradient field).

        Computed on first access: on the tree path read off the tree structure (no
        integration); on the series path by the engine's potential search.
        """
        me, m = self.equation, self.n_batches
        if not me.is_gradient:
            return None
        found = [me.potential(k) for k in range(1, self.order + 1)]
        if any(p is None for p in found):
            return None
        return sp.expand(self.loss + sum((h**k * p / m for k, p in enumerate(found, 1)),
                                         sp.S.Zero))

    @property
    def field(self) -> sp.Matrix:
        """:math:`\\sum_k h^k\\,\\text{terms}[k]`."""
        out = sp.zeros(len(self.params), 1)
        for k, t in enumerate(self.terms):
            out += h**k * sp.Matrix(t)
        return out

    def simplify(self) -> "EpochFlow":
        """A copy whose terms (and modified loss, when computed) are passed to ``sp.simplify``."""
        new = copy.copy(self)
        new.__dict__ = dict(self.__dict__)
        new.terms = tuple(t.applyfunc(sp.simplify) for t in self.terms)
        if computed(self, "modified_loss") not in (NOT_COMPUTED, None):
            new.modified_loss = sp.simplify(self.modified_loss)
        return new

    # -- display: shows only what is computed (printing never integrates) -----------------
    def latex(self) -> str:
        field = self.field
        rows = [f"\\frac{{d{sp.latex(p)}}}{{dt}} &= "
                f"{sp.latex(readable(sp.expand(field[i]), self.params))}"
                for i, p in enumerate(self.params)]
        ml = computed(self, "modified_loss")
        if ml is NOT_COMPUTED:
            rows.append(f"&\\text{{{PENDING_LOSS}}}")
        elif ml is not None:
            rows.append(f"\\tilde{{L}} &= {sp.latex(readable(ml, self.params))}")
        return aligned(rows)

    def _text(self, limit=None) -> str:
        cut = (lambda t: t) if limit is None else (lambda t: shorten(t, limit))
        lines = [f"Mean flow of one reshuffled epoch ({self.n_batches} batches), order "
                 f"{self.order} in h, t = n*h"]
        for k, t in enumerate(self.terms):
            lines.append(cut(f"  h^{k}: {[readable(c, self.params) for c in t]}"))
        ml = computed(self, "modified_loss")
        if ml is NOT_COMPUTED:
            lines.append(f"  {PENDING_LOSS}")
        elif ml is not None:
            lines.append(cut(f"  modified loss: {readable(ml, self.params)}"))
        else:
            lines.append("  no modified loss: not a gradient field at every kept order")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self._text()

    def __repr__(self) -> str:
        return self._text(limit=400)


MAX_BATCHES = 6


#: The ways :func:`epoch_mean_flow` derives the flow.
PATHS = ("auto", "tree", "series")


def _tree_flow(batch_losses, loss, params, order, extra):
    """The epoch flow through :func:`epoch_trees`: every term a combination of coloured
    trees evaluated on the batch losses, potentials from the tree structure."""
    m = len(batch_losses)
    increments, field = epoch_trees(m, order)
    algebra = TreeAlgebra(params, SplitDerivatives(batch_losses, params),
                          set(params) | set(extra) | loss.free_symbols)
    raw = [TreeTerm(dict(fk), _combine(fk, None, algebra.values, params)) for fk in field]
    expanded = TreeValues(algebra.derivs, expand=True)  # each tree expanded once
    mean_map = sp.Matrix([p + sp.Add(*[h**k * c * expanded(t)[i]
                                       for k, dk in enumerate(increments)
                                       for t, c in dk.items()])
                          for i, p in enumerate(params)])
    custom = Custom(update=lambda theta, grad, step: mean_map, name="reshuffled-epoch")
    me = TreeModifiedEquation(custom, loss, params, order, extra, algebra, raw)
    return me.expand(expanded), mean_map


def epoch_mean_flow(losses=None, params=None, dataset=None, batch_size=None, batches=None,
                    order: int = 1, hyper=(), path: str = "auto") -> EpochFlow:
    r"""The modified flow of the mean epoch map of SGD with random reshuffling.

    Give the batch losses directly (``batches=[L_1, ..., L_m]``, each the mean loss of one
    batch), or a training set (``losses`` or ``dataset``) with ``batch_size``: the samples
    are split in order into :math:`m = N/B` batches (one fixed partition; the average is
    over the order in which the batches are visited). The :math:`m` gradient steps
    :math:`\theta\mapsto\theta - h\nabla L_k(\theta)` are composed as power series in
    :math:`h` (sparse polynomials for polynomial losses, Taylor coefficients otherwise),
    averaged over all :math:`m!` orders (:math:`m \le 6`), and the mean map goes through
    :func:`symflow.modified_equation`; the field is divided by :math:`m` so that time is
    :math:`t = nh`.

    ``path="tree"`` (the default for non-polynomial batch losses) composes the steps once
    for all losses in trees whose nodes are coloured by batch (:func:`epoch_trees`) and
    evaluates them on the :math:`L_k`; where the tree coefficients have the structure of a
    potential (as at first order, every loss) the modified loss is read off the trees,
    without integration: at first order it is Smith et al.'s
    :math:`\frac h{4m}\sum_k\lVert\nabla L_k\rVert^2`. ``path="series"`` (the default for
    polynomial ones) composes power series of the concrete maps.

    Example::

        >>> import sympy as sp
        >>> w = sp.Symbol("w")
        >>> flow = epoch_mean_flow(batches=[(w - 1)**2 / 2, (w + 1)**2 / 2, w**2], params=[w])
        >>> flow.terms[0], flow.modified_loss
        (Matrix([[-4*w/3]]), h*w**2/2 + 2*w**2/3 + 1/3)
    """
    order = v.check_order(order)
    if not isinstance(path, str) or path not in PATHS:
        raise SymflowError(f"got path={path!r}; give one of {', '.join(map(repr, PATHS))}")
    if batches is not None:
        if losses is not None or dataset is not None:
            raise SymflowError("give batches=[...] or a training set (losses/dataset with "
                               "batch_size), not both")
        params = v.check_params(params)
        allowed = v.check_symbols(hyper, "hyper", params)
        batch_losses = [v.check_loss(b, params, allowed) for b in batches]
    else:
        ds = as_dataset(dataset, losses, params, hyper)
        params = ds.params
        n = ds.n_samples
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or \
                batch_size < 1:
            raise SymflowError(f"got batch_size={batch_size!r}; give a positive integer that "
                               f"divides the N={n} samples")
        if n % batch_size:
            raise SymflowError(f"batch_size={batch_size} does not divide N={n}; an epoch of "
                               "reshuffled SGD needs N/B whole batches")
        batch_losses = [ds.subset(range(k, k + batch_size)).mean_loss
                        for k in range(0, n, batch_size)]
    m = len(batch_losses)
    if m < 1 or m > MAX_BATCHES:
        raise SymflowError(f"got {m} batches; the average over the m! batch orders is formed "
                           f"exactly for 1 <= m <= {MAX_BATCHES}; use fewer, larger batches")
    loss = sp.expand(sp.Add(*batch_losses) / m)
    grads = [list(_grad(b, params)) for b in batch_losses]
    polynomial = all(b.is_polynomial(*params) and not (b.free_symbols - set(params))
                     for b in batch_losses)
    extra = tuple(sorted(loss.free_symbols - set(params), key=str))
    if path == "tree" or (path == "auto" and not polynomial):
        me, mean_map = _tree_flow(batch_losses, loss, params, order, extra)
        return _checked(EpochFlow(me, batch_losses, loss, params, mean_map), grads)
    maps = _SeriesMaps(params, grads, order + 1, polynomial)
    total = [0] * len(params)
    cache = {(): maps.identity()}

    def composed(prefix):
        if prefix not in cache:
            cache[prefix] = maps.step(composed(prefix[:-1]), prefix[-1])
        return cache[prefix]

    for perm in itertools.permutations(range(m)):
        for i, c in enumerate(composed(perm)):
            total[i] = total[i] + c
    count = math.factorial(m)
    mean_map = sp.Matrix([sp.expand(e / count) for e in maps.to_expr(total)])
    custom = Custom(update=lambda theta, grad, step: mean_map, name="reshuffled-epoch")
    me = modified_equation(custom, loss, params, order, hyper=extra,
                           path="polynomial" if polynomial else "general")
    return _checked(EpochFlow(me, batch_losses, loss, params, mean_map), grads)


def _checked(flow: EpochFlow, grads) -> EpochFlow:
    """``flow`` after checking that its leading term is the mean gradient flow."""
    m = flow.n_batches
    if not all(sp.expand(a + sum(g[i] for g in grads) / m) == 0
               for i, a in enumerate(flow.terms[0])):
        raise SymflowError("internal: the epoch map does not start with m gradient steps")
    return flow


__all__ = ["EpochFlow", "epoch_mean_flow"]
