"""The compiled optimizer and the Diffrax flow solve."""

import numpy as np
import pytest
import sympy as sp

import solvers as sv
import symflow as sf

x, y = sp.symbols("x y")
lam = sp.Symbol("lam", positive=True)


def test_iterate_is_gradient_descent():
    loss = (x * y - 1) ** 2 / 2
    ys = np.asarray(sv.iterate(sf.GD(), loss, [x, y], x0=[1.0, 0.5], lr=0.1, n_steps=5))
    th = np.array([1.0, 0.5])
    for n in range(5):
        r = th[0] * th[1] - 1
        th = th - 0.1 * np.array([r * th[1], r * th[0]])
        np.testing.assert_allclose(ys[n + 1], th, rtol=1e-14)


def test_iterate_with_hyperparameter_and_custom_rule():
    eg = sf.Custom(update=lambda th, g, h: th - h * g(th - h * g(th)))
    ys = np.asarray(sv.iterate(eg, lam * x**2 / 2, [x], x0=[1.0], lr=0.1, n_steps=3,
                               hyper={"lam": 2.0}))
    factor = 1 - 0.1 * 2.0 * (1 - 0.1 * 2.0)
    np.testing.assert_allclose(ys[:, 0], factor ** np.arange(4), rtol=1e-14)


def test_solve_flow_matches_gd_on_a_quadratic():
    """For L = lam x^2/2 the full modified flow is exp(t log(1-h lam)/h) x: GD exactly."""
    me = sf.modified_equation(sf.GD(), lam * x**2 / 2, [x], order=8, hyper=[lam])
    ts, ys = sv.solve_flow(me, x0=[1.0], lr=0.05, n_steps=20, hyper={lam: 2.0})
    np.testing.assert_allclose(ts, 0.05 * np.arange(21))
    np.testing.assert_allclose(ys[:, 0], 0.9 ** np.arange(21), rtol=1e-8)
    _, ys0 = sv.solve_flow(me, x0=[1.0], lr=0.05, n_steps=20, order=0, hyper={lam: 2.0})
    assert abs(ys0[-1, 0] - 0.9**20) > 1e-3  # the gradient flow alone is visibly off


def test_solve_flow_reports_blow_up():
    me = sf.modified_equation(sf.GD(), -(x**4) / 4, [x], order=0)
    with pytest.raises(sf.SymflowError, match="could not be solved"):
        sv.solve_flow(me, x0=[2.0], lr=0.5, n_steps=10)


@pytest.mark.parametrize("x0", [[1.0], [1.0, float("nan")], [[1.0, 2.0, 3.0]]])
def test_bad_start(x0):
    with pytest.raises(sf.SymflowError, match="x0"):
        sv.iterate(sf.GD(), (x * y - 1) ** 2, [x, y], x0=x0, lr=0.1, n_steps=2)


def test_bad_lr_and_steps():
    with pytest.raises(sf.SymflowError, match="lr"):
        sv.iterate(sf.GD(), x**2, [x], x0=[1.0], lr=-0.1, n_steps=2)
    with pytest.raises(sf.SymflowError, match="n_steps"):
        sv.iterate(sf.GD(), x**2, [x], x0=[1.0], lr=0.1, n_steps=2.5)
    with pytest.raises(sf.SymflowError, match="got lr=True"):
        sv.iterate(sf.GD(), x**2, [x], x0=[1.0], lr=True, n_steps=2)


def test_stiff_solver_agrees_with_tsit5():
    me = sf.modified_equation(sf.GD(), lam * x**2 / 2, [x], order=4, hyper=[lam])
    _, explicit = sv.solve_flow(me, x0=[1.0], lr=0.01, n_steps=50, hyper={"lam": 20.0})
    _, implicit = sv.solve_flow(me, x0=[1.0], lr=0.01, n_steps=50, hyper={"lam": 20.0},
                                stiff=True, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(implicit, explicit, rtol=0, atol=1e-7)
    np.testing.assert_allclose(explicit[-1, 0], 0.8**50, rtol=1e-3)  # GD itself, to O(h^5)
