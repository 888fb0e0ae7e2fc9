r"""Helpers on SymPy's polynomial rings shared by the arithmetics of the engine.

Coefficients in the hyperparameters live in :math:`\mathbb{Q}[\beta]` or :math:`\mathbb{Q}(\beta)`
(:func:`coefficient_domains`). A denominator :math:`q(\beta)` that the memory reduction
introduces (:math:`1/(1-\beta)`) is carried as a symbol :math:`\iota_q`
(:func:`inverse_constants`) so that the derivation runs with polynomial coefficients, and is put
back at the end by exact polynomial division (:func:`restore_inverses`, :func:`ring_to_expr`).
Ring elements have no inverse or square root beyond constants (:func:`ring_inverse`,
:func:`ring_sqrt`); the caller then falls back to a richer arithmetic.
"""

from __future__ import annotations

import sympy as sp
from sympy.polys.groebnertools import groebner

from ._series import NotExpressible


def coefficient_domains(hypers):
    """Coefficient domains to try, fastest first."""
    hypers = sorted(hypers, key=str)
    if not hypers:
        return [sp.QQ]
    return [sp.QQ[tuple(hypers)], sp.QQ.frac_field(*hypers)]


def inverse_constants(matrix):
    r"""Replace each denominator factor :math:`q(\beta)` of ``matrix`` by a symbol :math:`\iota_q`.

    Returns ``(matrix, post)`` with ``post = {iota_q: 1/q}``: the derivation then runs
    with polynomial coefficients in the hyperparameters and the :math:`\iota`'s (no gcds),
    and ``post`` restores :math:`1/q` in the results.
    """
    symbols, post = {}, {}

    def rewrite(entry):
        num, den = sp.fraction(sp.factor(sp.together(entry)))
        coeff, factors = sp.factor_list(den)
        out = num / coeff
        for f, m in factors:
            if f.free_symbols:
                if f not in symbols:
                    symbols[f] = sp.Dummy(f"iota{len(symbols)}")
                    post[symbols[f]] = 1 / f
                out *= symbols[f] ** m
            else:
                out /= f**m
        return sp.expand(out)

    return matrix.applyfunc(rewrite), post


def restore_inverses(coeff, domain, post):
    r"""A coefficient in :math:`\mathbb{Q}[\beta, \iota]` as an expression with :math:`\iota_q = 1/q`.

    Polynomial arithmetic only: the terms are put over :math:`\prod_q q^{e_q}` (largest
    exponents present), then each irreducible :math:`q` is divided out of the numerator
    while it divides. The result is in lowest terms, with a factored denominator.
    """
    ring = getattr(domain, "ring", None)
    if ring is None:  # not a polynomial ring of hyperparameters: plain cancellation
        return sp.cancel(domain.to_sympy(coeff).xreplace(post))
    key = (coeff, tuple(post.items()))
    if key not in _RESTORED:  # a result repeats the same few coefficients
        if len(_RESTORED) > 4096:
            _RESTORED.clear()
        _RESTORED[key] = _restore(coeff, ring, post)
    return _RESTORED[key]


_RESTORED: dict = {}


def _restore(coeff, ring, post):
    iotas = [(ring.symbols.index(s), ring(1 / inverse)) for s, inverse in post.items()
             if s in ring.symbols]
    if not iotas:
        return coeff.as_expr()
    slots = [j for j, _ in iotas]
    groups = {}  # the terms grouped by their iota exponents, each group summed once
    for monom, c in coeff.terms():
        key = tuple(monom[j] for j in slots)
        stripped = tuple(0 if j in slots else e for j, e in enumerate(monom))
        groups.setdefault(key, {})[stripped] = c
    top = [max(key[k] for key in groups) for k in range(len(slots))]
    num = ring.zero
    for key, terms in groups.items():
        term = ring(terms)
        for k, (_, q) in enumerate(iotas):
            if top[k] > key[k]:
                term *= _power(q, top[k] - key[k])
        num += term
    den = sp.S.One
    for k, (_, q) in enumerate(iotas):
        e = top[k]
        while e and num and _divides(q, num):
            num, e = num.exquo(q), e - 1
        den *= q.as_expr() ** e
    return num.as_expr() / den


_POWERS: dict = {}


def _power(q, n: int):
    """``q**n``, cached (the same few denominators recur in every coefficient)."""
    key = (q, n)
    if key not in _POWERS:
        if len(_POWERS) > 256:
            _POWERS.clear()
        _POWERS[key] = q**n
    return _POWERS[key]


def _divides(q, num) -> bool:
    """Whether ``q`` divides ``num``; by one evaluation when ``q = a + b x`` (``1 - beta``)."""
    if len(q) == 2 and q.is_linear:
        (m1, c1), (m0, c0) = sorted(q.terms(), key=lambda t: -sum(t[0]))
        if not any(m0) and sum(m1) == 1:
            x = q.ring.gens[m1.index(1)]
            return not num.evaluate(x, -c0 / c1)
    return num.rem(q) == 0


