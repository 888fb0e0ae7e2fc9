"""The fast arithmetic of the memory reduction (iota symbols in normal form, one Taylor
coefficient per multi-index) gives exactly what the plain-expression path gives.

Each comparison substitutes exact rational values for the parameters and the
hyperparameters: both sides then evaluate to exact rationals (the square roots of Adam and
RMSprop are of perfect squares there), compared with ``==``.
"""

import pytest
import sympy as sp

import symflow as sf
from symflow._engine._rings import HyperInverses

R = sp.Rational
x, y = sp.symbols("x y")
xp = sp.Symbol("x", positive=True)
b, b1, b2, eps = sp.symbols("beta beta1 beta2 epsilon", positive=True)
POLY = (x * y - 1) ** 2 / 2
POSITIVE_1D = sp.integrate(xp**2 / 2 + xp + 1, xp)   # L' > 0: no sign changes
POINTS = ({b: R(1, 3), b1: R(1, 2), b2: R(3, 4), eps: R(1, 10), x: R(2, 3), y: R(-1, 5),
           xp: R(3, 2)},
          {b: R(5, 7), b1: R(4, 5), b2: R(9, 10), eps: R(1, 3), x: R(-3, 2), y: R(1, 7),
           xp: R(1, 4)})


def _exact_values(matrices, point):
    return [e.xreplace(point) for m in matrices for e in m]


@pytest.mark.parametrize("opt, loss, params, order", [
    (sf.Adam(b1, b2, eps), POSITIVE_1D, [xp], 2),
    (sf.Adam(b1, b2, eps), POLY, [x, y], 1),
    (sf.HeavyBall(beta=b), POLY, [x, y], 2),
], ids=["adam-1d-order2", "adam-2d-order1", "heavy-ball-2d-order2"])
def test_fast_path_equals_the_expression_path(opt, loss, params, order):
    fast = sf.modified_equation(opt, loss, params, order, progress=False)
    plain = sf.modified_equation(opt, loss, params, order, progress=False, path="general")
    assert fast.path != "general"
    assert len(fast.manifold_terms) == len(plain.manifold_terms) == order + 2
    for point in POINTS:
        got = _exact_values(fast.terms + fast.manifold_terms, point)
        want = _exact_values(plain.terms + plain.manifold_terms, point)
        assert all(v.is_Rational for v in got + want)
        assert got == want


def test_symbolic_adam_takes_the_iota_arithmetic():
    """Symbolic betas run on Q[beta, iota] with iota = 1/(1 - beta), not on fractions."""
    me = sf.modified_equation(sf.Adam(b1, b2, eps), POLY, [x, y], 1, progress=False)
    assert me.path == "rational"
    assert me._alg.post and not me._alg.ring.domain.is_Field


def test_normal_forms_are_canonical():
    """(1 - beta) iota = 1 is recognised, so a zero coefficient is the zero polynomial."""
    i = sp.Dummy("iota")
    hyp = HyperInverses(sp.QQ[i, b], {i: 1 / (1 - b)})
    dom = hyp.domain
    assert not hyp.normal(dom.from_sympy(sp.expand((1 - b) * i - 1)))
    assert not hyp.normal(dom.from_sympy(sp.expand(b * i**2 - i**2 + i)))
    one = hyp.normal(dom.from_sympy(sp.expand((1 - b) ** 2 * i**3 * (1 - b))))
    assert one == dom.one
    inv = hyp.inverse(dom.from_sympy(3 * i**2))   # (1 - beta)^2 / 3
    assert hyp.normal(inv * dom.from_sympy(3 * i**2)) == dom.one
    assert hyp.inverse(dom.from_sympy(1 + b)) is None   # no iota for 1 + beta
