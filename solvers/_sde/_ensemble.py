r"""The ensemble runner shared by SDE paths and real SGD runs: chunks, devices, statistics.

An ensemble is one batched state of shape ``(d, n)`` (one column per path) advanced by a
``step(x, k, chunk_key, args)`` inside ``lax.fori_loop`` under ``jit``. Randomness of step
``k`` is drawn from ``fold_in(chunk_key, k)`` with arrays whose leading axis is the path, so
with JAX's partitionable Threefry (the default) the draws of path ``j`` do not depend on
how many paths are run together, on padding, or on the number of devices.

* **Chunks.** Paths are run ``chunk_size`` at a time (chunk ``c`` uses
  ``fold_in(key, c)``), so memory is bounded whatever ``n_paths`` is.
* **Devices.** The path axis of each chunk is sharded over the devices with
  ``jax.sharding.Mesh`` and ``NamedSharding`` (padded to a multiple of the device count;
  padded paths are masked out). The result equals the single-device run with the same key
  and chunk size.
* **Streaming statistics.** With ``stats=`` the per-save sums over paths of :math:`X`,
  :math:`XX^\top` and :math:`\varphi(X)` are kept instead of the paths; 10^6 paths need
  no trajectories in memory. (Indicator functions as :math:`\varphi` give streaming
  histograms.)
* **Divergence.** A path whose state stops being finite (or exceeds ``max_abs``) is
  recorded with the step it broke at; callers raise a clear report by default.
* **Progress and interrupts.** A ``tqdm`` bar over path-steps. Each chunk is advanced in
  compiled calls of at most :data:`CALL_WORK` state values, with at most one call queued
  behind the running one, so the bar moves and a Ctrl-C stops the run promptly even for a
  huge chunk (the result does not depend on the segmentation).
"""

from __future__ import annotations

import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from symflow import SymflowError
from symflow._core._progress import progress_bar as _bar
from symflow._core._table import Table, TableDisplay
from symflow._stochastic._sde import refuse_strings

from .._ode._compile import vector_function

DEFAULT_CHUNK = 1 << 16
#: Show a progress bar by default when a run has at least this many path-steps.
PROGRESS_WORK = 2 * 10**8
_PROGRESS_SEGMENTS = 20
#: At most this many state values (paths x components x steps) are advanced per compiled
#: call, so that one call stays short whatever the chunk size: a Ctrl-C (which Python sees
#: only between calls) stops a run after the current call (seconds, not the whole chunk).
#: The result does not depend on it.
CALL_WORK = 2**25


