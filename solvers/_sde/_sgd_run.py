r"""Ensembles of real minibatch runs on a finite dataset: SGD, and any optimizer map
(heavy ball, Nesterov, RMSprop, Adam, ``sf.Custom``) through
:mod:`solvers._sde._minibatch_rule`, with the same batches and the same ensemble machinery.

Each path runs

.. math::

    \theta_{n+1} = \theta_n - \frac{h}{B}\sum_{i\in\mathcal B_n}\nabla\ell_i(\theta_n)

with its own minibatches :math:`\mathcal B_n`: with replacement, ``B`` uniform indices;
without, Floyd's algorithm (Bentley & Floyd, CACM 30, 1987) for ``B <= 32``, else the
``B`` smallest of ``N`` uniform keys. Batches are drawn path-major from
``fold_in(chunk_key, step)``, so a path's batches do not depend on the number of paths or
devices. The ensemble is one batched state ``(d, n_paths)`` vectorized over paths and over
the batch, run by :func:`solvers._sde._ensemble.run_ensemble` (chunks, sharding, streaming
statistics, divergence reports). Times are reported as :math:`t = nh`.

The batch gradient is compiled from the dataset once:

* ``"factored"``: :math:`\nabla\ell_i = C(\theta)F_i` (:meth:`symflow.Dataset.gradient_factors`:
  templates polynomial in the data, explicit polynomial losses), so a batch costs a gather
  of ``B`` feature rows and one small matrix product;
* ``"template"``: the template's gradient evaluated on the gathered data rows;
* ``"explicit"``: the ``N`` per-sample gradients, then a gather.
"""

from __future__ import annotations

import functools
import os
import sys
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp

from symflow import SymflowError
from symflow._stochastic._dataset import Dataset, as_dataset
from symflow.optimizers import SGD, AbstractOptimizer

from .._ode._compile import _lambdified, hyper_vector, vector_function
from .._ode._iterate import check_lr, check_steps
from ._ensemble import (
    DEFAULT_CHUNK,
    Ensemble,
    as_key,
    check_on_divergence,
    check_start,
    chunk_count,
    divergence_error,
    mesh_sharding,
    phi_function,
    run_ensemble,
    stats_spec,
)
from ._minibatch_rule import minibatch_rule

#: Up to this batch size, batches without replacement use Floyd's algorithm (O(B^2) per
#: path); above it, the B smallest of N uniform keys (O(N) per path).
FLOYD_MAX_BATCH = 32


class CompiledDataset:
    """The minibatch gradient of a dataset as a batched JAX function."""

    def __init__(self, dataset: Dataset):
        self.dataset, self.params = dataset, dataset.params
        self.dim, self.n_samples = len(self.params), dataset.n_samples
        self.hyper = tuple(sorted(dataset.hyper, key=str))
        factors = dataset.gradient_factors()
        if factors is not None:
            self.kind = "factored"
            coeffs, feats = factors
            self.n_features = coeffs.shape[1]
            self._coeffs = vector_function(coeffs.reshape(self.dim * self.n_features, 1),
                                           self.params, self.hyper)
            self.data = jnp.asarray(feats)
        elif dataset.template is not None:
            self.kind = "template"
            syms = self.params + dataset.data_symbols + self.hyper
            self._fn = _lambdified(dataset.gradient_template, syms)
            self.data = jnp.asarray(dataset.data)
        else:
            self.kind = "explicit"
            g = sp.ImmutableMatrix(dataset.sample_gradients)  # d x N
            self._grads = vector_function(g.T.reshape(g.shape[0] * g.shape[1], 1),
                                          self.params, self.hyper)
        self.kernels = {}

    def batch_gradient(self, x, idx, hv):
        """Mean gradient over the batches ``idx (n, B)`` at the states ``x (d, n)``."""
        n = x.shape[1]
        if self.kind == "factored":
            mean_feats = self.data[idx].mean(axis=1)  # (n, K)
            coeffs = self._coeffs(x, hv).reshape(self.dim, self.n_features, n)
            return jnp.einsum("dkn,nk->dn", coeffs, mean_feats)
        if self.kind == "template":
            rows = self.data[idx]  # (n, B, k)
            cols = [rows[..., j] for j in range(rows.shape[-1])]
            theta = [x[i][:, None] for i in range(self.dim)]
            out = self._fn(*theta, *cols, *[hv[i] for i in range(len(self.hyper))])
            grads = jnp.stack([jnp.broadcast_to(jnp.asarray(o, dtype=x.dtype), idx.shape)
                               for o in out])  # (d, n, B)
            return grads.mean(axis=2)
        allg = self._grads(x, hv).reshape(self.n_samples, self.dim, n)
        picked = jnp.take_along_axis(jnp.transpose(allg, (2, 0, 1)), idx[:, :, None], axis=1)
        return picked.mean(axis=1).T  # (d, n)


