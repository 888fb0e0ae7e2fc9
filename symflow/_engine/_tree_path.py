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
is not of this form for every loss is tested on the concrete loss, after taking out that
part (:func:`_non_potential_part`): the antisymmetric part
:math:`u^\top J w - w^\top J u` of its Jacobian :math:`J` is evaluated at random rational
points (the Jacobian by grafting, :math:`G(\tau)'w = \sum_v G(\tau\circ_v w)`; exact for a
rational loss, 60 digits in mpmath otherwise); a non-zero value shows it is not a gradient.
When every probe vanishes, :math:`J_{ij} - J_{ji}` is computed as a Laurent polynomial in
the parameters and the loss's atoms (:class:`PolynomialReading`, unit directions grafted),
where zero proves the symmetry; only when that reading leaves a remainder is SymPy's
expression-level test run. See Hairer, Lubich & Wanner, *Geometric Numerical Integration*,
2nd ed. 2006, ch. III.1 and IX.9.

**Colours.** With a :class:`SplitDerivatives` a node of colour :math:`k` is a derivative of
the :math:`k`-th loss of a splitting :math:`\sum_k \nabla L_k` (the batches of an epoch of
SGD); the rerooting identity and the tests above hold node colour by node colour.

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

import mpmath
import sympy as sp
from sympy.polys.rings import ring

from .._core._errors import SymflowError
from .._core._gradient import expr_is_gradient, expr_potential, random_points
from .._core._guard import as_sympy
from .._trees import _rooted as tr
from .._trees._coordinate_free import coordinate_free_equation
from .._trees._linear_rule import linear_rule
from ._result import ModifiedEquation

#: Name of this path in ``ModifiedEquation.path``.
TREE = "tree"

#: The marked leaf used to graft a fixed direction into a tree (Jacobian-vector products);
#: its colour is not a loss's (colours ``0, 1, ...`` name the losses of a splitting).
_MARK = tr.leaf(-1)


# -- derivatives of the loss, once --------------------------------------------------------

class LossDerivatives:
    r"""The scalars :math:`D^mL[w_1..w_m]` and their gradients in placeholder directions.

    ``scalar(m)`` and ``gradient(m)`` are computed once per ``m`` (cached); ``directions(m)``
    are the placeholder symbols, ``directions(m)[i][b]`` the ``b``-th entry of :math:`w_i`.
    """

    def __init__(self, loss, params):
        self.loss = loss
        self.params = tuple(params)
        self._t = sp.Dummy("t")
        self._w: list = []
        self._scalar: dict = {0: loss}
        self._gradient: dict = {}
        self._parts: dict = {}

    def directions(self, m: int) -> list:
        """The symbols of :math:`w_1..w_m` (the same :math:`w_i` for every ``m``)."""
        d = len(self.params)
        while len(self._w) < m:
            self._w.append(sp.symbols(f"_w{len(self._w)}_0:{d}", cls=sp.Dummy))
        return self._w[:m]

    def scalar(self, m: int):
        r""":math:`D^mL[w_1..w_m] = \partial_t D^{m-1}L(\theta + t w_m)[w_1..w_{m-1}]|_{t=0}`,
        one chain rule from the previous one (compact: for :math:`L = s(a^\top\theta)` it is
        :math:`s^{(m)}(a^\top\theta)\prod_i a^\top w_i`)."""
        if m not in self._scalar:
            prev, w, t = self.scalar(m - 1), self.directions(m)[-1], self._t
            shifted = prev.xreplace({p: p + t * w[b] for b, p in enumerate(self.params)})
            self._scalar[m] = sp.diff(shifted, t).xreplace({t: 0})
        return self._scalar[m]

    def gradient(self, m: int) -> tuple:
        r""":math:`\nabla D^mL[w_1..w_m]` (directions held fixed), one entry per parameter:
        :math:`D^{m+1}L[w_1..w_m, e_b]`, the next scalar in the unit directions."""
        if m not in self._gradient:
            s, w = self.scalar(m + 1), self.directions(m + 1)[-1]
            self._gradient[m] = tuple(
                s.xreplace({wc: sp.S.One if c == b else sp.S.Zero for c, wc in enumerate(w)})
                for b in range(len(self.params)))
        return self._gradient[m]

    def gradient_parts(self, m: int) -> tuple:
        r"""``gradient(m)`` grouped by its factors in the directions: per parameter a tuple of
        ``(c, W)`` with the entry :math:`\sum c\,W`, ``c`` free of the directions.

        Substituting the directions then walks only the small factors ``W`` (the chain rule
        repeats one product of linear forms :math:`\prod_i a^\top w_i` in every term).
        """
        if m not in self._parts:
            w = {s for block in self.directions(m) for s in block}
            parts = []
            for entry in self.gradient(m):
                groups: dict = {}
                for term in sp.Add.make_args(entry):
                    inner, outer = [], []
                    for f in sp.Mul.make_args(term):
                        (inner if f.free_symbols & w else outer).append(f)
                    groups.setdefault(sp.Mul(*inner), []).append(sp.Mul(*outer))
                parts.append(tuple((sp.Add(*cs), W) for W, cs in groups.items()))
            self._parts[m] = tuple(parts)
        return self._parts[m]

    @property
    def losses(self) -> tuple:
        return (self.loss,)

    def for_color(self, color: int) -> LossDerivatives:
        """The derivatives at a node of colour ``color`` (one loss: every node)."""
        return self