class Ensemble(TableDisplay):
    r"""An ensemble of paths (or their streaming statistics) at the save times.

    Attributes
    ----------
    ts : ndarray (n_save,)
        Save times (:math:`t = nh` for optimizers).
    ys : ndarray (n_paths, n_save, d) or None
        The paths (``None`` when only statistics were kept); diverged paths are NaN and
        flagged in :attr:`diverged`.
    stats : dict
        With ``stats=``: ``"count"`` (n_save,) paths still finite; ``"mean"`` (n_save, d);
        ``"second_moment"`` (n_save, d, d) :math:`\mathbb E[XX^\top]`; ``"phi"``
        (n_save, k) :math:`\mathbb E\varphi(X)`. Where no path is finite any more the
        statistics are NaN (and a ``RuntimeWarning`` says so), never 0.
    diverged : ndarray of bool (n_paths,)
    diverged_at : ndarray (n_paths,)
        Time of the first non-finite state (NaN for finite paths).
    info : dict
        ``method``, ``dt``, ``n_steps``, ``chunks``, ``devices``, ``seconds``.
    """

    def __init__(self, ts, ys, stats, diverged, diverged_at, info):
        self.ts, self.ys, self.stats = ts, ys, stats
        self.diverged, self.diverged_at, self.info = diverged, diverged_at, info
        empty = np.asarray(stats["count"]) == 0 if "count" in stats else \
            np.full(len(ts), bool(diverged.size) and bool(diverged.all()))
        if np.any(empty):
            warnings.warn(
                f"{self.diverged.sum()} of {self.n_paths} paths diverged and none is finite at "
                f"t = {', '.join(f'{t:.4g}' for t in np.asarray(ts)[empty][:5])}"
                f"{' ...' if empty.sum() > 5 else ''}: the statistics (mean, covariance, "
                "phi) there are NaN. Reduce the step or the learning rate", RuntimeWarning,
                stacklevel=3)

    @property
    def n_paths(self) -> int:
        return int(self.diverged.shape[0])

    @property
    def diverged_fraction(self) -> float:
        return float(self.diverged.mean()) if self.diverged.size else 0.0

    def final(self) -> np.ndarray:
        """The finite paths at the last save time, ``(n_finite, d)``."""
        return self._finite_ys()[:, -1]

    def mean(self) -> np.ndarray:
        """:math:`\\mathbb E X` at the save times, (n_save, d) (finite paths only)."""
        if "mean" in self.stats:
            return self.stats["mean"]
        ys = self._finite_ys()
        return ys.mean(axis=0) if len(ys) else np.full(ys.shape[1:], np.nan)

    def covariance(self) -> np.ndarray:
        """:math:`\\operatorname{Cov} X` at the save times, (n_save, d, d)."""
        if "second_moment" in self.stats:
            m = self.stats["mean"]
            return self.stats["second_moment"] - m[:, :, None] * m[:, None, :]
        ys = self._finite_ys()
        if not len(ys):
            return np.full(ys.shape[1:] + ys.shape[-1:], np.nan)
        c = ys - ys.mean(axis=0)
        return np.einsum("pti,ptj->tij", c, c) / ys.shape[0]

    def _finite_ys(self):
        if self.ys is None:
            raise SymflowError("this run kept statistics only (stats=...); run again with "
                               "stats=None to keep the paths")
        return self.ys[~self.diverged]

    def __str__(self) -> str:
        i = self.info
        kept = "paths" if self.ys is not None else "statistics"
        text = (f"ensemble: {self.n_paths} paths, {i['method']}, dt={i['dt']:.3g}, "
                f"{i['n_steps']} steps, {len(self.ts)} save time(s), {kept} kept, "
                f"{i['chunks']} chunk(s) on {i['devices']} device(s), {i['seconds']:.2f} s")
        if self.diverged.any():
            text += f"; {self.diverged_fraction:.2%} of paths diverged"
        return text

    __repr__ = __str__

    def _table(self) -> Table:
        i = self.info
        rows = [["paths", f"{self.n_paths}"], ["method", f"{i['method']}"],
                ["dt", f"{i['dt']:.3g}"], ["steps", f"{i['n_steps']}"],
                ["save times", f"{len(self.ts)}"],
                ["kept", "paths" if self.ys is not None else "statistics"],
                ["diverged", f"{self.diverged_fraction:.2%}"],
                ["chunks, devices", f"{i['chunks']}, {i['devices']}"],
                ["seconds", f"{i['seconds']:.2f}"]]
        return Table(["quantity", "value"], rows, "ensemble")


# -- input checks ------------------------------------------------------------------------------
def check_start(x0, n_paths, d) -> np.ndarray:
    """``x0`` as an ``(n_paths, d)`` array of finite floats; validates ``n_paths``."""
    if isinstance(n_paths, bool) or not isinstance(n_paths, (int, np.integer)) or n_paths < 1:
        raise SymflowError(f"got n_paths={n_paths!r}; give a whole number of paths >= 1")
    if x0 is None:
        raise SymflowError(f"give x0: {d} starting values (or an array ({n_paths}, {d}))")
    try:
        arr = np.asarray(x0, dtype=float)
    except (TypeError, ValueError):
        raise SymflowError(f"got x0={x0!r}; give {d} numbers") from None
    if arr.shape not in ((d,), (int(n_paths), d)):
        raise SymflowError(f"got x0 of shape {np.shape(x0)}; give {d} numbers (one start "
                           f"for every path) or an array ({n_paths}, {d})")
    if not np.all(np.isfinite(arr)):  # before broadcasting: one start is checked once
        raise SymflowError(f"got a non-finite x0 ({np.asarray(x0).ravel()[:6]}); every "
                           "starting value must be a finite number")
    return arr if arr.ndim == 2 else np.broadcast_to(arr, (int(n_paths), d))


