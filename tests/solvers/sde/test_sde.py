"""simulate_sde: schemes against exact moments, streaming statistics, sharding, bad input."""

import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest
import sympy as sp

import solvers as sv
import symflow as sf
from solvers._sde import _sde as sde_module
from solvers._sde._normals import normal_rows

x, y = sp.symbols("x y")
OU = sf.SDE(drift=[-x], diffusion=sp.sqrt(2), params=[x])
#: diagonal, state-dependent noise (the benchmark's kind of SDE)
DIAG = sf.SDE(drift=[-x + y / 2, -y], diffusion=sp.diag(sp.sqrt(1 + x**2) / 2,
                                                        sp.Rational(1, 2)), params=[x, y])
#: dX = -X dt + X/2 dW: E X_t = x0 e^{-t}, E X_t^2 = x0^2 e^{-7t/4}
GBM = sf.SDE(drift=[-x], diffusion=[[x / 2]], params=[x])


@pytest.mark.parametrize("solver", ["euler", "heun", "sra1"])
def test_ou_moments(solver):
    """E X_T = x0 e^{-T}, Var X_T = 1 - e^{-2T}; within 4 standard errors + O(dt) bias."""
    n, T, dt = 40_000, 1.0, 0.01
    sol = sv.simulate_sde(OU, [1.0], T, n, key=1, dt=dt, solver=solver,
                          stats=["mean", "second_moment"])
    mean, var = sol.stats["mean"][-1, 0], sol.covariance()[-1, 0, 0]
    exact_var = 1 - np.exp(-2 * T)
    assert abs(mean - np.exp(-T)) < 4 * np.sqrt(exact_var / n)
    bias = 2 * dt if solver == "euler" else 0.0  # Euler's stationary variance is 1/(1-dt/2)
    assert abs(var - exact_var) < 4 * exact_var * np.sqrt(2 / n) + bias


#: additive noise (constant sigma) with two Brownian motions, for SRA1
ADDITIVE = sf.SDE(drift=[x - x**3 + y / 2, -y - x / 4],
                  diffusion=sp.Matrix([[sp.Rational(1, 2), sp.Rational(1, 5)], [0, 1]]),
                  params=[x, y])
#: a state-dependent sigma with more columns than rows (increments from chol(D))
WIDE = sf.SDE(drift=[-x, x - y], diffusion=sp.Matrix([[1 + x**2 / 4, 1, 0], [y / 3, 1, x]]),
              params=[x, y])


def test_engine_normals_are_exact_quantiles_of_jax_threefry_bits():
    """Unrolled Threefry = JAX's bits, bit for bit (typed and raw keys, odd sizes, large
    step numbers); AS241 = scipy's ndtri on the cell midpoints to 1e-14 in every branch
    (centre, near and far tails) and exactly antisymmetric; another PRNG implementation
    falls back to jax.random itself."""
    from scipy.special import ndtri

    from solvers._sde._normals import normal_quantile

    for key in (jax.random.key(5), jax.random.PRNGKey(5)):
        for step, n, m in ((7, 13, 3), (2**31 - 1, 1000, 2)):
            got = np.asarray(jax.jit(normal_rows, static_argnums=(2, 3))(key, step, n, m))
            keys = jax.random.split(jax.random.fold_in(key, step), m)
            bits = np.stack([np.asarray(jax.random.bits(k, (n,), np.uint64)) for k in keys])
            p = ((bits >> np.uint64(12)).astype(float) + 0.5) * 2.0**-52
            assert np.allclose(got, ndtri(p), rtol=1e-14, atol=0), (step, n, m)
    p = np.concatenate([np.logspace(-16, -1, 2001), 0.5 + np.linspace(-0.45, 0.45, 2001),
                        [2.0**-53]])
    p = np.concatenate([p, 1 - p])
    quantile = jax.jit(normal_quantile)
    z = np.asarray(quantile(p))
    assert np.allclose(z, ndtri(p), rtol=1e-14, atol=0)
    cells = np.random.default_rng(0).integers(0, 2**52, size=1000)  # uniforms on the lattice
    lattice = (np.concatenate([cells, [0, 1, 2**51]]).astype(float) + 0.5) * 2.0**-52
    assert np.array_equal(quantile(lattice), -quantile(1 - lattice))
    rbg = jax.random.key(5, impl="rbg")
    assert normal_rows(rbg, 3, 4, 2).shape == (2, 4)