class SplitDerivatives:
    r"""One :class:`LossDerivatives` per colour, for a field split as :math:`\sum_k \nabla L_k`.

    A node of colour :math:`k` stands for :math:`\nabla^{m+1} L_k`, so
    :math:`G([\tau_1..\tau_m]_k) = \nabla(D^m L_k[G(\tau_1), \dots, G(\tau_m)])`: the
    elementary differentials of an additive splitting (N-trees; Araújo, Murua & Sanz-Serna,
    *SIAM J. Numer. Anal.* 34, 1997), e.g. the batch losses of an epoch of SGD.
    """

    def __init__(self, losses, params):
        self.params = tuple(params)
        self.losses = tuple(losses)
        self.parts = tuple(LossDerivatives(loss, params) for loss in self.losses)

    def for_color(self, color: int) -> LossDerivatives:
        return self.parts[color]


class TreeValues:
    """:math:`G(\\tau)` on a concrete loss, every subtree evaluated once.

    ``derivs`` is a :class:`LossDerivatives` (one loss) or a :class:`SplitDerivatives` (a
    loss per colour). With ``point`` (a substitution dict) the values are taken there;
    ``mark`` is the value of the marked leaf :data:`_MARK` (a grafted direction).
    """

    def __init__(self, derivs, point=None, mark=None, expand=False, base=None):
        self.derivs = derivs
        self.point = point
        self.mark = mark
        self.expand = expand  # expand every value once, from expanded subtrees
        self._memo: dict = {}
        self._grads: dict = {}
        # ``base``: values at the same point without a mark, shared (trees without the mark)
        self.base = base
        if base is not None:
            self._grads = base._grads

    def _at(self, expr):
        return expr if self.point is None else expr.xreplace(self.point)

    def _grad(self, color, m):
        if (color, m) not in self._grads:
            self._grads[(color, m)] = tuple(
                tuple((self._at(c), self._at(W)) for c, W in entry)
                for entry in self.derivs.for_color(color).gradient_parts(m))
        return self._grads[(color, m)]

    def _fill(self, color, kids) -> dict:
        w = self.derivs.for_color(color).directions(len(kids))
        sub = {}
        for i, child in enumerate(kids):
            value = self(child)
            sub.update({w[i][b]: value[b] for b in range(len(value))})
        return sub

    def __call__(self, t: tuple) -> tuple:
        if self.base is not None and not _marked(t):
            return self.base(t)
        if t not in self._memo:
            if t == _MARK:
                self._memo[t] = tuple(self.mark)
            else:
                kids = t[1:]
                sub = self._fill(t[0], kids)
                grad = self._grad(t[0], len(kids))
                value = tuple(sp.Add(*[c * W.xreplace(sub) for c, W in entry])
                              for entry in grad)
                self._memo[t] = tuple(map(sp.expand, value)) if self.expand else value
        return self._memo[t]

    def invariant(self, t: tuple):
        """The scalar :math:`S(F)` of the free tree of ``t``: :math:`D^mL` at the root's children."""
        kids = t[1:]
        s = self._at(self.derivs.for_color(t[0]).scalar(len(kids)))
        return s.xreplace(self._fill(t[0], kids)) if kids else s


