"""Coordinate-free fields evaluated by nested jvp against the concrete engine, and bad input.

The small model is written twice: as a SymPy loss (the concrete engine, lambdified with
``sv.vector_function``) and as a JAX function of a parameter pytree (the coordinate-free
terms evaluated by autodiff). They must agree to 1e-10.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp

import solvers as sv
import symflow as sf

x, y, z = sp.symbols("x y z")
beta = sp.Symbol("beta")
LOSS = sp.tanh(x * y - z) ** 2 + sp.exp(x / 2) * z**2 / 3 + (x - y) ** 4 / 8
PARAMS = [x, y, z]
POINT = {"a": jnp.array(0.4), "bc": jnp.array([-0.7, 0.3])}
FLAT = [0.4, -0.7, 0.3]


def loss_fn(p, batch):
    x, (y, z) = p["a"], p["bc"]
    return jnp.tanh(x * y - z) ** 2 + jnp.exp(x / 2) * z**2 / 3 + (x - y) ** 4 / 8


def game_fn(p, batch):  # the same function, split between two players (x | y, z)
    return loss_fn({"a": p[0], "bc": p[1]}, batch)


# a two-stage Runge-Kutta rule (Ralston's weights): its order-3 term holds all four trees of
# order 4, D^4L[g, g, g] (three nested jvps) included
RALSTON = sf.Custom(update=lambda th, g, h: th - h / 4 * g(th) - 3 * h / 4 * g(th - 2 * h / 3 * g(th)),
                    name="ralston")


def concrete_terms(optimizer, order, hyper=None):
    me = sf.modified_equation(optimizer, LOSS, PARAMS, order)
    stacked = sp.Matrix.vstack(*[sp.Matrix(t) for t in me.terms])
    syms = sorted(stacked.free_symbols - set(PARAMS), key=str)
    f = sv.vector_function(stacked, PARAMS, syms)
    values = jnp.array([float(hyper[str(s)]) for s in syms])
    return np.asarray(f(jnp.array(FLAT), values)).reshape(order + 1, 3)


def flat(tree):
    return np.concatenate([np.ravel(np.asarray(leaf)) for leaf in jax.tree_util.tree_leaves(tree)])


@pytest.mark.parametrize("optimizer, order, hyper", [
    (sf.GD(), 3, None),
    (RALSTON, 3, None),
    (sf.HeavyBall(beta=beta), 2, {"beta": 0.3}),
    (sf.Nesterov(beta=sp.Rational(1, 2)), 2, None),
], ids=["gd", "ralston", "heavy_ball_symbolic", "nesterov"])
def test_autodiff_terms_match_the_lambdified_concrete_field(optimizer, order, hyper):
    expected = concrete_terms(optimizer, order, hyper)
    field = sv.network_field(sf.modified_equation(optimizer, order=order), loss_fn, hyper)
    got = np.stack([flat(t) for t in field.terms(POINT, None)])
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)
    lr = 0.07
    total = flat(field(POINT, None, lr, order=order - 1))
    np.testing.assert_allclose(total, sum(lr**k * expected[k] for k in range(order)),
                               rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("optimizer", [sf.SimultaneousGDA(n_first=1),
                                       sf.AlternatingGDA(n_first=1, lr_ratio=sp.Rational(1, 2))],
                         ids=["simultaneous", "alternating"])
def test_two_player_fields_on_a_pytree_pair(optimizer):
    expected = concrete_terms(optimizer, 2)
    field = sv.network_field(sf.modified_equation(optimizer, order=2), game_fn)
    got = np.stack([flat(t) for t in field.terms((POINT["a"], POINT["bc"]), None)])
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)


def test_pytree_runner_and_manifold_match_the_concrete_iterates():
    """Heavy ball on the pytree (update rule parsed once) vs sv.iterate on the SymPy loss,
    both starting on the invariant manifold (coordinate-free vs concrete)."""
    opt, lr, n = sf.HeavyBall(beta=sp.Rational(3, 5)), 0.05, 30
    me = sf.modified_equation(opt, LOSS, PARAMS, 2)
    its = sv.iterate(opt, LOSS, PARAMS, FLAT, lr, n, memory0=sv.manifold_memory(me, FLAT, lr))
    cf = sf.modified_equation(opt, order=2)
    (m0,) = [m(POINT, None, lr) for m in sv.manifold_fields(cf, loss_fn)]
    np.testing.assert_allclose(flat(m0), np.asarray(sv.manifold_memory(me, FLAT, lr)),
                               rtol=1e-12, atol=1e-14)
    theta_n, _ = sv.network_optimizer(opt, loss_fn).final(POINT, None, lr, n, (m0,))
    np.testing.assert_allclose(flat(theta_n), np.asarray(its[-1]), rtol=1e-12, atol=1e-14)


def test_sharpness_by_power_iteration():
    hess = np.asarray(jax.jit(jax.hessian(lambda v: loss_fn({"a": v[0], "bc": v[1:]}, None)))(
        jnp.array(FLAT)))
    top = np.max(np.abs(np.linalg.eigvalsh(hess)))
    assert abs(sv.sharpness(loss_fn, POINT, None, iters=100) - top) < 1e-8 * top


# -- bad input ---------------------------------------------------------------------------------

GD1 = sf.modified_equation(sf.GD(), order=1)


def test_loss_output_not_scalar():
    field = sv.network_field(GD1, lambda p, batch: p["a"] * jnp.ones(3))
    with pytest.raises(sf.SymflowError, match=r"shape \(3,\).*must return a scalar"):
        field(POINT, None, 0.1)
    field = sv.network_field(GD1, lambda p, batch: (p["a"], p["a"]))
    with pytest.raises(sf.SymflowError, match="one scalar array"):
        field(POINT, None, 0.1)


def test_integer_leaves_in_params():
    bad = {"a": jnp.array(1), "bc": jnp.array([0.5, 1.0])}
    with pytest.raises(sf.SymflowError, match=r"int\d+ leaf at params\['a'\].*floating-point"):
        sv.network_field(GD1, loss_fn)(bad, None, 0.1)
    with pytest.raises(sf.SymflowError, match="floating-point"):
        sv.network_optimizer(sf.GD(), loss_fn).final(bad, None, 0.1, 3)
    with pytest.raises(sf.SymflowError, match="floating-point"):
        sv.sharpness(loss_fn, {"a": 1, "bc": [2, 3]}, None)


def test_other_bad_input():
    field = sv.network_field(GD1, loss_fn)
    with pytest.raises(sf.SymflowError, match="order=3"):
        field(POINT, None, 0.1, order=3)
    with pytest.raises(sf.SymflowError, match="coordinate-free equation"):
        sv.network_field(sf.modified_equation(sf.GD(), LOSS, PARAMS, 1), loss_fn)
    with pytest.raises(sf.SymflowError, match="hyper="):
        sv.network_field(sf.modified_equation(sf.HeavyBall(beta=beta), order=1), loss_fn)
    with pytest.raises(sf.SymflowError, match="loss_fn"):
        sv.network_field(GD1, "L")
    with pytest.raises(sf.SymflowError, match=r"raised TypeError"):
        sv.network_field(GD1, lambda p: p)(POINT, None, 0.1)
    with pytest.raises(sf.SymflowError, match="tuple \\(phi, theta\\)"):
        sv.network_field(sf.modified_equation(sf.SimultaneousGDA(n_first=1), order=1),
                         game_fn)(POINT, None, 0.1)
    with pytest.raises(sf.SymflowError, match="element-wise"):
        sv.network_optimizer(sf.RMSprop(rho=0.9, eps=1e-8), loss_fn)
    with pytest.raises(sf.SymflowError, match=r"NaN or inf in params\['bc'\]"):
        field({"a": jnp.array(0.4), "bc": jnp.array([jnp.nan, 0.3])}, None, 0.1)
    with pytest.raises(sf.SymflowError, match="lr=-0.1"):
        field(POINT, None, -0.1)
    with pytest.raises(sf.SymflowError, match="finite numbers"):
        sv.network_field(sf.modified_equation(sf.HeavyBall(beta=beta), order=1), loss_fn,
                         hyper={"beta": "x"})
    heavy_ball = sv.network_optimizer(sf.HeavyBall(beta=0.5), loss_fn)
    with pytest.raises(sf.SymflowError, match=r"memory0\[0\] with leaf shapes"):
        heavy_ball.final(POINT, None, 0.1, 2, ({"a": jnp.array(0.0), "bc": jnp.zeros(3)},))
    with pytest.raises(sf.SymflowError, match="iters=0"):
        sv.sharpness(loss_fn, POINT, None, iters=0)
    with pytest.raises(sf.SymflowError, match="same optimizer"):
        sv.verify_order_network(sf.GD(), loss_fn, POINT, None, lrs=[0.1, 0.05], T=0.2,
                                cf=sf.modified_equation(sf.HeavyBall(beta=0.5), order=1))
