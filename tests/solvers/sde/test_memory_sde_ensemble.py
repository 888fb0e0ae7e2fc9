"""SMEs of heavy ball against real minibatch runs (run_sgd), ensemble against ensemble.

Model: per-sample losses (w -+ 1)^2/2, batch 1: the gradient noise is +-1, Sigma_1 = 1.
Both SDEs come from sf.sme; the stationary covariance of the SDE ensemble must match that of
the real runs within Monte Carlo error plus the SME's own O(step) bias. A wrong noise gain
(e.g. heavy ball's 1/(1-beta) dropped: variance x (1-beta)^2) is far outside.
"""

import numpy as np
import pytest
import sympy as sp

import solvers as sv
import symflow as sf

w = sp.Symbol("w")
c = sp.Symbol("c", positive=True)
LOSSES = [(w - 1) ** 2 / 2, (w + 1) ** 2 / 2]
N = 20_000
MC = 4 * np.sqrt(2) * np.sqrt(2 / N)  # 4 sigma of the ratio of two sample variances


def ratio_ok(got, want, bias):
    return abs(got / want - 1) < bias + MC


def test_fixed_beta_sme_on_theta_matches_real_heavy_ball():
    """beta = 1/2: d w = -w/(1-beta) dt + sqrt(h)/(1-beta) dW, stationary Var w = h."""
    beta, lr, steps = sp.Rational(1, 2), 0.02, 300
    sde = sf.sme(sf.HeavyBall(beta=beta), losses=LOSSES, params=[w], batch_size=1)
    assert sde.params == (w,)
    real = sv.run_sgd(sf.HeavyBall(beta=beta), LOSSES, [w], x0=[0.0], lr=lr, n_steps=steps,
                      n_paths=N, key=3, batch_size=1, stats=["second_moment"])
    ens = sv.simulate_sde(sde, [0.0], steps * lr, N, key=4, dt=lr, solver="sra1", lr=lr,
                          stats=["second_moment"])
    v_real, v_sde = real.covariance()[-1, 0, 0], ens.covariance()[-1, 0, 0]
    exact = float(sf.sde_moments(sde).stationary_moments()[w**2].subs(sf.h, lr))
    assert exact == pytest.approx(lr)  # the engine's SME: Var w = h (no 1/(1-beta) lost)
    assert ratio_ok(v_sde, exact, 0.01)  # sra1 on an OU process: tiny bias
    assert ratio_ok(v_real, v_sde, lr / (1 - float(beta)))  # the SME is O(h/(1-beta))


def test_slow_heavy_ball_whole_state_sde_matches_real_runs():
    """1 - beta = c sqrt(h): the SME on (w, u = v/sqrt(h)) in s = n sqrt(h) is kinetic
    Langevin; memory included, its stationary covariance is that of the real (w, v/sqrt(h))."""
    lr, steps, cval = 0.0025, 300, 1.0
    opt = sf.HeavyBall(beta=1 - c * sp.sqrt(sf.h))
    sde = sf.sme(opt, losses=LOSSES, params=[w], batch_size=1, hyper=[c])
    assert [str(p) for p in sde.params] == ["w", "u_w"]
    delta = np.sqrt(lr)
    real = sv.run_sgd(opt, LOSSES, [w], x0=[0.0], lr=lr, n_steps=steps, n_paths=N, key=5,
                      batch_size=1, hyper={"c": cval}, stats=["second_moment"])
    ens = sv.simulate_sde(sde, [0.0, 0.0], steps * delta, N, key=6, dt=0.1, solver="sra1",
                          lr=lr, hyper={"c": cval}, stats=["second_moment"])
    to_u = np.diag([1.0, 1 / delta])  # real state (w, v) -> (w, u)
    c_real = to_u @ real.covariance()[-1] @ to_u
    c_sde = ens.covariance()[-1]
    for i in range(2):  # Var w, Var u: both sqrt(h)/(2c) in the limit
        assert ratio_ok(c_real[i, i], c_sde[i, i], delta), (c_real, c_sde)
        assert ratio_ok(c_sde[i, i], delta / (2 * cval), 0.02)
    assert abs(c_real[0, 1] - c_sde[0, 1]) < 0.1 * delta / (2 * cval)  # ~0 in both
