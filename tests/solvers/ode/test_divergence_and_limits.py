"""Iterate, solve and verify refuse what cannot work, and report divergence (issue 13).

Each refusal is checked to come before any compiled work where that matters: the learning
rates, orders, horizon, hyperparameters and memory budget are validated first.
"""

import numpy as np
import pytest
import sympy as sp

import solvers as sv
import symflow as sf
from solvers._ode import _iterate
from solvers._ode._verify import step_count

x, y = sp.symbols("x y")
lam = sp.Symbol("lam")
LOSS = (x * y - 1) ** 2 / 2


def test_iterate_reports_divergence_with_the_step():
    """GD on x^4 from x0 = 10 at lr = 1: x -> x - 4x^3 overflows within a few steps."""
    with pytest.raises(sf.SymflowError, match=r"diverged at step \d+ of 20.*lr = 1.0"):
        sv.iterate(sf.GD(), x**4, [x], x0=[10.0], lr=1.0, n_steps=20)
    with pytest.warns(RuntimeWarning, match=r"diverged at step (\d+)") as record:
        ys = np.asarray(sv.iterate(sf.GD(), x**4, [x], x0=[10.0], lr=1.0, n_steps=20,
                                   on_divergence="flag"))
    step = int(record[0].message.args[0].split("step ")[1].split()[0])
    assert np.all(np.isfinite(ys[:step]) & (np.abs(ys[:step]) <= _iterate.HUGE))
    assert not np.isfinite(ys[step, 0]) or abs(ys[step, 0]) > _iterate.HUGE
    with pytest.raises(sf.SymflowError, match="on_divergence"):
        sv.iterate(sf.GD(), x**4, [x], x0=[1.0], lr=0.1, n_steps=2, on_divergence="ignore")


def test_divergence_finds_the_first_bad_row():
    rows = np.array([[1.0, 2.0], [3.0, 1e101], [np.nan, 0.0]])
    assert _iterate.divergence(rows) == 1
    assert _iterate.divergence(rows[:1]) is None
    assert _iterate.divergence(np.array([1.0, np.inf])) == 0


def test_huge_runs_are_refused_with_the_memory_figure():
    """n_steps = 10^9 used to be killed at 14 GB; 10^9 x 2 float64 = 16 GB is refused."""
    with pytest.raises(sf.SymflowError, match=r"1e\+09 x 2 float64 values = 16 GB"):
        sv.iterate(sf.GD(), LOSS, [x, y], x0=[1.0, 0.5], lr=0.1, n_steps=10**9)
    me = sf.modified_equation(sf.GD(), LOSS, [x, y], order=1)
    with pytest.raises(sf.SymflowError, match="solve_flow would keep .* GB"):
        sv.solve_flow(me, [1.0, 0.5], lr=0.1, n_steps=10**9)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), None])
def test_non_finite_hyperparameters_are_refused_not_reported_as_divergence(value):
    for run in (lambda: sv.iterate(sf.GD(), LOSS + lam * x**2, [x, y], [1.0, 0.5], 0.1, 3,
                                   hyper={"lam": value}),
                lambda: sv.verify_order(sf.GD(), LOSS + lam * x**2, [x, y], [1.0, 0.5],
                                        [0.02, 0.01], 1.0, [0], hyper={lam: value})):
        with pytest.raises(sf.SymflowError, match="hyperparameter values must be finite") as e:
            run()
        assert "diverged" not in str(e.value)


@pytest.mark.parametrize("lr", [-0.1, 0.0, float("nan")])
def test_bad_learning_rates_are_refused(lr):
    with pytest.raises(sf.SymflowError, match="learning rate must be a positive number"):
        sv.iterate(sf.GD(), LOSS, [x, y], [1.0, 0.5], lr, 3)
    me = sf.modified_equation(sf.HeavyBall(beta=sp.Rational(1, 2)), LOSS, [x, y], order=1)
    with pytest.raises(sf.SymflowError, match="learning rate must be a positive number"):
        sv.manifold_memory(me, [1.0, 0.5], lr)


@pytest.mark.parametrize("kwargs, match", [
    (dict(lrs=[0.02, 0.02, 0.01]), "distinct learning rates"),
    (dict(lrs=[0.02, 0.01, 0.02 * (1 + 1e-12)]), "distinct learning rates"),
    (dict(orders=[1, 1]), "each truncation order once"),
    (dict(orders=[1.5]), "non-negative integer"),
    (dict(T=float("nan")), "got T=nan"),
    (dict(T=float("inf")), "got T=inf"),
    (dict(T=-1.0), "positive finite"),
])
def test_verify_order_refuses_a_meaningless_ladder(kwargs, match):
    args = dict(lrs=[0.02, 0.01], T=1.0, orders=[0, 1]) | kwargs
    with pytest.raises(sf.SymflowError, match=match):
        sv.verify_order(sf.GD(), LOSS, [x, y], x0=[1.0, 0.5], **args)


def test_step_count_refuses_non_finite_horizons():
    """The order studies on networks and the weak-error study count steps the same way."""
    for T in (float("nan"), float("inf")):
        with pytest.raises(sf.SymflowError, match="final time"):
            step_count(T, 0.1)


def test_a_loss_that_is_not_finite_is_refused_by_the_numerics_too():
    """1/0 + x^2 is SymPy's zoo: verify_order used to call it "trustworthy" (slopes nan);
    it is refused before anything runs, even with a derivation given (me=)."""
    me = sf.modified_equation(sf.GD(), LOSS, [x, y], order=1)
    for run in (lambda: sv.verify_order(sf.GD(), sp.S(1) / 0 + x**2, [x, y], [1.0, 0.5],
                                        [0.02, 0.01], 1.0, [0, 1], me=me),
                lambda: sv.iterate(sf.GD(), sp.nan * x, [x, y], [1.0, 0.5], 0.1, 3)):
        with pytest.raises(sf.SymflowError, match="not finite"):
            run()
