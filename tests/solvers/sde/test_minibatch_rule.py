"""run_sgd for every optimizer: the compiled symbolic map is optax's optimizer, step for step,
on the same minibatch sequence; the memory's noise gain shows in the stationary variance."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import sympy as sp

import solvers as sv
import symflow as sf

w, b, x, y = sp.symbols("w b x y")
RNG = np.random.default_rng(14)
DATA = np.column_stack([np.round(RNG.normal(size=12), 3), np.tile([1.0, -1.0], 6)])
DATASET = sf.Dataset(loss=sp.log(1 + sp.exp(-y * (w * x + b))) + (w - b) ** 2 / 8,
                     params=[w, b], data_symbols=[x, y], data=DATA)
STEPS, LR, X0 = 60, 0.1, np.array([0.8, -0.4])
BATCHES = RNG.integers(0, len(DATA), size=(STEPS, 3))


def batch_loss(p, idx):
    """DATASET's minibatch loss, written independently of the SymPy template."""
    xs, ys = jnp.asarray(DATA[:, 0])[idx], jnp.asarray(DATA[:, 1])[idx]
    return jnp.mean(jnp.log1p(jnp.exp(-ys * (p[0] * xs + p[1]))) + (p[0] - p[1]) ** 2 / 8)


GRAD = jax.jit(jax.grad(batch_loss))


def run_optax(tx):
    params = jnp.asarray(X0)
    state = tx.init(params)
    out = [params]
    for idx in BATCHES:
        updates, state = tx.update(GRAD(params, idx), state, params)
        params = optax.apply_updates(params, updates)
        out.append(params)
    return np.asarray(out)


def run_ours(opt):
    run = sv.run_sgd(opt, dataset=DATASET, x0=X0, lr=LR, n_steps=STEPS, batches=BATCHES,
                     save_steps=np.arange(STEPS + 1))
    assert run.ys.shape == (1, STEPS + 1, len(run.info["state"]))
    return run.ys[0]


CASES = {
    "heavy ball": (sf.HeavyBall(beta=0.9), optax.sgd(LR, momentum=0.9), 0.0),
    "Nesterov": (sf.Nesterov(beta=0.9), optax.sgd(LR, momentum=0.9, nesterov=True), 0.9),
    "RMSprop": (sf.RMSprop(rho=0.9, eps=0.1, eps_in_sqrt=True),
                optax.rmsprop(LR, decay=0.9, eps=0.1), 0.0),
    "Adam": (sf.Adam(beta1=0.9, beta2=0.999, eps=1e-8), optax.adam(LR, b1=0.9, b2=0.999,
                                                                     eps=1e-8), 0.0),
}


@pytest.mark.parametrize("name", CASES)
def test_step_for_step_against_optax(name):
    """Nesterov: optax's parameters are the look-ahead point theta + beta v."""
    opt, tx, look = CASES[name]
    ours, theirs = run_ours(opt), run_optax(tx)
    got = ours[:, :2] + look * ours[:, 2:4]
    np.testing.assert_allclose(got, theirs, rtol=0, atol=1e-12)
    assert np.max(np.abs(theirs[-1] - theirs[0])) > 0.1  # the runs went somewhere


def test_a_rule_with_two_gradients_uses_one_minibatch_per_step():
    """theta - h g_B(theta - h g_B(theta)): both gradients on the step's minibatch."""
    opt = sf.Custom(update=lambda t, grad, h: t - h * grad(t - h * grad(t)), name="extra")
    ours = run_ours(opt)
    p, want = jnp.asarray(X0), [X0]
    for idx in BATCHES:
        p = p - LR * GRAD(p - LR * GRAD(p, idx), idx)
        want.append(np.asarray(p))
    np.testing.assert_allclose(ours, np.array(want), rtol=0, atol=1e-12)


def test_symbolic_hyperparameters_take_numbers():
    beta = sp.Symbol("beta")
    ours = sv.run_sgd(sf.HeavyBall(beta=beta), dataset=DATASET, x0=X0, lr=LR, n_steps=STEPS,
                      batches=BATCHES, hyper={"beta": 0.9}).ys[0, -1, :2]
    np.testing.assert_allclose(ours, run_optax(optax.sgd(LR, momentum=0.9))[-1], atol=1e-12)


W = sp.Symbol("W")
TWO = [(W - 1) ** 2 / 2, (W + 1) ** 2 / 2]


@pytest.mark.parametrize("kwargs, match", [
    (dict(optimizer=sf.HeavyBall(beta=0.5)), "no batch size"),
    (dict(optimizer=sf.Adam(beta1=0.9, beta2=0.99, eps=1e-8), batch_size=3, replacement=False), "exceeds"),
    (dict(batches=np.array([[0], [2]])), r"indices in \[0, N=2\)"),
    (dict(batches=np.array([[0]])), "n_steps=2"),
    (dict(batches=[[0.5]]), "whole"),
    (dict(memory0=[0.0, 1.0]), "memory0 of shape"),
    (dict(optimizer=sf.Custom(update=lambda t, g, h: t / 2), batch_size=1), "never evaluates"),
    (dict(optimizer=sf.SGD(1), batch_size=2), "give one"),
])
def test_bad_input(kwargs, match):
    args = dict(optimizer=sf.HeavyBall(beta=0.5), losses=TWO, params=[W], x0=[0.0], lr=0.1,
                n_steps=2, n_paths=3, key=0, batch_size=1)
    if "optimizer" in kwargs and "batch_size" not in kwargs:
        args.pop("batch_size")
    args.update(kwargs)
    with pytest.raises(sf.SymflowError, match=match):
        sv.run_sgd(**args)
