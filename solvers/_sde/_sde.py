r"""Ensembles of SDE paths: a fast fixed-step engine and an adaptive Diffrax path.

For :math:`d\Theta = b(\Theta)\,dt + \sigma(\Theta)\,dW` (a :class:`symflow.SDE`, Itô):

* **fixed step** (``adaptive=False``, the default): the whole ensemble is one batched state
  ``(d, n_paths)`` advanced by ``lax.fori_loop`` under ``jit`` (see
  :mod:`solvers._sde._ensemble`: chunks, sharding over devices, streaming statistics); the
  Gaussian increments of step ``k`` come from ``fold_in(chunk_key, k)``, with no Brownian
  tree (:func:`solvers._sde._normals.normal_rows`: JAX's normals, one fused kernel). Schemes
  (Kloeden & Platen, *Numerical Solution of SDEs*, 1992, ch. 14–15):

  - ``"euler"`` (Euler–Maruyama, weak order 1):
    :math:`X' = X + b(X)\,\Delta t + \sigma(X)\,\Delta W`;
  - ``"heun"`` (drift predictor–corrector, noise at the left point; Itô-consistent, weak
    order 2 for additive noise, 1 otherwise): :math:`\tilde X = X + b\,\Delta t +
    \sigma\,\Delta W`, :math:`X' = X + \tfrac12(b(X)+b(\tilde X))\Delta t + \sigma(X)\Delta W`;
  - ``"sra1"`` (Rößler's SRA1 for additive noise, weak order 2, strong 1.5; Rößler, SIAM
    J. Numer. Anal. 48, 2010), with the space-time Lévy area :math:`H\sim N(0,\Delta t/12)`:
    :math:`X_2 = X + \tfrac34 b(X)\Delta t + \sigma(\tfrac34\Delta W + \tfrac32 H)`,
    :math:`X' = X + (\tfrac13 b(X) + \tfrac23 b(X_2))\Delta t + \sigma\,\Delta W`.

  When :math:`\sigma` has more columns than rows and depends on the state (e.g. the
  centered per-sample gradients of a non-polynomial dataset), the increment is drawn as
  :math:`C(X)Z`, :math:`CC^\top = D = \sigma\sigma^\top` (Cholesky), :math:`Z\sim N(0,
  \Delta t\,I_d)`: the same law for these schemes, with :math:`d` instead of :math:`m`
  normals per step.

* **adaptive** (``adaptive=True``): per path, Diffrax ``diffeqsolve`` on
  ``MultiTerm(ODETerm, ControlTerm)`` with a ``VirtualBrownianTree`` (space-time Lévy
  area), ``SPaRK`` (or ``Heun``) and a ``PIDController`` inside ``ClipStepSizeController``
  (which revisits rejected steps, as non-commutative noise requires); ``vmap`` over paths
  with one key per path, sharded over the devices. These solvers converge to the
  Stratonovich solution, so the Itô drift is converted exactly (SymPy):
  :math:`b_i - \tfrac12\sum_{jk}\sigma_{jk}\partial_j\sigma_{ik}`.

A path whose state stops being finite is recorded with its time; by default
:func:`simulate_sde` raises :class:`SymflowError` with the fraction of paths and the
times (``on_divergence="flag"`` returns the result with a ``diverged`` mask instead of
silent NaNs).
"""

from __future__ import annotations

import functools
import math
import time

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp

from symflow import SymflowError
from symflow._stochastic._sde import SDE

from .._ode._compile import vector_function
from .._ode._iterate import check_saved_memory
from ._ensemble import (
    DEFAULT_CHUNK,
    Ensemble,
    as_key,
    check_chunk_size,
    check_on_divergence,
    check_start,
    chunk_count,
    chunk_layout,
    combine_sums,
    divergence_error,
    mesh_sharding,
    phi_function,
    progress_bar,
    row_sharding,
    run_ensemble,
    stats_spec,
)
from ._normals import normal_rows

