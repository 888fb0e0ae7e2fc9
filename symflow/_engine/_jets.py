r"""Jet arithmetic: fields as exact polynomials in the partial derivatives of the loss.

For a non-polynomial loss, expression trees swell quickly under repeated differentiation.
Here every partial derivative :math:`L_\alpha = \partial^\alpha L` (:math:`1 \le |\alpha|
\le K`) is a generator of a polynomial ring (together with the parameters), and
:math:`\partial/\partial\theta_i` acts as the *total derivative*

.. math::  D_i\,\theta_j = \delta_{ij}, \qquad D_i\,L_\alpha = L_{\alpha + e_i},

extended by the Leibniz rule. The backward-error recursion then runs in exact polynomial
arithmetic, independent of what :math:`L` is; the loss's actual derivatives are
substituted only when a result is shown. A gradient oracle evaluated at a point
:math:`\theta + \delta` with :math:`\delta = O(h)` is expanded by Taylor's formula
:math:`\nabla_i L(\theta+\delta) = \sum_\beta L_{e_i+\beta}\,\delta^\beta/\beta!`, truncated at
the order in :math:`h` that the derivation needs.
"""

from __future__ import annotations

import itertools
import math

import sympy as sp
from sympy.polys.matrices import DomainMatrix
from sympy.polys.rings import ring

from .._core._gradient import (
    expr_potential,
    is_zero_expr,
    numerically_nonzero,
    random_points,
)
from .._core._progress import stage_bar
from ._rings import RingArithmetic, restore_inverses, ring_to_expr


class NotJetExpressible(Exception):
    """The update rule is not a polynomial in parameters, gradients and ``h``."""


def multi_indices(dim: int, max_order: int):
    """All multi-indices with ``1 <= |alpha| <= max_order``, by increasing order."""
    out = []
    for n in range(1, max_order + 1):
        for combo in itertools.combinations_with_replacement(range(dim), n):
            alpha = [0] * dim
            for i in combo:
                alpha[i] += 1
            out.append(tuple(alpha))
    return out


def _unit(dim, i):
    return tuple(int(j == i) for j in range(dim))


def _plus(a, b):
    return tuple(x + y for x, y in zip(a, b))


class LossDerivatives:
    r"""The derivatives :math:`\partial^\alpha L` of the concrete loss ``self.loss`` in
    ``self.params``, each computed once from the one below it (``self._derivs`` caches them);
    shared by the jet and rational-jet algebras, which map generators back to them."""

    def derivative(self, alpha):
        r""":math:`\partial^\alpha L` of the concrete loss (cached)."""
        if alpha not in self._derivs:
            i = next(k for k, e in enumerate(alpha) if e)
            lower = tuple(e - (k == i) for k, e in enumerate(alpha))
            base = self.loss if sum(lower) == 0 else self.derivative(lower)
            self._derivs[alpha] = sp.diff(base, self.params[i])
        return self._derivs[alpha]