@functools.cache
def _marked(t: tuple) -> bool:
    """True when the tree holds the marked leaf."""
    return t == _MARK or any(_marked(c) for c in t[1:])


# -- free trees ------------------------------------------------------------------------------

def _adjacency(t: tuple) -> tuple:
    """Neighbour lists and colours of the nodes of a rooted tree (node 0 is the root)."""
    adj: list = [[]]
    colors: list = [t[0]]

    def walk(node, me):
        for child in node[1:]:
            adj.append([me])
            colors.append(child[0])
            adj[me].append(len(adj) - 1)
            walk(child, len(adj) - 1)

    walk(t, 0)
    return adj, colors


def _rooted_at(adj, colors, v, parent=None) -> tuple:
    return tr.tree(*[_rooted_at(adj, colors, u, v) for u in adj[v] if u != parent],
                   color=colors[v])


@functools.cache
def reroots(t: tuple) -> tuple:
    """``(free-tree key, {rooted tree: multiplicity})``: the rootings of ``t``'s free tree."""
    adj, colors = _adjacency(t)
    counts: dict = {}
    for v in range(len(adj)):
        r = _rooted_at(adj, colors, v)
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


class PolynomialReading:
    r"""Read expressions exactly as Laurent polynomials in their symbols and atoms.

    Every symbol is a generator; :math:`e^{c_1 m_1 + \dots}` (monomials :math:`m_i`, rational
    :math:`c_i`) is the product :math:`\prod_i E_i^{c_i q_i}` of generators
    :math:`E_i = e^{m_i/q_i}`, so that :math:`e^{2z} = (e^z)^2` and :math:`e^{-z} e^{z} = 1` are
    seen; any other function, a root, or the base of a negative power that is not a
    generator becomes one more generator. Products of a generator and its inverse are
    reduced (a normal form of Laurent polynomials). Shared subexpressions are read once.
    A polynomial that vanishes proves the expression zero; one that does not proves
    nothing (two atoms may be related, as :math:`1/(1 + e^z)` and :math:`e^z`).

    Example::

        >>> import sympy as sp
        >>> x, y = sp.symbols("x y")
        >>> z = sp.exp(x - 2*y)
        >>> PolynomialReading().vanishes([z**2 * sp.exp(-2*x) - sp.exp(-4*y)])
        True
    """

    def __init__(self):
        self._index: dict = {}   # generator key -> position
        self._pairs: dict = {}   # position of a generator -> position of its inverse
        self._shape: dict = {}   # expr -> how it is read (filled by the first pass)
        self._memo: dict = {}
        self.ring = None

    def _gen(self, key, inverse_of=None) -> int:
        if key not in self._index:
            self._index[key] = len(self._index)
            if inverse_of is not None:
                i, j = self._index[inverse_of], self._index[key]
                self._pairs[i], self._pairs[j] = j, i
        return self._index[key]

    def _unit(self, key, negative: bool) -> int:
        """The position of generator ``key`` or of its inverse."""
        base = self._gen(("g", key))
        return self._gen(("inv", key), inverse_of=("g", key)) if negative else base

    def scan(self, expr, variables=frozenset()) -> bool:
        """First pass: the shape of every subexpression; False when one cannot be read.

        ``variables`` are symbols bound later, by :meth:`read_with`, not generators.
        """
        if self.ring is not None:
            raise SymflowError("internal: PolynomialReading.scan after the ring was built")
        stack = [expr]
        while stack:
            e = stack.pop()
            if e in self._shape:
                continue
            if e in variables:
                shape = ("var",)
            elif e.is_Rational:
                shape = ("num",)
            elif e.is_Number:
                return False  # a float: no exact reading
            elif e.is_Symbol:
                shape = ("gen", self._unit(e, False))
            elif e.is_Add or e.is_Mul:
                shape = ("add" if e.is_Add else "mul",)
                stack.extend(e.args)
            elif e.is_Pow and e.exp.is_Integer:
                if e.exp >= 0:
                    shape = ("pow",)
                    stack.append(e.base)
                elif e.base.is_Symbol or (isinstance(e.base, sp.Function)
                                          and not isinstance(e.base, sp.exp)):
                    shape = ("gens", ((self._unit(e.base, True), int(-e.exp)),))
                else:
                    shape = ("gens", ((self._unit(("den", e.base), False), int(-e.exp)),))
            elif isinstance(e, sp.exp):
                powers = []
                for term in sp.Add.make_args(sp.expand(e.args[0])):
                    c, mono = term.as_coeff_Mul()
                    if not c.is_Rational:
                        return False
                    if mono == 1:
                        powers.append((self._unit(("exp", term, 1), False), 1))
                    else:
                        gen = self._unit(("exp", mono, c.q), c.p < 0)
                        powers.append((gen, abs(int(c.p))))
                shape = ("gens", tuple(powers))
            else:
                if e.atoms(sp.Float):
                    return False
                shape = ("gen", self._unit(e, False))
            self._shape[e] = shape
        return True

    def build(self):
        """Fix the generators found by :meth:`scan`: the ring of the readings."""
        if self.ring is None:
            count = max(len(self._index), 1)
            self.ring = ring([sp.Dummy(f"a{i}") for i in range(count)], sp.QQ)[0]
        return self.ring

    def read_with(self, expr, env: dict, memo: dict):
        """The reading of ``expr`` with its variables bound to ring elements by ``env``;
        ``memo`` keeps the readings that use them (one per ``env``)."""
        return self._read_env(expr, env, memo)[0]

    def _read_env(self, expr, env, memo):
        if expr in self._memo:
            return self._memo[expr], False
        if expr in env:
            return env[expr], True
        if expr in memo:
            return memo[expr], True
        shape, R = self._shape[expr], self.ring
        if shape[0] not in ("add", "mul", "pow"):
            return self._read(expr), False
        if shape[0] == "pow":
            base, bound = self._read_env(expr.base, env, memo)
            out = base ** int(expr.exp)
        else:
            out, bound = (R.zero if shape[0] == "add" else R.one), False
            for arg in expr.args:
                value, b = self._read_env(arg, env, memo)
                out = out + value if shape[0] == "add" else out * value
                bound |= b
        (memo if bound else self._memo)[expr] = out
        return out, bound

    def _read(self, expr):
        if expr in self._memo:
            return self._memo[expr]
        shape, R = self._shape[expr], self.ring
        kind = shape[0]
        if kind == "var":
            raise SymflowError("internal: a variable read without its value")
        if kind == "num":
            out = R(R.domain.convert(expr))
        elif kind == "gen":
            out = R.gens[shape[1]]
        elif kind == "gens":
            out = R.one
            for i, n in shape[1]:
                out *= R.gens[i] ** n
        elif kind == "add":
            out = R.zero
            for arg in expr.args:
                out += self._read(arg)
        elif kind == "mul":
            out = R.one
            for arg in expr.args:
                out *= self._read(arg)
        else:
            out = self._read(expr.base) ** int(expr.exp)
        self._memo[expr] = out
        return out

    def read(self, expr):
        """The reading of a scanned expression (after :meth:`build`)."""
        return self._read(expr)

    def is_zero(self, poly) -> bool:
        """True when the ring element is zero as a Laurent polynomial."""
        return not self._reduced(poly)

    def _reduced(self, poly):
        r"""Normal form modulo :math:`E\,E^{-1} = 1` for every generator with an inverse."""
        if not self._pairs:
            return list(poly.values())
        out: dict = {}
        for monom, c in poly.terms():
            mon = list(monom)
            for i, j in self._pairs.items():
                if i < j and mon[i] and mon[j]:
                    k = min(mon[i], mon[j])
                    mon[i] -= k
                    mon[j] -= k
            key = tuple(mon)
            out[key] = out.get(key, 0) + c
        return [c for c in out.values() if c]

    def vanishes(self, exprs) -> bool:
        """True when every expression reads as the zero Laurent polynomial (proves ``== 0``)."""
        exprs = [as_sympy(e) for e in exprs]
        if not all(self.scan(e) for e in exprs):
            return False
        self.build()
        return all(self.is_zero(self._read(e)) for e in exprs)