SOLVERS = ("euler", "heun", "sra1")
ADAPTIVE_SOLVERS = ("spark", "heun")
#: The most paths per compiled call on the adaptive path (each may take up to ``max_steps``
#: steps), so that a Ctrl-C, seen between calls, stops the run promptly.
ADAPTIVE_CHUNK = 1 << 12


# -- compiled SDEs ---------------------------------------------------------------------------
class CompiledSDE:
    """Drift and noise of an SDE as JAX functions of a batched state ``(d, n)``.

    ``kind`` is ``"none"`` (an ODE), ``"additive"`` (constant sigma), ``"diagonal"``,
    ``"general"`` (``d x m``, ``m <= d``) or ``"covariance"`` (``m > d``: Cholesky factor
    of the diffusion matrix).
    """

    def __init__(self, sde: SDE):
        self.sde = sde
        self.params, self.constants = sde.params, sde.constants
        self.dim, self.noise_dim = sde.dim, sde.noise_dim
        self.drift = vector_function(sde.drift, self.params, self.constants)
        sigma = sp.Matrix(sde.diffusion)
        if sde.is_deterministic:
            self.kind = "none"
        elif sde.is_additive:
            self.kind = "additive"
        elif sde.is_diagonal:
            self.kind = "diagonal"
        elif self.noise_dim > self.dim:
            self.kind = "covariance"
        else:
            self.kind = "general"
        if self.kind == "diagonal":
            self._sigma = vector_function(sp.Matrix([sigma[i, i] for i in range(self.dim)]),
                                          self.params, self.constants)
        else:
            self._sigma = vector_function(sigma.reshape(self.dim * self.noise_dim, 1),
                                          self.params, self.constants)
        if self.kind == "covariance":
            self._cov = vector_function(sp.Matrix(sde.covariance).reshape(self.dim**2, 1),
                                        self.params, self.constants)
        self.increment_dim = self.dim if self.kind == "covariance" else self.noise_dim
        self.kernels = {}

    def sigma_matrix(self, x, cv):
        """:math:`\\sigma` as ``(d, m)`` (one state) or ``(d, m, n)`` (batched)."""
        out = self._sigma(x, cv)
        if self.kind == "diagonal":
            eye = jnp.eye(self.dim, dtype=out.dtype)
            return eye.reshape(eye.shape + (1,) * (out.ndim - 1)) * out[None]
        return out.reshape((self.dim, self.noise_dim) + x.shape[1:])

    def constant_sigma(self, cv):
        return self._sigma(jnp.zeros(self.dim), cv).reshape(self.dim, self.noise_dim)

    def noise_term(self, x, cv, dw, csig):
        """:math:`\\sigma(x)\\,dW` for a batched state ``x (d, n)`` and ``dw (m', n)``."""
        if self.kind == "none":
            return jnp.zeros_like(x)
        if self.kind == "additive":
            return csig @ dw
        if self.kind == "diagonal":
            return self._sigma(x, cv) * dw
        if self.kind == "covariance":
            d, n = x.shape
            cov = jnp.moveaxis(self._cov(x, cv).reshape(d, d, n), -1, 0)  # (n, d, d)
            scale = jnp.trace(cov, axis1=1, axis2=2)[:, None, None] / d
            jitter = 1e-13 * (scale + 1e-300) * jnp.eye(d)
            chol = jnp.linalg.cholesky(cov + jitter)
            return jnp.einsum("nij,jn->in", chol, dw)
        return jnp.einsum("dmn,mn->dn", self.sigma_matrix(x, cv), dw)

    @functools.cached_property
    def stratonovich(self):
        return vector_function(self.sde.stratonovich_drift(), self.params, self.constants)


@functools.lru_cache(maxsize=64)
def compiled_sde(sde: SDE) -> CompiledSDE:
    """The cached :class:`CompiledSDE` of an SDE (equal SDEs share it)."""
    return CompiledSDE(sde)