def check_chunk_size(chunk_size) -> int:
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or \
            chunk_size < 1:
        raise SymflowError(f"got chunk_size={chunk_size!r}; give a positive whole number of "
                           "paths per chunk")
    return int(chunk_size)


def stats_spec(stats, phi) -> tuple:
    """Normalise ``stats=`` (and ``phi``) to a tuple of statistic names."""
    if isinstance(stats, str):
        stats = (stats,)
    stats = tuple(stats) if stats else ()
    for s in stats:
        if s not in ("mean", "second_moment"):
            raise SymflowError(f"got stats entry {s!r}; use 'mean' and/or 'second_moment' "
                               "(and phi=... for other averages)")
    if ("second_moment" in stats or phi is not None) and "mean" not in stats:
        stats = ("mean",) + stats
    return stats


def phi_function(phi, params):
    """A JAX ``phi(x (d, n)) -> (k, n)`` from a callable or SymPy expression(s)."""
    if phi is None:
        return None
    if callable(phi) and not isinstance(phi, sp.Basic):
        return phi
    refuse_strings(phi, "phi")
    exprs = sp.ImmutableMatrix([phi] if isinstance(phi, (sp.Expr, int, float)) else list(phi))
    extra = exprs.free_symbols - set(params)
    if extra:
        raise SymflowError(f"phi contains {sorted(map(str, extra))}; use the parameters "
                           f"{list(params)} only")
    return _PhiFunction(exprs, tuple(params))


class _PhiFunction:
    """Hashable wrapper so that equal expressions share compiled kernels."""

    def __init__(self, exprs, params):
        self.key = (exprs, params)
        self.fn = vector_function(exprs, params)

    def __call__(self, x):
        return self.fn(x)

    def __eq__(self, other):
        return isinstance(other, _PhiFunction) and self.key == other.key

    def __hash__(self):
        return hash(self.key)


def mesh_sharding(devices):
    """``(NamedSharding of a (d, n) state over the path axis, n_devices)``; None for one."""
    available = jax.devices()
    if devices is None:
        devs = available
    elif isinstance(devices, (int, np.integer)) and not isinstance(devices, bool):
        if devices < 1 or devices > len(available):
            raise SymflowError(f"got devices={devices}; there are {len(available)} "
                               "device(s) (jax.devices())")
        devs = available[:devices]
    else:
        devs = list(devices)
        if not devs:
            raise SymflowError("got devices=[]; give at least one device")
    if len(devs) == 1:
        return None, 1
    mesh = Mesh(np.array(devs), ("paths",))
    return NamedSharding(mesh, PartitionSpec(None, "paths")), len(devs)


def row_sharding(sharding):
    """The sharding of per-path arrays (leading axis the path) that goes with ``sharding``."""
    return None if sharding is None else NamedSharding(sharding.mesh, PartitionSpec("paths"))