def ring_to_expr(a, post=None):
    """A ring element as an expression; with ``post``, each coefficient is substituted
    and put over a common factored denominator (e.g. ``1/(1 - beta)`` symbols)."""
    if not post:
        return a.as_expr()
    symbols, domain = a.ring.symbols, a.ring.domain
    return sp.Add(*[restore_inverses(coeff, domain, post)
                    * sp.Mul(*[s**e for s, e in zip(symbols, m)]) for m, coeff in a.terms()])


class HyperInverses:
    r"""Exact normal forms of coefficients in :math:`\mathbb{Q}[\beta, \iota]` with
    :math:`\iota_q q = 1`.

    The coefficients then live in :math:`\mathbb{Q}[\beta][1/q_1, \dots]
    \cong \mathbb{Q}[\beta, \iota]/(\iota_q q - 1)`. The remainder on division by a
    Groebner basis of the ideal is unique (Cox, Little & O'Shea, *Ideals, Varieties, and
    Algorithms*, 4th ed., Springer 2015, ch. 2.6), so a coefficient is zero exactly when the
    rational function it stands for is, and a product such as :math:`(1-\beta)\iota` is
    written :math:`1`: polynomial arithmetic with no gcd, yet canonical. ``domain`` is a
    polynomial domain whose generators include the :math:`\iota`'s (keys of
    ``post = {iota_q: 1/q}``).

    Example::

        >>> import sympy as sp
        >>> b, i = sp.symbols("beta iota")
        >>> hyp = HyperInverses(sp.QQ[i, b], {i: 1 / (1 - b)})
        >>> hyp.domain.to_sympy(hyp.normal(hyp.domain.from_sympy(3 * i * (1 - b) + i * b)))
        iota + 2
        >>> hyp.domain.to_sympy(hyp.inverse(hyp.domain.from_sympy(2 * i**2)))
        beta**2/2 - beta + 1/2
    """

    def __init__(self, domain, post):
        self.domain, self.post = domain, dict(post)
        self.ring = ring = domain.ring
        self._iotas = [(ring(s), ring(sp.expand(1 / inverse))) for s, inverse in post.items()]
        self.basis = groebner([i * q - 1 for i, q in self._iotas], ring)
        # the leading monomials, as (variable, exponent) pairs of their support
        self._leads = [[(i, e) for i, e in enumerate(g.LM) if e] for g in self.basis]
        self._cache = {}

    def _needs(self, c) -> bool:
        """Whether a monomial of ``c`` is divisible by a leading monomial of the basis."""
        for m in c.itermonoms():
            for lead in self._leads:
                for i, e in lead:
                    if m[i] < e:
                        break
                else:
                    return True
        return False

    def normal(self, c):
        """The normal form of a coefficient (an element of ``domain``)."""
        return c.rem(self.basis) if self._needs(c) else c

    def normalize(self, a):
        """``a`` (an element of a ring over ``domain``) with every coefficient normal."""
        terms = [(m, c) for m, c in a.items() if self._needs(c)]
        if not terms:
            return a
        out = dict(a)
        for m, c in terms:
            c = c.rem(self.basis)
            if c:
                out[m] = c
            else:
                del out[m]
        return a.ring(out)

    def inverse(self, c):
        r"""The inverse of a coefficient when it is a unit (a rational times products of
        the :math:`q`'s and :math:`\iota`'s), else ``None``."""
        if c in self._cache:
            return self._cache[c]
        num, den = sp.fraction(sp.together(restore_inverses(c, self.domain, self.post)))
        coeff, factors = sp.factor_list(num)
        out = self.ring(sp.expand(den)) * self.ring(1 / coeff)
        for f, m in factors:
            f = self.ring(f)
            match = [(i, q) for i, q in self._iotas if q * f.LC == f * q.LC]
            if not match:
                self._cache[c] = None
                return None
            i, q = match[0]
            out *= (i * self.ring(q.LC / f.LC)) ** m
        self._cache[c] = out = self.normal(out)
        return out


def ring_inverse(a):
    """Inverse of a constant ring element; anything else is not in the ring."""
    if a and a.is_ground:
        try:
            return a.ring(a.ring.domain.get_field().convert_from(a.LC, a.ring.domain) ** -1)
        except sp.polys.polyerrors.CoercionFailed as err:
            raise NotExpressible("division by a hyperparameter expression") from err
    raise NotExpressible("division by a non-constant polynomial")


def ring_sqrt(a):
    raise NotExpressible("square root in a polynomial ring")


class RingArithmetic:
    """The part of the algebra interface (see :mod:`symflow._engine._algebra`) shared by the
    arithmetics whose scalars are elements of a SymPy ring ``self.ring``: conversion of an
    expression or a constant, the zero test, and the inverse and square root, which a
    polynomial ring has for nonzero constants only (:func:`ring_inverse`, :func:`ring_sqrt`)."""

    def from_expr(self, expr):
        return self.ring(expr)

    def const(self, value):
        return self.ring(value)

    def is_zero(self, a) -> bool:
        return not a

    def inverse(self, a):
        return ring_inverse(a)

    def sqrt(self, a):
        return ring_sqrt(a)