def constant_values(sde: SDE, hyper=None, lr=None) -> jnp.ndarray:
    """Numbers for the SDE's constants (``h`` from ``lr`` or ``hyper``), in order."""
    values = {str(k): val for k, val in (hyper or {}).items()}
    if lr is not None:
        try:
            lr_value = float(lr)
        except (TypeError, ValueError):
            lr_value = float("nan")
        if isinstance(lr, (str, bool)) or not lr_value > 0 or not np.isfinite(lr_value):
            raise SymflowError(f"got lr={lr!r}; the learning rate must be a positive number")
        if "h" in values and float(values["h"]) != float(lr):
            raise SymflowError(f"got lr={lr} and hyper['h']={values['h']}; give one")
        values["h"] = lr
    missing = [str(c) for c in sde.constants if str(c) not in values]
    if missing:
        raise SymflowError(
            f"the SDE has the constant(s) {', '.join(missing)} with no numeric value; pass "
            f"hyper={{{', '.join(repr(m) + ': ...' for m in missing)}}}"
            + (" (or lr=... for h)" if "h" in missing else ""))
    out = []
    for c in sde.constants:
        try:
            val = float(values[str(c)])
        except (TypeError, ValueError):
            val = float("nan")
        if not np.isfinite(val):
            raise SymflowError(f"got {c}={values[str(c)]}; constants must be finite numbers")
        if str(c) == "h" and not val > 0:
            raise SymflowError(f"got h={values['h']} (lr); the learning rate must be a "
                               "positive number")
        out.append(val)
    return jnp.array(out, dtype=jnp.float64)


# -- fixed-step schemes ----------------------------------------------------------------------
def sde_step_factory(csde: CompiledSDE, solver: str):
    """``factory(n, constrain) -> step(x, k, ckey, args)``; ``args = (dt, sqrt_dt,
    constants, constant_sigma)``."""
    m, drift = csde.increment_dim, csde.drift

    def factory(n, constrain):
        def step(x, k, ckey, args):
            dt, sqdt, cv, csig = args
            if csde.kind == "none":
                return euler_or_heun(x, lambda y: drift(y, cv), dt, 0.0, solver)
            if solver == "sra1":
                z = constrain(normal_rows(ckey, k, n, 2 * m))
                dw, area = z[:m] * sqdt, z[m:] * (sqdt / math.sqrt(12.0))
                b1 = drift(x, cv)
                x2 = x + 0.75 * dt * b1 + csig @ (0.75 * dw + 1.5 * area)
                return x + (b1 / 3 + 2 * drift(x2, cv) / 3) * dt + csig @ dw
            dw = constrain(normal_rows(ckey, k, n, m)) * sqdt
            noise = csde.noise_term(x, cv, dw, csig)
            return euler_or_heun(x, lambda y: drift(y, cv), dt, noise, solver)

        return step

    return factory


def euler_or_heun(x, drift, dt, noise, solver: str):
    r"""One Euler-Maruyama step :math:`x + b(x)\,dt + \xi`, or (``solver="heun"``) Heun's
    predictor-corrector on the drift with the same noise increment :math:`\xi`:
    :math:`x + \tfrac12\bigl(b(x) + b(x + b(x)dt + \xi)\bigr)dt + \xi`."""
    b1 = drift(x)
    if solver == "euler":
        return x + b1 * dt + noise
    return x + 0.5 * (b1 + drift(x + b1 * dt + noise)) * dt + noise


# -- the entry point ---------------------------------------------------------------------------
def _check_time(T, dt, adaptive):
    real = (int, float, np.floating, np.integer)
    if isinstance(T, bool) or not isinstance(T, real) or not np.isfinite(T) or T <= 0:
        raise SymflowError(f"got T={T!r}; the final time must be a positive number")
    if dt is None and adaptive:
        return T / 100
    if isinstance(dt, bool) or not isinstance(dt, real) or not np.isfinite(dt) or dt <= 0:
        raise SymflowError(f"got dt={dt!r}; give the step as a positive number (dt=...)")
    if dt > T:
        raise SymflowError(f"got dt={dt} > T={T}; the step must not exceed the final time")
    return float(dt)