class JetAlgebra(LossDerivatives, RingArithmetic):
    """Scalars are polynomials in the parameters and the jets :math:`L_\\alpha`."""

    kind = "jet"
    post: dict = {}

    def __init__(self, params, loss, domain, max_order: int, extra_gens=()):
        self.params = tuple(params)
        self.loss = loss
        self.dim = d = len(self.params)
        self.alphas = multi_indices(d, max_order)
        self.index = {a: d + k for k, a in enumerate(self.alphas)}
        names = ["".join(str(p) for i, p in enumerate(self.params) for _ in range(a[i]))
                 for a in self.alphas]
        self.jets = [sp.Dummy(f"L_{n}") for n in names]
        self.alpha_of = dict(zip(self.jets, self.alphas))
        gens = self.params + tuple(self.jets) + tuple(extra_gens)
        self.ring, *self.gens = ring(gens, domain)
        self.zero = self.ring.zero
        self.ngens = len(gens)
        self.shift = [[None] * d for _ in range(self.ngens)]
        for a in self.alphas:
            for i in range(d):
                self.shift[self.index[a]][i] = self.index.get(_plus(a, _unit(d, i)))
        self._derivs = {}

    # -- arithmetic -------------------------------------------------------------------
    def gradient_jets(self):
        """The gradient column :math:`(L_{e_1}, \\dots, L_{e_d})` as ring elements."""
        return [self.gens[self.index[_unit(self.dim, i)]] for i in range(self.dim)]

    def diff(self, a, i):
        """Total derivative :math:`D_i a`."""
        d, out = self.dim, {}
        for monom, coeff in a.items():
            for j, e in enumerate(monom):
                if not e:
                    continue
                if j < d:
                    if j != i:
                        continue
                    new = list(monom)
                    new[j] -= 1
                else:
                    t = self.shift[j][i]
                    if t is None:
                        raise RuntimeError("jet order exceeded; raise max_order")
                    new = list(monom)
                    new[j] -= 1
                    new[t] += 1
                key = tuple(new)
                out[key] = out.get(key, 0) + coeff * e
        return self.ring({k: c for k, c in out.items() if c})

    # -- back to the concrete loss -----------------------------------------------------
    def jet_values(self, point):
        """The parameters and every jet :math:`L_\\alpha` at a numeric ``point`` (30 digits)."""
        values = dict(point)
        for s, alpha in zip(self.jets, self.alphas):
            values[s] = self.derivative(alpha).xreplace(point).evalf(30)
        return values

    def to_expr(self, a):
        expr = ring_to_expr(a, self.post)
        used = expr.free_symbols & set(self.jets)
        return expr.xreplace({s: self.derivative(self.alpha_of[s]) for s in used})

    # -- gradient structure -------------------------------------------------------------
    def is_gradient(self, vec) -> bool:
        """Symmetric Jacobian, first for every loss (in jets), then for this loss."""
        pairs = [(i, j) for i in range(self.dim) for j in range(i + 1, self.dim)]
        asym = [a for a in (self.diff(vec[i], j) - self.diff(vec[j], i) for i, j in
                            stage_bar(pairs, desc="gradient test: Jacobian", progress=None))
                if a]
        if not asym:
            return True
        if not self.post:
            for point in random_points(self.params):
                values = self.jet_values(point)
                if any(numerically_nonzero(a.as_expr(), values) for a in asym):
                    return False
        # D_i of a jet polynomial is the derivative of the expression it stands for
        return all(is_zero_expr(self.to_expr(a)) for a in
                   stage_bar(asym, desc="gradient test: exact check", progress=None, weight=len))

    def potential(self, vec):
        r""":math:`V` with ``vec == -grad V``: exact linear solve over jet monomials.

        The unknowns are the coefficients of the candidate monomials (antiderivatives of the
        field's monomials) and of the loss :math:`L` itself, whose gradient is the jet column
        :math:`(L_{e_1}, \dots, L_{e_d})`; so :math:`-\nabla L/(1-\beta)` gives
        :math:`L/(1-\beta)` for any loss and symbolic :math:`\beta`, with no integration.
        """
        if vec and not any(vec):
            return sp.S.Zero
        found = self._jet_potential(vec)
        if found is not None:
            pot, loss_coeff = found
            out = self.to_expr(pot)
            if loss_coeff:
                out += restore_inverses(loss_coeff, self.ring.domain, self.post) * self.loss
            return out
        return expr_potential([self.to_expr(c) for c in vec], self.params)

    def _antiderivative_candidates(self, vec):
        d, cands = self.dim, set()
        for i, comp in enumerate(vec):
            for monom in comp.keys():
                raised = list(monom)
                raised[i] += 1
                cands.add(tuple(raised))
                for j in range(d, self.ngens):
                    if not monom[j]:
                        continue
                    alpha = self.alphas[j - d]
                    if alpha[i] and sum(alpha) > 1:
                        lower = tuple(e - (k == i) for k, e in enumerate(alpha))
                        new = list(monom)
                        new[j] -= 1
                        new[self.index[lower]] += 1
                        cands.add(tuple(new))
        return sorted(cands)

    def _jet_potential(self, vec):
        """``(P, c)`` with ``vec == -grad(P + c L)``, P a jet polynomial, or None."""
        cands = self._antiderivative_candidates(vec)
        one = self.ring.domain.one
        grads = [[self.diff(self.ring({c: one}), i) for i in range(self.dim)] for c in cands]
        cands.append(None)  # the loss itself: its gradient is the first-order jet column
        grads.append(self.gradient_jets())
        rows = {}
        for i in range(self.dim):
            keys = set(vec[i].keys()).union(*(g[i].keys() for g in grads))
            for key in keys:
                rows[(i, key)] = ([g[i].get(key, 0) for g in grads], -vec[i].get(key, 0))
        field = self.ring.domain.get_field()
        conv = lambda c: field.convert_from(c, self.ring.domain) if c else field.zero  # noqa: E731
        mat = [[conv(c) for c in coeffs] + [conv(rhs)] for coeffs, rhs in rows.values()]
        rref, pivots = DomainMatrix(mat, (len(mat), len(cands) + 1), field).rref()
        if len(cands) in pivots:
            return None
        sol = rref.to_list()
        out, loss_coeff = {}, self.ring.domain.zero
        for r, col in enumerate(pivots):
            if sol[r][-1]:
                try:
                    value = self.ring.domain.convert_from(sol[r][-1], field)
                except sp.polys.polyerrors.CoercionFailed:  # a fraction the domain lacks
                    return None
                if cands[col] is None:
                    loss_coeff = value
                else:
                    out[cands[col]] = value
        pot = self.ring(out)
        grad_loss = self.gradient_jets()
        if all(not (self.diff(pot, i) + loss_coeff * grad_loss[i] + vec[i])
               for i in range(self.dim)):
            return pot, loss_coeff
        return None


