r"""The tree path: a concrete modified equation from the coordinate-free one.

For an optimizer with a coordinate-free form (:mod:`symflow._trees._coordinate_free`) every
term of the modified equation is :math:`f_k = \sum_\tau c_k(\tau)\,G(\tau)` with exact
coefficients :math:`c_k(\tau)` that do not depend on the loss, and :math:`G(\tau)` the
elementary differentials of :math:`g = \nabla L` (:mod:`symflow._trees._rooted`). On a concrete
loss each :math:`G(\tau)` is a contraction of derivative tensors of :math:`L`:

.. math::

    G([\tau_1, \dots, \tau_m]) = \nabla\bigl(D^m L[w_1, \dots, w_m]\bigr)
    \big|_{w_i = G(\tau_i)}, \qquad
    D^m L[w_1, \dots, w_m] = \partial_{t_1}\cdots\partial_{t_m}
    L\bigl(\theta + {\textstyle\sum_i} t_i w_i\bigr)\big|_{t = 0},

with the directions :math:`w_i` held fixed under :math:`\nabla`. Each :math:`D^mL` is
derived once in placeholder directions (the chain rule keeps it compact: for
:math:`L = s(a^\top\theta)` it is :math:`s^{(m)}(a^\top\theta)\prod_i a^\top w_i`, not a sum
of :math:`d^m` terms) and every subtree is evaluated once, so the work grows with the number
of trees, not with an expansion into monomials. The terms are left unexpanded (shared
subexpressions); :meth:`TreeModifiedEquation.expand` expands them on request.

**Gradient structure by trees.** For a free (unrooted) tree :math:`F` let :math:`S(F)` be
the scalar contraction of the derivative tensors of :math:`L` along its edges (one node:
:math:`L`; one edge: :math:`\lVert g\rVert^2`; a path of three nodes: :math:`g^\top H g`).
Differentiating one node at a time,

.. math::

    \nabla S(F) = \sum_{v \in F} G(F \text{ rooted at } v),

so :math:`f_k = -\sum_F \lambda_F \nabla S(F)` exactly when, within each class of rooted
trees sharing a free tree, :math:`c_k(\tau) = -\lambda_F\, m_F(\tau)` with :math:`m_F(\tau)`
the number of nodes of :math:`F` whose rooting gives :math:`\tau`; then
:math:`V_k = \sum_F \lambda_F S(F)` is a potential, found without integration. A term that
is not of this form for every loss is tested on the concrete loss: the symmetric part
:math:`u^\top J w - w^\top J u` of its Jacobian :math:`J` is evaluated exactly at random
rational points (the Jacobian by grafting, :math:`G(\tau)'w = \sum_v G(\tau\circ_v w)`); a
non-zero value proves it is not a gradient, and only when every probe vanishes is the
exact expression-level test run. See Hairer, Lubich & Wanner, *Geometric Numerical
Integration*, 2nd ed. 2006, ch. III.1 and IX.9.

Example::

    >>> import sympy as sp, symflow as sf
    >>> x, y = sp.symbols("x y")
    >>> me = sf.modified_equation(sf.GD(), (x*y - 1)**2 / 2, [x, y], order=1, path="tree")
    >>> me.path
    'tree'
    >>> me.expand().terms[1].T   # -1/2 H g
    Matrix([[-x**3*y**2 + 3*x**2*y/2 - x*y**4/2 - x/2 + y**3/2, -x**4*y/2 + x**3/2 - x**2*y**3 + 3*x*y**2/2 - y/2]])
    >>> sp.expand(me.potentials[1])   # |g|^2/4, from the tree structure
    x**4*y**2/4 - x**3*y/2 + x**2*y**4/4 + x**2/4 - x*y**3/2 + y**2/4
"""

from __future__ import annotations

import copy
import functools

import sympy as sp

from .._core._errors import SymflowError
from .._core._gradient import expr_is_gradient, expr_potential, random_points
from .._core._guard import as_sympy
from .._trees import _rooted as tr
from .._trees._coordinate_free import coordinate_free_equation
from .._trees._linear_rule import linear_rule
from ._result import ModifiedEquation

#: Name of this path in ``ModifiedEquation.path``.
TREE = "tree"

#: The marked leaf used to graft a fixed direction into a tree (Jacobian-vector products).
_MARK = tr.leaf(1)


# -- derivatives of the loss, once --------------------------------------------------------