#: The ``solvers`` package folder: a warning about a run points at the first frame outside it.
_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def caller_stacklevel() -> int:
    """The ``stacklevel`` (seen from the function that calls this one) of the first frame
    outside the ``solvers`` package: the user's call, however many of the package's own
    functions (the ``run_sgd`` dispatcher, :func:`solvers.weak_error`) lie in between."""
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    return level


def _ensemble_at_caller(*args) -> Ensemble:
    """``Ensemble(*args)``, its warnings (no finite path left) re-issued at the user's call."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ens = Ensemble(*args)
    for item in caught:
        warnings.warn(item.message, item.category, stacklevel=caller_stacklevel())
    return ens


@functools.lru_cache(maxsize=32)
def compiled_dataset(dataset: Dataset) -> CompiledDataset:
    return CompiledDataset(dataset)


def floyd_sample(key, n, big_n, batch):
    r"""``n`` uniformly random ``batch``-subsets of ``range(big_n)``, as ``(n, batch)``.

    Floyd's algorithm: for :math:`j = N-B, \dots, N-1` draw :math:`t` uniform in
    :math:`\{0, \dots, j\}` and keep :math:`t`, or :math:`j` when :math:`t` is taken.
    """
    u = jax.random.uniform(key, (n, batch), dtype=jnp.float64)
    chosen = []
    for i in range(batch):
        j = big_n - batch + i
        t = jnp.minimum(jnp.floor(u[:, i] * (j + 1)).astype(jnp.int32), j)
        if chosen:
            taken = jnp.any(jnp.stack(chosen, axis=1) == t[:, None], axis=1)
            t = jnp.where(taken, j, t)
        chosen.append(t)
    return jnp.stack(chosen, axis=1)


def draw_batches(key, n, big_n, batch, replacement):
    """``n`` minibatches of ``batch`` indices in ``range(big_n)``, as ``(n, batch)``."""
    if replacement:
        return jax.random.randint(key, (n, batch), 0, big_n)
    if batch <= FLOYD_MAX_BATCH:
        return floyd_sample(key, n, big_n, batch)
    return jax.lax.top_k(-jax.random.uniform(key, (n, big_n)), batch)[1]


def _sgd_factory(cds: CompiledDataset, batch: int, replacement: bool):
    big_n = cds.n_samples

    def factory(n, constrain):
        def step(x, k, ckey, args):
            lr, hv = args
            idx = draw_batches(jax.random.fold_in(ckey, k), n, big_n, batch, replacement)
            return x - lr * cds.batch_gradient(x, idx, hv)

        return step

    return factory


def _rule_factory(cds: CompiledDataset, rule, batch: int, replacement: bool, fixed: bool):
    """Steps of any optimizer map (:mod:`._minibatch_rule`); with ``fixed``, every path uses
    the given batch sequence ``args[2][k]``."""
    big_n = cds.n_samples

    def factory(n, constrain):
        def step(z, k, ckey, args):
            extra, hv, batches = args
            if fixed:
                idx = jnp.broadcast_to(batches[k], (n, batch))
            else:
                idx = draw_batches(jax.random.fold_in(ckey, k), n, big_n, batch, replacement)
            return rule.step(z, lambda point: cds.batch_gradient(point, idx, hv), extra)

        return step

    return factory


def _save_steps(save_steps, n_steps):
    if save_steps is None:
        return np.array([n_steps])
    idx = np.atleast_1d(np.asarray(save_steps))
    if idx.ndim != 1 or idx.size == 0 or idx.dtype.kind not in "iu" or \
            np.any(np.diff(idx) <= 0) or idx[0] < 0 or idx[-1] > n_steps:
        raise SymflowError(f"got save_steps={save_steps!r}; give increasing whole step "
                           f"numbers in [0, n_steps={n_steps}]")
    return idx


def _batch_setup(optimizer, batch_size, replacement, batches):
    """``(B, replacement)`` from ``sf.SGD`` or from the arguments (any other rule)."""
    if not isinstance(optimizer, AbstractOptimizer):
        raise SymflowError(f"got optimizer={optimizer!r}; pass a symflow optimizer, e.g. "
                           "sf.SGD(batch_size=B) or sf.Adam(...) with batch_size=B")
    if isinstance(optimizer, SGD):
        own = optimizer.batch_size
        if isinstance(own, sp.Basic):
            raise SymflowError(f"got batch_size={own} (a symbol); a real run needs a number: "
                               "sf.SGD(batch_size=4)")
        if batch_size is not None and batch_size != own:
            raise SymflowError(f"got batch_size={batch_size} and {optimizer!r}; give one")
        batch_size = own
        replacement = optimizer.replacement if replacement is None else replacement
    if batches is not None:
        arr = np.asarray(batches)
        if arr.ndim != 2 or arr.dtype.kind not in "iu" or arr.shape[1] < 1:
            raise SymflowError(f"got batches of shape {arr.shape} ({arr.dtype}); give whole "
                               "sample indices, one row (n_steps, B) per step")
        if batch_size is not None and batch_size != arr.shape[1]:
            raise SymflowError(f"got batch_size={batch_size} and batches of {arr.shape[1]} "
                               "indices a step; give one")
        batch_size = arr.shape[1]
    if batch_size is None:
        raise SymflowError(f"got {optimizer!r} with no batch size; pass batch_size=B (the "
                           "samples per step), or use sf.SGD(batch_size=B) for plain SGD")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or \
            batch_size < 1:
        raise SymflowError(f"got batch_size={batch_size!r}; give a whole number >= 1")
    replacement = True if replacement is None else replacement
    if not isinstance(replacement, bool):
        raise SymflowError(f"got replacement={replacement!r}; pass True or False")
    return int(batch_size), replacement


def _check_batches(batches, n_steps, n_samples):
    arr = np.asarray(batches)
    if arr.shape[0] < n_steps or arr.min() < 0 or arr.max() >= n_samples:
        raise SymflowError(f"got batches of shape {arr.shape} with indices in [{arr.min()}, "
                           f"{arr.max()}]; give at least n_steps={n_steps} rows of indices "
                           f"in [0, N={n_samples})")
    return jnp.asarray(arr[:n_steps], dtype=jnp.int32)


def _start_state(rule, theta, memory0, extra):
    """``(n_paths, D)``: the parameters and the optimizer's initial memory (or ``memory0``)."""
    size = len(rule.state) - rule.dim
    if not size:
        if memory0 is not None:
            raise SymflowError("got memory0 for an optimizer without memory; drop it")
        return theta
    if memory0 is None:
        mem = np.asarray(rule.initial_memory(jnp.asarray(theta.T), extra)).T
    else:
        mem = np.asarray(memory0, dtype=float)
        if mem.shape not in ((size,), (theta.shape[0], size)) or not np.all(np.isfinite(mem)):
            raise SymflowError(f"got memory0 of shape {mem.shape}; give {size} finite numbers "
                               f"({', '.join(rule.names[rule.dim:])}) or an array "
                               f"({theta.shape[0]}, {size})")
        mem = np.broadcast_to(mem, (theta.shape[0], size))
    return np.concatenate([theta, mem], axis=1)


