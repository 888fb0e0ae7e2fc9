"""Adam and RMSprop on networks: the element-wise rule compiled from symflow's map, step for
step against optax on a small MLP fed the same minibatches, inside and outside run_sgd."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import sympy as sp
from jax.flatten_util import ravel_pytree

import solvers as sv
import symflow as sf
from solvers._networks._network_data import draw_batches
from solvers._networks._network_elementwise import elementwise_optimizer
from solvers._sde._ensemble import as_key
from symflow import SymflowError

TOL = 1e-10
LR = 0.05
N, B = 16, 4
_rng = np.random.default_rng(0)
DATA = (jnp.asarray(_rng.normal(size=(N, 2))), jnp.asarray(_rng.normal(size=N)))
P0 = {"w1": jnp.asarray(_rng.normal(size=(2, 5))), "b1": jnp.asarray(_rng.normal(size=5) / 4),
      "w2": jnp.asarray(_rng.normal(size=5) / 2)}


def mlp_loss(p, batch):
    x, y = batch
    return 0.5 * jnp.mean((jnp.tanh(x @ p["w1"] + p["b1"]) @ p["w2"] - y) ** 2)


def adam_no_bias(lr, b1, b2, eps):
    """Adam without bias correction, written out here (optax has no switch for it)."""
    def init(p):
        return jax.tree_util.tree_map(jnp.zeros_like, p), jax.tree_util.tree_map(jnp.zeros_like, p)

    def update(g, state, p=None):
        m, v = state
        m = jax.tree_util.tree_map(lambda a, b: b1 * a + (1 - b1) * b, m, g)
        v = jax.tree_util.tree_map(lambda a, b: b2 * a + (1 - b2) * b * b, v, g)
        u = jax.tree_util.tree_map(lambda a, b: -lr * a / (jnp.sqrt(b) + eps), m, v)
        return u, (m, v)

    return optax.GradientTransformation(init, update)


#: symflow optimizer and its optax counterpart (or the written-out Adam without bias correction).
CASES = {
    "adam": (sf.Adam(beta1=0.9, beta2=0.99, eps=1e-8), optax.adam(LR, 0.9, 0.99, 1e-8)),
    "adam_eps_root": (sf.Adam(beta1=0.8, beta2=0.95, eps=1e-6, eps_root=1e-9),
                      optax.adam(LR, 0.8, 0.95, 1e-6, eps_root=1e-9)),
    "adam_no_bias": (sf.Adam(beta1=0.9, beta2=0.99, eps=1e-8, bias_correction=False),
                     adam_no_bias(LR, 0.9, 0.99, 1e-8)),
    # Malladi et al.'s scaling: hyperparameters in the learning rate, evaluated at lr
    "adam_h_scaled": (sf.Adam(beta1=1 - 2 * sf.h**2, beta2=1 - sf.h**2 / 2,
                              eps=sp.Rational(1, 10) / sf.h, bias_correction=False),
                      adam_no_bias(LR, 1 - 2 * LR**2, 1 - LR**2 / 2, 0.1 / LR)),
    "rmsprop": (sf.RMSprop(rho=0.9, eps=1e-8, eps_in_sqrt=True), optax.rmsprop(LR, 0.9, 1e-8)),
    "rmsprop_eps_out_bias": (
        sf.RMSprop(rho=0.8, eps=1e-7, bias_correction=True, initial_scale=0.5),
        optax.rmsprop(LR, 0.8, 1e-7, initial_scale=0.5, eps_in_sqrt=False,
                      bias_correction=True)),
}


def optax_moments(state):
    """optax's moment pytrees, in symflow's memory order (Adam: m, v; RMSprop: v)."""
    for s in jax.tree_util.tree_leaves(state, is_leaf=lambda s: hasattr(s, "nu")):
        if hasattr(s, "mu"):
            return (s.mu, s.nu)
        if hasattr(s, "nu"):
            return (s.nu,)
    return tuple(state)   # adam_no_bias: (m, v)


def run_optax(tx, params, batches, loss_fn=mlp_loss):
    """optax's iterates ``params_n`` (raveled) and final state on the given batch indices."""
    state, out = tx.init(params), []

    @jax.jit
    def step(p, s, rows):
        u, s = tx.update(jax.grad(loss_fn)(p, (DATA[0][rows], DATA[1][rows])), s, p)
        return optax.apply_updates(p, u), s

    for rows in batches:
        params, state = step(params, state, rows)
        out.append(ravel_pytree(params)[0])
    return np.asarray(out), state


def batch_orders(key, n_paths, n_steps):
    """The minibatches run_sgd draws for each path (one chunk, one device)."""
    ckey = jax.random.fold_in(as_key(key), 0)
    rows = [draw_batches(jax.random.fold_in(ckey, k), n_paths, N, B, False)
            for k in range(n_steps)]
    return [[r[j] for r in rows] for j in range(n_paths)]


@pytest.fixture(scope="module")
def steppers():
    """One compiled element-wise step per case (shared by the tests)."""
    return {name: jax.jit(elementwise_optimizer(opt, mlp_loss).step)
            for name, (opt, _) in CASES.items()}


def test_x64_is_on():
    assert jnp.asarray(1.0).dtype == jnp.float64