def save_times(save_at, T) -> np.ndarray:
    """``save_at`` as increasing times in ``[0, T]`` (default ``[T]``)."""
    if save_at is None:
        return np.array([float(T)])
    try:
        ts = np.atleast_1d(np.asarray(save_at, dtype=float))
    except (TypeError, ValueError):
        ts = np.array([np.nan])
    if ts.ndim != 1 or ts.size == 0 or not np.all(np.diff(ts) > 0) or not ts[0] >= 0 or \
            not ts[-1] <= T * (1 + 1e-12):
        raise SymflowError(f"got save_at={save_at!r}; give increasing times in [0, T={T}]")
    return ts


def save_indices(save_at, T, n_steps):
    """Step numbers and times of ``save_at`` (times on the step grid; default ``[T]``)."""
    if save_at is None:
        return np.array([n_steps]), np.array([float(T)])
    ts = save_times(save_at, T)
    idx = np.rint(ts / T * n_steps).astype(int)
    if np.any(np.abs(idx * T / n_steps - ts) > 1e-9 * max(T, 1.0)):
        raise SymflowError(f"the save times {ts} are not multiples of dt={T / n_steps:g}; "
                           "choose save times on the step grid")
    return idx, idx * (T / n_steps)


def simulate_sde(sde, x0, T, n_paths, key, dt=None, solver="euler", adaptive=False,
                 save_at=None, stats=None, phi=None, hyper=None, lr=None, progress=None,
                 chunk_size=DEFAULT_CHUNK, devices=None, on_divergence="raise", rtol=1e-3,
                 atol=1e-3, max_steps=100_000, track_divergence=True,
                 max_abs=1e50) -> Ensemble:
    r"""Simulate ``n_paths`` paths of an Itô SDE from ``x0`` up to time ``T``.

    Parameters
    ----------
    sde : symflow.SDE
        E.g. ``sf.sme(...)``; its time is :math:`t = nh`.
    x0 : array (d,) or (n_paths, d)
    T : float
        Final time.
    n_paths : int
    key : jax PRNG key or int seed
    dt : float
        The step (fixed-step path; ``T/dt`` is rounded up to whole steps) or the first step
        (adaptive path).
    solver : str
        ``"euler"``, ``"heun"``, ``"sra1"`` (fixed step; ``sra1`` for additive noise), or
        ``"spark"``, ``"heun"`` (adaptive).
    adaptive : bool
        Diffrax with ``VirtualBrownianTree`` + ``PIDController`` (``rtol``, ``atol``,
        ``max_steps``).
    save_at : sequence of float, optional
        Times (on the step grid) to save; default the final time only.
    stats : sequence of {"mean", "second_moment"}, optional
        Keep streaming statistics instead of the paths (and :math:`\mathbb E\varphi` with
        ``phi``).
    phi : callable or SymPy expression(s), optional
        A JAX function ``(d, n) -> (k, n)`` of the batched state, or expressions in the SDE
        parameters.
    hyper, lr
        Numbers for the SDE's constants (``lr`` is ``h``).
    progress : bool, optional
        A ``tqdm`` progress bar (default: on for long runs, at least 2e8 path-steps, or
        several chunks on the adaptive path).
    chunk_size : int
        Paths per chunk; the result depends on it (keys are per chunk), not on the devices.
        A chunk is advanced in short compiled calls (``CALL_WORK`` state values each), so
        that Ctrl-C stops a run promptly; the adaptive path, whose keys are per path, runs
        at most ``ADAPTIVE_CHUNK`` paths per call.
    devices : None, int or list of devices
        Shard the paths over these devices (default: all of ``jax.devices()``).
    on_divergence : "raise" or "flag"
    track_divergence, max_abs
        Record the exact step at which a path diverges (``False``: test at the save times
        only); a path has diverged when a component is non-finite or exceeds ``max_abs``.

    Returns
    -------
    Ensemble
        ``ts`` and ``ys`` (``n_paths x len(ts) x d``) or ``stats``; ``diverged`` mask.

    Examples
    --------
    ::

        >>> import jax, sympy as sp, symflow as sf, solvers as sv
        >>> x = sp.Symbol("x")
        >>> ou = sf.SDE(drift=[-x], diffusion=sp.sqrt(2), params=[x])
        >>> sol = sv.simulate_sde(ou, [0.0], T=5.0, n_paths=20000, key=0, dt=0.01)
        >>> sol.ys.shape, round(float(sol.ys[:, -1, 0].var()), 1)
        ((20000, 1, 1), 1.0)
    """
    if not isinstance(sde, SDE):
        raise SymflowError(f"got {type(sde).__name__}; pass a symflow.SDE (sf.SDE(...) or "
                           "sf.sme(...))")
    start = check_start(x0, n_paths, sde.dim)
    n_paths = int(n_paths)
    dt = _check_time(T, dt, adaptive)
    key = as_key(key)
    check_on_divergence(on_divergence)
    check_chunk_size(chunk_size)
    stats = stats_spec(stats, phi)
    phi_fn = phi_function(phi, sde.params)
    csde = compiled_sde(sde)
    cv = constant_values(sde, hyper, lr)
    n_steps = max(1, int(math.ceil(T / dt - 1e-9)))
    dt_eff = T / n_steps
    if not stats:
        check_saved_memory(n_paths * len(save_times(save_at, T)), sde.dim, "simulate_sde",
                           "keep statistics instead (stats=['mean', 'second_moment'] or "
                           "phi=...), or save fewer times or paths")
    t0 = time.perf_counter()
    if adaptive:
        if solver not in ADAPTIVE_SOLVERS:
            raise SymflowError(f"got solver={solver!r} with adaptive=True; adaptive solvers "
                               f"are {ADAPTIVE_SOLVERS}")
        ts = np.minimum(save_times(save_at, T), T)
        chunk_size = min(chunk_size, ADAPTIVE_CHUNK)  # short calls; keys are per path
        ys, st, first_time = _adaptive(csde, start, T, key, dt, ts, cv, solver, rtol, atol,
                                       max_steps, stats, phi_fn, progress, chunk_size, devices)
    else:
        if solver not in SOLVERS:
            raise SymflowError(f"got solver={solver!r}; fixed-step solvers are {SOLVERS} "
                               f"(adaptive=True offers {ADAPTIVE_SOLVERS})")
        if solver == "sra1" and csde.kind not in ("additive", "none"):
            raise SymflowError("solver='sra1' is for additive noise (sigma independent of the "
                               "state); use 'euler' or 'heun' for this SDE")
        save_idx, ts = save_indices(save_at, T, n_steps)
        csig = csde.constant_sigma(cv) if csde.kind == "additive" else jnp.zeros((0,))
        args = (jnp.float64(dt_eff), jnp.sqrt(jnp.float64(dt_eff)), cv, csig)
        ys, st, fb = run_ensemble(csde.kernels, solver, sde_step_factory(csde, solver), start,
                                  key, save_idx, n_steps, args, stats, phi_fn, progress,
                                  chunk_size, devices, "SDE paths", track_divergence, max_abs)
        first_time = np.where(fb >= 0, fb * dt_eff, np.nan)
    diverged = ~np.isnan(first_time)
    info = {"method": f"{solver}{' (adaptive)' if adaptive else ''}", "dt": dt_eff,
            "n_steps": n_steps, "chunks": chunk_count(n_paths, chunk_size),
            "devices": mesh_sharding(devices)[1], "seconds": time.perf_counter() - t0}
    if diverged.any() and on_divergence == "raise":
        raise divergence_error(first_time, n_paths, "paths",
                               f"T={T}: reduce dt (or the learning rate) or check the drift "
                               "for blow-up", max_abs)
    return Ensemble(np.asarray(ts), ys, st, diverged, first_time, info)


