"""GD on the matrix BYOL / SimSiam model against the derived mode flows and collapse rates."""

import numpy as np
import pytest
import sympy as sp

import symflow as sf
from solvers._claims._ssl_run import ssl_run
from symflow._claims._self_supervised import eta, p, sigma2, tau

W0, P0 = [0.1, 0.1, 0.5], [0.3, 0.9, -0.2]


def test_gd_modes_follow_the_derived_flows():
    simsiam = sf.linear_ssl(order=1)
    gaps = {}
    for lr in (0.02, 0.01):
        for order in (0, 1):
            run = ssl_run(W0, P0, sigma2=0.5, eta=0.01, lr=lr, n_steps=int(3 / lr),
                          flow=simsiam, order=order, save_every=int(0.1 / lr))
            gaps[lr, order] = run.flow_gap()
    assert 1.8 < gaps[0.02, 0] / gaps[0.01, 0] < 2.2          # order 0: O(h)
    assert 3.6 < gaps[0.02, 1] / gaps[0.01, 1] < 4.4          # order 1: O(h^2)
    assert gaps[0.01, 1] < 1e-5
    byol = sf.linear_ssl(ema=tau, order=1)                    # EMA teacher tau = 0.9
    g = [ssl_run(W0, P0, sigma2=0.5, eta=0.01, lr=lr, n_steps=int(3 / lr), ema=0.9,
                 flow=byol, save_every=int(0.1 / lr)).flow_gap() for lr in (0.02, 0.01)]
    assert 3.0 < g[0] / g[1] < 5.0


@pytest.mark.parametrize("kind", ["simsiam", "no_stop_gradient", "no_predictor"])
def test_collapse_rates_against_simulation(kind):
    """From a tiny w the mode grows like exp(rate(p0) t): p hardly moves (its rate is O(w^2))."""
    opts = {"simsiam": {}, "no_stop_gradient": {"stop_gradient": False},
            "no_predictor": {"predictor": False}}[kind]
    model = sf.linear_ssl(**opts)
    p0 = np.array([0.1, 0.3, 0.6, 0.9])
    T, lr = 2.0, 1e-3
    run = ssl_run(1e-4 * np.ones(4), p0, sigma2=0.5, eta=0.02, lr=lr, n_steps=int(T / lr),
                  save_every=500, **opts)
    rate = sp.lambdify(p, model.collapse_rate().subs({sigma2: 0.5, eta: 0.02}))
    growth = np.log(run.w[-1] / run.w[0]) / T
    # at w ~ 0 the predictor only decays, p(t) = p0 exp(-eta t): average the rate over it
    ts = np.linspace(0.0, T, 2001)
    path = p0[None, :] * np.exp(-0.02 * ts)[:, None]
    expected = np.trapezoid(np.broadcast_to(rate(path), path.shape), ts, axis=0) / T
    assert np.allclose(growth, expected, atol=1e-3)          # Euler's O(h r^2)
    if kind == "simsiam":
        assert (growth[:3] > 0).all() and growth[3] < 0       # the window repels collapse
    else:
        assert (growth < 0).all()                             # collapse attracts