class LossDerivatives:
    r"""The scalars :math:`D^mL[w_1..w_m]` and their gradients in placeholder directions.

    ``scalar(m)`` and ``gradient(m)`` are computed once per ``m`` (cached); ``directions(m)``
    are the placeholder symbols, ``directions(m)[i][b]`` the ``b``-th entry of :math:`w_i`.
    """

    def __init__(self, loss, params):
        self.loss = loss
        self.params = tuple(params)
        self._t = sp.symbols("_t0:64", cls=sp.Dummy)
        self._w: dict = {}
        self._scalar: dict = {}
        self._gradient: dict = {}

    def directions(self, m: int) -> list:
        if m not in self._w:
            d = len(self.params)
            self._w[m] = [sp.symbols(f"_w{i}_0:{d}", cls=sp.Dummy) for i in range(m)]
        return self._w[m]

    def scalar(self, m: int):
        """:math:`D^mL[w_1..w_m]`, the chain rule applied along :math:`t_1..t_m`."""
        if m not in self._scalar:
            self._scalar[m] = self._derive(m)
        return self._scalar[m]

    def _derive(self, m: int):
        if m == 0:
            return self.loss
        w, t = self.directions(m), self._t[:m]
        shift = {p: p + sp.Add(*[t[i] * w[i][b] for i in range(m)])
                 for b, p in enumerate(self.params)}
        s = self.loss.xreplace(shift)
        for ti in t:
            s = sp.diff(s, ti)
        return s.xreplace({ti: 0 for ti in t})

    def gradient(self, m: int) -> tuple:
        """:math:`\\nabla D^mL[w_1..w_m]` (directions held fixed), one entry per parameter."""
        if m not in self._gradient:
            s = self.scalar(m)
            self._gradient[m] = tuple(sp.diff(s, p) for p in self.params)
        return self._gradient[m]


class TreeValues:
    """:math:`G(\\tau)` on a concrete loss, every subtree evaluated once.

    With ``point`` (a substitution dict) the values are taken there; ``mark`` is the value
    of the marked leaf ``(1,)`` (a grafted direction).
    """

    def __init__(self, derivs: LossDerivatives, point=None, mark=None, expand=False):
        self.derivs = derivs
        self.point = point
        self.mark = mark
        self.expand = expand  # expand every value once, from expanded subtrees
        self._memo: dict = {}
        self._grads: dict = {}
        self._scalars: dict = {}

    def _at(self, expr):
        return expr if self.point is None else expr.xreplace(self.point)

    def _grad(self, m):
        if m not in self._grads:
            self._grads[m] = tuple(self._at(e) for e in self.derivs.gradient(m))
        return self._grads[m]

    def _fill(self, m, kids) -> dict:
        w = self.derivs.directions(m)
        sub = {}
        for i, child in enumerate(kids):
            value = self(child)
            sub.update({w[i][b]: value[b] for b in range(len(value))})
        return sub

    def __call__(self, t: tuple) -> tuple:
        if t not in self._memo:
            if t == _MARK:
                self._memo[t] = tuple(self.mark)
            else:
                kids = t[1:]
                sub = self._fill(len(kids), kids)
                grad = self._grad(len(kids))
                value = tuple(e.xreplace(sub) for e in grad) if sub else grad
                self._memo[t] = tuple(map(sp.expand, value)) if self.expand else value
        return self._memo[t]

    def invariant(self, t: tuple):
        """The scalar :math:`S(F)` of the free tree of ``t``: :math:`D^mL` at the root's children."""
        kids = t[1:]
        s = self._at(self.derivs.scalar(len(kids)))
        return s.xreplace(self._fill(len(kids), kids)) if kids else s


# -- free trees ------------------------------------------------------------------------------

def _adjacency(t: tuple) -> list:
    """Neighbour lists of the nodes of a one-colour rooted tree (node 0 is the root)."""
    adj: list = [[]]

    def walk(node, me):
        for child in node[1:]:
            adj.append([me])
            adj[me].append(len(adj) - 1)
            walk(child, len(adj) - 1)

    walk(t, 0)
    return adj


def _rooted_at(adj, v, parent=None) -> tuple:
    return tr.tree(*[_rooted_at(adj, u, v) for u in adj[v] if u != parent])


@functools.cache
def reroots(t: tuple) -> tuple:
    """``(free-tree key, {rooted tree: multiplicity})``: the rootings of ``t``'s free tree."""
    adj = _adjacency(t)
    counts: dict = {}
    for v in range(len(adj)):
        r = _rooted_at(adj, v)
        counts[r] = counts.get(r, 0) + 1
    key = min(counts, key=tr.sort_key)
    return key, counts