def split_potential(coeffs: dict) -> tuple:
    r"""``(lams, rest)`` with :math:`\sum_\tau c(\tau) G(\tau) = \sum_F \lambda_F \nabla S(F)
    + \sum_\tau r(\tau) G(\tau)` for every loss.

    In each class of rootings of one free tree :math:`F`, :math:`\lambda_F` is chosen so that
    the first rooting's coefficient in ``rest`` vanishes: ``rest`` is a gradient exactly
    when ``coeffs`` is, and is empty when ``coeffs`` is a gradient for every loss.
    """
    lams: dict = {}
    rest: dict = {}
    for t in coeffs:
        key, counts = reroots(t)
        if key in lams:
            continue
        lam = lams[key] = as_sympy(coeffs.get(key, 0)) / counts[key]
        for r, mult in counts.items():
            c = sp.cancel(as_sympy(coeffs.get(r, 0)) - lam * mult)
            if c != 0:
                rest[r] = c
    return {key: lam for key, lam in lams.items() if lam != 0}, rest


def _non_potential_part(coeffs: dict) -> dict:
    """The ``rest`` of :func:`split_potential`: what is left once a potential is taken out."""
    return split_potential(coeffs)[1]


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


#: SymPy functions evaluated by the mpmath probe (others send it back to SymPy).
_MPMATH = {name: getattr(mpmath, name.lower()) for name in (
    "exp", "log", "sin", "cos", "tan", "cot", "sec", "csc", "sinh", "cosh", "tanh", "coth",
    "sech", "csch", "asin", "acos", "atan", "asinh", "acosh", "atanh", "erf", "erfc")}
