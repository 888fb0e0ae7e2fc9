"""verify_order: the global error of the order-p flow has slope p+1 in h."""

import numpy as np
import pytest
import sympy as sp

import solvers as sv
import symflow as sf

x, y = sp.symbols("x y")
LRS = [0.04, 0.02, 0.01, 0.005]
CASES = {
    "quartic": (sf.GD(), (x * y - 1) ** 2 / 2, [1.0, 0.5]),
    "softplus": (sf.GD(), sp.log(1 + sp.exp(x * y)) + (x - y) ** 2 / 4, [1.0, 0.5]),
    "trig": (sf.GD(), sp.sin(x) * sp.cos(y) + (x**2 + y**2) / 4, [0.8, -0.3]),
    "extragradient": (sf.Custom(update=lambda th, g, h: th - h * g(th - h * g(th)),
                                name="extragradient"),
                      sp.exp(x * y) / 4 + (x - 1) ** 2 / 2, [0.5, 0.5]),
}


@pytest.mark.parametrize("name", CASES)
def test_slopes_are_p_plus_one(name):
    opt, loss, x0 = CASES[name]
    rep = sv.verify_order(opt, loss, [x, y], x0=x0, lrs=LRS, T=1.0, orders=[0, 1, 2])
    for p in (0, 1, 2):
        assert abs(rep.slopes[p] - (p + 1)) <= 0.3, (name, p, rep.table())
    # errors shrink with the order at every learning rate
    assert np.all(rep.errors[2] < rep.errors[1]) and np.all(rep.errors[1] < rep.errors[0])


def test_a_wrong_coefficient_is_caught():
    """Perturbing the h^1 term by 10% must destroy the order-1 slope."""
    opt, loss, x0 = CASES["quartic"]
    me = sf.modified_equation(opt, loss, [x, y], order=1)
    bad = sf.ModifiedEquation(me.optimizer, me.loss, me.params, 1, me.hyper, me._alg,
                              [me._raw[0], tuple(c * me._alg.const(sp.Rational(11, 10))
                                                 for c in me._raw[1])])
    rep = sv.verify_order(opt, loss, [x, y], x0=x0, lrs=LRS, T=1.0, orders=[1], me=bad)
    assert abs(rep.slopes[1] - 2) > 0.5, rep.table()


def test_report_table_and_figure(tmp_path):
    opt, loss, x0 = CASES["quartic"]
    rep = sv.verify_order(opt, loss, [x, y], x0=x0, lrs=LRS, T=1.0, orders=[0, 1])
    text = str(rep)
    assert "slope" in text and "h*|lambda|_max" in text
    rep.plot(tmp_path / "v.png")
    assert (tmp_path / "v.png").stat().st_size > 10_000
    assert rep.passed()


def test_bad_ladders():
    opt, loss, x0 = CASES["quartic"]
    with pytest.raises(sf.SymflowError, match="whole number of steps"):
        sv.verify_order(opt, loss, [x, y], x0=x0, lrs=[0.03, 0.02], T=1.0)
    with pytest.raises(sf.SymflowError, match="two learning rates"):
        sv.verify_order(opt, loss, [x, y], x0=x0, lrs=[0.01], T=1.0)
    with pytest.raises(sf.SymflowError, match="order"):
        sv.verify_order(opt, loss, [x, y], x0=x0, lrs=LRS, T=1.0, orders=[-1])


def test_divergence_is_reported():
    with pytest.raises(sf.SymflowError, match="diverged"), pytest.warns(sf.ValidityWarning):
        sv.verify_order(sf.GD(), x**4 + y**2, [x, y], x0=[3.0, 1.0], lrs=[0.5, 0.25], T=3.0,
                        orders=[0])