@pytest.mark.parametrize("name", list(CASES))
def test_step_for_step_against_optax(name, steppers):
    """Parameters and moments after each of 12 minibatch steps, to 1e-10."""
    opt, tx = CASES[name]
    run = elementwise_optimizer(opt, mlp_loss)
    batches = batch_orders(7, 1, 12)[0]
    state = run.start(P0, DATA, lr=LR)
    theirs, last = run_optax(tx, P0, batches)
    for n, rows in enumerate(batches):
        state = steppers[name](state, (DATA[0][rows], DATA[1][rows]), LR)
        np.testing.assert_allclose(ravel_pytree(state[0])[0], theirs[n], rtol=0, atol=TOL,
                                   err_msg=f"{name}, step {n + 1}")
    for ours, ref in zip(state[1], optax_moments(last)):
        np.testing.assert_allclose(ravel_pytree(ours)[0], ravel_pytree(ref)[0], rtol=0,
                                   atol=TOL)
    assert len(state[1]) == len(optax_moments(last))
    assert state[2].shape == ((2,) if name in ("adam", "adam_eps_root") else
                              (1,) if name == "rmsprop_eps_out_bias" else (0,))


# -- through sv.run_sgd: independent batch orders per path --------------------------------------
@pytest.mark.parametrize("name", ["adam", "rmsprop"])
def test_run_sgd_paths_are_optax_runs_with_their_own_batches(name):
    """3 paths, 6 steps: the mean parameters at each step equal the mean of 3 optax runs fed
    each path's own minibatch sequence (which differ between paths)."""
    opt, tx = CASES[name]
    n_paths, n_steps = 3, 6
    ens = sv.run_sgd(opt, mlp_loss, P0, DATA, batch_size=B, replacement=False, lr=LR,
                     n_steps=n_steps, n_paths=n_paths, key=3, save_every=1)
    orders = batch_orders(3, n_paths, n_steps)
    assert not np.array_equal(np.asarray(orders[0]), np.asarray(orders[1]))
    runs = [run_optax(tx, P0, order)[0] for order in orders]
    np.testing.assert_allclose(ens.param_mean, np.mean(runs, axis=0), rtol=0, atol=TOL)
    assert ens.info["method"] == opt.label


def test_run_sgd_adam_on_an_equinox_mlp():
    """An eqx.nn.MLP (non-array activation leaf) trained by sf.Adam in run_sgd equals
    optax.adam on its array leaves; one path."""
    model = eqx.nn.MLP(2, "scalar", 4, 1, activation=jnp.tanh, key=jax.random.key(1))
    loss = lambda m, batch: 0.5 * jnp.mean((jax.vmap(m)(batch[0]) - batch[1]) ** 2)
    arrays, static = eqx.partition(model, eqx.is_array)
    opt, tx = CASES["adam"]
    ens = sv.run_sgd(opt, loss, model, DATA, batch_size=B, lr=LR, n_steps=5, n_paths=1,
                     key=5, save_every=5, replacement=False)
    theirs, _ = run_optax(tx, arrays, batch_orders(5, 1, 5)[0],
                          lambda a, batch: loss(eqx.combine(a, static), batch))
    np.testing.assert_allclose(ens.param_mean[-1], theirs[-1], rtol=0, atol=TOL)


# -- hyperparameters and bad input --------------------------------------------------------------
def test_symbolic_hyperparameters_need_values(steppers):
    b2 = sp.Symbol("b2")
    symbolic = sf.Adam(beta1=0.9, beta2=b2, eps=1e-8)
    with pytest.raises(SymflowError, match=r"symbolic hyperparameters.*b2.*hyper="):
        sv.run_sgd(symbolic, mlp_loss, P0, DATA, batch_size=B, lr=LR, n_steps=1, n_paths=1)
    # with a value, the same step as the numeric optimizer
    run = elementwise_optimizer(symbolic, mlp_loss, hyper={"b2": 0.99})
    batch = (DATA[0][:B], DATA[1][:B])
    got = run.step(run.start(P0, batch, lr=LR), batch, LR)
    want = steppers["adam"](elementwise_optimizer(CASES["adam"][0], mlp_loss).start(
        P0, batch, lr=LR), batch, LR)
    np.testing.assert_allclose(ravel_pytree(got)[0], ravel_pytree(want)[0], rtol=0, atol=TOL)


def test_element_wise_custom_rule_and_a_mixing_rule():
    """A user's element-wise rule runs; a rule that mixes coordinates is refused clearly."""
    soft_sign = sf.Custom(update=lambda th, g, h: th - h * g(th).applyfunc(
        lambda c: c / sp.sqrt(c**2 + 1)))
    run = elementwise_optimizer(soft_sign, mlp_loss)
    batch = (DATA[0][:B], DATA[1][:B])
    got = run.step(run.start(P0, batch, lr=LR), batch, LR)[0]
    g = jax.grad(mlp_loss)(P0, batch)
    want = jax.tree_util.tree_map(lambda p, c: p - LR * c / jnp.sqrt(c**2 + 1), P0, g)
    np.testing.assert_allclose(ravel_pytree(got)[0], ravel_pytree(want)[0], rtol=0, atol=TOL)
    normalised = sf.Custom(update=lambda th, g, h: th - h * g(th) / sp.sqrt(
        sum(c**2 for c in g(th)) + 1))
    with pytest.raises(SymflowError, match="neither a linear rule.*nor an element-wise one"):
        sv.run_sgd(normalised, mlp_loss, P0, DATA, batch_size=B, lr=LR, n_steps=1, n_paths=1)
