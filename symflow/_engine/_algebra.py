r"""Exact arithmetics for vector fields, and the expansion of a map in powers of ``h``.

The backward-error recursion (:mod:`symflow._engine._bea`) only needs sums, products, rational
scalings and partial derivatives :math:`\partial/\partial\theta_i` of scalar fields. Three
arithmetics offer that interface (a *vector* is a tuple of scalars), tried in order:

1. ``polynomial``: a polynomial loss and map live in SymPy's sparse ring
   :math:`\mathbb{Q}[\theta]` (coefficients in :math:`\mathbb{Q}[\beta]` or
   :math:`\mathbb{Q}(\beta)` for symbolic hyperparameters): exact and fast.
2. ``jet``: any loss, when the rule is polynomial in the parameters, the gradient values
   and ``h``: fields are polynomials in the derivatives of :math:`L` (:mod:`symflow._engine._jets`).
3. ``general``: plain SymPy expressions, for anything else.
"""

from __future__ import annotations

import math

import sympy as sp
from sympy.polys.rings import ring

from .._core._errors import SymflowError
from .._core._gradient import expr_is_gradient, expr_potential, is_zero_expr, poly_potential
from .._core._guard import as_sympy
from ._jets import NotJetExpressible, expand_with_jets, split_by_h
from ._point import at_origin_of
from ._rings import RingArithmetic, coefficient_domains, ring_to_expr

_CONVERSION_ERRORS = (ValueError, TypeError, sp.PolynomialError,
                      sp.polys.polyerrors.CoercionFailed)


class ExprAlgebra:
    """Scalars are SymPy expressions in the parameters."""

    kind = "general"
    #: Substitution applied when converting back to expressions (symbols that stand for
    #: inverses of hyperparameter expressions, see :func:`symflow._engine._rings.inverse_constants`).
    post: dict = {}

    def __init__(self, params):
        self.params = tuple(params)
        self.zero = sp.S.Zero

    def from_expr(self, expr):
        return as_sympy(expr)

    def const(self, value):
        return as_sympy(value)

    def diff(self, a, i):
        return sp.diff(a, self.params[i])

    def is_zero(self, a) -> bool:
        return a == 0

    def to_expr(self, a):
        return a

    def inverse(self, a):
        return 1 / a

    def sqrt(self, a):
        return sp.sqrt(a)

    def is_gradient(self, vec) -> bool:
        return expr_is_gradient(vec, self.params)

    def potential(self, vec):
        return expr_potential(vec, self.params)


class PolyAlgebra(RingArithmetic, ExprAlgebra):
    r"""Scalars are elements of a sparse polynomial ring in the parameters."""

    kind = "polynomial"

    def __init__(self, params, domain):
        self.params = tuple(params)
        self.ring, *self.gens = ring(self.params, domain)
        self.zero = self.ring.zero

    def diff(self, a, i):
        return a.diff(self.gens[i])

    def to_expr(self, a):
        return ring_to_expr(a, self.post)

    def is_gradient(self, vec) -> bool:
        asym = [self.diff(vec[i], j) - self.diff(vec[j], i)
                for i in range(len(vec)) for j in range(i + 1, len(vec))]
        if self.post:
            return all(is_zero_expr(self.to_expr(a)) for a in asym if a)
        return not any(asym)

    def potential(self, vec):
        return poly_potential(self, vec)


def _expand_polynomial(phi, params, h, domain, order):
    ring_h, *_ = ring(tuple(params) + (h,), domain)
    polys = [ring_h(c) for c in phi]
    alg = PolyAlgebra(params, domain)
    return alg, split_by_h(polys, alg, order)


def _expand_general(phi, params, h, order):
    alg = ExprAlgebra(params)
    coeffs, current = [], list(phi)
    for k in range(order + 1):
        coeffs.append(tuple(at_origin_of(c, h) / math.factorial(k) for c in current))
        if k < order:
            current = [sp.diff(c, h) for c in current]
    return alg, coeffs


#: Above this many ring generators the jet arithmetic is slower than expressions.
MAX_JET_GENERATORS = 400


def expand_map(optimizer, loss, phi, params, h, hypers, order: int, path: str = "auto"):
    r"""Expand a one-step map :math:`\Phi_h(\theta) = \sum_{k\ge 0} h^k d_k(\theta)` in ``h``.

    ``phi`` is the closed-form map (used by the polynomial and general paths). Returns
    ``(algebra, [d_0, ..., d_order])``, each ``d_k`` a vector in that algebra. ``path``
    forces ``"polynomial"``, ``"jet"`` or ``"general"``; ``"auto"`` tries them in turn.
    """
    domains = coefficient_domains(hypers)
    if path in ("auto", "polynomial"):
        for domain in domains:
            try:
                return _expand_polynomial(phi, params, h, domain, order)
            except _CONVERSION_ERRORS:
                continue
    n_jets = math.comb(len(params) + order + 2, order + 2) - 1
    if path == "jet" or (path == "auto" and n_jets <= MAX_JET_GENERATORS):
        for domain in domains:
            try:
                return expand_with_jets(optimizer, loss, params, h, domain, order)
            except NotJetExpressible:
                continue
    if path not in ("auto", "general"):

        raise SymflowError(f"the {path} path does not apply to this loss and update rule")
    return _expand_general(phi, params, h, order)