# -- the adaptive Diffrax path ---------------------------------------------------------------
def _adaptive_solver(csde, T, dt, ts, solver, rtol, atol, max_steps):
    m = csde.noise_dim

    def drift(t, y, args):
        return csde.stratonovich(y, args)

    def diffusion(t, y, args):
        return csde.sigma_matrix(y, args)

    levy = diffrax.SpaceTimeLevyArea if solver == "spark" else diffrax.BrownianIncrement
    method = diffrax.SPaRK() if solver == "spark" else diffrax.Heun()
    controller = diffrax.ClipStepSizeController(
        diffrax.PIDController(rtol=rtol, atol=atol, pcoeff=0.1, icoeff=0.3),
        store_rejected_steps=16)
    save_ts = jnp.asarray(ts)
    tol = min(dt, T) / 2**6

    def one(y0, pkey, cv):
        bm = diffrax.VirtualBrownianTree(0.0, T, tol=tol, shape=(m,), key=pkey, levy_area=levy)
        terms = diffrax.MultiTerm(diffrax.ODETerm(drift), diffrax.ControlTerm(diffusion, bm))
        sol = diffrax.diffeqsolve(terms, method, 0.0, T, dt, y0, args=cv,
                                  saveat=diffrax.SaveAt(ts=save_ts),
                                  stepsize_controller=controller, max_steps=max_steps,
                                  throw=False)
        return sol.ys, sol.result == diffrax.RESULTS.successful

    return jax.jit(jax.vmap(one, in_axes=(0, 0, None)))


