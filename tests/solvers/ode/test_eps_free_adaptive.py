"""The eps-free regime (eps = 0, eps_root > 0) numerically: optax step for step, and slopes."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import sympy as sp

import solvers as sv
import symflow as sf

x, y = sp.symbols("x y")
R = sp.Rational
LOSS = (x * y - 1) ** 2 / 2 + x**2 / 4
X0, LR, STEPS = np.array([1.0, -0.5]), 0.05, 100


def optax_params(tx):
    loss = lambda p: (p[0] * p[1] - 1) ** 2 / 2 + p[0] ** 2 / 4
    params, state = jnp.asarray(X0), tx.init(jnp.asarray(X0))
    update = jax.jit(lambda p, s: tx.update(jax.grad(loss)(p), s, p))
    out = [params]
    for _ in range(STEPS):
        updates, state = update(params, state)
        params = optax.apply_updates(params, updates)
        out.append(params)
    return np.asarray(out)


@pytest.mark.parametrize("ours, theirs", [
    (sf.Adam(beta1=0.9, beta2=0.999, eps=0, eps_root=1e-4),
     optax.adam(LR, b1=0.9, b2=0.999, eps=0.0, eps_root=1e-4)),
    (sf.RMSprop(rho=0.9, eps=0, eps_root=0.1), optax.rmsprop(LR, decay=0.9, eps=0.1)),
], ids=["adam", "rmsprop"])
def test_eps_free_maps_equal_optax(ours, theirs):
    got = np.asarray(sv.iterate(ours, LOSS, [x, y], X0, LR, STEPS))
    np.testing.assert_allclose(got, optax_params(theirs), rtol=0, atol=1e-12)


def slopes_near(rep, orders):
    for p in orders:
        assert abs(rep.slopes[p] - (p + 1)) <= 0.3, (p, rep.table())


@pytest.mark.slow
def test_rmsprop_eps_free_slopes():
    opt = sf.RMSprop(rho=R(1, 2), eps=0, eps_root=R(1, 10))
    rep = sv.verify_order(opt, LOSS, [x, y], x0=list(X0), lrs=[0.02, 0.01, 0.005, 0.0025],
                          T=0.5, orders=[0, 1, 2])
    slopes_near(rep, [0, 1, 2])


@pytest.mark.slow
def test_adam_eps_free_slopes():
    opt = sf.Adam(beta1=R(1, 2), beta2=R(3, 4), eps=0, eps_root=R(1, 10))
    rep = sv.verify_order(opt, LOSS, [x, y], x0=list(X0), lrs=[0.02, 0.01, 0.005, 0.0025],
                          T=0.5, orders=[0, 1, 2])
    slopes_near(rep, [0, 1, 2])
