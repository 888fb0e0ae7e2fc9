r"""Truncated B-series arithmetic: vectors as exact combinations of elementary differentials.

A vector is a dict ``{(k, t): c}`` meaning :math:`\sum c\, h^k\, G(t)`, with ``t`` a rooted
tree (:mod:`symflow._trees._rooted`) or the token ``("theta", b)`` for player ``b``'s block of the
parameters :math:`\theta` itself; the coefficients ``c`` live in an exact domain ``K``
(:math:`\mathbb Q` or a field of fractions in the hyperparameters).

The operations are the ones a B-series method is made of (Hairer, Lubich & Wanner,
*Geometric Numerical Integration*, 2nd ed. 2006, ch. III.1):

* a gradient at a displaced point, by Taylor expansion,
  :math:`g(\theta+\delta) = \sum_{k\ge0} \frac1{k!}\, g^{(k)}[\delta, \dots, \delta]`, expanded
  over the multisets :math:`S` of terms of :math:`\delta`:
  :math:`\sum_S \prod_i \frac{c_i^{m_i}}{m_i!}\, G([S])` (:meth:`BSeries.grad_at`);
* composition of a series in :math:`\theta` with a displaced point (:meth:`BSeries.compose`);
* the derivative of a series along another, by grafting (:meth:`BSeries.lie`);
* the modified field of a one-step map given by its increments
  (:meth:`BSeries.modified_field`, the recursion of :mod:`symflow._engine._bea` with Jacobian-vector
  products replaced by grafting; HLW ch. IX.9).
"""

from __future__ import annotations

import functools
import math

import sympy as sp

from .._core._errors import SymflowError
from .._core._guard import as_sympy
from .._core._progress import progress_bar
from .._core._symbols import h
from . import _rooted as tr


def theta_token(b: int) -> tuple:
    """The key of player ``b``'s block of :math:`\\theta` in a series."""
    return ("theta", b)


def is_theta(t) -> bool:
    return t[0] == "theta"


def block_of(t) -> int:
    """The player block a tree or a theta token lives in."""
    return t[1] if is_theta(t) else t[0]


