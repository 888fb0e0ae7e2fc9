"""Weak error of the SME against SGD: slope ~1 (order 1) and ~2 (order 2)."""

import numpy as np
import pytest
import sympy as sp

import solvers as sv
import symflow as sf

w, b = sp.symbols("w b")
DATA = [(1, 1), (2, 3), (-1, 0), (3, 2), (sp.Rational(1, 2), -1)]
REGRESSION = [(w * a + b - t) ** 2 / 2 for a, t in DATA]
LRS = [0.04, 0.02, 0.01, 0.005]


@pytest.mark.parametrize("opt", [sf.SGD(1), sf.SGD(2, replacement=False)])
@pytest.mark.parametrize("phi", [w**2 + b**2, (w - 1) * (b + 2)])
def test_exact_weak_error_slopes_on_linear_regression(opt, phi):
    rep = sv.weak_error(opt, REGRESSION, [w, b], phi=phi, x0=[0.5, -0.5], lrs=LRS, T=1.0)
    assert rep.method == "exact"
    assert abs(rep.slopes[1] - 1) < 0.25 and abs(rep.slopes[2] - 2) < 0.25, rep.table()
    assert np.all(rep.errors[2] < rep.errors[1])


def test_a_wrong_noise_coefficient_is_caught(tmp_path):
    """The order-2 SME with its covariance scaled by 11/10 is only weak order 1."""
    opt = sf.SGD(1)
    good = sf.sme(opt, REGRESSION, [w, b], order=2)
    bad = sf.SDE(drift=good.drift, covariance=good.covariance * sp.Rational(11, 10),
                 params=[w, b])
    rep = sv.weak_error(opt, REGRESSION, [w, b], phi=w**2 + b**2, x0=[2.0, 1.0],
                        lrs=[lr / 4 for lr in LRS], T=1.0, orders=[2], sdes={2: bad})
    assert abs(rep.slopes[2] - 1) < 0.25, rep.table()
    fig = rep.plot(tmp_path / "weak.png")
    assert (tmp_path / "weak.png").stat().st_size > 0 and fig.axes
    assert "slope" in str(rep)


def test_noise_model_form_and_bad_input():
    s = sp.Symbol("s", positive=True)
    loss = ((w - 1) ** 2 + 2 * b**2) / 2
    rep = sv.weak_error(sf.GD(), losses=loss, params=[w, b], noise=s**2 * sp.eye(2),
                        phi=w**2, x0=[0.0, 1.0], lrs=LRS, T=1.0, hyper={"s": 2})
    assert rep.passed(0.25), rep.table()
    args = dict(optimizer=sf.SGD(1), losses=REGRESSION, params=[w, b], phi=w**2,
                x0=[0.5, -0.5], lrs=LRS, T=1.0)
    for change, match in [(dict(orders=[3]), "orders"), (dict(method="mc"), "method"),
                          (dict(lrs=[0.3, 0.7]), "divide"), (dict(lrs=[0.1]), "two"),
                          (dict(lrs=[0.1, 0.05, 0.1]), "distinct"),
                          (dict(phi=w**3), "monte_carlo"), (dict(x0=[np.nan, 0]), "x0"),
                          (dict(T=float("nan")), "T="), (dict(lrs=["a", 0.1]), "lrs"),
                          (dict(phi="w**2"), "parse_expression")]:
        with pytest.raises(sf.SymflowError, match=match):
            sv.weak_error(**{**args, **change})
    cubic = [(w - c) ** 4 / 4 for c in (-1, 1)]  # grad L not affine: moments do not close
    with pytest.raises(sf.SymflowError, match="does not close"):
        sv.weak_error(sf.SGD(1), cubic, [w], phi=w**2, x0=[0.5], lrs=LRS, T=1.0)


@pytest.mark.slow
def test_monte_carlo_weak_error_on_a_double_well():
    """No closed moments: Monte Carlo over real SGD and SME paths (about 1 minute)."""
    s = sp.Rational(1, 2)
    losses = [(w**2 - 1) ** 2 / 4 + a * w for a in (-s, s)]
    rep = sv.weak_error(sf.SGD(1), losses, [w], phi=w, x0=[1.6], lrs=[0.1, 0.05, 0.025],
                        T=0.5, method="monte_carlo", n_paths=200_000, sde_substeps=8)
    assert all(np.all(rep.errors[p] > 3 * rep.stderr[p]) for p in (1, 2)), rep
    assert abs(rep.slopes[1] - 1) < 0.25 and abs(rep.slopes[2] - 2) < 0.35, rep
