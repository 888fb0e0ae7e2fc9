"""Deep matrix completion: depth lowers the effective rank (Arora, Cohen, Hu & Luo 2019)."""

import numpy as np
import pytest

import symflow as sf
from solvers._claims._matrix_completion import (
    completion_problem,
    completion_study,
    deep_completion,
    effective_rank,
    nuclear_norm_completion,
)


@pytest.fixture(scope="module")
def problem():
    return completion_problem(n=30, rank=2, n_observed=300, seed=0)


def test_depth_three_finds_the_low_rank_completion(problem):
    target = effective_rank(problem.M)
    deep = deep_completion(problem, depth=3, init_scale=1e-2)
    shallow = deep_completion(problem, depth=1, init_scale=1e-2)
    er3, er1 = effective_rank(deep.W), effective_rank(shallow.W)
    # a start 30x larger (0.3) leaves er3 0.5 above the truth: the tolerance catches it
    assert abs(er3 - target) < 0.05
    assert problem.error(deep.W) < 0.01
    assert er1 > 10 and problem.error(shallow.W) > 0.5   # depth 1 only fits the observed
    X, residual = nuclear_norm_completion(problem)
    assert residual < 1e-3
    assert effective_rank(X) > er3 + 0.3 and problem.error(X) > 10 * problem.error(deep.W)


def test_effective_rank_and_bad_input():
    assert effective_rank(np.diag([1.0, 1.0, 0.0])) == pytest.approx(2.0)
    with pytest.raises(sf.SymflowError, match="rank < n"):
        completion_problem(n=5, rank=5)


@pytest.mark.slow
def test_depth_beats_the_nuclear_norm_when_data_are_few():
    """The seed's claim at K = 250 and 400: lower effective rank and error than the
    minimum nuclear norm at depth 3, and depth 2 in between."""
    study = completion_study(n=30, rank=2, observed=(250, 400), depths=(2, 3))
    by = {(m, K): (err, er) for m, K, err, er in study.rows}
    for K in (250, 400):
        nuc, d2, d3 = by["nuclear norm", K], by["depth 2", K], by["depth 3", K]
        assert d3[1] < d2[1] <= nuc[1] + 1e-3
        assert d3[0] < 0.1 * nuc[0]