def _adaptive(csde, start, T, key, dt, ts, cv, solver, rtol, atol, max_steps, stats, phi_fn,
              progress, chunk_size, devices):
    cache_key = ("adaptive", solver, T, dt, tuple(ts), rtol, atol, max_steps)
    if cache_key not in csde.kernels:
        csde.kernels[cache_key] = _adaptive_solver(csde, T, dt, ts, solver, rtol, atol,
                                                   max_steps)
    solve = csde.kernels[cache_key]
    sharding, n_dev = mesh_sharding(devices)
    rows = row_sharding(sharding)
    n_paths, d = start.shape
    per_chunk, chunk, n_chunks = chunk_layout(n_paths, chunk_size, n_dev)
    keys = jax.random.split(key, n_paths)
    ys = None if stats else np.empty((n_paths, len(ts), d))
    first_time = np.full(n_paths, np.nan)
    sums = None
    show = n_chunks > 1 if progress is None else bool(progress)
    with progress_bar(n_paths, show, "SDE paths (adaptive)") as bar:
        for c in range(n_chunks):
            lo, hi = c * per_chunk, min((c + 1) * per_chunk, n_paths)
            idx = np.concatenate([np.arange(lo, hi), np.full(chunk - (hi - lo), lo)])
            y0, k = jnp.asarray(start[idx]), keys[idx]
            if rows is not None:
                y0, k = jax.device_put(y0, rows), jax.device_put(k, rows)
            out, ok = solve(y0, k, cv)
            out, ok = np.array(out)[: hi - lo], np.asarray(ok)[: hi - lo]
            finite = np.isfinite(out).all(axis=2)  # (paths, n_save)
            bad = ~(ok & finite.all(axis=1))
            for p in np.nonzero(bad)[0]:
                broken = np.nonzero(~finite[p])[0]
                first_time[lo + p] = ts[broken[0]] if broken.size else T
            out[bad] = np.nan
            if stats:
                good = out[~bad]
                part = {"count": np.full(len(ts), float(good.shape[0])),
                        "sum": good.sum(axis=0)}
                if "second_moment" in stats:
                    part["outer"] = np.einsum("pti,ptj->tij", good, good)
                if phi_fn is not None:
                    part["phi"] = np.stack([np.asarray(phi_fn(jnp.asarray(good[:, s].T)))
                                            .reshape(-1, good.shape[0]).sum(axis=1)
                                            for s in range(len(ts))])
                sums = part if sums is None else {key_: sums[key_] + part[key_]
                                                  for key_ in part}
            else:
                ys[lo:hi] = out
            bar.update(hi - lo)
    if not stats:
        return ys, {}, first_time
    per_save = [{key_: val[s] for key_, val in sums.items()} for s in range(len(ts))]
    return None, combine_sums(per_save, stats, phi_fn is not None), first_time


__all__ = ["CompiledSDE", "compiled_sde", "constant_values", "save_indices", "simulate_sde"]
