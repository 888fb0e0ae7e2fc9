r"""Streaming statistics of ensembles of network runs: what is watched, and the result.

An ensemble of network runs (real minibatch SGD, :func:`solvers.run_sgd`; or paths of the
SME, :func:`solvers.simulate_network_sde`) keeps no trajectories: at each save time it
keeps, over the paths, the sums of :math:`\varphi_k(\theta)` and :math:`\varphi_k(\theta)^2`
for each watched function :math:`\varphi_k`, hence the mean and the spread, through the
streaming statistics of :func:`solvers._sde._ensemble.run_ensemble` (chunks of paths,
sharded over ``jax.devices()``).

Watched functions (``observe=``) are named built-ins, or the user's own JAX functions of the
model (``{"name": f}`` with ``f(params) -> scalar``, ``params`` exactly as ``loss_fn`` takes
them):

* ``"loss"``: :math:`L(\theta)` on the training set; ``"test_loss"``: ``loss_fn`` on ``test=``;
* ``"grad_norm"``: :math:`\lVert\nabla L(\theta)\rVert`;
* ``"sharpness"``: :math:`\lambda_{\max}(\nabla^2L)` by ``sharpness_iters`` steps of power
  iteration on Hessian-vector products from a fixed start (as :func:`solvers.sharpness`).

Example::

    >>> import jax.numpy as jnp
    >>> from solvers._networks._network_data import NetworkData
    >>> loss = lambda p, batch: 0.5 * jnp.mean((batch[0] * p - batch[1]) ** 2)
    >>> data = NetworkData(loss, (jnp.array([1.0, 2.0]), jnp.array([1.0, 0.0])))
    >>> watch = Observer(("loss", "grad_norm"), loss, data, None, None, 10)
    >>> [round(float(v), 4) for v in watch.values(jnp.array(1.0))]    # L, |grad L|
    [1.0, 2.0]
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from symflow import SymflowError

from .._sde._ensemble import (
    DEFAULT_CHUNK,
    as_key,
    check_on_divergence,
    divergence_error,
    mesh_sharding,
    run_ensemble,
)
from ._tree_eval import BoundLoss

BUILT_IN = ("loss", "test_loss", "grad_norm", "sharpness")


class Observer:
    """The watched functions of a run, on the parameter arrays (hashable: shares kernels)."""

    def __init__(self, observe, loss_fn, data, test, unravel, sharpness_iters=20):
        if isinstance(observe, str):
            observe = (observe,)
        if isinstance(observe, dict):
            items = list(observe.items())
        else:
            try:
                items = [(name, name) for name in observe]
            except TypeError:
                raise SymflowError(f"got observe={observe!r}; give names from {BUILT_IN} "
                                   "or a dict {name: function(params) -> scalar}") from None
        if not items:
            raise SymflowError("got observe=(); watch at least one function, e.g. 'loss'")
        if isinstance(sharpness_iters, bool) or not isinstance(sharpness_iters, int) or \
                sharpness_iters < 1:
            raise SymflowError(f"got sharpness_iters={sharpness_iters!r}; give a positive "
                               "number of power iterations")
        self.names, self._fns = [], []
        for name, what in items:
            if isinstance(what, str):
                if what not in BUILT_IN:
                    raise SymflowError(f"got observe entry {what!r}; the built-in names are "
                                       f"{BUILT_IN} (or pass a dict of functions)")
                if what == "test_loss" and test is None:
                    raise SymflowError("observe has 'test_loss' but no test set: pass "
                                       "test=(x_test, y_test)")
            elif not callable(what):
                raise SymflowError(f"got observe[{name!r}]={what!r}; give a JAX function of "
                                   "the parameters returning a scalar")
            self.names.append(str(name))
            self._fns.append(what)
        self.loss_fn, self.data, self.test = loss_fn, data, test
        self.unravel, self.iters = unravel, sharpness_iters
        test_ids = tuple(id(leaf) for leaf in jax.tree_util.tree_leaves(test))
        self._key = (tuple(self.names), tuple(self._fns), loss_fn, id(data), test_ids,
                     self.iters)

    def _model(self, p):
        return self.loss_fn.model(p) if isinstance(self.loss_fn, BoundLoss) else p

    def _sharpness(self, p):
        train = self.data.arrays
        flat, unravel = ravel_pytree(p)
        grad = lambda q: ravel_pytree(jax.grad(self.loss_fn)(unravel(q), train))[0]
        hvp = lambda v: jax.jvp(grad, (flat,), (v,))[1]
        v0 = jnp.asarray(np.random.default_rng(0).normal(size=flat.size))

        def body(_, v):
            w = hvp(v)
            norm = jnp.linalg.norm(w)
            return w / jnp.where(norm > 0, norm, 1.0)

        v = jax.lax.fori_loop(0, self.iters, body, v0 / jnp.linalg.norm(v0))
        return v @ hvp(v)

    def value(self, what, p):
        train = self.data.arrays
        if what == "loss":
            return self.loss_fn(p, train)
        if what == "test_loss":
            return self.loss_fn(p, self.test)
        if what == "grad_norm":
            return jnp.linalg.norm(ravel_pytree(jax.grad(self.loss_fn)(p, train))[0])
        if what == "sharpness":
            return self._sharpness(p)
        return jnp.asarray(what(self._model(p)), dtype=jnp.float64).reshape(())

    def values(self, p):
        """The watched values at the parameter arrays ``p``, shape ``(k,)``."""
        return jnp.stack([self.value(what, p) for what in self._fns])

    def phi(self, d):
        """``phi(x (D, n)) -> (2k, n)``: values and squares at each column's first ``d`` entries."""
        def one(col):
            vals = self.values(self.unravel(col[:d]))
            return jnp.concatenate([vals, vals ** 2])

        return _Phi(jax.vmap(one, in_axes=1, out_axes=1), self._key + (d,))