def split_by_h(polys, alg, order: int):
    """Coefficients of ``h**0..h**order`` of polynomials whose last generator is ``h``,
    as vectors in ``alg`` (whose generators are the others, in the same order)."""
    coeffs = [[alg.zero] * len(polys) for _ in range(order + 1)]
    for c, poly in enumerate(polys):
        for monom, coeff in poly.terms():
            if monom[-1] <= order:
                coeffs[monom[-1]][c] += alg.ring({monom[:-1]: coeff})
    return [tuple(v) for v in coeffs]


def expand_with_jets(optimizer, loss, params, h, domain, order: int):
    r"""Taylor coefficients :math:`d_0..d_{order}` of the optimizer map, in jet arithmetic.

    Raises :class:`NotJetExpressible` when the rule is not a polynomial in the parameters,
    the gradient values and ``h`` (then the caller falls back to expression arithmetic).
    """
    dim = len(params)
    alg = JetAlgebra(params, loss, domain, max_order=order + 2)
    ring_h, *gens_h = ring(alg.ring.symbols + (h,), domain)
    theta = sp.Matrix(params)

    def to_ring_h(expr):
        try:
            return ring_h(expr)
        except (ValueError, TypeError, sp.PolynomialError,
                sp.polys.polyerrors.CoercionFailed) as err:
            raise NotJetExpressible(str(err)) from err

    def truncate(p):
        return ring_h({m: c for m, c in p.items() if m[-1] <= order})

    grad_h = [to_ring_h(s) for s in (alg.jets[alg.alphas.index(_unit(dim, i))]
                                      for i in range(dim))]

    def oracle(point):
        point = sp.Matrix(point)
        delta = [to_ring_h(c) for c in (point - theta)]
        if any(m[-1] == 0 for p in delta for m in p.keys()):
            raise NotJetExpressible("gradient evaluated away from theta at h = 0")
        if not any(delta):
            return sp.Matrix([g.as_expr() for g in grad_h])
        powers = [[ring_h.one] for _ in range(dim)]
        for j in range(dim):
            for _ in range(order):
                powers[j].append(truncate(powers[j][-1] * delta[j]))
        out = []
        for i in range(dim):
            acc = ring_h.zero
            for n in range(order + 1):
                for combo in itertools.combinations_with_replacement(range(dim), n):
                    beta = [0] * dim
                    for k in combo:
                        beta[k] += 1
                    jet = _plus(_unit(dim, i), tuple(beta))
                    term = gens_h[alg.index[jet]]
                    for k in range(dim):
                        term = truncate(term * powers[k][beta[k]])
                    acc += term * ring_h.domain.convert(
                        sp.Rational(1, math.prod(math.factorial(b) for b in beta)))
            out.append(acc.as_expr())
        return sp.Matrix(out)

    phi = optimizer.step(theta, oracle, h)
    return alg, split_by_h([to_ring_h(c) for c in phi], alg, order)
