"""Ensembles: every path diverged, bad learning rates, memory, short calls and Ctrl-C.

(issue 13: all-diverged runs reported mean = 0 and count = 0; a huge chunk did not stop
60 s after SIGINT.)
"""

import signal

import numpy as np
import pytest
import sympy as sp

import solvers as sv
import symflow as sf
from solvers._sde import _ensemble, _sde
from solvers._sde._sde import compiled_sde

x = sp.Symbol("x")
OU = sf.SDE(drift=[-x], diffusion=sp.sqrt(2), params=[x])
#: dX = X^3 dt + dW from x0 = 10 blows up at once: every path diverges
BLOW_UP = sf.SDE(drift=[x**3], diffusion=1, params=[x])
#: dX = -h X dt + dW: the learning rate enters as the constant h
WITH_LR = sf.SDE(drift=[-sf.h * x], diffusion=1, params=[x])


def test_all_paths_diverged_gives_nan_statistics_and_a_warning():
    run = dict(x0=[10.0], T=1.0, n_paths=8, key=0, dt=0.1, on_divergence="flag")
    with pytest.warns(RuntimeWarning, match="8 of 8 paths diverged and none is finite"):
        sol = sv.simulate_sde(BLOW_UP, stats=["second_moment"], **run)
    assert sol.stats["count"][-1] == 0
    assert np.all(np.isnan(sol.mean())) and np.all(np.isnan(sol.covariance()))
    with pytest.warns(RuntimeWarning, match="none is finite at t = 1"):
        sol = sv.simulate_sde(BLOW_UP, **run)
    assert sol.diverged.all() and sol.final().shape == (0, 1)
    assert np.all(np.isnan(sol.mean())) and sol.covariance().shape == (1, 1, 1)
    assert np.all(np.isnan(sol.covariance()))
    with pytest.raises(sf.SymflowError, match="8 of 8 paths"):  # the default: an error
        sv.simulate_sde(BLOW_UP, [10.0], T=1.0, n_paths=8, key=0, dt=0.1)


@pytest.mark.parametrize("kwargs", [dict(lr=-0.1), dict(lr=float("nan")), dict(lr="0.1"),
                                    dict(hyper={"h": -0.1}), dict(hyper={"h": 0.0})])
def test_bad_learning_rates_are_refused_not_simulated(kwargs):
    with pytest.raises(sf.SymflowError, match="learning rate must be a positive number|"
                                              "finite numbers") as err:
        sv.simulate_sde(WITH_LR, [0.0], T=1.0, n_paths=4, key=0, dt=0.1, **kwargs)
    assert "diverged" not in str(err.value)


def test_kept_paths_beyond_the_memory_budget_are_refused_up_front():
    with pytest.raises(sf.SymflowError, match=r"1e\+09 x 1 float64 values = 8 GB.*stats="):
        sv.simulate_sde(OU, [0.0], T=1.0, n_paths=10**9, key=0, dt=0.5)


def _counting(monkeypatch, after=None):
    """Wrap the compiled 'advance' of OU's kernels: count its calls (``after(n)`` runs
    after the n-th call)."""
    kernels = compiled_sde(OU).kernels
    calls = []
    original = dict(kernels)
    for key, fn in original.items():
        if key[0] == "advance":
            def wrapped(*args, _fn=fn):
                out = _fn(*args)
                calls.append(int(args[4]) - int(args[3]))
                if after is not None:
                    after(len(calls))
                return out

            monkeypatch.setitem(kernels, key, wrapped)
    return calls


def test_a_chunk_is_advanced_in_short_calls_and_ctrl_c_stops_between_them(monkeypatch):
    run = dict(x0=[0.5], T=1.0, n_paths=64, key=1, dt=0.01, chunk_size=64)
    whole = sv.simulate_sde(OU, **run)  # 64 x 100 values: one call (and the compile)
    monkeypatch.setattr(_ensemble, "CALL_WORK", 64 * 7)  # at most 7 steps of 64 paths
    calls = _counting(monkeypatch)
    parts = sv.simulate_sde(OU, **run)
    assert calls == [7] * 14 + [2]  # 100 steps in calls of <= 7
    assert np.array_equal(whole.ys, parts.ys)  # the segmentation changes nothing

    def ctrl_c(n):
        if n == 3:
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(_ensemble, "CALL_WORK", 64 * 7)
    calls = _counting(monkeypatch, ctrl_c)
    # Python's own Ctrl-C handler, also where the shell started this process with SIGINT
    # ignored (a background job, `nohup`)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            sv.simulate_sde(OU, **run)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert len(calls) == 3  # stopped at once: no call after the interrupt


@pytest.mark.slow  # two compiles of the adaptive Diffrax solve (about 20 s)
def test_the_adaptive_path_runs_short_chunks_with_the_same_paths(monkeypatch):
    """Keys are per path on the adaptive path, so capping the chunk changes nothing."""
    run = dict(x0=[0.5], T=0.5, n_paths=6, key=2, dt=0.1, adaptive=True, solver="heun")
    monkeypatch.setattr(_sde, "ADAPTIVE_CHUNK", 4)
    capped = sv.simulate_sde(OU, **run)
    assert capped.info["chunks"] == 2
    monkeypatch.setattr(_sde, "ADAPTIVE_CHUNK", 1 << 12)
    whole = sv.simulate_sde(OU, **run)
    assert whole.info["chunks"] == 1
    np.testing.assert_allclose(capped.ys, whole.ys, rtol=1e-13, atol=1e-13)