def tree_potential(coeffs: dict):
    r"""``{free-tree key: lambda}`` with :math:`\sum_\tau c(\tau) G(\tau) = -\sum_F \lambda_F
    \nabla S(F)` for every loss, or None when the combination is not of that form."""
    out = {}
    seen: set = set()
    for t in coeffs:
        key, counts = reroots(t)
        if key in seen:
            continue
        seen.add(key)
        lam = None
        for r, mult in counts.items():
            value = -as_sympy(coeffs.get(r, 0)) / mult
            if lam is None:
                lam = value
            elif sp.cancel(value - lam) != 0:
                return None
        if lam != 0:
            out[key] = lam
    return out


def _zero_as_polynomial(expr) -> bool:
    """True when ``expr`` vanishes as a polynomial once every non-polynomial atom (a function,
    a root, the base of a negative power) is read as an independent symbol (sufficient for
    ``expr == 0``; a ``False`` proves nothing)."""
    atoms = {}
    for a in expr.atoms(sp.Function, sp.Pow):
        if isinstance(a, sp.Function) or not a.exp.is_Integer:
            atoms[a] = sp.Dummy()
    for a in expr.atoms(sp.Pow):
        if a.exp.is_Integer and a.exp < 0 and a.base not in atoms:
            atoms[a.base] = sp.Dummy()
    inverse = {a: sp.Dummy() for a in atoms}
    rep = {}
    for a, s in atoms.items():
        rep[a] = s
    poly_expr = expr.replace(
        lambda e: e.is_Pow and e.exp.is_Integer and e.exp < 0 and e.base in atoms,
        lambda e: inverse[e.base] ** (-e.exp))
    poly_expr = poly_expr.xreplace(rep)
    try:
        return sp.Poly(poly_expr, *sorted(poly_expr.free_symbols, key=str)).is_zero
    except sp.PolynomialError:
        return False


# -- the result ------------------------------------------------------------------------------

class TreeTerm:
    """One term :math:`f_k` of the tree path: its components (unexpanded) and its trees."""

    def __init__(self, coeffs: dict, components: tuple):
        self.coeffs = coeffs
        self.components = components

    def __iter__(self):
        return iter(self.components)

    def __len__(self):
        return len(self.components)


class TreeAlgebra:
    """What :class:`ModifiedEquation` asks of an arithmetic, for terms built from trees."""

    kind = TREE

    def __init__(self, params, derivs: LossDerivatives, symbols):
        self.params = tuple(params)
        self.derivs = derivs
        self.values = TreeValues(derivs)
        self.symbols = symbols  # the free symbols a probe must fix (params and hyper)
        loss = derivs.loss
        self._rational = not loss.atoms(sp.Function) and all(
            p.exp.is_Integer for p in loss.atoms(sp.Pow))

    def to_expr(self, a):
        return a

    def _probes(self, count=2):
        return random_points(self.symbols, count)

    def _asymmetric_somewhere(self, term: TreeTerm) -> bool:
        """True when the Jacobian of ``term`` is provably not symmetric (an exact probe)."""
        d = len(self.params)
        for k, exact in enumerate(self._probes()):
            # exact rationals for a rational loss; else 60-digit floats, so that every node
            # collapses to a number as it is built (exp(1/3) would stay symbolic)
            point = exact if self._rational else {s: sp.Float(q, 60) for s, q in exact.items()}
            rng = random_points([sp.Symbol(f"_u{k}_{i}") for i in range(2 * d)], k + 2)[k + 1]
            vals = [rng[s] for s in sorted(rng, key=str)]
            u, w = vals[:d], vals[d:]
            uJw = sp.Add(*[a * b for a, b in zip(u, self._jacobian_vector(term, point, w))])
            wJu = sp.Add(*[a * b for a, b in zip(w, self._jacobian_vector(term, point, u))])
            if not (uJw.is_number and wJu.is_number and uJw.is_finite and wJu.is_finite):
                continue
            if abs(uJw - wJu) > sp.Float("1e-30") * max(1, abs(uJw), abs(wJu)):
                return True
        return False

    def _jacobian_vector(self, term: TreeTerm, point, direction) -> list:
        values = TreeValues(self.derivs, point or None, direction)
        out = [sp.S.Zero] * len(self.params)
        for t, c in term.coeffs.items():
            c = as_sympy(c).xreplace(point)
            for grafted, mult in tr.graft(_MARK, t).items():
                out = [a + c * mult * b for a, b in zip(out, values(grafted))]
        return out

    def is_gradient(self, term) -> bool:
        if tree_potential(term.coeffs) is not None:
            return True
        if self._asymmetric_somewhere(term):
            return False
        return self._symmetric_exactly(term)

    def _symmetric_exactly(self, term: TreeTerm) -> bool:
        r"""Exact test of :math:`u^\top J w = w^\top J u` with symbolic ``u``, ``w``.

        The non-polynomial atoms (``exp(z)``, ``log(...)``, roots) are read as independent
        symbols and the difference cancelled as a rational function: zero there proves it
        zero; otherwise (the atoms may be related) SymPy's own zero test decides.
        """
        d = len(self.params)
        u = sp.symbols(f"_u0:{d}", cls=sp.Dummy)
        w = sp.symbols(f"_v0:{d}", cls=sp.Dummy)
        Jw = self._jacobian_vector(term, {}, w)
        Ju = self._jacobian_vector(term, {}, u)
        gap = sp.Add(*[a * b for a, b in zip(u, Jw)]) - sp.Add(*[a * b for a, b in zip(w, Ju)])
        if _zero_as_polynomial(gap):
            return True
        return expr_is_gradient(list(term), self.params)

    def potential(self, term):
        lams = tree_potential(term.coeffs)
        if lams is None:
            return expr_potential(list(term), self.params)
        return sp.Add(*[lam * self.values.invariant(key) for key, lam in lams.items()])


