"""Modified equations on a vector field and on stop-gradient losses (field=, stop_gradient=)."""

import pytest
import sympy as sp

import symflow as sf
from symflow._engine._field_result import elementary_differentials

x, y = sp.symbols("x y")
P = [x, y]
# a field that is not a gradient (its Jacobian is not symmetric), polynomial
F = sp.Matrix([-y + x * y / 2, x - x**2 / 3])


def _jac(v):
    return sp.Matrix(v).jacobian(P)


def _second(v, a, b):
    """v''(a, b) for a column v."""
    return sp.Matrix([sum(sp.diff(v[i], P[j], P[k]) * a[j] * b[k]
                          for j in range(2) for k in range(2)) for i in range(len(v))])


def _zero(m):
    return all(sp.simplify(c) == 0 for c in m)


def test_explicit_euler_matches_hairer_lubich_wanner():
    me = sf.modified_equation(sf.GD(), field=F, params=P, order=2)
    J = _jac(F)
    assert _zero(me.terms[0] - F)
    assert _zero(me.terms[1] + J * F / 2)                               # -f'f/2
    assert _zero(me.terms[2] - (_second(F, F, F) / 12 + J * J * F / 3))  # HLW IX.1
    assert me.first_non_gradient_order == 0 and me.modified_loss is None
    assert "non-symmetric" in me.gradient_summary()


def test_custom_rule_grad_returns_minus_field():
    eg = sf.Custom(update=lambda th, g, h: th - h * g(th - h * g(th)))   # extragradient
    me = sf.modified_equation(eg, field=F, params=P, order=2)
    J = _jac(F)
    assert _zero(me.terms[1] - J * F / 2)            # + f'f/2: the midpoint-like correction
    # coordinate-free terms (trees of g = -F) evaluated on this field are the concrete ones
    cf = me.coordinate_free
    G = elementary_differentials(-F, P)
    for k, coeffs in enumerate(cf.terms):
        assert _zero(sum((c * G(t) for t, c in coeffs.items()), sp.zeros(2, 1)) - me.terms[k])


def test_gradient_field_agrees_with_the_loss_path():
    L = (x * y - 1)**2 / 2 + x**4 / 4
    grad = sp.Matrix([sp.diff(L, p) for p in P])
    a = sf.modified_equation(sf.GD(), field=-grad, params=P, order=2)
    b = sf.modified_equation(sf.GD(), loss=L, params=P, order=2)
    assert all(_zero(s - t) for s, t in zip(a.terms, b.terms))
    assert a.gradient_orders == b.gradient_orders == (True, True, False)
    assert a.time_scale == 1


def test_non_polynomial_field_takes_the_general_path():
    Fe = sp.Matrix([sp.sin(y), -sp.tanh(x)])
    me = sf.modified_equation(sf.GD(), field=Fe, params=P, order=1)
    assert me.path == "general"
    assert _zero(me.terms[1] + _jac(Fe) * Fe / 2)


w, p, wt = sp.symbols("w p w_t")
tau = sp.Symbol("tau", positive=True)
LOSS = (p * w - wt)**2 / 2 + (w**2 + p**2) / 20          # predictor p, target copy wt of w


def test_stop_gradient_is_the_field_of_the_partial_gradient():
    me = sf.modified_equation(sf.GD(), loss=LOSS, params=[w, p], stop_gradient={wt: w}, order=2)
    Fsg = -sp.Matrix([sp.diff(LOSS, s) for s in (w, p)]).xreplace({wt: w})
    ref = sf.modified_equation(sf.GD(), field=Fsg, params=[w, p], order=2)
    assert all(_zero(s - t) for s, t in zip(me.terms, ref.terms))
    assert me.gradient_orders[0] is False          # stop-gradient: not a gradient flow
    assert me.stop_gradient == {wt: w}
    full = sf.modified_equation(sf.GD(), loss=LOSS.subs(wt, w), params=[w, p], order=0)
    assert full.is_gradient                          # without stop-gradient: a gradient flow


def test_ema_teacher_is_memory_on_its_manifold():
    def byol(th, m, g, h):
        nxt = th - h * g(th, m)                      # online step, target = the EMA teacher m
        return nxt, tau * m + (1 - tau) * nxt[0:1, :]

    ema = sf.Custom(update=byol, memory0=lambda th: [th[0]], hyper=[tau])
    me = sf.modified_equation(ema, loss=LOSS, params=[w, p], stop_gradient={wt: w}, order=1)
    g = sp.Matrix([sp.diff(LOSS, s) for s in (w, p)])
    Fd = -g.xreplace({wt: w})
    # the teacher lags: m = w - tau/(1 - tau) h F_w + O(h^2)
    assert _zero(me.manifold_terms[0] - sp.Matrix([w]))
    M1 = -tau / (1 - tau) * Fd[0]
    assert _zero(me.manifold_terms[1] - sp.Matrix([M1]))
    # theta_{n+1} = theta + h F - h^2 d_wt g M1 + ..., so f1 = -d_wt g M1 - F'F/2
    f1 = -sp.diff(g, wt).xreplace({wt: w}) * M1 - _jac_of(Fd, [w, p]) * Fd / 2
    assert _zero(me.terms[1] - f1)
    with pytest.raises(sf.SymflowError, match="trees of one gradient do not apply"):
        _ = me.coordinate_free


def _jac_of(v, params):
    return sp.Matrix(v).jacobian(params)


@pytest.mark.parametrize("field, match", [
    (sp.Matrix([x, y, x]), r"shape \(3, 1\).*\(2, 1\)"),
    (sp.Matrix([[x, y]]), r"shape \(1, 2\)"),
    ("[-y, x]", "a string"),
    (sp.Matrix([x * sp.Symbol("c"), y]), "neither parameters"),
    (sp.Matrix([sf.h * x, y]), "learning-rate"),
])
def test_bad_fields(field, match):
    with pytest.raises(sf.SymflowError, match=match):
        sf.modified_equation(sf.GD(), field=field, params=P, order=1)


def test_bad_stop_gradient_rules():
    with pytest.raises(sf.SymflowError, match="does not depend on the free parameters"):
        sf.modified_equation(sf.GD(), loss=wt**2 / 2, params=[w, p], stop_gradient={wt: w},
                             order=1)
    with pytest.raises(sf.SymflowError, match="does not contain the held copies"):
        sf.modified_equation(sf.GD(), loss=w**2, params=[w, p], stop_gradient={wt: w}, order=1)
    with pytest.raises(sf.SymflowError, match="is not one of the parameters"):
        sf.modified_equation(sf.GD(), loss=LOSS, params=[w, p], stop_gradient={wt: x}, order=1)
    with pytest.raises(sf.SymflowError, match="pass a dict"):
        sf.modified_equation(sf.GD(), loss=LOSS, params=[w, p], stop_gradient=[wt], order=1)
    held = sf.Custom(update=lambda th, g, h: th - h * g(th, th[0:1, :]))
    with pytest.raises(sf.SymflowError, match="only a stop-gradient loss"):
        sf.modified_equation(held, field=F, params=P, order=1)
    with pytest.raises(sf.SymflowError, match="either a vector field"):
        sf.modified_equation(sf.GD(), loss=LOSS, field=F, params=P, order=1)
    with pytest.raises(sf.SymflowError, match="check_validity needs a loss"):
        sf.modified_equation(sf.GD(), field=F, params=P, order=0).check_validity([0, 0], 0.1)