@pytest.mark.parametrize("sde, solver", [(DIAG, "euler"), (DIAG, "heun"), (ADDITIVE, "heun"),
                                         (ADDITIVE, "sra1"), (WIDE, "euler"), (WIDE, "heun")])
def test_one_step_of_each_scheme_is_its_formula(sde, solver):
    """One step of the compiled scheme, with the engine's normals for that step, against
    the scheme written out in NumPy (Kloeden & Platen; Rößler's SRA1 tableau) from
    lambdified b and sigma."""
    n, dt, k = 6, 0.1, 7
    state = np.random.default_rng(0).normal(size=(2, n))
    csde = sde_module.compiled_sde(sde)
    cv = sde_module.constant_values(sde)
    csig = csde.constant_sigma(cv) if csde.kind == "additive" else np.zeros((0,))
    step = sde_module.sde_step_factory(csde, solver)(n, lambda a: a)
    ckey = jax.random.key(3)
    got = np.asarray(step(state, k, ckey, (dt, np.sqrt(dt), cv, csig)))
    m = csde.increment_dim * (2 if solver == "sra1" else 1)
    z = np.asarray(normal_rows(ckey, k, n, m))
    b_fn = sp.lambdify((x, y), list(sde.drift), "numpy")
    s_fn = sp.lambdify((x, y), sde.diffusion, "numpy")
    d_fn = sp.lambdify((x, y), sde.covariance, "numpy")

    def b(p):
        return np.array([np.broadcast_to(c, p.shape[1:]) for c in b_fn(*p)], dtype=float)

    want = np.empty_like(state)
    for j in range(n):
        p = state[:, j]
        if csde.kind == "covariance":
            noise = np.linalg.cholesky(np.array(d_fn(*p), float)) @ z[:, j] * np.sqrt(dt)
        else:
            sig = np.array(s_fn(*p), float)
            dw = z[: sig.shape[1], j] * np.sqrt(dt)
            noise = sig @ dw
        b1 = b(p[:, None])[:, 0]
        if solver == "euler":
            want[:, j] = p + b1 * dt + noise
        elif solver == "heun":
            b2 = b((p + b1 * dt + noise)[:, None])[:, 0]
            want[:, j] = p + (b1 + b2) / 2 * dt + noise
        else:  # SRA1: H_2 = X + 3/4 b dt + 3/2 sigma I_(1,0)/dt, I_(1,0)/dt = dW/2 + H
            area = z[sig.shape[1]:, j] * np.sqrt(dt / 12)
            x2 = p + 0.75 * b1 * dt + sig @ (0.75 * dw + 1.5 * area)
            want[:, j] = p + (b1 / 3 + 2 * b(x2[:, None])[:, 0] / 3) * dt + noise
    assert np.allclose(got, want, rtol=1e-12, atol=1e-12)


def test_multiplicative_noise_euler_and_adaptive():
    n = 1000
    exact = np.exp(-1.0), np.exp(-1.75)
    for kwargs in (dict(dt=0.01), dict(dt=0.05, adaptive=True, solver="heun")):
        sol = sv.simulate_sde(GBM, [1.0], 1.0, n, key=3, stats=["second_moment"], **kwargs)
        m1, m2 = sol.stats["mean"][-1, 0], sol.stats["second_moment"][-1, 0, 0]
        se1 = np.sqrt((exact[1] - exact[0] ** 2) / n)
        assert abs(m1 - exact[0]) < 4 * se1 + 0.005, kwargs
        se2 = np.sqrt((np.exp(-2.5) - exact[1] ** 2) / n)  # E X^4 = e^{-5t/2}
        assert abs(m2 - exact[1]) < 4 * se2 + 0.005, kwargs


