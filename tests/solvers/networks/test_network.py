"""Modified flows of a real network: order slopes on an MLP and implicit gradient regularization.

The MLP (2545 parameters) is trained full batch on generated regression data; the
coordinate-free fields are evaluated by nested jvp and solved with Diffrax.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp
from jax.flatten_util import ravel_pytree

import solvers as sv
import symflow as sf


@pytest.fixture(scope="module")
def mlp():
    params = sv.mlp_init([2, 48, 48, 1], seed=0)
    assert sv.count_params(params) == 2545
    return params, sv.toy_regression(64, seed=0)


@pytest.mark.parametrize("optimizer, lrs, T", [
    (sf.GD(), [0.08, 0.04, 0.02, 0.01], 0.4),
    # heavy ball's series is in h/(1 - beta)^2: smaller steps reach the asymptotic regime
    (sf.HeavyBall(beta=sp.Rational(1, 2)), [0.01, 0.005, 0.0025, 0.00125], 0.5),
], ids=["gd", "heavy_ball"])
def test_order_slopes_on_an_mlp(mlp, optimizer, lrs, T):
    params, batch = mlp
    rep = sv.verify_order_network(optimizer, sv.mse_loss, params, batch, lrs=lrs, T=T,
                                  orders=[0, 1, 2])
    for p in (0, 1, 2):
        assert abs(rep.slopes[p] - (p + 1)) < 0.25, rep
    # each order is more accurate than the one before at the smallest learning rate
    assert rep.errors[2][-1] < rep.errors[1][-1] < rep.errors[0][-1]
    if rep.offsets is not None:  # a zero momentum leaves an O(h)-ish offset, above order 2
        assert np.all(rep.offsets > rep.errors[2])


def test_first_order_term_is_the_implicit_gradient_regularizer(mlp):
    """-1/2 H g (the engine's h^1 term) = -grad (1/4)|grad L|^2 by double backprop."""
    params, batch = mlp
    f1 = sv.network_field(sf.modified_equation(sf.GD(), order=1), sv.mse_loss).terms(
        params, batch)[1]

    def quarter_grad_sq(p):
        g = ravel_pytree(jax.grad(sv.mse_loss)(p, batch))[0]
        return g @ g / 4

    a = ravel_pytree(f1)[0]
    b = -ravel_pytree(jax.grad(quarter_grad_sq)(params))[0]
    assert float(jnp.linalg.norm(a - b)) < 1e-12 * float(jnp.linalg.norm(b))


def test_implicit_regularization_study(mlp):
    params, batch = mlp
    study = sv.implicit_regularization(sv.mse_loss, params, batch, lrs=[0.025, 0.05, 0.1],
                                       T=2.0, n_saves=4)
    gaps = study.gaps()
    # the regularized flow is an O(h^2) approximation of GD, gradient flow only O(h)
    assert np.all(gaps["regularized"] < 0.5 * gaps["gradient flow"])
    reg = np.polyfit(np.log(study.lrs), np.log(gaps["regularized"]), 1)[0]
    plain = np.polyfit(np.log(study.lrs), np.log(gaps["gradient flow"]), 1)[0]
    assert abs(reg - 2) < 0.3 and abs(plain - 1) < 0.3, (reg, plain)
    # GD penalises |grad L|^2 relative to gradient flow, and the regularized flow follows it
    for g, r in zip(study.gd, study.regularized):
        assert g["grad_sq"][-1] < study.flow["grad_sq"][-1]
        assert r["grad_sq"][-1] < study.flow["grad_sq"][-1]
    hs = study.h_sharpness[-1]
    assert 0 < hs.min() and hs.max() < 2
    assert "h*lam_max" in str(study)