_MPMATH["Abs"] = mpmath.fabs


class NumericTreeValues:
    """:math:`G(\\tau)` at a rational point as mpmath numbers (the working precision).

    The derivative expressions are evaluated node by node (shared subexpressions once per
    point), so that no SymPy expression is built; the unmarked values at the point are
    kept, a marked leaf takes a given direction. A node it cannot evaluate raises
    ``TypeError``.
    """

    def __init__(self, derivs, point: dict):
        self.derivs = derivs
        self.point = {s: mpmath.mpf(q.p) / q.q for s, q in point.items()}
        self._numbers: dict = {}  # expressions free of the directions, at the point
        self._memo: dict = {}

    def number(self, expr, env=None, bound=None):
        """``expr`` at the point, with the direction symbols in ``env``."""
        return self._number(expr, env or {}, {} if bound is None else bound)[0]

    def _number(self, expr, env, bound):
        if expr in self._numbers:
            return self._numbers[expr], False
        if expr in env:
            return env[expr], True
        if expr in bound:
            return bound[expr], True
        uses = False
        if expr.is_Rational:
            out = mpmath.mpf(expr.p) / expr.q
        elif expr.is_Symbol:
            if expr not in self.point:
                raise TypeError(f"no value for {expr}")
            out = self.point[expr]
        elif expr.is_Add or expr.is_Mul:
            values = []
            for arg in expr.args:
                value, b = self._number(arg, env, bound)
                values.append(value)
                uses |= b
            out = mpmath.fsum(values) if expr.is_Add else mpmath.fprod(values)
        elif expr.is_Pow:
            base, uses = self._number(expr.base, env, bound)
            e = expr.exp
            if e.is_Integer:
                out = base ** int(e)
            else:
                power, b = self._number(e, env, bound)
                uses |= b
                out = base ** power
        elif isinstance(expr, sp.Function) and type(expr).__name__ in _MPMATH:
            args = []
            for arg in expr.args:
                value, b = self._number(arg, env, bound)
                args.append(value)
                uses |= b
            out = _MPMATH[type(expr).__name__](*args)
        else:
            raise TypeError(f"no mpmath value for {type(expr).__name__}")
        (bound if uses else self._numbers)[expr] = out
        return out, uses

    def _value(self, t, mark, memo):
        if t == _MARK:
            return mark
        cache = memo if _marked(t) else self._memo
        if t not in cache:
            der = self.derivs.for_color(t[0])
            kids = t[1:]
            w = der.directions(len(kids))
            env = {}
            for i, kid in enumerate(kids):
                env.update(zip(w[i], self._value(kid, mark, memo)))
            bound: dict = {}
            cache[t] = [mpmath.fsum(self.number(c) * self.number(W, env, bound)
                                    for c, W in entry)
                        for entry in der.gradient_parts(len(kids))]
        return cache[t]

    def jacobian_vector(self, term, direction) -> list:
        """:math:`J w` of ``term`` at the point, by grafting the marked leaf."""
        memo: dict = {}
        out = [mpmath.mpf(0)] * len(direction)
        for t, c in term.coeffs.items():
            c = self.number(as_sympy(c))
            for grafted, mult in tr.graft(_MARK, t).items():
                value = self._value(grafted, list(direction), memo)
                out = [a + c * mult * b for a, b in zip(out, value)]
        return out