def chunk_layout(n_paths, chunk_size, n_dev):
    """``(paths per chunk, chunk width padded to a multiple of n_dev, number of chunks)``."""
    per_chunk = min(chunk_size, n_paths)
    return per_chunk, -(-per_chunk // n_dev) * n_dev, chunk_count(n_paths, per_chunk)


# -- compiled pieces -------------------------------------------------------------------------
def _make_advance(step_factory, n, sharding, track):
    def constrain(a):
        return a if sharding is None else jax.lax.with_sharding_constraint(a, sharding)

    step = step_factory(n, constrain)

    def advance(x, first_bad, ckey, k0, k1, args, max_abs):
        def body(k, state):
            xx, fb = state
            xn = step(xx, k, ckey, args)
            if track:
                bad = ~jnp.all(jnp.abs(xn) < max_abs, axis=0)
                fb = jnp.where((fb < 0) & bad, k + 1, fb)
            return xn, fb

        x, first_bad = jax.lax.fori_loop(k0, k1, body, (constrain(x), first_bad))
        if not track:
            bad = ~jnp.all(jnp.abs(x) < max_abs, axis=0)
            first_bad = jnp.where((first_bad < 0) & bad, k1, first_bad)
        return x, first_bad

    return jax.jit(advance)


def _make_summary(n, stats, phi):
    def summary(x, valid, first_bad):
        ok = valid & (first_bad < 0)
        xm = jnp.where(ok[None, :], x, 0.0)
        out = {"count": jnp.sum(ok), "sum": xm.sum(axis=1)}
        if "second_moment" in stats:
            out["outer"] = xm @ xm.T
        if phi is not None:
            vals = jnp.asarray(phi(xm)).reshape(-1, n)
            out["phi"] = jnp.where(ok[None, :], vals, 0.0).sum(axis=1)
        return out

    return jax.jit(summary)


class _NoBar:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n):
        pass


def progress_bar(total, enabled, desc):
    """A ``tqdm`` bar (a no-op object when disabled)."""
    if not enabled:
        return _NoBar()
    return _bar(total=total, desc=desc, unit="step", unit_scale=True, progress=True)


