"""The SME of SGD on JAX models: exact against sf.sme, the low-rank noise, bad input.

On a linear model the network SME (drift by nested jvp, diffusion from per-sample
gradients) must equal symflow's exact symbolic SME to rounding; the one-pass noise
increment must equal the factor times the normals; the fresh-subset factor must be unbiased
(checked exactly over every subset).
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp
from jax.flatten_util import ravel_pytree

import solvers as sv
import symflow as sf
from symflow import SymflowError

# -- a linear model, symbolic and as a JAX loss -------------------------------------------------
RNG = np.random.default_rng(3)
X = np.round(RNG.normal(size=(7, 2)), 2)
Y = np.round(X @ [1.5, -0.5] + 0.3 + RNG.normal(size=7) / 3, 2)
DATA = (jnp.asarray(X), jnp.asarray(Y))


def linear_loss(p, batch):
    x, y = batch
    return 0.5 * jnp.mean((x @ p["w"] + p["b"] - y) ** 2)


P0 = {"b": jnp.array(0.2), "w": jnp.array([0.5, -1.0])}   # ravel order: b, w0, w1


def symbolic_sme(optimizer, order):
    b, w0, w1, x0, x1, y = sp.symbols("b w0 w1 x0 x1 y")
    ds = sf.Dataset(loss=(w0 * x0 + w1 * x1 + b - y) ** 2 / 2, params=[b, w0, w1],
                    data_symbols=[x0, x1, y], data=np.column_stack([X, Y]).tolist())
    return sf.sme(optimizer, dataset=ds, order=order), [b, w0, w1]


@pytest.mark.parametrize("replacement", [True, False])
@pytest.mark.parametrize("order", [1, 2])
def test_linear_model_equals_symbolic_sme(order, replacement):
    opt = sf.SGD(batch_size=3, replacement=replacement)
    sde, syms = symbolic_sme(opt, order)
    net = sv.network_sme(opt, linear_loss, P0, DATA, order=order)
    assert net.noise_scale == opt.noise_scale(7)
    lr = 0.3
    for point in ([0.2, 0.5, -1.0], [-1.0, 2.0, 0.25]):
        params = {"b": jnp.array(point[0]), "w": jnp.array(point[1:])}
        subs = dict(zip(syms, point)) | {sf.h: lr}
        drift = np.array(sde.drift.subs(subs), dtype=float).ravel()
        cov = np.array(sde.covariance.subs(subs), dtype=float)
        np.testing.assert_allclose(ravel_pytree(net.drift(params, lr))[0], drift, atol=1e-10)
        np.testing.assert_allclose(net.covariance(params, lr), cov, atol=1e-10)


def test_one_pass_noise_is_the_factor_times_the_normals():
    net = sv.network_sme(sf.SGD(batch_size=2), linear_loss, P0, DATA)
    z = jnp.asarray(np.random.default_rng(0).normal(size=7))
    got = ravel_pytree(net.noise_at(P0, DATA, z, 0.1))[0]
    np.testing.assert_allclose(got, net.factor(P0, 0.1) @ np.asarray(z), atol=1e-13)
    assert net.factor(P0, 0.1).shape == (3, 7)     # d x N: the low-rank factor


def test_fresh_subset_factor_is_unbiased_over_every_subset():
    """E_S[G_S G_S^T] = Sigma_1 exactly: averaged over all C(7, 3) subsets."""
    net = sv.network_sme(sf.SGD(batch_size=2), linear_loss, P0, DATA, noise_samples=3)
    lr, eye = 0.1, jnp.eye(3)
    total = np.zeros((3, 3))
    subsets = list(itertools.combinations(range(7), 3))
    for s in subsets:
        rows = jax.tree_util.tree_map(lambda a, s=s: a[np.array(s)], DATA)
        cols = np.stack([ravel_pytree(net.noise_at(P0, rows, e, lr))[0] for e in eye], axis=1)
        total += cols @ cols.T
    np.testing.assert_allclose(total / len(subsets), net.covariance(P0, lr), atol=1e-13)


def test_sde_and_sgd_ensembles_agree_on_the_linear_model():
    """Mean and spread of the loss of 2048 SGD runs and SME paths at t = nh (order 2): equal
    within Monte Carlo error and an O(h^2) weak error of a few percent (a wrong noise
    scale moves the stationary loss by tens of percent)."""
    opt = sf.SGD(batch_size=2, replacement=False)
    net = sv.network_sme(opt, linear_loss, P0, DATA, order=2)
    kw = {"lr": 0.05, "n_steps": 40, "n_paths": 2048, "save_every": 20,
          "observe": ("loss", "grad_norm")}
    sde = sv.simulate_network_sde(net, key=1, **kw)
    sgd = sv.run_sgd(opt, linear_loss, P0, DATA, key=2, **kw)
    assert sde.ts.tolist() == sgd.ts.tolist() == [1.0, 2.0]
    se = np.hypot(sde.std, sgd.std) / np.sqrt(2048)
    assert np.all(np.abs(sde.mean - sgd.mean) < 4 * se + 0.03 * sgd.mean)
    np.testing.assert_allclose(sde.std, sgd.std, rtol=0.1)


# -- bad input -----------------------------------------------------------------------------------
def test_refuses_a_loss_that_is_not_scalar():
    per_sample = lambda p, batch: 0.5 * (batch[0] @ p["w"] + p["b"] - batch[1]) ** 2
    with pytest.raises(SymflowError, match="shape"):
        sv.network_sme(sf.SGD(batch_size=2), per_sample, P0, DATA)


def test_refuses_a_batch_larger_than_the_dataset():
    with pytest.raises(SymflowError, match="batch_size=8 for a dataset of N=7"):
        sv.network_sme(sf.SGD(batch_size=8), linear_loss, P0, DATA)
    with pytest.raises(SymflowError, match="batch_size=8 for a dataset of N=7"):
        sv.run_sgd(sf.SGD(batch_size=8), linear_loss, P0, DATA, lr=0.1, n_steps=1)


def test_refuses_integer_leaves_with_the_right_advice():
    with pytest.raises(SymflowError, match=r"int\d+ leaf at params\['w'\].*keep it out"):
        sv.network_sme(sf.SGD(batch_size=2), linear_loss, {"b": 0.0, "w": jnp.array([1, 2])},
                       DATA)


def test_refuses_a_summed_loss_and_other_bad_arguments():
    summed = lambda p, batch: batch[1].shape[0] * linear_loss(p, batch)
    with pytest.raises(SymflowError, match="mean of one loss per sample"):
        sv.network_sme(sf.SGD(batch_size=2), summed, P0, DATA)
    with pytest.raises(SymflowError, match="available for sf.SGD"):   # momentum: its own file
        sv.network_sme(sf.GD(), linear_loss, P0, DATA, batch_size=2)
    with pytest.raises(SymflowError, match="order"):
        sv.network_sme(sf.SGD(batch_size=2), linear_loss, P0, DATA, order=3)
    with pytest.raises(SymflowError, match="noise_samples"):
        sv.network_sme(sf.SGD(batch_size=2), linear_loss, P0, DATA, noise_samples=1)
    with pytest.raises(SymflowError, match="leading axes"):
        sv.network_sme(sf.SGD(batch_size=2), linear_loss, P0, (DATA[0], DATA[1][:5]))
    net = sv.network_sme(sf.SGD(batch_size=2), linear_loss, P0, DATA)
    with pytest.raises(SymflowError, match="observe entry 'accuracy'"):
        sv.simulate_network_sde(net, lr=0.1, n_steps=1, observe=("accuracy",))
    with pytest.raises(SymflowError, match="test set"):
        sv.simulate_network_sde(net, lr=0.1, n_steps=1, observe=("test_loss",))
    with pytest.raises(SymflowError, match="save_every"):
        sv.simulate_network_sde(net, lr=0.1, n_steps=5, save_every=2)
    with pytest.raises(SymflowError, match="svag"):
        sv.run_sgd(sf.SGD(batch_size=2), linear_loss, P0, DATA, lr=0.1, n_steps=1, svag=0)
