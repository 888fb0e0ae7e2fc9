"""Gaussian divergences in JAX, and ensembles compared with Gaussian laws."""

import numpy as np
import pytest
import sympy as sp

import solvers as sv
import symflow as sf

MU1, S1 = [0.5, 0.0, -1.0], sp.Matrix([[2, 1, 0], [1, 3, 1], [0, 1, 4]]) / 2
MU2, S2 = [0.0, 0.0, 0.0], sp.Matrix([[1, 0, 1], [0, 2, 0], [1, 0, 3]]) / 2


def test_jax_divergences_match_the_exact_closed_forms():
    out = sv.gaussian_divergences(MU1, S1, MU2, S2)
    assert out["kl"] == pytest.approx(float(sf.gaussian_kl(MU1, S1, MU2, S2)), rel=1e-12)
    assert out["bhattacharyya"] == pytest.approx(
        float(sf.gaussian_bhattacharyya(MU1, S1, MU2, S2)), rel=1e-12)
    assert out["w2"] == pytest.approx(float(sf.gaussian_w2(MU1, S1, MU2, S2).evalf(30)),
                                      rel=1e-12)


def test_samples_from_the_law_sit_at_the_sampling_noise_floor():
    """E KL(fit || law) = d(d+3)/(4n) to leading order (Wilks): checked over repeats."""
    rng = np.random.default_rng(0)
    mu, cov = np.array(MU1, float), np.array(S1, float)
    n, reps = 2000, 200
    kls = [sv.compare_to_gaussian(rng.multivariate_normal(mu, cov, n), MU1, S1).kl
           for _ in range(reps)]
    noise = 3 * 6 / (4 * n)
    assert np.mean(kls) == pytest.approx(noise, rel=0.12)
    rep = sv.compare_to_gaussian(rng.multivariate_normal(mu, cov, n).T, MU1, S1,
                                 sample_axis=1)
    assert rep.kl_noise == noise and 0.1 < rep.kl_excess < 4 and rep.n == n and rep.d == 3
    assert "sampling noise" in str(rep)


def test_samples_from_another_law_are_far_above_the_floor():
    rng = np.random.default_rng(1)
    x = rng.multivariate_normal(np.zeros(3), np.array(S2, float), 4000)
    rep = sv.compare_to_gaussian(x, MU1, S1)
    assert rep.kl_excess > 100
    assert rep.w2 == pytest.approx(float(sf.gaussian_w2(MU2, S2, MU1, S1).evalf()), rel=0.05)


def test_bad_inputs_get_clear_errors():
    x = np.zeros((100, 2))
    with pytest.raises(sf.SymflowError, match="dimension 2"):
        sv.compare_to_gaussian(x, [0, 0, 0], np.eye(3))
    with pytest.raises(sf.SymflowError, match="positive definite"):
        sv.compare_to_gaussian(x, [0, 0], [[1, 2], [2, 1]])
    with pytest.raises(sf.SymflowError, match="symbols"):
        sv.compare_to_gaussian(x, [0, 0], sp.Matrix([[sp.Symbol("a"), 0], [0, 1]]))
    with pytest.raises(sf.SymflowError, match="at least 4 samples"):
        sv.compare_to_gaussian(np.zeros((3, 2)), [0, 0], np.eye(2))
    x[7, 1] = np.nan
    with pytest.raises(sf.SymflowError, match="1 sample"):
        sv.compare_to_gaussian(x, [0, 0], np.eye(2))
    with pytest.raises(sf.SymflowError, match="non-finite"):
        sv.gaussian_divergences([0.0], [[np.nan]], [0.0], [[1.0]])
