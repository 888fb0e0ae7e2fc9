"""Numeric check of the gradient-penalty inequality with JAX autodiff over random MLPs."""

import numpy as np
import pytest
import sympy as sp

import solvers as sv
import symflow as sf
from solvers._claims._penalty_check import ACTIVATIONS, _check_jit, _pad
from symflow._claims._penalty import NORMS


# Every check below uses networks of depth <= 3 and width <= 8 (padded to L = 3, P = 8), so
# the few compiled functions are shared across the tests and the doctests.
@pytest.fixture(scope="module")
def small_study():
    return sv.penalty_study(n_networks=256, seed=1, max_depth=3, max_width=8, progress=False)


def _numbers(d, pt):
    def arr(M):
        return np.array(sp.Matrix(M).xreplace(pt).evalf(20), dtype=float)

    params = [(arr(W), arr(b).ravel()) for W, b in zip(d.weights, d.biases)]
    return params, arr(d.x).ravel(), arr(d.readout).ravel()


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_jax_autodiff_matches_the_exact_derivation(activation):
    d = sf.derive_penalty_inequality([2, 3, 2, 2], activation, verify=False)
    pt = d.random_point(5)
    params, x, u = _numbers(d, pt)
    out = sv.check_penalty(params, x, u, activation)
    for kind in NORMS:
        ev = d.evaluate(pt, kind)
        assert out["lhs"][kind] == pytest.approx(float(ev["lhs"]), rel=1e-11)
    assert out["rhs"] == pytest.approx(float(ev["rhs"]), rel=1e-11)


def test_full_width_network_matches_plain_numpy_backprop():
    """No padding (every layer 8 wide, P = 8), so every singular value counts: the JAX check
    against a hand-written numpy forward/backprop with numpy SVDs."""
    rng = np.random.default_rng(11)
    params = [(rng.normal(size=(8, 8)) * 0.6, rng.normal(size=8) * 0.3) for _ in range(3)]
    x, u = rng.normal(size=8), rng.normal(size=8)
    hs, ds = [x], []
    for W, b in params:
        hs.append(np.tanh(W @ hs[-1] + b))
        ds.append(1 - hs[-1] ** 2)
    deltas = [ds[-1] * u]
    for t in (1, 0):
        deltas.insert(0, ds[t] * (params[t + 1][0].T @ deltas[0]))
    Js = [np.eye(8)]
    for t in (0, 1):
        Js.append(ds[t][:, None] * (params[t][0] @ Js[-1]))
    gx2 = np.sum((params[0][0].T @ deltas[0]) ** 2)

    def norms(A):
        s, a = np.linalg.svd(A, compute_uv=False), np.abs(A)
        return np.array([s[0], np.sqrt(np.sum(A**2)), s.sum(), a.max(), a.sum(0).max(),
                         a.sum(1).max()])

    lhs = sum(gx2 * (1 + hs[t] @ hs[t]) / (norms(params[t][0]) * norms(Js[t])) ** 2
              for t in range(3))
    out = sv.check_penalty(params, x, u, "tanh")
    np.testing.assert_allclose([out["lhs"][k] for k in NORMS], lhs, rtol=1e-12)
    rhs = sum((d @ d) * (1 + hh @ hh) for d, hh in zip(deltas, hs))
    assert out["rhs"] == pytest.approx(rhs, rel=1e-12)


def test_batched_check_equals_the_per_network_loop():
    rng = np.random.default_rng(3)
    shape = (3, 5, 4, 2)
    params = [(rng.normal(size=(6, o, i)), rng.normal(size=(6, o)))
              for i, o in zip(shape[:-1], shape[1:])]
    x, u = rng.normal(size=(6, 3)), rng.normal(size=(6, 2))
    lhs, rhs = sv.check_penalty_batch(params, x, u, "gelu")
    for t in range(6):
        one = sv.check_penalty([(W[t], b[t]) for W, b in params], x[t], u[t], "gelu")
        np.testing.assert_allclose(lhs[t], [one["lhs"][k] for k in NORMS], rtol=1e-12)
        assert rhs[t] == pytest.approx(one["rhs"], rel=1e-12)


