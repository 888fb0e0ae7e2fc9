r"""Ensembles of real minibatch training of a JAX model, and SVAG, the check of its SDE.

Each path trains the same starting model with its own batch order: at step :math:`n` path
:math:`j` draws :math:`B` sample indices (with or without replacement) from
``fold_in(chunk_key, n)``, so a path's batches do not depend on the number of paths or
devices, and applies the optimizer's update rule, parsed once from ``symflow``'s symbolic map
and applied to pytrees: linear rules as vector-linear forms
(:mod:`solvers._networks._network_run`: SGD, heavy ball, Nesterov, ``sf.Custom`` gradient
rules), element-wise rules as their one-coordinate map applied leaf by leaf
(:mod:`solvers._networks._network_elementwise`: Adam, RMSprop, AdaGrad, element-wise
``sf.Custom`` rules). Every gradient of a step uses that step's minibatch. The
ensemble runs as one state ``(D, n_paths)`` (parameters and memory), chunked and sharded
over ``jax.devices()``, with the watched functions of
:mod:`solvers._networks._network_stats` streamed at the save times.

**SVAG** (stochastic variance amplified gradient; Li, Malladi & Arora, *On the validity of
modeling SGD with stochastic differential equations*, NeurIPS 2021, eq. (3) and Theorem 3.2).
With two independent minibatch gradients :math:`g_1, g_2` per step and
:math:`r_{1,2} = \tfrac12(1 \pm \sqrt{2\ell - 1})`,

.. math::

    \theta_{k+1} = \theta_k - \frac h\ell\,\bigl(r_1 g_1 + r_2 g_2\bigr),
    \qquad k = 0, \dots, \ell n - 1 .

The step has mean :math:`-\frac h\ell\nabla L` and covariance :math:`\frac{h^2}{\ell^2}
(r_1^2 + r_2^2)\,c_{N,B}\Sigma_1 = \frac{h^2}\ell\,c_{N,B}\Sigma_1`: over :math:`t = nh` the
same drift and diffusion as the order-1 SME, with steps :math:`\ell` times smaller. SVAG
converges weakly to the SME as :math:`\ell\to\infty` (error :math:`O(1/\ell)`), which makes it
an independent check of :func:`solvers.simulate_network_sde`; ``svag=1`` is SGD itself.

Example::

    >>> import jax.numpy as jnp, symflow as sf, solvers as sv
    >>> loss = lambda p, batch: 0.5 * jnp.mean((batch[0] * p - batch[1]) ** 2)
    >>> data = (jnp.array([1.0, 2.0, -1.0]), jnp.array([1.0, 2.5, -0.5]))
    >>> ens = sv.run_sgd(sf.SGD(batch_size=1), loss, jnp.array(0.0), data, lr=0.1,
    ...                  n_steps=50, n_paths=2000, key=0)
    >>> round(float(ens["loss"][0][-1]), 1)   # mean loss at t = 5, as the SME's
    0.1
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp
from jax.flatten_util import ravel_pytree

import symflow as sf
from symflow import SymflowError
from symflow._trees._linear_rule import linear_rule

from .._ode._iterate import check_lr
from .._sde._ensemble import DEFAULT_CHUNK
from .._sde._sgd_run import run_sgd as run_dataset_sgd
from ._network_data import NetworkData, batch_settings, check_batch_size, draw_batches
from ._network_elementwise import (
    ElementwiseOptimizer,
    NotElementwiseError,
    elementwise_optimizer,
)
from ._network_run import network_optimizer
from ._network_stats import NetworkEnsemble, Observer, check_count, run_network_ensemble
from ._tree_eval import check_params, split_model

#: ``fold_in`` tag of SVAG's second minibatch.
_SECOND_BATCH = 0x5A6


def _svag_weights(svag) -> tuple:
    if isinstance(svag, bool) or not isinstance(svag, (int, np.integer)) or svag < 1:
        raise SymflowError(f"got svag={svag!r}; the amplification l is a whole number >= 1 "
                           "(1: plain SGD)")
    root = math.sqrt(2 * svag - 1)
    return (1 + root) / 2, (1 - root) / 2


def _sgd_factory(run, data, unravel, batch_size, replacement):
    n_samples = data.n_samples

    def factory(n, constrain):
        def one(col, rows, lr):
            return ravel_pytree(run.step(unravel(col), rows, lr))[0]

        step_all = jax.vmap(one, in_axes=(1, 0, None), out_axes=1)

        def step(x, k, ckey, args):
            (lr,) = args
            idx = draw_batches(jax.random.fold_in(ckey, k), n, n_samples, batch_size,
                               replacement)
            return step_all(x, data.batch(idx), lr)

        return step

    return factory


def _svag_factory(data, unravel, batch_size, replacement, r1, r2):
    n_samples = data.n_samples
    grad = jax.grad(data.loss_fn)

    def factory(n, constrain):
        def one(col, rows1, rows2, step_size):
            p = unravel(col)
            g = r1 * ravel_pytree(grad(p, rows1))[0] + r2 * ravel_pytree(grad(p, rows2))[0]
            return col - step_size * g

        step_all = jax.vmap(one, in_axes=(1, 0, 0, None), out_axes=1)

        def step(x, k, ckey, args):
            (step_size,) = args
            key = jax.random.fold_in(ckey, k)
            idx1 = draw_batches(key, n, n_samples, batch_size, replacement)
            idx2 = draw_batches(jax.random.fold_in(key, _SECOND_BATCH), n, n_samples,
                                batch_size, replacement)
            return step_all(x, data.batch(idx1), data.batch(idx2), step_size)

        return step

    return factory


def _runner(optimizer, loss_fn, hyper):
    """The compiled update rule: its vector-linear form when it has one (GD, momentum,
    Nesterov, linear ``sf.Custom`` rules), else its element-wise form (Adam, RMSprop, ...)."""
    try:
        linear_rule(optimizer)
    except SymflowError as linear:
        try:
            return elementwise_optimizer(optimizer, loss_fn, hyper)
        except NotElementwiseError as err:
            raise SymflowError(
                f"run_sgd on a network applies the optimizer's parsed update rule, and "
                f"{optimizer!r} has none: it is neither a linear rule ({linear}) nor an "
                f"element-wise one ({err}). Network ensembles run SGD, heavy ball, Nesterov, "
                "Adam, RMSprop, AdaGrad and sf.Custom rules that are linear in the gradients "
                "or act on each coordinate alone") from err
    return network_optimizer(optimizer, loss_fn, hyper)


_KERNELS: dict = {}
_DATA: dict = {}


def _data(loss_fn, dataset) -> NetworkData:
    """One :class:`NetworkData` per loss and dataset arrays (by identity: the arrays are
    kept alive here), so that repeated runs reuse their compiled kernels."""
    leaves, treedef = jax.tree_util.tree_flatten(dataset)
    key = (loss_fn, treedef, tuple(id(leaf) for leaf in leaves))
    if key not in _DATA:
        if len(_DATA) >= 16:
            _DATA.pop(next(iter(_DATA)))
        _DATA[key] = (NetworkData(loss_fn, dataset), leaves)
    return _DATA[key][0]


def run_network_sgd(optimizer, loss_fn, params, dataset, *, lr, n_steps, n_paths=64, key=0,
                    batch_size=None, replacement=None, hyper=None, svag=1,
                    observe=("loss",), test=None, sharpness_iters=20, save_every=None,
                    chunk_size=DEFAULT_CHUNK, devices=None, progress=None,
                    on_divergence="raise", max_abs=1e50) -> NetworkEnsemble:
    """Ensembles of real minibatch training of ``loss_fn(params, batch)`` (see the module
    docstring and :func:`solvers.run_sgd`)."""
    if isinstance(optimizer, type) or not isinstance(optimizer, sf.AbstractOptimizer):
        raise SymflowError(f"got optimizer={optimizer!r}; pass an instance such as "
                           "sf.SGD(batch_size=8) or sf.HeavyBall(beta=0.9) with batch_size=8")
    if not callable(loss_fn):
        raise SymflowError(f"got loss_fn={loss_fn!r}; pass loss_fn(params, batch)")
    batch_size, replacement = batch_settings(optimizer, batch_size, replacement)
    r1, r2 = _svag_weights(svag)
    if svag > 1 and not isinstance(optimizer, sf.SGD):
        raise SymflowError(f"got svag={svag} with {optimizer!r}; SVAG amplifies the noise of "
                           "plain SGD: pass sf.SGD(batch_size=B)")
    lr = check_lr(lr)
    n_steps, n_paths = check_count(n_steps, "n_steps"), check_count(n_paths, "n_paths")
    loss_fn, arrays = split_model(loss_fn, params)
    params = check_params(arrays)
    data = _data(loss_fn, dataset)
    batch_size = check_batch_size(batch_size, data.n_samples)
    data.check(params, batch_size)
    test_data = None if test is None else NetworkData(loss_fn, test, "test").arrays
    run = _runner(optimizer, loss_fn, hyper)
    first = data.batch(jnp.arange(batch_size))
    state0 = run.start(params, first, lr=lr) if isinstance(run, ElementwiseOptimizer) else \
        run.start(params, first)
    flat, unravel_state = ravel_pytree(state0)
    d = int(ravel_pytree(params)[0].size)
    unravel_params = ravel_pytree(params)[1]
    observer = Observer(observe, loss_fn, data, test_data, unravel_params, sharpness_iters)
    start = np.broadcast_to(np.asarray(flat), (n_paths, flat.size))
    if svag == 1:
        factory = _sgd_factory(run, data, unravel_state, batch_size, replacement)
        cache_key = ("sgd", run, id(data.arrays), batch_size, replacement)
        args, method = (jnp.float64(lr),), optimizer.label
    else:
        factory = _svag_factory(data, unravel_params, batch_size, replacement, r1, r2)
        cache_key = ("svag", loss_fn, id(data.arrays), batch_size, replacement, svag)
        args, method = (jnp.float64(lr / svag),), f"SVAG(l={svag}) of {optimizer.label}"
    kernels = _KERNELS.setdefault(cache_key, {})
    return run_network_ensemble(
        kernels, cache_key, factory, start, observer, d, key=key, n_steps=n_steps,
        substeps=int(svag), save_every=save_every, lr=lr, args=args, chunk_size=chunk_size,
        devices=devices, progress=progress, on_divergence=on_divergence, method=method,
        max_abs=max_abs)


def run_sgd(optimizer, losses=None, params=None, dataset=None, **kwargs):
    r"""Ensembles of real minibatch SGD: on a symbolic dataset, or on a JAX model.

    * **Symbolic** (``losses`` a list of SymPy losses, or a :class:`symflow.Dataset`): see
      :func:`solvers._sde._sgd_run.run_sgd` (``x0=``, ``lr=``, ``n_steps=``, ...); returns an
      :class:`~solvers.Ensemble`.
    * **A network** (``losses`` a function ``loss_fn(params, batch)``, ``params`` a pytree
      or an equinox model, ``dataset`` a pytree of arrays with a leading sample axis):
      ``run_sgd(optimizer, loss_fn, params, dataset, lr=..., n_steps=..., n_paths=64,
      key=0, batch_size=None, replacement=None, hyper=None, svag=1, observe=("loss",),
      test=None, sharpness_iters=20, save_every=None, ...)``. ``optimizer`` is
      ``sf.SGD(batch_size=B)``, or with ``batch_size=B`` any rule
      :func:`solvers.network_optimizer` runs (heavy ball, Nesterov, ``sf.Custom``) or an
      element-wise rule (``sf.Adam``, ``sf.RMSprop``, ``sf.AdaGrad``: optax's steps, memory
      kept as pytrees like ``params``); ``hyper={name: value}`` gives values of symbolic
      hyperparameters; ``svag=l`` runs SVAG, the
      check of the SDE (module :mod:`solvers._networks._network_sgd`). Returns a
      :class:`~solvers.NetworkEnsemble`: mean and spread of the watched functions at
      :math:`t = nh`.

    Example::

        >>> import jax.numpy as jnp, symflow as sf, solvers as sv
        >>> loss = lambda p, batch: 0.5 * jnp.mean((batch[0] @ p["w"] - batch[1]) ** 2)
        >>> x = jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
        >>> ens = sv.run_sgd(sf.HeavyBall(beta=0.5), loss, {"w": jnp.zeros(2)},
        ...                  (x, jnp.array([1.0, 1.0, 2.0])), batch_size=2, lr=0.1,
        ...                  n_steps=200, n_paths=8, observe=("loss", "grad_norm"))
        >>> ens.mean[-1].round(6).tolist()    # the data are fit exactly: no noise at the end
        [0.0, 0.0]
    """
    if callable(losses) and not isinstance(losses, (sp.Basic, sf.Dataset)):
        return run_network_sgd(optimizer, losses, params, dataset, **kwargs)
    return run_dataset_sgd(optimizer, losses, params, dataset, **kwargs)


__all__ = ["run_network_sgd", "run_sgd"]