def run_sgd(optimizer, losses=None, params=None, dataset=None, *, x0, lr, n_steps,
            n_paths=1, key=0, batch_size=None, replacement=None, batches=None, memory0=None,
            save_steps=None, stats=None, phi=None, hyper=None, chunk_size=DEFAULT_CHUNK,
            devices=None, progress=None, on_divergence="raise", track_divergence=True,
            max_abs=1e50) -> Ensemble:
    r"""Run ``n_paths`` independent minibatch runs of ``optimizer`` from ``x0``.

    ``sf.SGD(batch_size=B)`` runs :math:`\theta_{n+1} = \theta_n - h\,g_n` with
    :math:`g_n = \frac1B\sum_{i\in\mathcal B_n}\nabla\ell_i(\theta_n)`. Any other optimizer
    (heavy ball, Nesterov, RMSprop, Adam, AdaGrad, ``sf.Custom``) runs its symbolic map,
    compiled once (:class:`solvers._sde._minibatch_rule.MinibatchRule`), on the state
    :math:`(\theta, m)` with memory, every gradient of step :math:`n` taken on the same
    minibatch :math:`\mathcal B_n`, as in real training and as :func:`symflow.sme` assumes.

    Parameters
    ----------
    optimizer : symflow optimizer
        ``sf.SGD(batch_size=B, replacement=...)``, or any optimizer with ``batch_size=B``.
    losses, params, dataset
        The training set, as for :func:`symflow.sme`: explicit per-sample losses with
        ``params``, or a :class:`symflow.Dataset` (template + data array).
    x0 : array (d,) or (n_paths, d)
        The parameters; the memory starts at the optimizer's initial memory (zeros for
        momentum and moment estimates) unless ``memory0`` (``(m,)`` or ``(n_paths, m)``).
    lr : float
        The learning rate :math:`h`; the returned times are :math:`t = nh`.
    n_steps, n_paths : int
    key : jax PRNG key or int seed
    batch_size, replacement
        The minibatch (rules other than ``sf.SGD``); ``replacement`` defaults to True.
    batches : int array (n_steps, B), optional
        A fixed minibatch sequence, the same for every path (e.g. to compare with another
        implementation step for step); default: each path draws its own.
    save_steps : sequence of int, optional
        Step numbers to save (default: the last step only).
    stats, phi, hyper, chunk_size, devices, progress, on_divergence, track_divergence, max_abs
        As in :func:`solvers.simulate_sde`; ``hyper`` holds the numbers of the dataset's
        and the optimizer's symbols.

    Returns an :class:`~solvers.Ensemble` of the whole state :math:`(\theta, m)`
    (``info["state"]`` names its components).

    Examples
    --------
    ::

        >>> import sympy as sp, symflow as sf, solvers as sv
        >>> w = sp.Symbol("w")
        >>> run = sv.run_sgd(sf.SGD(batch_size=1), [(w - 1)**2 / 2, (w + 1)**2 / 2], [w],
        ...                  x0=[0.0], lr=0.1, n_steps=200, n_paths=20000, key=0)
        >>> round(float(run.ys[:, -1, 0].var()), 2)  # exact: h/(2-h) = 0.0526
        0.05

    Heavy ball (state :math:`(w, v_w)`); the noise is amplified by :math:`1/(1-\beta)`::

        >>> run = sv.run_sgd(sf.HeavyBall(beta=0.5), [(w - 1)**2 / 2, (w + 1)**2 / 2], [w],
        ...                  x0=[0.0], lr=0.05, n_steps=400, n_paths=20000, key=0,
        ...                  batch_size=1)
        >>> run.info["state"], round(float(run.ys[:, -1, 0].var()), 2)  # SME: h/(2(1-beta))
        (('w', 'v_w'), 0.05)
    """
    batch, replacement = _batch_setup(optimizer, batch_size, replacement, batches)
    ds = as_dataset(dataset, losses, params)
    if not replacement and batch > ds.n_samples:
        raise SymflowError(f"batch_size={batch} exceeds the N={ds.n_samples} samples; "
                           "without replacement a batch holds at most N samples")
    key = as_key(key)
    lr, n_steps = check_lr(lr), check_steps(n_steps, least=1)
    theta = check_start(x0, n_paths, len(ds.params))
    check_on_divergence(on_divergence)
    stats = stats_spec(stats, phi)
    phi_fn = phi_function(phi, ds.params)
    save_idx = _save_steps(save_steps, n_steps)
    cds = compiled_dataset(ds)
    hv = hyper_vector(cds.hyper, hyper)
    if isinstance(optimizer, SGD) and batches is None and memory0 is None:
        cache_key = ("sgd", batch, replacement)
        factory, start, args = _sgd_factory(cds, batch, replacement), theta, \
            (jnp.float64(lr), hv)
        names = tuple(map(str, ds.params))
    else:
        rule = minibatch_rule(optimizer, tuple(ds.params))
        extra = jnp.concatenate([jnp.array([lr]), hyper_vector(rule.hyper, hyper)])
        start = _start_state(rule, theta, memory0, extra)
        fixed = batches is not None
        seq = _check_batches(batches, n_steps, ds.n_samples) if fixed else jnp.zeros((1, 1),
                                                                                     jnp.int32)
        cache_key = ("rule", rule, batch, replacement, fixed)
        factory = _rule_factory(cds, rule, batch, replacement, fixed)
        args, names = (extra, hv, seq), rule.names
    what = "SGD" if isinstance(optimizer, SGD) else optimizer.label
    t0 = time.perf_counter()
    ys, st, fb = run_ensemble(cds.kernels, cache_key, factory, start, key, save_idx, n_steps,
                              args, stats, phi_fn, progress, chunk_size, devices,
                              f"{what} paths", track_divergence, max_abs)
    first_time = np.where(fb >= 0, fb * lr, np.nan)
    diverged = ~np.isnan(first_time)
    info = {"method": optimizer.label, "dt": lr, "n_steps": n_steps, "batch_size": batch,
            "replacement": replacement, "state": names,
            "chunks": chunk_count(int(n_paths), chunk_size),
            "devices": mesh_sharding(devices)[1], "seconds": time.perf_counter() - t0}
    if diverged.any() and on_divergence == "raise":
        raise divergence_error(first_time, int(n_paths), f"{what} runs",
                               f"Lower the learning rate (lr={lr}, t = n*lr)", max_abs)
    return _ensemble_at_caller(save_idx * lr, ys, st, diverged, first_time, info)


__all__ = ["CompiledDataset", "compiled_dataset", "draw_batches", "floyd_sample", "run_sgd"]
