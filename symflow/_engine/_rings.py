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
    iotas = [(ring.symbols.index(s), ring(1 / inverse)) for s, inverse in post.items()
             if s in ring.symbols]
    top = {j: max((m[j] for m in coeff.itermonoms()), default=0) for j, _ in iotas}
    num = ring.zero
    for monom, c in coeff.terms():
        term = ring({tuple(0 if j in top else e for j, e in enumerate(monom)): c})
        for j, q in iotas:
            term *= q ** (top[j] - monom[j])
        num += term
    den = sp.S.One
    for j, q in iotas:
        e = top[j]
        while e and num and num.rem(q) == 0:
            num, e = num.exquo(q), e - 1
        den *= q.as_expr() ** e
    return num.as_expr() / den


def ring_to_expr(a, post=None):
    """A ring element as an expression; with ``post``, each coefficient is substituted
    and put over a common factored denominator (e.g. ``1/(1 - beta)`` symbols)."""
    if not post:
        return a.as_expr()
    symbols, domain = a.ring.symbols, a.ring.domain
    return sp.Add(*[restore_inverses(coeff, domain, post)
                    * sp.Mul(*[s**e for s, e in zip(symbols, m)]) for m, coeff in a.terms()])


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
