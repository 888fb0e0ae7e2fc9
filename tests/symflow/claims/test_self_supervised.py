"""The linear BYOL / SimSiam model (Tian, Chen & Ganguli 2021): mode dynamics and collapse."""

import sympy as sp

import symflow as sf
from symflow._claims._self_supervised import eta, p, sigma2, tau, w, w_a


def test_mode_loss_is_the_population_loss():
    # E|p w (x + e1) - w_a (x + e2)|^2 / 2 with E x^2 = 1, E e^2 = sigma2, by hand
    expected = ((1 + sigma2) * p**2 * w**2 - 2 * p * w * w_a + (1 + sigma2) * w_a**2) / 2 \
        + eta * (w**2 + p**2) / 2
    assert sp.expand(sf.linear_ssl().loss - expected) == 0


def test_collapse_unstable_with_predictor_and_stop_gradient():
    m = sf.linear_ssl()
    rate = m.collapse_rate()
    assert sp.expand(rate - (p * (1 - (1 + sigma2) * p) - eta)) == 0
    # without weight decay every 0 < p < 1/(1 + sigma2) is a repelling collapsed point
    assert rate.subs({eta: 0, sigma2: sp.Rational(1, 2), p: sp.Rational(1, 3)}) > 0
    assert rate.subs({eta: 0, sigma2: sp.Rational(1, 2), p: sp.Rational(3, 4)}) < 0
    # the window exists exactly when 4 eta (1 + sigma2) < 1: the maximum of the rate over p
    assert sp.simplify(m.max_collapse_rate()
                       - (1 - 4 * eta * (1 + sigma2)) / (4 * (1 + sigma2))) == 0
    cond = m.collapse_unstable_when()
    assert sp.simplify(cond.lhs - (1 - 4 * eta * (1 + sigma2))) == 0 and cond.rhs == 0
    assert not m.equation.gradient_orders[0]          # stop-gradient: not a gradient flow


def test_collapse_stable_without_stop_gradient_or_predictor():
    rate = sf.linear_ssl(stop_gradient=False).collapse_rate()
    assert sp.expand(rate + (1 - p)**2 + sigma2 * (1 + p**2) + eta) == 0   # <= 0 always
    assert sf.linear_ssl(stop_gradient=False).equation.is_gradient
    assert sp.expand(sf.linear_ssl(predictor=False).collapse_rate() + sigma2 + eta) == 0
    for kw in ({"stop_gradient": False}, {"predictor": False}):    # for every sigma2, eta
        assert sf.linear_ssl(**kw).collapse_unstable_when() is sp.false


def test_fixed_points_and_their_stability():
    m = sf.linear_ssl()
    values = {sigma2: sp.Rational(1, 2), eta: sp.Rational(1, 20)}
    points = m.fixed_points(values)
    assert {w: 0, p: 0} in points
    others = [pt for pt in points if pt[w] != 0]
    roots = sp.solve((1 + sigma2) * p**2 - p + eta, p)      # Tian et al.: w^2 = p^2 there
    assert len(others) == 4
    for pt in others:
        assert sp.simplify(pt[w]**2 - pt[p]**2) == 0
        assert any(sp.simplify(pt[p] - r.subs(values)) == 0 for r in roots)
    big = max(others, key=lambda pt: float(pt[p]))
    small = min(others, key=lambda pt: float(pt[p]))
    assert all(complex(e).real < 0 for e in m.eigenvalues_at(big, values))     # stable
    assert max(complex(e).real for e in m.eigenvalues_at(small, values)) > 0   # saddle
    assert all(complex(e).real < 0 for e in m.eigenvalues_at({w: 0, p: 0}, values))


def test_ema_teacher_reduced_flow():
    byol = sf.linear_ssl(ema=tau, order=1)
    simsiam = sf.linear_ssl(order=1)
    assert sp.simplify(byol.flow - simsiam.flow).is_zero_matrix     # same leading flow
    Fw = simsiam.flow[0]
    assert sp.simplify(byol.equation.manifold_terms[1][0] + tau / (1 - tau) * Fw) == 0
    # the teacher's lag changes the h-term of the collapse rate by tau/(1 - tau) d_wa g F
    extra = sp.simplify(byol.collapse_rate(order=1) - simsiam.collapse_rate(order=1))
    assert extra != 0 and extra.subs(tau, 0) == 0