class TreeAlgebra:
    """What :class:`ModifiedEquation` asks of an arithmetic, for terms built from trees."""

    kind = TREE

    def __init__(self, params, derivs: LossDerivatives, symbols):
        self.params = tuple(params)
        self.derivs = derivs
        self.values = TreeValues(derivs)
        self.symbols = symbols  # the free symbols a probe must fix (params and hyper)
        self._bases: dict = {}
        self._numeric_bases: dict = {}
        self._rational = all(not loss.atoms(sp.Function) and all(
            p.exp.is_Integer for p in loss.atoms(sp.Pow)) for loss in derivs.losses)

    def to_expr(self, a):
        return a

    def _probes(self, count=2):
        return random_points(self.symbols, count)

    def _asymmetric_somewhere(self, term: TreeTerm) -> bool:
        """True when the Jacobian of ``term`` is provably not symmetric (a probe: exact for a
        rational loss, else 60 digits with a 1e-30 relative margin)."""
        if not self._rational:
            try:
                return self._asymmetric_numerically(term)
            except (TypeError, ValueError, ZeroDivisionError):
                pass  # a node mpmath cannot evaluate: the SymPy probe below
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

    def _asymmetric_numerically(self, term: TreeTerm) -> bool:
        """The probe of :meth:`_asymmetric_somewhere` in mpmath (:class:`NumericTreeValues`):
        no SymPy expression is built per node."""
        d = len(self.params)
        with mpmath.workdps(60):
            for k, exact in enumerate(self._probes()):
                base = self._numeric_bases.get(k)
                if base is None:
                    base = self._numeric_bases[k] = NumericTreeValues(self.derivs, exact)
                rng = random_points([sp.Symbol(f"_u{k}_{i}") for i in range(2 * d)], k + 2)[k + 1]
                vals = [mpmath.mpf(rng[s].p) / rng[s].q for s in sorted(rng, key=str)]
                u, w = vals[:d], vals[d:]
                uJw = mpmath.fsum(a * b for a, b in zip(u, base.jacobian_vector(term, w)))
                wJu = mpmath.fsum(a * b for a, b in zip(w, base.jacobian_vector(term, u)))
                if not (mpmath.isfinite(uJw) and mpmath.isfinite(wJu)):
                    continue
                if abs(uJw - wJu) > mpmath.mpf("1e-30") * max(1, abs(uJw), abs(wJu)):
                    return True
        return False

    def _base_values(self, point) -> TreeValues:
        """Unmarked values at ``point`` ({} for symbolic), kept for the next term."""
        key = tuple(sorted(point.items(), key=lambda kv: str(kv[0])))
        if key not in self._bases:
            self._bases[key] = TreeValues(self.derivs, point) if point else self.values
        return self._bases[key]

    def _jacobian_vector(self, term: TreeTerm, point, direction) -> list:
        values = TreeValues(self.derivs, point or None, direction, base=self._base_values(point))
        parts: list = [[] for _ in self.params]
        for t, c in term.coeffs.items():
            c = as_sympy(c).xreplace(point)
            for grafted, mult in tr.graft(_MARK, t).items():
                for part, b in zip(parts, values(grafted)):
                    part.append(c * mult * b)
        return [sp.Add(*part) for part in parts]

    def is_gradient(self, term) -> bool:
        rest = _non_potential_part(term.coeffs)
        if not rest:
            return True  # a gradient for every loss (the tree structure)
        part = TreeTerm(rest, ())
        if self._asymmetric_somewhere(part):
            return False
        return self._symmetric_exactly(part) or expr_is_gradient(list(term), self.params)

    def _symmetric_exactly(self, part: TreeTerm) -> bool:
        r"""True when :math:`J_{ij} = J_{ji}` is proved for the Jacobian :math:`J` of ``part``.

        ``part`` is a term with its gradient-for-every-loss part taken out
        (:func:`_non_potential_part`). The columns :math:`J e_j` come from grafting the unit
        vectors (:math:`G(\tau)' e_j = \sum_v G(\tau \circ_v e_j)`), computed directly as
        Laurent polynomials in the symbols and atoms (:class:`PolynomialReading`): each
        :math:`D^mL` is read once, the unmarked subtrees once for all :math:`j`. Every
        :math:`J_{ij} - J_{ji}` zero there proves the symmetry; False proves nothing (the
        atoms may be related).
        """
        d = len(self.params)
        reading = PolynomialReading()
        grafted: dict = {}
        for t, c in part.coeffs.items():
            for g, mult in tr.graft(_MARK, t).items():
                grafted[g] = grafted.get(g, 0) + as_sympy(c) * mult
        needed: set = set()
        stack = list(grafted)
        while stack:
            t = stack.pop()
            if t != _MARK and (t[0], len(t) - 1) not in needed:
                needed.add((t[0], len(t) - 1))
            stack.extend(t[1:])
        for color, m in needed:
            der = self.derivs.for_color(color)
            w = frozenset(s for block in der.directions(m) for s in block)
            for entry in der.gradient_parts(m):
                if not all(reading.scan(c) and reading.scan(W, w) for c, W in entry):
                    return False
        if not all(reading.scan(c) for c in grafted.values()):
            return False
        R = reading.build()
        unmarked: dict = {}

        def value(t, j, memo):
            if t == _MARK:
                return tuple(R.one if i == j else R.zero for i in range(d))
            cache = memo if _marked(t) else unmarked
            if t not in cache:
                der = self.derivs.for_color(t[0])
                kids = t[1:]
                w = der.directions(len(kids))
                env = {}
                for i, kid in enumerate(kids):
                    kid_value = value(kid, j, memo)
                    env.update({w[i][b]: kid_value[b] for b in range(d)})
                out, bound = [], {}
                for entry in der.gradient_parts(len(kids)):
                    acc = R.zero
                    for c, W in entry:
                        acc += reading.read(c) * reading.read_with(W, env, bound)
                    out.append(acc)
                cache[t] = tuple(out)
            return cache[t]

        cols = []
        for j in range(d):
            memo: dict = {}
            col = [R.zero] * d
            for g, c in grafted.items():
                cr = reading.read(c)
                col = [a + cr * b for a, b in zip(col, value(g, j, memo))]
            cols.append(col)
        return all(reading.is_zero(cols[j][i] - cols[i][j])
                   for i in range(d) for j in range(i + 1, d))

    def potential(self, term):
        r"""The potential of a gradient term: :math:`-\sum_F \lambda_F S(F)` for the part that is
        a gradient for every loss (:func:`split_potential`), and only the rest (a smaller
        combination) through the expression-level search."""
        lams, rest = split_potential(term.coeffs)
        known = -sp.Add(*[lam * self.values.invariant(key) for key, lam in lams.items()])
        if not rest:
            return known
        found = expr_potential(list(_combine(rest, None, self.values, self.params)),
                               self.params)
        return None if found is None else known + found


class TreeModifiedEquation(ModifiedEquation):
    """A :class:`ModifiedEquation` from the tree path; terms unexpanded until :meth:`expand`."""

    def expand(self, values=None) -> TreeModifiedEquation:
        """A copy whose terms (and modified loss, when computed) are expanded.

        Each :math:`G(\\tau)` is expanded once from its expanded subtrees (expanding the
        shared, nested terms directly would redo the shared parts many times over);
        ``values`` may pass such expanded values in, to share them.
        """
        new = copy.copy(self)
        new.__dict__ = dict(self.__dict__)
        values = TreeValues(self._alg.derivs, expand=True) if values is None else values
        new.terms = tuple(
            sp.ImmutableMatrix([sp.expand(sp.Add(*[c * values(t)[i]
                                                   for t, c in term.coeffs.items()]))
                                for i in range(len(self.params))])
            for term in self._raw)
        if self.manifold_terms is not None:
            new.manifold_terms = tuple(t.applyfunc(sp.expand) for t in self.manifold_terms)
        self._map_potentials(new, sp.expand)
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
