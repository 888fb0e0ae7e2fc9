r"""Jet arithmetic with inverses and square roots, for adaptive optimizers.

Adaptive optimizers divide by :math:`\sqrt{v} + \epsilon` with :math:`v \approx (\nabla L)^2`
coordinate by coordinate. Their fields are rational functions of the jets
:math:`L_\alpha = \partial^\alpha L` (as in :mod:`symflow._engine._jets`) and of square roots. They are
kept *polynomial* (no gcd computations) by adjoining, on demand, *atoms* from a pool of
ring generators, each with its total derivative and a rewriting rule:

=========================  ============================  ==========================
atom                       :math:`D_i`                   rule
=========================  ============================  ==========================
:math:`x^{-1}` (generator)  :math:`-x^{-2} D_i x`          :math:`x\,x^{-1} = 1`
:math:`w = 1/c`            :math:`-w^2 D_i c`             (none)
:math:`\sigma` (sign of f)  :math:`0`                      :math:`\sigma^2 = 1`
:math:`s = \sqrt{c}`       :math:`\tfrac12 q\, D_i c`      :math:`s^2 = c`, :math:`s q = 1`
:math:`q = 1/\sqrt{c}`     :math:`-q^2 D_i s`             :math:`s q = 1`
=========================  ============================  ==========================

so that :math:`\sqrt{f^2} = |f| = \sigma f` with a locally constant sign
:math:`\sigma`. The rules are applied after products and derivatives; converting back to
expressions substitutes :math:`\sigma \mapsto |f|/f`, :math:`s \mapsto \sqrt{c}`, etc.
"""

from __future__ import annotations

import sympy as sp
from sympy.polys.rings import ring

from .._core._gradient import (
    expr_potential,
    is_zero_expr,
    numerically_nonzero,
    random_points,
)
from .._core._guard import as_sympy
from .._core._progress import stage_bar
from ._jets import LossDerivatives, _plus, _unit, multi_indices
from ._rings import HyperInverses, RingArithmetic, ring_to_expr
from ._series import NotExpressible


