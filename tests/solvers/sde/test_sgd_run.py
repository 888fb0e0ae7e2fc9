"""run_sgd: one-step statistics of real minibatches, stationary variance, bad input."""

import numpy as np
import pytest
import sympy as sp

import solvers as sv
import symflow as sf
from solvers._sde._sgd_run import compiled_dataset
from symflow._stochastic._dataset import as_dataset

w, b, x, y = sp.symbols("w b x y")
RNG = np.random.default_rng(4)
ROWS = np.round(RNG.normal(size=(8, 2)), 2)
REGRESSION = [(w * sp.Rational(str(r0)) + b - sp.Rational(str(r1))) ** 2 / 2 for r0, r1 in ROWS]
TEMPLATE = sf.Dataset(loss=(w * x + b - y) ** 2 / 2, params=[w, b], data_symbols=[x, y],
                      data=np.round(RNG.normal(size=(60, 2)), 3))
LOGISTIC = sf.Dataset(loss=sp.log(1 + sp.exp(-y * w * x)) + w**2 / 10, params=[w],
                      data_symbols=[x, y],
                      data=np.column_stack([np.linspace(-2, 2, 16), np.tile([1.0, -1.0], 8)]))
EXPLICIT = sf.Dataset(losses=[sp.exp(w) / 4 + (w - c) ** 2 / 2 for c in (-1, 0, 1, 3)],
                      params=[w])

CASES = {  # dataset, optimizer, start, kind of compiled gradient
    "features, replacement": (sf.Dataset(losses=REGRESSION, params=[w, b]), sf.SGD(3),
                              [0.3, -0.2], "factored"),
    "features, Floyd": (sf.Dataset(losses=REGRESSION, params=[w, b]),
                        sf.SGD(3, replacement=False), [0.3, -0.2], "factored"),
    "moments, top-k": (TEMPLATE, sf.SGD(40, replacement=False), [1.0, 0.5], "factored"),
    "template, replacement": (LOGISTIC, sf.SGD(4), [0.7], "template"),
    "explicit, Floyd": (EXPLICIT, sf.SGD(2, replacement=False), [0.5], "explicit"),
}


@pytest.mark.parametrize("name", CASES)
def test_one_step_mean_and_covariance_are_exact(name):
    """After one step from theta0: mean theta0 - h grad L, covariance h^2 c_{N,B} Sigma_1."""
    ds, opt, start, kind = CASES[name]
    lr, n = 0.5, 40_000
    run = sv.run_sgd(opt, dataset=ds, x0=start, lr=lr, n_steps=1, n_paths=n, key=9,
                     stats=["second_moment"])
    assert compiled_dataset(ds).kind == kind
    point = dict(zip(ds.params, start))
    grad = np.array(ds.mean_gradient.xreplace(point).evalf(), dtype=float).ravel()
    scale = float(opt.noise_scale(ds.n_samples))
    cov = lr**2 * scale * np.array(ds.gradient_covariance.xreplace(point).evalf(), dtype=float)
    se = np.sqrt(np.diag(cov) / n)
    assert np.all(np.abs(run.mean()[-1] - (np.array(start) - lr * grad)) < 5 * se + 1e-15)
    tol = 5 * np.sqrt(2 / n) * np.sqrt(np.outer(np.diag(cov), np.diag(cov)))
    assert np.all(np.abs(run.covariance()[-1] - cov) < tol + 1e-15), (run.covariance(), cov)


