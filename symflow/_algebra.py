r"""Two exact arithmetics for vector fields: sparse polynomial rings and SymPy expressions.

The backward-error recursion (:mod:`symflow._bea`) only needs sums, products, rational
scalings and partial derivatives :math:`\partial/\partial\theta_i` of scalar fields. A
*polynomial* loss and map are handled in SymPy's sparse polynomial ring
:math:`\mathbb{Q}[\theta]` (or with coefficients in :math:`\mathbb{Q}[\beta]` /
:math:`\mathbb{Q}(\beta)` for symbolic hyperparameters), which is exact and an order of
magnitude faster than expression trees. Anything else (exp, log, tanh, ...) uses plain
SymPy expressions.

Both arithmetics expose the same small interface; a *vector* is a tuple of scalars.
"""

from __future__ import annotations

import math

import sympy as sp
from sympy.polys.rings import ring


class ExprAlgebra:
    """Scalars are SymPy expressions in the parameters."""

    kind = "general"

    def __init__(self, params):
        self.params = tuple(params)
        self.zero = sp.S.Zero

    def from_expr(self, expr):
        return sp.sympify(expr)

    def const(self, value):
        return sp.sympify(value)

    def diff(self, a, i):
        return sp.diff(a, self.params[i])

    def is_zero(self, a) -> bool:
        return a == 0

    def to_expr(self, a):
        return a


class PolyAlgebra:
    r"""Scalars are elements of a sparse polynomial ring over :math:`\mathbb{Q}` (or a
    polynomial ring / fraction field in the hyperparameter symbols)."""

    kind = "polynomial"

    def __init__(self, params, domain):
        self.params = tuple(params)
        self.ring, *self.gens = ring(self.params, domain)
        self.zero = self.ring.zero

    def from_expr(self, expr):
        return self.ring(expr)

    def const(self, value):
        return self.ring(value)

    def diff(self, a, i):
        return a.diff(self.gens[i])

    def is_zero(self, a) -> bool:
        return not a

    def to_expr(self, a):
        return a.as_expr()


def _domains(hypers):
    """Coefficient domains to try, fastest first."""
    if not hypers:
        return [sp.QQ]
    return [sp.QQ[tuple(hypers)], sp.QQ.frac_field(*hypers)]


def taylor_in_h(phi: sp.MatrixBase, params, h, hypers, order: int):
    r"""Expand a one-step map :math:`\Phi_h(\theta) = \sum_{k\ge 0} h^k d_k(\theta)` in ``h``.

    Returns ``(algebra, [d_0, ..., d_{order}])`` where each ``d_k`` is a vector in the
    returned algebra. The polynomial ring is used when every component of ``phi`` is a
    polynomial in the parameters and ``h``; otherwise the coefficients are the
    derivatives :math:`d_k = \frac{1}{k!}\partial_h^k \Phi|_{h=0}`.
    """
    hypers = sorted(hypers, key=str)
    for domain in _domains(hypers):
        try:
            ring_h, *_ = ring(tuple(params) + (h,), domain)
            polys = [ring_h(c) for c in phi]
        except (ValueError, TypeError, sp.PolynomialError, sp.polys.polyerrors.CoercionFailed):
            continue
        alg = PolyAlgebra(params, domain)
        coeffs = [[alg.zero] * len(polys) for _ in range(order + 1)]
        for c, poly in enumerate(polys):
            for monom, coeff in poly.terms():
                k = monom[-1]
                if k <= order:
                    coeffs[k][c] += alg.ring({monom[:-1]: coeff})
        return alg, [tuple(v) for v in coeffs]

    alg = ExprAlgebra(params)
    coeffs, current = [], list(phi)
    for k in range(order + 1):
        coeffs.append(tuple(c.subs(h, 0) / math.factorial(k) for c in current))
        if k < order:
            current = [sp.diff(c, h) for c in current]
    return alg, coeffs