def test_study_no_violation_where_claimed_and_violations_where_not(small_study):
    viol = small_study.violations()
    assert all(viol[k] == 0 for k in sf.HOLDING_NORMS)
    assert viol["max"] > 0 and viol["l1"] > 0
    spectral = small_study.ratio[:, 0]
    assert np.nanmin(spectral) == pytest.approx(1.0, abs=1e-9)  # tight (one-layer nets)
    # which step breaks: l1/linf only the Cauchy-Schwarz step, max both
    for k in ("l1", "linf"):
        lo = small_study.step_losses(k, np.nanmin)
        assert lo["submultiplicative"] >= 1 - 1e-9 and lo["cauchy_schwarz"] < 1
    lo = small_study.step_losses("max", np.nanmin)
    assert lo["submultiplicative"] < 1 and lo["cauchy_schwarz"] < 1
    assert "violations" in small_study.table()


def test_padding_leaves_every_quantity_unchanged():
    """A depth-2, width-3 network padded to 3 layers of width 8 (the last one inactive, as
    in the study) gives the exact values of the SymPy derivation."""
    d = sf.derive_penalty_inequality([2, 3, 2], "sigmoid", verify=False)
    pt = d.random_point(2)
    params, x, u = _numbers(d, pt)
    params.append((np.zeros((2, 2)), np.zeros(2)))
    Ws, bs, masks, active, xp, up = (np.array(a) for a in _pad(
        [(W[None], b[None]) for W, b in params], x[None], u[None], [2, 3, 2, 2]))
    active[0, 2] = False
    lhs, rhs, cs, sub = _check_jit(Ws, bs, masks, active, xp, up, 2, True)
    for i, kind in enumerate(NORMS):
        ev = d.evaluate(pt, kind)
        assert float(lhs[0, i]) == pytest.approx(float(ev["lhs"]), rel=1e-11)
        np.testing.assert_allclose(cs[0, i, :2], np.array(ev["cauchy_schwarz"], float),
                                   rtol=1e-10)
        np.testing.assert_allclose(sub[0, i, :2], np.array(ev["submultiplicative"], float),
                                   rtol=1e-10)
        assert np.isnan(cs[0, i, 2]) and np.isnan(sub[0, i, 2])
    assert float(rhs[0]) == pytest.approx(float(ev["rhs"]), rel=1e-11)


def test_plot_is_written(small_study, tmp_path):
    small_study.plot(tmp_path / "penalty.png")
    assert (tmp_path / "penalty.png").stat().st_size > 10_000


def test_bad_inputs_get_clear_errors():
    W = np.ones((3, 2))
    with pytest.raises(sf.SymflowError, match="do not chain"):
        sv.check_penalty([(W, np.zeros(3)), (np.ones((1, 2)), np.zeros(1))], np.zeros(2),
                         np.ones(1))
    with pytest.raises(sf.SymflowError, match="readout"):
        sv.check_penalty([(W, np.zeros(3))], np.zeros(2), np.ones(2))
    with pytest.raises(sf.SymflowError, match="activation"):
        sv.check_penalty([(W, np.zeros(3))], np.zeros(2), np.ones(3), "swish")
    with pytest.raises(sf.SymflowError, match="n_networks"):
        sv.penalty_study(n_networks=0)
    with pytest.raises(sf.SymflowError, match="max_depth"):
        sv.penalty_study(n_networks=8, max_depth=0)
    with pytest.raises(sf.SymflowError, match="non-finite"):
        sv.check_penalty([(W, np.zeros(3))], np.array([np.nan, 0.0]), np.ones(3))
    with pytest.raises(sf.SymflowError, match=r"list of layers \[\(W1, b1\)"):
        sv.check_penalty(W, np.zeros(2), np.ones(3))
    with pytest.raises(sf.SymflowError, match="could not read"):
        sv.check_penalty([W], np.zeros(2), np.ones(3))
    with pytest.raises(sf.SymflowError, match="same leading batch axis"):
        sv.check_penalty_batch([(np.ones((4, 3, 2)), np.zeros((4, 3)))], np.zeros((5, 2)),
                               np.ones((4, 3)))


@pytest.mark.slow
def test_ten_thousand_random_networks(tmp_path):
    st = sv.penalty_study(n_networks=10_000, seed=0)
    assert st.n == 10_000 and set(st.depth) == {1, 2, 3, 4, 5}
    assert st.widths.max() == 64 and st.widths[:, 1:][st.widths[:, 1:] > 0].min() == 1
    viol = st.violations()
    assert all(viol[k] == 0 for k in sf.HOLDING_NORMS)
    assert all(viol[k] > 0 for k in NORMS if k not in sf.HOLDING_NORMS)
    st.plot(tmp_path / "penalty_10k.png")
