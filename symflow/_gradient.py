r"""Is a vector field a gradient field, and what is its potential?

A field :math:`f` on a simply connected domain is a gradient field,
:math:`f = -\nabla V`, exactly when its Jacobian is symmetric:
:math:`\partial_j f_i = \partial_i f_j` for all :math:`i, j` (Poincaré's lemma).
"""

from __future__ import annotations

import random

import sympy as sp

from ._algebra import PolyAlgebra


def _is_zero_expr(expr) -> bool:
    """Exact zero test: cheap numeric refutation at random rational points, then simplify."""
    expr = sp.expand(expr)
    if expr == 0:
        return True
    free = sorted(expr.free_symbols, key=str)
    rng = random.Random(0)
    for _ in range(3):
        point = {s: sp.Rational(rng.randint(1, 97), rng.randint(98, 197)) for s in free}
        value = expr.xreplace(point).evalf(30)
        if value.is_number and value.is_finite and abs(value) > 1e-20:
            return False
    return sp.simplify(expr) == 0


def is_gradient_field(alg, vec) -> bool:
    """Exact symmetric-Jacobian test for one vector (in the given algebra)."""
    dim = len(vec)
    for i in range(dim):
        for j in range(i + 1, dim):
            asym = alg.diff(vec[i], j) - alg.diff(vec[j], i)
            if isinstance(alg, PolyAlgebra):
                if asym:
                    return False
            elif not _is_zero_expr(asym):
                return False
    return True


def potential(alg, vec):
    r"""Return :math:`V` with :math:`\text{vec} = -\nabla V` and :math:`V(0) = 0`, or ``None``.

    Polynomial fields use Euler's identity for homogeneous parts: if :math:`F = \nabla V`
    then the degree-:math:`n` part of :math:`V` is :math:`\tfrac1n\,\theta\cdot F_{n-1}`.
    Other fields are integrated one variable at a time with SymPy and the result is
    checked by differentiation; ``None`` means no closed form was found.
    """
    if isinstance(alg, PolyAlgebra):
        radial = alg.zero
        for gen, comp in zip(alg.gens, vec):
            radial += gen * comp
        terms = {m: c / sum(m) for m, c in radial.terms()}
        return -alg.ring(terms).as_expr() if terms else sp.S.Zero
    params = alg.params
    comps = [-sp.sympify(c) for c in vec]
    total = sp.S.Zero
    for i, x in enumerate(params):
        rest = sp.simplify(comps[i] - sp.diff(total, x))
        if rest == 0:
            continue
        piece = sp.integrate(rest, x)
        if piece.has(sp.Integral):
            return None
        total += piece
    residual = [sp.diff(total, x) - c for x, c in zip(params, comps)]
    if not all(_is_zero_expr(r) for r in residual):
        return None
    return total - total.subs({x: 0 for x in params}) if total.subs(
        {x: 0 for x in params}).is_finite else total
