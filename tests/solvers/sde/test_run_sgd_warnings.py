"""Warnings of ``sv.run_sgd`` point at the user's call, not at the package's dispatcher."""

import warnings

import pytest
import sympy as sp

import solvers as sv
import symflow as sf
from solvers._sde import _sgd_run

w = sp.Symbol("w")
LOSSES = [50 * (w - 1) ** 2, 50 * (w + 1) ** 2]  # lr = 1 multiplies w by -99 a step


@pytest.mark.parametrize("entry", [sv.run_sgd, _sgd_run.run_sgd], ids=["dispatcher", "module"])
@pytest.mark.parametrize("opt", [sf.SGD(batch_size=1), sf.HeavyBall(beta=0.5)],
                         ids=["SGD", "heavy ball"])
def test_the_all_diverged_warning_names_the_callers_line(entry, opt):
    batch = {} if isinstance(opt, sf.SGD) else {"batch_size": 1}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        entry(opt, LOSSES, [w], x0=[1.0], lr=1.0, n_steps=10, n_paths=4, max_abs=1e6,
              on_divergence="flag", **batch)
    hits = [c for c in caught if "diverged" in str(c.message)]
    assert len(hits) == 1 and hits[0].category is RuntimeWarning
    assert hits[0].filename == __file__, hits[0].filename


def test_the_warning_obeys_the_callers_filters():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(RuntimeWarning, match="none is finite"):
            sv.run_sgd(sf.SGD(batch_size=1), LOSSES, [w], x0=[1.0], lr=1.0, n_steps=10,
                       n_paths=4, max_abs=1e6, on_divergence="flag")
