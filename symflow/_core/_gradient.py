r"""Is a vector field a gradient field, and what is its potential? (expression level)

A field :math:`f` on a simply connected domain is a gradient field,
:math:`f = -\nabla V`, exactly when its Jacobian is symmetric:
:math:`\partial_j f_i = \partial_i f_j` for all :math:`i, j` (Poincaré's lemma). These
helpers work on plain SymPy expressions; the ring arithmetics in :mod:`symflow._engine._algebra`
and :mod:`symflow._engine._jets` have faster exact versions and fall back to these.
"""

from __future__ import annotations

import random

import sympy as sp


def random_points(symbols, count: int = 3):
    """Reproducible random rational points in (0, 1) for the given symbols."""
    rng = random.Random(0)
    symbols = sorted(symbols, key=str)
    return [{s: sp.Rational(rng.randint(1, 97), rng.randint(98, 197)) for s in symbols}
            for _ in range(count)]


def numerically_nonzero(expr, point) -> bool:
    """True when ``expr`` evaluates to a clearly non-zero number at ``point`` (30 digits)."""
    value = expr.xreplace(point).evalf(30)
    return bool(value.is_number and value.is_finite and abs(value) > 1e-20)


def is_zero_expr(expr) -> bool:
    """Exact zero test: cheap numeric refutation at random rational points, then simplify."""
    expr = sp.sympify(expr)
    if expr == 0:
        return True
    if any(numerically_nonzero(expr, p) for p in random_points(expr.free_symbols)):
        return False
    return sp.simplify(expr) == 0


def expr_is_gradient(comps, params) -> bool:
    """Symmetric-Jacobian test on expressions."""
    return all(
        is_zero_expr(sp.diff(comps[i], params[j]) - sp.diff(comps[j], params[i]))
        for i in range(len(params)) for j in range(i + 1, len(params))
    )


def expr_potential(comps, params):
    """:math:`V` with ``comps == -grad V`` by integrating one variable at a time, or None."""
    comps = [-sp.sympify(c) for c in comps]
    total = sp.S.Zero
    for i, x in enumerate(params):
        rest = sp.simplify(comps[i] - sp.diff(total, x))
        if rest == 0:
            continue
        piece = sp.integrate(rest, x)
        if piece.has(sp.Integral):
            return None
        total += piece
    if not all(is_zero_expr(sp.diff(total, x) - c) for x, c in zip(params, comps)):
        return None
    return total


def poly_potential(alg, vec):
    r"""Potential of a polynomial gradient field, by Euler's identity for homogeneous parts.

    If :math:`F = \nabla V` then the degree-:math:`n` part of :math:`V` is
    :math:`\tfrac1n\,\theta\cdot F_{n-1}`; the constant is fixed by :math:`V(0) = 0`.
    """
    radial = alg.zero
    for gen, comp in zip(alg.gens, vec):
        radial += gen * comp
    terms = {m: c / sum(m) for m, c in radial.terms()}
    return -alg.to_expr(alg.ring(terms)) if terms else sp.S.Zero