def test_stats_equal_paths_and_chunks_are_deterministic():
    key = jax.random.key(7)
    save = [0.25, 0.5, 1.0]
    paths = sv.simulate_sde(DIAG, [0.5, -0.5], 1.0, 3000, key, dt=0.05, save_at=save,
                            chunk_size=1024)
    stats = sv.simulate_sde(DIAG, [0.5, -0.5], 1.0, 3000, key, dt=0.05, save_at=save,
                            chunk_size=1024, stats=["second_moment"], phi=[x * y, x**2],
                            progress=True)
    assert paths.ys.shape == (3000, 3, 2) and np.allclose(paths.ts, save)
    assert np.allclose(stats.mean(), paths.ys.mean(axis=0), rtol=0, atol=1e-12)
    assert np.allclose(stats.covariance(), paths.covariance(), rtol=0, atol=1e-12)
    ys = paths.ys
    assert np.allclose(stats.stats["phi"], np.stack([(ys[..., 0] * ys[..., 1]).mean(0),
                                                     (ys[..., 0] ** 2).mean(0)], axis=1))
    again = sv.simulate_sde(DIAG, [0.5, -0.5], 1.0, 3000, key, dt=0.05, save_at=save,
                            chunk_size=1024)
    assert np.array_equal(again.ys, paths.ys)
    assert "3000 paths" in str(paths) and paths.info["chunks"] == 3


def test_many_brownian_motions_use_a_covariance_factor():
    """sigma with more columns than rows: increments drawn from chol(D), same law."""
    m = sp.Matrix([[x, 1, 0, y], [0, 1, x, 1]])  # 2 x 4, state-dependent
    sde = sf.SDE(drift=[0, 0], diffusion=m, params=[x, y])
    dt, n = 0.01, 40_000
    sol = sv.simulate_sde(sde, [0.5, -1.0], dt, n, key=5, dt=dt, stats=["second_moment"])
    got = sol.covariance()[-1] / dt
    want = np.array((m * m.T).subs({x: 0.5, y: -1.0}), dtype=float)
    assert np.allclose(got, want, atol=5 * np.sqrt(2 / n) * np.abs(want).max())


def test_divergence_is_reported_not_nan():
    blow = sf.SDE(drift=[x**3 - x], diffusion=sp.Rational(1, 10), params=[x])
    start = np.array([[0.2], [3.0], [0.1], [2.5]])
    with pytest.raises(sf.SymflowError, match=r"2 of 4 paths \(50\.00%\) diverged"):
        sv.simulate_sde(blow, start, 1.0, 4, key=0, dt=0.01)
    sol = sv.simulate_sde(blow, start, 1.0, 4, key=0, dt=0.01, on_divergence="flag")
    assert sol.diverged.tolist() == [False, True, False, True]
    assert np.all(np.isnan(sol.ys[sol.diverged])) and np.all(np.isfinite(sol.final()))
    assert 0 < sol.diverged_at[1] < 0.2 and "diverged" in str(sol)


@pytest.mark.parametrize("kwargs, match", [
    (dict(n_paths=0), "n_paths"), (dict(n_paths=-3), "n_paths"), (dict(n_paths=2.5), "n_paths"),
    (dict(x0=[np.nan]), "non-finite x0"), (dict(x0=[np.inf]), "non-finite x0"),
    (dict(x0=[1.0, 2.0]), "shape"), (dict(dt=0.0), "dt"), (dict(dt=None), "dt"),
    (dict(T=-1.0), "T="), (dict(solver="rk4"), "solver"),
    (dict(save_at=[0.333]), "step grid"), (dict(on_divergence="ignore"), "on_divergence"),
    (dict(chunk_size=0), "chunk_size"), (dict(key="seed"), "key"),
    (dict(phi=y), "phi contains"), (dict(phi="x**2"), "parse_expression"),
    (dict(stats=["median"]), "median"),
])
def test_bad_input(kwargs, match):
    args = dict(sde=OU, x0=[0.0], T=1.0, n_paths=10, key=0, dt=0.1)
    args.update(kwargs)
    with pytest.raises(sf.SymflowError, match=match):
        sv.simulate_sde(**args)