class TreeModifiedEquation(ModifiedEquation):
    """A :class:`ModifiedEquation` from the tree path; terms unexpanded until :meth:`expand`."""

    def expand(self) -> TreeModifiedEquation:
        """A copy whose terms (and modified loss, when computed) are expanded.

        Each :math:`G(\\tau)` is expanded once from its expanded subtrees (expanding the
        shared, nested terms directly would redo the shared parts many times over).
        """
        new = copy.copy(self)
        new.__dict__ = dict(self.__dict__)
        values = TreeValues(self._alg.derivs, expand=True)
        new.terms = tuple(
            sp.ImmutableMatrix([sp.expand(sp.Add(*[c * values(t)[i]
                                                   for t, c in term.coeffs.items()]))
                                for i in range(len(self.params))])
            for term in self._raw)
        if self.manifold_terms is not None:
            new.manifold_terms = tuple(t.applyfunc(sp.expand) for t in self.manifold_terms)
        if "potentials" in self.__dict__:
            new.potentials = tuple(None if p is None else sp.expand(p)
                                   for p in self.potentials)
        return new


# -- the derivation --------------------------------------------------------------------------

def tree_form(optimizer):
    """The optimizer's linear rule when the tree path applies to it (one player), else None."""
    try:
        rule = linear_rule(optimizer)
    except SymflowError:
        return None
    return rule if rule.blocks == 1 else None


def _combine(series_k, theta_coeffs, values, params):
    d = len(params)
    comps = []
    for i in range(d):
        parts = [c * values(t)[i] for t, c in series_k.items()]
        if theta_coeffs and theta_coeffs[0] != 0:
            parts.append(theta_coeffs[0] * params[i])
        comps.append(sp.Add(*parts))
    return tuple(comps)


def tree_modified_equation(optimizer, loss, params, order, allowed, progress=None):
    """The modified equation of ``optimizer`` on ``loss`` through its coordinate-free form."""
    if tree_form(optimizer) is None:
        raise SymflowError(
            f"path='tree' needs an optimizer with a coordinate-free form (one player, built "
            f"from gradient evaluations); {optimizer!r} has none: use path='auto'")
    cf = coordinate_free_equation(optimizer, order, progress)
    params = tuple(params)
    derivs = LossDerivatives(loss, params)
    symbols = set(params) | set(allowed) | set(cf.hyper) | loss.free_symbols
    algebra = TreeAlgebra(params, derivs, symbols)
    values = algebra.values
    raw = [TreeTerm(dict(coeffs), _combine(coeffs, cf.field.theta[k], values, params))
           for k, coeffs in enumerate(cf.terms)]
    manifold = None
    if cf.manifold is not None:
        manifold = []
        for k in range(order + 2):
            rows = []
            for series in cf.manifold:
                rows.extend(_combine(series.terms[k], series.theta[k], values, params)
                            if k < len(series.terms) else (sp.S.Zero,) * len(params))
            manifold.append(rows)
    return TreeModifiedEquation(optimizer, loss, params, order, allowed | set(cf.hyper),
                                algebra, raw, manifold)


#: From this many parameters on, ``path="auto"`` takes the tree path for a polynomial loss
#: (below it the exact polynomial ring is as fast; see benchmarks/bench_modified.py).
POLYNOMIAL_FROM = 5
#: ... and from this many for a non-polynomial loss (the jet path swells beyond it).
GENERAL_FROM = 3


def prefers_tree(optimizer, loss, params, order) -> bool:
    """True when ``path="auto"`` should take the tree path (see the thresholds above)."""
    if tree_form(optimizer) is None:
        return False
    d = len(params)
    if d >= POLYNOMIAL_FROM:
        return True
    return d >= GENERAL_FROM and not loss.is_polynomial(*params)