def test_stationary_variance_against_exact_discrete_value():
    """SGD on (w - a_i)^2/2, a = +-1, B = 1: stationary E w^2 = h/(2-h) exactly (engine's
    moment system); the order-1 SME gives h/2, an O(h) relative gap, seen by both ensembles."""
    losses = [(w - 1) ** 2 / 2, (w + 1) ** 2 / 2]
    opt, h = sf.SGD(batch_size=1), sf.h
    exact_sgd = sf.sgd_moments(opt, losses, [w]).stationary_moments()[w**2]
    sme1 = sf.sme(opt, losses, [w], order=1)
    exact_sme = sf.sde_moments(sme1).stationary_moments()[w**2]
    assert sp.simplify(exact_sgd - h / (2 - h)) == 0 and sp.simplify(exact_sme - h / 2) == 0
    gap = sp.series((exact_sgd - exact_sme) / exact_sme, h, 0, 2).removeO()
    assert sp.simplify(gap - h / 2) == 0  # the relative gap is h/2 + O(h^2)
    lr, n = 0.2, 20_000
    run = sv.run_sgd(opt, losses, [w], x0=[0.0], lr=lr, n_steps=100, n_paths=n, key=1,
                     stats=["second_moment"])
    sde = sv.simulate_sde(sme1, [0.0], 100 * lr, n, key=2, dt=lr / 2, solver="sra1", lr=lr,
                          stats=["second_moment"])
    v_sgd, v_sde = float(run.covariance()[-1, 0, 0]), float(sde.covariance()[-1, 0, 0])
    want_sgd, want_sme = float(exact_sgd.subs(h, lr)), float(exact_sme.subs(h, lr))
    assert abs(v_sgd - want_sgd) < 4 * want_sgd * np.sqrt(2 / n)
    assert abs(v_sde - want_sme) < 4 * want_sme * np.sqrt(2 / n)
    assert v_sgd - v_sde > 4 * np.hypot(want_sgd, want_sme) * np.sqrt(2 / n)  # resolved


def test_save_steps_and_times():
    losses = [(w - 1) ** 2 / 2, (w + 1) ** 2 / 2]
    run = sv.run_sgd(sf.SGD(1), losses, [w], x0=[2.0], lr=0.1, n_steps=20, n_paths=5, key=0,
                     save_steps=[0, 10, 20])
    assert np.allclose(run.ts, [0.0, 1.0, 2.0]) and np.all(run.ys[:, 0, 0] == 2.0)
    assert "SGD(B=1)" in str(run)
    again = [(w - 1) ** 2 / 2, (w + 1) ** 2 / 2]  # an equal list: the same compiled gradient
    assert compiled_dataset(as_dataset(None, again, [w])) is \
        compiled_dataset(as_dataset(None, losses, (w,)))


@pytest.mark.parametrize("kwargs, match", [
    (dict(optimizer=sf.GD()), "sf.SGD"),
    (dict(optimizer=sf.SGD(sp.Symbol("B"))), "a number"),
    (dict(optimizer=sf.SGD(5, replacement=False)), "exceeds"),
    (dict(lr=0.0), "lr="), (dict(lr=float("nan")), "lr="), (dict(n_steps=0), "n_steps"),
    (dict(x0=[float("nan")]), "non-finite"), (dict(n_paths=0), "n_paths"),
    (dict(save_steps=[3, 2]), "save_steps"), (dict(losses=w**2), "list of per-sample"),
])
def test_bad_input(kwargs, match):
    args = dict(optimizer=sf.SGD(1), losses=[(w - 1) ** 2, w**2], params=[w], x0=[0.0],
                lr=0.1, n_steps=5, n_paths=3, key=0)
    args.update(kwargs)
    with pytest.raises(sf.SymflowError, match=match):
        sv.run_sgd(**args)


def test_a_diverging_run_is_reported():
    losses = [(w - 1) ** 2 / 2, (w + 1) ** 2 / 2]
    with pytest.raises(sf.SymflowError, match=r"3 of 3 SGD runs .* diverged.*Lower the"):
        sv.run_sgd(sf.SGD(1), losses, [w], x0=[0.5], lr=2.5, n_steps=400, n_paths=3, key=0)
    with pytest.warns(RuntimeWarning, match="3 of 3 paths diverged.*statistics .* are NaN"):
        run = sv.run_sgd(sf.SGD(1), losses, [w], x0=[0.5], lr=2.5, n_steps=400, n_paths=3,
                         key=0, on_divergence="flag")
    assert run.diverged.all() and np.isnan(run.ys).all()
