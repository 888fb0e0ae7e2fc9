r"""Is a vector field a gradient field, and what is its potential? (expression level)

A field :math:`f` on a simply connected domain is a gradient field,
:math:`f = -\nabla V`, exactly when its Jacobian is symmetric:
:math:`\partial_j f_i = \partial_i f_j` for all :math:`i, j` (Poincaré's lemma). These
helpers work on plain SymPy expressions; the ring arithmetics in :mod:`symflow._engine._algebra`
and :mod:`symflow._engine._jets` have faster exact versions and fall back to these.
"""

from __future__ import annotations

import itertools
import random

import sympy as sp
from sympy.polys.matrices import DomainMatrix
from sympy.polys.rings import ring

from ._guard import as_sympy


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
    expr = as_sympy(expr)
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


def _atoms_closure(comps, params, max_atoms):
    """Symbols for the non-polynomial atoms of ``comps`` and their derivatives, closed under
    differentiation: ``(atoms, derivative)`` with ``derivative[a][i] = d atom/d params[i]``
    as an expression in params and atom symbols; None when the closure grows too large."""
    params = tuple(params)

    def find(expr):
        found = [f for f in expr.atoms(sp.Function) if f.free_symbols & set(params)]
        found += [pw.base for pw in expr.atoms(sp.Pow) if pw.exp.is_Integer and pw.exp < 0
                  and pw.base.free_symbols & set(params)]
        found += [pw for pw in expr.atoms(sp.Pow) if not pw.exp.is_Integer
                  and pw.base.free_symbols & set(params)]
        return found

    atoms, inverse, todo = {}, {}, [a for c in comps for a in find(c)]
    while todo:
        a = todo.pop()
        if a in atoms or a in inverse:
            continue
        if len(atoms) + len(inverse) >= max_atoms:
            return None
        if isinstance(a, sp.Function) or a.is_Pow:
            atoms[a] = sp.Dummy("a")
            todo += find(sp.Add(*[sp.diff(a, p) for p in params]))
        else:  # a denominator b: the symbol stands for 1/b
            inverse[a] = sp.Dummy("inv")
            todo += find(a)

    def to_symbols(expr):
        for b, sym in inverse.items():
            expr = expr.replace(lambda e, b=b: e.is_Pow and e.base == b and e.exp.is_Integer
                                and e.exp < 0, lambda e, sym=sym: sym ** (-e.exp))
        return expr.xreplace(atoms)

    derivative = {}
    for a, sym in atoms.items():
        derivative[sym] = [to_symbols(sp.diff(a, p)) for p in params]
    for b, sym in inverse.items():
        derivative[sym] = [to_symbols(-sp.diff(b, p)) * sym**2 for p in params]
    back = {sym: a for a, sym in atoms.items()}
    back.update({sym: 1 / b for b, sym in inverse.items()})
    return to_symbols, derivative, back


def atom_potential(comps, params, max_atoms: int = 8, max_candidates: int = 600):
    r""":math:`V` with ``comps == -grad V`` found by an exact linear solve, without integrating.

    The non-polynomial atoms of the field (:math:`e^{x/2}`, :math:`\tanh x`, denominators
    :math:`1/q`) are closed under differentiation and become ring generators, with
    :math:`\partial_i` acting as the total derivative (:math:`\partial_x\tanh x = 1 -
    \tanh^2 x`, :math:`\partial_x q^{-1} = -q' q^{-2}`). :math:`V` is sought among the
    polynomials in the parameters and atoms of one degree more than the field; None when
    there is none (or the search is too large). The result is checked exactly.

    >>> x, y, b = sp.symbols("x y beta")
    >>> atom_potential([-sp.tanh(x) * y * (1 - sp.tanh(x) ** 2) / (1 - b),
    ...                 -sp.tanh(x) ** 2 / (2 * (1 - b))], [x, y])
    -y*tanh(x)**2/(2*beta - 2)
    """
    params = tuple(params)
    comps = [as_sympy(c) for c in comps]
    closure = _atoms_closure(comps, params, max_atoms)
    if closure is None:
        return None
    to_symbols, derivative, back = closure
    syms = tuple(derivative)
    others = sorted(set().union(*(c.free_symbols for c in comps)) - set(params), key=str)
    domain = sp.QQ.frac_field(*others) if others else sp.QQ
    try:
        R, *gens = ring(params + syms, domain)
        field = [R(to_symbols(c)) for c in comps]
        deriv = {g: [R(e) for e in derivative[s]] for g, s in zip(gens[len(params):], syms)}
    except (ValueError, TypeError, sp.PolynomialError, sp.polys.polyerrors.CoercionFailed):
        return None

    def total(p, i):
        out = p.diff(gens[i])
        for g, d in deriv.items():
            out += p.diff(g) * d[i]
        return out

    monoms = [m for c in field for m in c.monoms()]
    degree = max((sum(m) for m in monoms), default=0) + 1
    n = len(gens)
    caps = [max((m[j] for m in monoms), default=0) + 1 for j in range(n)]
    exponents = [e for e in itertools.product(*(range(c + 1) for c in caps))
                 if 0 < sum(e) <= degree]
    if len(exponents) > max_candidates:
        return None
    one = domain.one
    monos = [R({e: one}) for e in exponents]
    images = [[total(m, i) for i in range(len(params))] for m in monos]
    keys = sorted({(i, k) for i in range(len(params)) for k in field[i].keys()}
                  | {(i, k) for img in images for i in range(len(params)) for k in img[i].keys()})
    fld = domain.get_field() if hasattr(domain, "get_field") else domain
    rows = [[fld.convert(img[i].get(k, domain.zero)) for img in images]
            + [fld.convert(-field[i].get(k, domain.zero))] for i, k in keys]
    rref, pivots = DomainMatrix(rows, (len(rows), len(monos) + 1), fld).rref()
    if len(monos) in pivots:
        return None
    sol = rref.to_list()
    pot = sp.Add(*[fld.to_sympy(sol[r][-1]) * monos[col].as_expr()
                   for r, col in enumerate(pivots) if sol[r][-1]])
    pot = pot.xreplace(back)
    if all(is_zero_expr(sp.diff(pot, p) + c) for p, c in zip(params, comps)):
        return pot
    return None


def _generic_branch(expr):
    """Replace each ``Piecewise`` by its first branch (the generic case, e.g. ``beta != 1``)."""
    return expr.replace(lambda e: isinstance(e, sp.Piecewise), lambda e: e.args[0].expr)


def expr_potential(comps, params):
    r""":math:`V` with ``comps == -grad V`` by integrating one variable at a time, or None.

    Each antiderivative is taken for generic values of the other symbols (``conds="none"``:
    no ``Piecewise`` on :math:`\beta \ne 1`); the candidate is then checked exactly by
    differentiating it back, so a generic branch that does not hold is refused (None).

    >>> x, y, b = sp.symbols("x y beta")
    >>> expr_potential([-sp.exp(b * x) + 0 * y, -2 * y], [x, y])
    y**2 + exp(beta*x)/beta
    """
    found = atom_potential(comps, params)
    if found is not None:
        return found
    comps = [-as_sympy(c) for c in comps]
    total = sp.S.Zero
    for i, x in enumerate(params):
        rest = sp.simplify(comps[i] - sp.diff(total, x))
        if rest == 0:
            continue
        piece = _generic_branch(sp.integrate(rest, x, conds="none"))
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
