"""The compiled symbolic maps are the optimizers people use: optax, step for step.

Each symflow optimizer is compiled from its SymPy update rule and run for 100 steps in
float64; optax runs its own implementation on the same loss, written separately in
jax.numpy. The iterates (and, mapped, the optimizer states) must agree to 1e-12.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import sympy as sp

import solvers as sv
import symflow as sf

x, y = sp.symbols("x y")
LOSS = sp.log(1 + sp.exp(x * y)) + (x - y) ** 2 / 4 + sp.sin(x) / 5
X0 = np.array([1.3, -0.7])
LR, STEPS, TOL = 0.05, 100, 1e-12


def jax_loss(p):
    """LOSS, written independently of the SymPy expression."""
    return jnp.log1p(jnp.exp(p[0] * p[1])) + (p[0] - p[1]) ** 2 / 4 + jnp.sin(p[0]) / 5


def run_optax(tx, n=STEPS):
    """Parameters and optimizer states of ``tx`` on ``jax_loss`` (n + 1 of each)."""
    params = jnp.asarray(X0)
    state = tx.init(params)
    update = jax.jit(lambda p, s: tx.update(jax.grad(jax_loss)(p), s, p))
    ps, states = [params], [state]
    for _ in range(n):
        updates, state = update(params, state)
        params = optax.apply_updates(params, updates)
        ps.append(params)
        states.append(state)
    return np.asarray(ps), states


def run_symflow(opt):
    """Rows ``(theta_n, memory_n)`` of symflow's compiled map."""
    return np.asarray(sv.iterate(opt, LOSS, [x, y], X0, LR, STEPS, return_memory=True))


def close(a, b):
    np.testing.assert_allclose(a, b, rtol=0, atol=TOL)


def test_x64_is_on():
    assert jnp.asarray(1.0).dtype == jnp.float64


def test_sgd():
    ours = np.asarray(sv.iterate(sf.GD(), LOSS, [x, y], X0, LR, STEPS))
    theirs, _ = run_optax(optax.sgd(LR))
    close(ours, theirs)


def test_heavy_ball_is_sgd_with_momentum():
    """optax's trace b_n is -v_n / h, the parameters are the same."""
    ours = run_symflow(sf.HeavyBall(beta=0.9))
    theirs, states = run_optax(optax.sgd(LR, momentum=0.9))
    close(ours[:, :2], theirs)
    traces = np.array([s[0].trace for s in states])
    close(-ours[:, 2:] / LR, traces)


def test_nesterov_is_sgd_nesterov_at_the_look_ahead_point():
    """optax's parameters are y_n = theta_n + beta v_n; its trace is -v_n / h."""
    beta = 0.9
    ours = run_symflow(sf.Nesterov(beta=beta))
    theirs, states = run_optax(optax.sgd(LR, momentum=beta, nesterov=True))
    close(ours[:, :2] + beta * ours[:, 2:], theirs)
    close(-ours[:, 2:] / LR, np.array([s[0].trace for s in states]))


RMSPROP = {
    "optax default (eps in the root)": (dict(eps_in_sqrt=True), dict()),
    "eps outside the root": (dict(eps_in_sqrt=False), dict(eps_in_sqrt=False)),
    "bias correction": (dict(eps_in_sqrt=False, bias_correction=True),
                        dict(eps_in_sqrt=False, bias_correction=True)),
    "initial scale": (dict(eps_in_sqrt=True, initial_scale=0.5), dict(initial_scale=0.5)),
    "initial scale, bias correction": (dict(eps_in_sqrt=True, initial_scale=0.5,
                                            bias_correction=True),
                                       dict(initial_scale=0.5, bias_correction=True)),
}


@pytest.mark.parametrize("case", RMSPROP)
def test_rmsprop(case):
    ours_kw, optax_kw = RMSPROP[case]
    ours = run_symflow(sf.RMSprop(rho=0.9, eps=0.1, **ours_kw))
    theirs, states = run_optax(optax.rmsprop(LR, decay=0.9, eps=0.1, **optax_kw))
    close(ours[:, :2], theirs)
    close(ours[:, 2:4], np.array([s[0].nu for s in states]))


@pytest.mark.parametrize("eps_root", [0.0, 1e-4])
def test_adam_with_bias_correction(eps_root):
    ours = run_symflow(sf.Adam(beta1=0.9, beta2=0.999, eps=1e-8, eps_root=eps_root))
    theirs, states = run_optax(optax.adam(LR, b1=0.9, b2=0.999, eps=1e-8, eps_root=eps_root))
    close(ours[:, :2], theirs)
    close(ours[:, 2:4], np.array([s[0].mu for s in states]))
    close(ours[:, 4:6], np.array([s[0].nu for s in states]))
    # the bias-correction powers beta_i^n are symflow's last two memory components
    counts = np.array([int(s[0].count) for s in states])
    close(ours[:, 6], 0.9 ** counts)
    close(ours[:, 7], 0.999 ** counts)


def test_adagrad():
    ours = run_symflow(sf.AdaGrad(eps=1e-7))  # optax's defaults: s_0 = 0.1, eps = 1e-7
    theirs, states = run_optax(optax.adagrad(LR))
    close(ours[:, :2], theirs)
    close(ours[:, 2:], np.array([s[0].sum_of_squares for s in states]))
    ours = run_symflow(sf.AdaGrad(eps=1e-3, initial_accumulator_value=0.5))
    theirs, _ = run_optax(optax.adagrad(LR, initial_accumulator_value=0.5, eps=1e-3))
    close(ours[:, :2], theirs)


def test_a_different_convention_is_caught():
    """The check has teeth: optax's RMSprop (eps in the root) is not ours with eps outside."""
    ours = run_symflow(sf.RMSprop(rho=0.9, eps=0.1, eps_in_sqrt=False))
    theirs, _ = run_optax(optax.rmsprop(LR, decay=0.9, eps=0.1))
    assert np.max(np.abs(ours[:, :2] - theirs)) > 1e-6
