"""The path kernel along the gradient flow (Diffrax), and the kernel-machine identity numerically."""

import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp

import solvers as sv
import symflow as sf

WIDTH = 4
XS = np.linspace(-2.0, 2.0, 6)
YS = np.sin(1.5 * XS)
XQ = np.linspace(-2.5, 2.5, 7)
TH0 = np.random.default_rng(0).normal(size=3 * WIDTH + 1) * 0.8


def mlp(theta, x):
    """One hidden tanh layer: 13 parameters, scalar input x (shape (1,))."""
    w1, b1, w2, b2 = (theta[:WIDTH, None], theta[WIDTH:2 * WIDTH],
                      theta[2 * WIDTH:3 * WIDTH], theta[-1])
    return w2 @ jnp.tanh(w1 @ x + b1) + b2


@pytest.fixture(scope="module")
def trained():
    return sv.path_kernel(mlp, TH0, XQ, T=4.0, x_train=XS, y_train=YS,
                          ts=np.linspace(0.0, 4.0, 9))


def test_trained_model_is_its_kernel_machine(trained):
    """f(x; theta_T) = b + sum_i a_i(x) K^p(x, x_i) to solver tolerance, at every saved time,
    while the model moved far and the kernel moved too (the frozen kernel misses by a lot)."""
    assert np.abs(trained.prediction[-1] - trained.bias).max() > 0.5
    assert trained.residual < 1e-8
    assert trained.frozen_gap > 1e-2
    form = trained.bias + (trained.coefficients * trained.kernel[-1]).sum(-1)
    assert np.abs(trained.prediction[-1] - form).max() < 1e-8
    assert "b + sum_i a_i K^p" in str(trained)


def test_training_loss_decreases_and_integrals_start_at_zero(trained):
    preds = np.stack([np.asarray([mlp(th, jnp.array([x])) for x in XS]) for th in trained.theta])
    losses = ((preds - YS) ** 2).sum(1) / 2
    assert np.all(np.diff(losses) < 0)
    assert np.allclose(trained.kernel[0], 0) and np.allclose(trained.weighted[0], 0)


def test_gradient_descent_obeys_the_identity_only_to_first_order():
    """Along gradient descent the left Riemann sums leave a gap O(h): slope 1 in h."""
    lrs = np.array([0.01, 0.005, 0.0025, 0.00125])
    gaps = np.array([sv.path_kernel(mlp, TH0, XQ, T=2.0, x_train=XS, y_train=YS, lr=lr).residual
                     for lr in lrs])
    slope = np.polyfit(np.log(lrs), np.log(gaps), 1)[0]
    assert abs(slope - 1) < 0.15, (gaps, slope)


def test_symbolic_model_and_an_independent_quadrature_of_its_tangent_kernel():
    """A KernelMachine is compiled from its SymPy model; its exact tangent kernel, evaluated on
    the saved parameters and integrated by Simpson's rule, reproduces K^p."""
    x, w, b, c = sp.symbols("x w b c")
    km = sf.kernel_machine(w * sp.tanh(b * x) + c, [w, b, c], [x], [-1.0, 0.5, 2.0],
                           [1.0, -0.5, 0.5], loss="logistic")
    ts = np.linspace(0.0, 3.0, 121)
    pk = sv.path_kernel(km, [0.5, 1.0, 0.0], [0.0, 1.0], T=3.0, ts=ts)
    assert pk.residual < 1e-8
    xp = km.primed_inputs[0]
    K = sp.lambdify((w, b, c, x, xp), km.tangent_kernel())
    for q, xq in enumerate([0.0, 1.0]):
        for i, (xi,) in enumerate(km.x_train):
            vals = np.array([K(*th, xq, float(xi)) for th in pk.theta])
            simpson = (ts[1] - ts[0]) / 3 * (vals[0] + vals[-1] + 4 * vals[1:-1:2].sum()
                                             + 2 * vals[2:-1:2].sum())
            assert abs(simpson - pk.kernel[-1, q, i]) < 1e-6


def squared_error(y, p):
    return (p - y) ** 2 / 2


def test_a_jax_loss_gives_the_squared_loss_result_and_compiles_once():
    from solvers._networks import _path_kernel
    named = sv.path_kernel(mlp, TH0, XQ, T=1.0, x_train=XS, y_train=YS, loss="squared")
    own = sv.path_kernel(mlp, TH0, XQ, T=1.0, x_train=XS, y_train=YS, loss=squared_error)
    assert np.allclose(own.kernel, named.kernel, atol=1e-10)
    hits = _path_kernel._problem.cache_info().hits
    sv.path_kernel(mlp, TH0, XQ, T=1.0, x_train=XS, y_train=YS, loss=squared_error)
    assert _path_kernel._problem.cache_info().hits == hits + 1


def test_bad_input():
    with pytest.raises(sf.SymflowError, match="needs x_train"):
        sv.path_kernel(mlp, TH0, XQ, T=1.0)
    with pytest.raises(sf.SymflowError, match="6 training inputs and 5 targets"):
        sv.path_kernel(mlp, TH0, XQ, T=1.0, x_train=XS, y_train=YS[:5])
    with pytest.raises(sf.SymflowError, match="T=-1"):
        sv.path_kernel(mlp, TH0, XQ, T=-1, x_train=XS, y_train=YS)
    with pytest.raises(sf.SymflowError, match="save times"):
        sv.path_kernel(mlp, TH0, XQ, T=1.0, x_train=XS, y_train=YS, ts=[0.5, 1.0])
    with pytest.raises(sf.SymflowError, match="whole number of steps"):
        sv.path_kernel(mlp, TH0, XQ, T=1.0, x_train=XS, y_train=YS, lr=0.3)
    with pytest.raises(sf.SymflowError, match="scalar"):
        sv.path_kernel(lambda th, x: th * x, TH0, XQ, T=1.0, x_train=XS, y_train=YS)
    with pytest.raises(sf.SymflowError, match="choose one of"):
        sv.path_kernel(mlp, TH0, XQ, T=1.0, x_train=XS, y_train=YS, loss="hinge")
    with pytest.raises(sf.SymflowError, match="non-finite"):
        sv.path_kernel(mlp, TH0 * np.nan, XQ, T=1.0, x_train=XS, y_train=YS)
    x, w = sp.symbols("x w")
    km = sf.kernel_machine(w * x, [w], [x], [sp.Symbol("a")], [1])
    with pytest.raises(sf.SymflowError, match="symbolic training data"):
        sv.path_kernel(km, [1.0], [0.5], T=1.0)
    km = sf.kernel_machine(w * x, [w], [x], [1.0], [1.0])
    with pytest.raises(sf.SymflowError, match="already holds"):
        sv.path_kernel(km, [1.0], [0.5], T=1.0, x_train=XS, y_train=YS)
    with pytest.raises(sf.SymflowError, match="1 parameters"):
        sv.path_kernel(km, [1.0, 2.0], [0.5], T=1.0)
    with pytest.raises(sf.SymflowError, match="KernelMachine or a JAX"):
        sv.path_kernel("f", TH0, XQ, T=1.0)