class BSeries:
    """Truncated B-series arithmetic to ``h**degree`` over the domain ``K``, for ``blocks`` players."""

    def __init__(self, K, degree: int, blocks: int = 1):
        self.K = K
        self.T = degree
        self.blocks = blocks
        self._inv = [K.from_sympy(sp.Rational(1, n)) for n in range(1, degree + 3)]
        self._scalars: dict = {}

    def const(self, value):
        return self.K.from_sympy(as_sympy(value))

    def scalar(self, expr):
        """Power series of a scalar in ``h``: a list of coefficients to ``h**degree``."""
        if expr in self._scalars:
            return self._scalars[expr]
        expr = as_sympy(expr)
        try:
            poly = sp.Poly(expr, h)
        except sp.PolynomialError:
            try:
                poly = sp.Poly(sp.series(expr, h, 0, self.T + 1).removeO(), h)
            except (sp.PolynomialError, ValueError, NotImplementedError):
                raise SymflowError(
                    f"the update rule has the coefficient {expr}, which is not a power "
                    "series in the learning rate h") from None
        out = [self.K.zero] * (self.T + 1)
        for (k,), c in poly.terms():
            if k <= self.T:
                out[k] = self.K.from_sympy(c)
        self._scalars[expr] = out
        return out

    # -- linear algebra ------------------------------------------------------------------
    def add(self, a, b, scale=None):
        """``a + scale * b`` (``scale`` a domain element)."""
        out = dict(a)
        for key, c in b.items():
            c = c if scale is None else c * scale
            v = out.get(key, self.K.zero) + c
            if v:
                out[key] = v
            else:
                out.pop(key, None)
        return out

    def times(self, s, v):
        """Product of the power series ``s`` and the vector ``v``, truncated."""
        out: dict = {}
        for j, sj in enumerate(s):
            if not sj:
                continue
            for (k, t), c in v.items():
                if k + j <= self.T:
                    key = (k + j, t)
                    out[key] = out.get(key, self.K.zero) + sj * c
        return {k: c for k, c in out.items() if c}

    def theta(self):
        """:math:`\\theta` (every block)."""
        return {(0, theta_token(b)): self.K.one for b in range(self.blocks)}

    @staticmethod
    def restrict(v, b: int):
        """Player ``b``'s block of ``v``."""
        return {key: c for key, c in v.items() if block_of(key[1]) == b}

    # -- gradients at displaced points ---------------------------------------------------
    def split_point(self, point, what: str):
        """``point = theta + delta``: check it and return ``delta``'s items ``(k, tree, c)``."""
        delta = []
        for (k, t), c in point.items():
            if is_theta(t):
                if k != 0 or c != self.K.one:
                    raise SymflowError(
                        f"{what} is not theta + O(h) with coefficient 1 on theta: the "
                        "coordinate-free form covers rules built from theta, memory and "
                        "gradients only (fold terms in theta such as weight decay into the "
                        "loss)")
            elif k == 0:
                raise SymflowError(
                    f"{what} does not tend to theta as h -> 0 (it holds {tr.text(t)} at order "
                    "h^0); the expansion in elementary differentials needs displacements O(h)")
            else:
                delta.append((k, t, c))
        if any((0, theta_token(b)) not in point for b in range(self.blocks)):
            raise SymflowError(f"{what} does not contain theta; it must be theta + O(h)")
        delta.sort(key=lambda item: item[0])
        return delta

    def bracket(self, fixed, delta, budget, color):
        r""":math:`\sum` over children chosen one from each series in ``fixed`` and any multiset
        of ``delta`` items (weight :math:`\prod c^m/m!`) of :math:`G([\text{children}])`."""
        out: dict = {}
        K = self.K

        def multisets(start, deg, kids, coef, last, mult):
            key = (deg, tr.tree(*kids, color=color))
            out[key] = out.get(key, K.zero) + coef
            for j in range(start, len(delta)):
                k, t, c = delta[j]
                if deg + k > budget:
                    break  # delta is sorted by degree
                m = mult + 1 if j == last else 1
                multisets(j, deg + k, kids + [t], coef * c * self._inv[m - 1], j, m)

        def choose(i, deg, kids, coef):
            if i == len(fixed):
                multisets(0, deg, kids, coef, -1, 0)
                return
            for k, t, c in fixed[i]:
                if deg + k <= budget:
                    choose(i + 1, deg + k, kids + [t], coef * c)

        choose(0, 0, [], K.one)
        return {key: c for key, c in out.items() if c}

    def grad_at(self, point, color: int, what="a gradient's point"):
        """Player ``color``'s block of :math:`g(\\text{point})`."""
        return self.bracket([], self.split_point(point, what), self.T, color)

    def compose(self, vec, point):
        r"""The series ``vec`` (a function of :math:`\theta`) evaluated at ``point`` = theta + delta."""
        delta = self.split_point(point, "the next parameters")
        memo: dict = {}

        def at(t, budget):
            if (t, budget) not in memo:
                fixed = [[(k, s, c) for (k, s), c in at(child, budget).items()]
                         for child in tr.children(t)]
                memo[(t, budget)] = self.bracket(fixed, delta, budget, tr.color(t))
            return memo[(t, budget)]

        out: dict = {}
        for (k, t), c in vec.items():
            if is_theta(t):
                part = {(k, t): c}
                part.update({(k + j, s): c * e for j, s, e in delta
                             if k + j <= self.T and block_of(s) == t[1]})
            else:
                part = {(k + j, s): c * e for (j, s), e in at(t, self.T - k).items()}
            out = self.add(out, part)
        return out

    def evaluate(self, forms, env, memo=None):
        """The vector of block forms ``forms`` (one per block); ``env`` maps nodes to vectors."""
        memo = {} if memo is None else memo
        out: dict = {}
        for b, form in enumerate(forms):
            for node, s in form:
                if node[0] == "G":
                    if (node, b) not in memo:
                        memo[(node, b)] = self.grad_at(self.evaluate(node[1], env, memo), b)
                    v = memo[(node, b)]
                else:
                    v = self.restrict(env[node], b)
                out = self.add(out, self.times(self.scalar(s), v))
        return out

    # -- the modified-field recursion on trees -------------------------------------------
    def lie(self, u, f):
        r""":math:`u' f` for tree combinations ``u``, ``f`` (``{tree: c}``): a sum of graftings."""
        out: dict = {}
        for tau, c in u.items():
            for sigma, e in f.items():
                ce = c * e
                for t, mult in tr.graft(sigma, tau).items():
                    out[t] = out.get(t, self.K.zero) + ce * self.K.convert(mult)
        return {t: c for t, c in out.items() if c}

    def modified_field(self, d, order, progress=None):
        r"""``[f_0..f_order]`` from the increments ``d[1..order+1]`` (``{tree: c}`` each).

        .. math::  f_n = d_{n+1} - \sum_{j=2}^{n+1} \frac{1}{j!} u_j[n+1-j],\quad
                   u_j[m] = \sum_{a+b=m} u_{j-1}[a]'\, f_b,\quad u_1 = f.
        """
        f: list = []
        u: dict = {}
        for n in progress_bar(range(order + 1), desc="coordinate-free terms", unit="order",
                               progress=progress):
            corr: dict = {}
            for j in range(2, n + 2):
                m = n + 1 - j
                acc: dict = {}
                for a in range(m + 1):
                    if u[(j - 1, a)]:
                        acc = self.add(acc, self.lie(u[(j - 1, a)], f[m - a]))
                u[(j, m)] = acc
                corr = self.add(corr, acc, self.const(sp.Rational(1, math.factorial(j))))
            f_n = self.add(d[n + 1], corr, -self.K.one)
            f.append(f_n)
            u[(1, n)] = f_n
        return f


@functools.lru_cache(maxsize=None)
def _domain(symbols: tuple):
    return sp.QQ.frac_field(*symbols) if symbols else sp.QQ


def series_arithmetic(rule, degree) -> BSeries:
    """The arithmetic for ``rule``'s coefficients: over QQ or QQ(hyper); SymPy's EX as a fallback."""
    K = _domain(rule.hyper)
    try:
        S = BSeries(K, degree, rule.blocks)
        for s in rule.scalars():
            S.scalar(s)
        return S
    except SymflowError:
        raise
    except (sp.CoercionFailed, ValueError, TypeError):
        return BSeries(sp.EX, degree, rule.blocks)