def test_bad_sde_for_the_engine():
    with pytest.raises(sf.SymflowError, match="sra1"):
        sv.simulate_sde(GBM, [1.0], 1.0, 10, key=0, dt=0.1, solver="sra1")
    s = sp.Symbol("s", positive=True)
    with pytest.raises(sf.SymflowError, match="hyper=.*'s'"):
        sv.simulate_sde(sf.SDE(drift=[-x], diffusion=s, params=[x]), [0.0], 1.0, 10, 0, 0.1)
    with pytest.raises(sf.SymflowError, match="pass a symflow.SDE"):
        sv.simulate_sde(sf.fokker_planck(OU), [0.0], 1.0, 10, 0, 0.1)


SHARDED = textwrap.dedent("""
    import numpy as np, jax, sympy as sp, symflow as sf, solvers as sv
    assert len(jax.devices()) == 8, jax.devices()
    x, y, w = sp.symbols("x y w")
    sde = sf.SDE(drift=[-x + y / 2, -y], diffusion=sp.diag(sp.sqrt(1 + x**2) / 2,
                 sp.Rational(1, 2)), params=[x, y])
    key = jax.random.key(11)
    for kw in (dict(), dict(save_at=[0.5, 1.0]), dict(stats=["second_moment"], phi=x * y)):
        one = sv.simulate_sde(sde, [0.5, -0.5], 1.0, 1001, key, dt=0.05, devices=1,
                              chunk_size=600, **kw)
        many = sv.simulate_sde(sde, [0.5, -0.5], 1.0, 1001, key, dt=0.05, chunk_size=600,
                               **kw)
        assert many.info["devices"] == 8 and one.info["devices"] == 1
        if one.ys is not None:
            assert np.array_equal(one.ys, many.ys), kw
        for name in one.stats:
            assert np.allclose(one.stats[name], many.stats[name], rtol=1e-13, atol=1e-13)
    losses = [(w - a)**2 / 2 for a in (-1, 0, 2, 3)]
    opt = sf.SGD(3, replacement=False)
    one = sv.run_sgd(opt, losses, [w], x0=[0.0], lr=0.1, n_steps=50, n_paths=333, key=2,
                     devices=1)
    many = sv.run_sgd(opt, losses, [w], x0=[0.0], lr=0.1, n_steps=50, n_paths=333, key=2)
    assert np.array_equal(one.ys, many.ys)
    if ADAPTIVE:
        ada = dict(dt=0.1, adaptive=True, solver="heun")
        one = sv.simulate_sde(sde, [0.5, -0.5], 0.5, 13, key, devices=1, **ada)
        many = sv.simulate_sde(sde, [0.5, -0.5], 0.5, 13, key, **ada)
        assert np.allclose(one.ys, many.ys, rtol=1e-12, atol=1e-12)
    print("SHARDED-OK")
""")


def _run_on_eight_devices(adaptive):
    """8 CPU devices (the flag must be set before jax is imported: a fresh process)."""
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
               JAX_PLATFORMS="cpu")
    code = f"ADAPTIVE = {adaptive}\n" + SHARDED
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0 and "SHARDED-OK" in out.stdout, out.stderr[-3000:]


def test_sharded_equals_unsharded():
    _run_on_eight_devices(adaptive=False)


@pytest.mark.slow
def test_sharded_equals_unsharded_adaptive():
    _run_on_eight_devices(adaptive=True)