class _Phi:
    def __init__(self, fn, key):
        self.fn, self.key = fn, key

    def __call__(self, x):
        return self.fn(x)

    def __eq__(self, other):
        return isinstance(other, _Phi) and self.key == other.key

    def __hash__(self):
        return hash(self.key)


class NetworkEnsemble:
    r"""Mean and spread of watched functions over an ensemble of network runs.

    Attributes
    ----------
    ts : ndarray (n_save,)
        Save times :math:`t = nh`.
    names : list of str
        The watched functions.
    mean, std : ndarray (n_save, k)
        Over the paths still finite at each save time.
    count : ndarray (n_save,)
        Paths still finite.
    param_mean : ndarray (n_save, d)
        The mean parameter vector (``ravel_pytree`` order).
    diverged : ndarray of bool (n_paths,)
    info : dict
        ``method``, ``lr``, ``dt``, ``n_steps``, ``n_paths``, ``devices``, ``seconds``.
    """

    def __init__(self, ts, names, stats, diverged, info):
        k = len(names)
        phi = stats["phi"]
        self.ts, self.names, self.info = ts, list(names), info
        self.count = stats["count"]
        self.mean = phi[:, :k]
        self.std = np.sqrt(np.maximum(phi[:, k:] - self.mean ** 2, 0.0))
        self.param_mean = stats["mean"][:, : info["dim"]]
        self.diverged = diverged

    def __getitem__(self, name):
        """``(mean, std)`` of one watched function over the save times."""
        if name not in self.names:
            raise SymflowError(f"got {name!r}; this ensemble watched {self.names}")
        j = self.names.index(name)
        return self.mean[:, j], self.std[:, j]

    def __str__(self):
        i = self.info
        head = (f"{i['method']}: {i['n_paths']} paths, lr={i['lr']:g}, dt={i['dt']:.3g}, "
                f"{i['n_steps']} steps, {i['devices']} device(s), {i['seconds']:.2f} s")
        if self.diverged.any():
            head += f", {self.diverged.mean():.2%} diverged"
        rows = [f"  t={self.ts[-1]:g}: " + ", ".join(
            f"{n} {m:.5g} +- {s:.3g}" for n, m, s in zip(self.names, self.mean[-1],
                                                          self.std[-1]))]
        return "\n".join([head] + rows)

    __repr__ = __str__


def check_count(value, what, least=1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
        raise SymflowError(f"got {what}={value!r}; give a whole number >= {least}")
    return int(value)


def save_steps(n_steps, save_every) -> np.ndarray:
    """The steps ``save_every, 2 save_every, ..., n_steps`` (``n_steps`` a multiple)."""
    if save_every is None:
        return np.array([n_steps])
    every = check_count(save_every, "save_every")
    if n_steps % every:
        raise SymflowError(f"got save_every={every} with n_steps={n_steps}; n_steps must be "
                           "a multiple of save_every")
    return np.arange(every, n_steps + 1, every)


#: Show a progress bar by default from this much work (paths x steps x parameters).
PROGRESS_WORK = 10**10


def run_network_ensemble(cache, cache_key, factory, start, observer, d, *, key, n_steps,
                         substeps, save_every, lr, args, chunk_size=DEFAULT_CHUNK,
                         devices=None, progress=None, on_divergence="raise", method="",
                         max_abs=1e50) -> NetworkEnsemble:
    """Run the paths ``start (n_paths, D)`` with ``factory``'s step (``substeps`` per
    learning-rate step) and return the :class:`NetworkEnsemble` of ``observer``'s values."""
    check_on_divergence(on_divergence)
    n_paths = start.shape[0]
    idx = save_steps(n_steps, save_every)
    if progress is None:
        progress = n_paths * n_steps * substeps * start.shape[1] >= PROGRESS_WORK
    t0 = time.perf_counter()
    _, stats, first_bad = run_ensemble(
        cache, cache_key, factory, start, as_key(key), idx * substeps, n_steps * substeps,
        args, ("mean",), observer.phi(d), progress, chunk_size, devices, method, True, max_abs)
    first_time = np.where(first_bad >= 0, first_bad * lr / substeps, np.nan)
    diverged = ~np.isnan(first_time)
    if diverged.any() and on_divergence == "raise":
        raise divergence_error(first_time, n_paths, f"{method} paths",
                               f"Lower the learning rate (lr={lr}, t = n*lr)", max_abs)
    info = {"method": method, "lr": lr, "dt": lr / substeps, "n_steps": n_steps,
            "n_paths": n_paths, "devices": mesh_sharding(devices)[1], "dim": d,
            "seconds": time.perf_counter() - t0}
    return NetworkEnsemble(idx * lr, observer.names, stats, diverged, info)


__all__ = ["BUILT_IN", "NetworkEnsemble", "Observer", "run_network_ensemble", "save_steps"]