# -- the runner ------------------------------------------------------------------------------
def run_ensemble(cache: dict, cache_key, step_factory, start, key, save_idx, n_steps, args,
                 stats=(), phi=None, progress=None, chunk_size=DEFAULT_CHUNK, devices=None,
                 desc="paths", track=True, max_abs=None):
    """Run ``start.shape[0]`` paths for ``n_steps`` steps, saving at the steps ``save_idx``.

    Returns ``(ys (n_paths, n_save, d) or None, stats dict, first_bad (n_paths,))`` where
    ``first_bad[j]`` is the step after which path ``j`` diverged (-1 if never). Compiled
    pieces are kept in ``cache`` under ``cache_key`` and the chunk shape.
    """
    sharding, n_dev = mesh_sharding(devices)
    n_paths, d = start.shape
    per_chunk, chunk, n_chunks = chunk_layout(n_paths, check_chunk_size(chunk_size), n_dev)
    advance_key = ("advance", cache_key, chunk, sharding, track)
    if advance_key not in cache:
        cache[advance_key] = _make_advance(step_factory, chunk, sharding, track)
    advance = cache[advance_key]
    if stats:
        summary_key = ("summary", chunk, stats, phi)
        if summary_key not in cache:
            cache[summary_key] = _make_summary(chunk, stats, phi)
        summary = cache[summary_key]
    work = n_paths * n_steps
    show = (work >= PROGRESS_WORK) if progress is None else bool(progress)
    slots = {}  # step -> the save slots it fills
    for s, i in enumerate(save_idx):
        slots.setdefault(int(i), []).append(s)
    bounds = set(slots) | {n_steps}
    if show and n_steps >= _PROGRESS_SEGMENTS:
        bounds |= {round(n_steps * s / _PROGRESS_SEGMENTS) for s in range(1, _PROGRESS_SEGMENTS)}
    bounds = sorted(bounds)
    per_call = max(1, CALL_WORK // (chunk * d))
    bound = jnp.float64(np.inf if max_abs is None else max_abs)
    path_sharding = row_sharding(sharding)
    ys = None if stats else np.empty((n_paths, len(save_idx), d))
    sums = [None] * len(save_idx)
    first_bad = np.empty(n_paths, dtype=np.int64)
    with progress_bar(n_chunks * n_steps, show, desc) as bar:
        for c in range(n_chunks):
            lo, hi = c * per_chunk, min((c + 1) * per_chunk, n_paths)
            block = np.empty((chunk, d))
            block[: hi - lo] = start[lo:hi]
            block[hi - lo:] = start[lo]
            valid = np.zeros(chunk, dtype=bool)
            valid[: hi - lo] = True
            x, fb = jnp.asarray(block.T), jnp.full((chunk,), -1, dtype=jnp.int32)
            valid = jnp.asarray(valid)
            if sharding is not None:
                x = jax.device_put(x, sharding)
                fb = jax.device_put(fb, path_sharding)
                valid = jax.device_put(valid, path_sharding)
            ckey, k, previous = jax.random.fold_in(key, c), 0, None
            for b in bounds:
                while b > k:  # calls of at most per_call steps
                    k1 = min(b, k + per_call)
                    x, fb = advance(x, fb, ckey, jnp.int32(k), jnp.int32(k1), args, bound)
                    if previous is not None:  # one call queued behind the running one;
                        previous.block_until_ready()  # Ctrl-C is seen after this wait
                    previous = fb
                    bar.update(k1 - k)
                    k = k1
                for s in slots.get(b, ()):
                    if stats:
                        out = jax.tree_util.tree_map(np.asarray, summary(x, valid, fb))
                        sums[s] = out if sums[s] is None else jax.tree_util.tree_map(
                            np.add, sums[s], out)
                    else:
                        ys[lo:hi, s] = np.asarray(x)[:, : hi - lo].T
            first_bad[lo:hi] = np.asarray(fb)[: hi - lo]
    if stats:
        return None, combine_sums(sums, stats, phi is not None), first_bad
    bad = first_bad >= 0
    if bad.any():
        ys[bad] = np.nan
    return ys, {}, first_bad


def combine_sums(sums, stats, has_phi):
    """Per-save sums over paths -> means (``count`` paths still finite)."""
    count = np.array([s["count"] for s in sums], dtype=float)
    den = np.where(count > 0, count, np.nan)  # no finite path left: NaN, not 0
    out = {"count": count, "mean": np.stack([s["sum"] for s in sums]) / den[:, None]}
    if "second_moment" in stats:
        out["second_moment"] = np.stack([s["outer"] for s in sums]) / den[:, None, None]
    if has_phi:
        out["phi"] = np.stack([s["phi"] for s in sums]) / den[:, None]
    return out


def divergence_error(first_time, n_paths, what, hint, max_abs=None) -> SymflowError:
    """A report naming how many paths diverged, and when."""
    bad = ~np.isnan(first_time)
    times = first_time[bad]
    bound = "" if max_abs is None else f" or beyond max_abs={max_abs:g}"
    return SymflowError(
        f"{bad.sum()} of {n_paths} {what} ({bad.mean():.2%}) diverged (state non-finite"
        f"{bound}): the first at t={np.min(times):.4g}, median t={np.median(times):.4g}, "
        f"last t={np.max(times):.4g}. {hint}, or pass on_divergence='flag' to get the result "
        "with a per-path 'diverged' mask")


def check_on_divergence(on_divergence):
    if on_divergence not in ("raise", "flag"):
        raise SymflowError(f"got on_divergence={on_divergence!r}; use 'raise' (a clear error) "
                           "or 'flag' (return the result with a per-path 'diverged' mask)")


def chunk_count(n_paths, chunk_size) -> int:
    return max(1, math.ceil(n_paths / chunk_size))


def as_key(key):
    """A JAX PRNG key from a key or an integer seed."""
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        return jax.random.key(int(key))
    try:
        if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) or key.shape == (2,):
            return key
    except AttributeError:
        pass
    raise SymflowError(f"got key={key!r}; pass jax.random.key(seed) or an integer seed")


__all__ = ["DEFAULT_CHUNK", "Ensemble", "as_key", "check_on_divergence", "check_start",
           "chunk_layout", "divergence_error", "mesh_sharding", "phi_function", "row_sharding",
           "run_ensemble", "stats_spec"]