class RationalJetAlgebra(LossDerivatives, RingArithmetic):
    """Scalars are polynomials in parameters, jets and atoms (inverses, roots, signs)."""

    kind = "rational"

    def __init__(self, params, loss, domain, max_order: int, n_atoms: int, extra_coords=(),
                 post=None):
        self.params = tuple(params)
        self.extra_coords = tuple(extra_coords)
        self.loss = loss
        self.dim = d = len(self.params)
        self.alphas = multi_indices(d, max_order)
        self.jets = [sp.Dummy("L_" + "".join(str(p) for i, p in enumerate(self.params)
                                             for _ in range(a[i]))) for a in self.alphas]
        self.atoms = [sp.Dummy(f"a{k}") for k in range(n_atoms)]
        self.n_coords = nc = d + len(self.extra_coords)
        gens = self.params + self.extra_coords + tuple(self.jets) + tuple(self.atoms)
        self.ring, *self.gens = ring(gens, domain)
        self.zero = self.ring.zero
        self._jet_index = {a: nc + k for k, a in enumerate(self.alphas)}
        self._atom0 = nc + len(self.alphas)
        self._info = []          # per used atom: (kind, payload)
        self._cache = {}         # (kind, payload) -> ring element
        self._inverse_of = {}    # generator index -> generator index of its inverse
        self._pairs = []         # (i, j): x_i * x_j = 1
        self._squares = {}       # atom index -> ring element its square rewrites to
        self._dgen = {}
        self._derivs = {}
        self._concrete_subs = None
        # iota_q = 1/q of the hyperparameters, kept in normal form (see HyperInverses)
        self.post = dict(post or {})
        self._hyper = HyperInverses(domain, self.post) if self.post else None

    # -- arithmetic --------------------------------------------------------------------
    def jet(self, alpha):
        return self.gens[self._jet_index[alpha]]

    def _atom(self, kind, payload):
        key = (kind, payload)
        if key not in self._cache:
            k = len(self._info)
            if k == len(self.atoms):
                raise NotExpressible("atom pool exhausted")
            self._info.append(key)
            self._cache[key] = self.gens[self._atom0 + k]
        return self._cache[key]

    def _index(self, gen) -> int:
        return self.gens.index(gen)

    def inverse(self, c):
        if not c:
            raise NotExpressible("division by zero")
        c = self.reduce(c)
        if c.is_ground:
            if self._hyper is not None:  # 1/(1 - beta) is iota; anything else is refused
                inv = self._hyper.inverse(c.LC)
                if inv is None:
                    raise NotExpressible(f"division by {c.as_expr()}, a hyperparameter "
                                         "expression with no iota symbol")
                return self.ring(inv)
            field = self.ring.domain.get_field()
            try:
                return self.ring(field.convert_from(c.LC, self.ring.domain) ** -1)
            except sp.polys.polyerrors.CoercionFailed:  # e.g. 1/(1 - beta): an atom
                return self._atom("inv", c)
        if len(c) == 1:  # a monomial: invert generator by generator
            (monom, coeff), = c.terms()
            out = self.inverse(self.ring(coeff))
            for j, e in enumerate(monom):
                if e:
                    out = self.reduce(out * self._generator_inverse(j) ** e)
            return out
        key = ("inv", c)
        if key not in self._cache:
            self._atom("inv", c)
        return self._cache[key]

    def _generator_inverse(self, j):
        if j not in self._inverse_of:
            gen = self.gens[j]
            kind = self._info[j - self._atom0][0] if j >= self._atom0 else None
            if kind == "sign":
                return gen
            inv = self._atom("invgen", j)
            self._inverse_of[j] = self._index(inv)
            self._inverse_of[self._index(inv)] = j
            self._pairs.append((j, self._index(inv)))
        return self.gens[self._inverse_of[j]]

    def sqrt(self, c):
        r""":math:`\sqrt{c}`: :math:`\sigma f` for :math:`c = f^2`, else a root atom."""
        c = self.reduce(c)
        key = ("sqrt", c)
        if key in self._cache:
            return self._cache[key]
        out = self._square_root(c)
        if out is None:
            out = self._atom("root", c)
            q = self._atom("invroot", c)
            i, j = self._index(out), self._index(q)
            self._inverse_of[i], self._inverse_of[j] = j, i
            self._pairs.append((i, j))
            self._squares[i] = c
        self._cache[key] = out
        return out

    def _square_root(self, c):
        try:
            coeff, factors = c.factor_list()
        except Exception:  # noqa: BLE001 - no factorization over this domain
            return None
        if any(m % 2 for _, m in factors):
            return None
        root = sp.sqrt(self.ring.domain.to_sympy(coeff))
        if not root.is_Rational:
            return None
        out = self.ring(root)
        for f, m in factors:
            half = m // 2
            out = out * f**half * (self._atom("sign", f) if half % 2 else 1)
        return self.reduce(out)

    # -- rewriting rules -----------------------------------------------------------------
    def reduce(self, a):
        """Apply :math:`x x^{-1} = 1`, :math:`\\sigma^2 = 1`, :math:`s^2 = c`, and
        :math:`\\iota_q q = 1` in the coefficients."""
        if not a:
            return a
        if self._hyper is not None:
            a = self._hyper.normalize(a)
        if not self._info:
            return a
        signs = [self._atom0 + k for k, (kind, _) in enumerate(self._info) if kind == "sign"]
        out, changed = {}, False
        extra = self.zero
        for monom, coeff in a.items():
            m = list(monom)
            for i, j in self._pairs:
                common = min(m[i], m[j])
                if common:
                    m[i] -= common
                    m[j] -= common
            for s in signs:
                m[s] %= 2
            factor = None
            for i, c in self._squares.items():
                if m[i] >= 2:
                    factor = (factor or self.ring.one) * c ** (m[i] // 2)
                    m[i] %= 2
            m = tuple(m)
            if m != monom:
                changed = True
            if factor is None:
                out[m] = out.get(m, 0) + coeff
            else:
                extra += self.reduce(factor * self.ring({m: coeff}))
        if not changed:
            return a
        return self.ring({k: v for k, v in out.items() if v}) + extra

    # -- the total derivative ------------------------------------------------------------
    def _gen_derivative(self, j, i):
        if (j, i) not in self._dgen:
            d = self.dim
            if j < self.n_coords:
                out = self.ring(int(j == i))
            elif j < self._atom0 and i >= d:  # jets do not depend on extra coordinates
                out = self.zero
            elif j < self._atom0:
                nxt = _plus(self.alphas[j - self.n_coords], _unit(d, i))
                if nxt not in self._jet_index:
                    raise RuntimeError("jet order exceeded; raise max_order")
                out = self.jet(nxt)
            else:
                kind, payload = self._info[j - self._atom0]
                gen = self.gens[j]
                if kind == "sign":
                    out = self.zero
                elif kind == "inv":
                    out = -gen**2 * self.diff(payload, i)
                elif kind == "invgen":
                    out = -gen**2 * self._gen_derivative(payload, i)
                elif kind == "root":
                    q = self.gens[self._inverse_of[j]]
                    out = q * self.diff(payload, i) * self.ring.domain.convert(sp.Rational(1, 2))
                else:  # invroot
                    root = self._inverse_of[j]
                    out = -gen**2 * self._gen_derivative(root, i)
                out = self.reduce(out)
            self._dgen[(j, i)] = out
        return self._dgen[(j, i)]

    def diff(self, a, i):
        """Total derivative :math:`D_i a` (``i`` indexes parameters, then extra coordinates)."""
        present = sorted({j for monom in a.itermonoms() for j, e in enumerate(monom) if e})
        out = self.zero
        for j in present:
            dg = self._gen_derivative(j, i)
            if dg:
                out += a.diff(self.gens[j]) * dg
        return self.reduce(out)

    # -- back to the concrete loss ---------------------------------------------------------
    def _atom_values(self, base):
        """Substitution for the atoms given ``base`` (values of params and jets)."""
        sub = dict(base)
        for k, (kind, payload) in enumerate(self._info):
            gen_sym = self.atoms[k]
            if kind == "invgen":
                sub[gen_sym] = 1 / sub.get(self.ring.symbols[payload], self.ring.symbols[payload])
                continue
            value = ring_to_expr(payload, self.post).xreplace(sub)
            sub[gen_sym] = {"sign": lambda v: sp.Abs(v) / v, "inv": lambda v: 1 / v,
                            "root": sp.sqrt, "invroot": lambda v: 1 / sp.sqrt(v)}[kind](value)
        return sub

    def _concrete(self):
        """Every jet and atom as an expression of the loss, cached until an atom is added."""
        if self._concrete_subs is None or self._concrete_subs[0] != len(self._info):
            base = {s: self.derivative(al) for s, al in zip(self.jets, self.alphas)}
            self._concrete_subs = (len(self._info), self._atom_values(base))
        return self._concrete_subs[1]

    def to_expr(self, a):
        return ring_to_expr(self.reduce(a), self.post).xreplace(self._concrete())

    def values(self, point):
        """Numeric values (30 digits) of every generator at ``point`` (a dict of params)."""
        vals = dict(point)
        for s, alpha in zip(self.jets, self.alphas):
            vals[s] = self.derivative(alpha).xreplace(point).evalf(30)
        vals = self._atom_values(vals)
        vals.update(self.post)
        return {k: as_sympy(v).evalf(30) for k, v in vals.items()}

    # -- gradient structure ------------------------------------------------------------------
    def is_gradient(self, vec) -> bool:
        """Symmetric Jacobian: the total derivatives in the ring, refuted at random points,
        then confirmed exactly on expressions (a sign atom is locally constant, so the ring
        derivative is the field's derivative wherever the signs hold)."""
        pairs = [(i, j) for i in range(self.dim) for j in range(i + 1, self.dim)]
        asym = []
        for i, j in stage_bar(pairs, desc="gradient test: Jacobian", progress=None):
            a = self.diff(vec[i], j) - self.diff(vec[j], i)
            if a:
                asym.append(a)
        if not asym:
            return True
        symbolic = self.post or any(
            s.free_symbols - set(self.params)
            for s in (self.ring.domain.to_sympy(c) for a in asym for c in a.coeffs()))
        if not symbolic:
            for point in random_points(self.params):
                vals = self.values(point)
                if any(numerically_nonzero(a.as_expr(), vals) for a in asym):
                    return False
        return all(is_zero_expr(self.to_expr(a)) for a in
                   stage_bar(asym, desc="gradient test: exact check", progress=None, weight=len))

    def potential(self, vec):
        if not any(vec):
            return sp.S.Zero
        return expr_potential([self.to_expr(c) for c in vec], self.params)
