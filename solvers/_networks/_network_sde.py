r"""Ensembles of the network SME: jit-compiled, sharded over devices, with streaming statistics.

The SME of :func:`solvers.network_sme`, :math:`d\Theta = b(\Theta)\,dt + \sqrt{h c}\,G(\Theta)
\,dW`, is advanced with ``substeps`` steps of :math:`\Delta t = h/\text{substeps}` per
learning-rate step, so its save times are those of SGD, :math:`t = nh`:

* ``"euler"`` (Euler–Maruyama, weak order 1): :math:`X' = X + b(X)\Delta t + \sqrt{hc}\,G(X)
  \Delta W`;
* ``"heun"`` (drift predictor–corrector, noise at the left point, the default at order 2):
  :math:`\tilde X = X + b\Delta t + \sigma\Delta W`, :math:`X' = X + \tfrac12(b(X) +
  b(\tilde X))\Delta t + \sigma\Delta W`.

As the noise is :math:`O(\sqrt h)`, the scheme's own weak error is :math:`O(\Delta t)` for
Euler and :math:`O(\Delta t^2 + h\,\Delta t)` for Heun (Kloeden & Platen, *Numerical Solution
of SDEs*, 1992, ch. 14–15): at ``substeps=1`` the same order in :math:`h` as the SME of order 1
and 2 respectively.

The SMEs of momentum and adaptive methods
(:class:`~solvers._networks._network_sme_memory.MemoryNetworkSME`) run the same way on their
whole state ``(params, memory...)`` (one flat column per path), with the time per optimizer
step of their scaling (:math:`h`, :math:`\sqrt h` or :math:`h^2`) and Euler–Maruyama (order 1).

Each step draws :math:`S` standard normals per path (``S = N``, or the fresh subset size)
and adds :math:`\sqrt{hc}\,G_Sz\sqrt{\Delta t}` by one reverse pass
(:meth:`NetworkSME.noise_at`); the :math:`d\times d` covariance is never formed. The
ensemble is one state ``(d, n_paths)`` in ``lax.fori_loop``, run in chunks sharded over
``jax.devices()`` along the path axis by :func:`solvers._sde._ensemble.run_ensemble`, with the
watched functions of :mod:`solvers._networks._network_stats` streamed at the save times and a
progress bar for long runs.

Example::

    >>> import jax.numpy as jnp, symflow as sf, solvers as sv
    >>> loss = lambda p, batch: 0.5 * jnp.mean((batch[0] * p - batch[1]) ** 2)
    >>> data = (jnp.array([1.0, 2.0, -1.0]), jnp.array([1.0, 2.5, -0.5]))
    >>> sme = sv.network_sme(sf.SGD(batch_size=1), loss, jnp.array(0.0), data)
    >>> ens = sv.simulate_network_sde(sme, lr=0.1, n_steps=50, n_paths=2000, key=0)
    >>> mean, std = ens["loss"]
    >>> round(float(mean[-1]), 1)     # the mean loss at t = 5, as SGD's (sv.run_sgd)
    0.1
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from symflow import SymflowError

from .._ode._iterate import check_lr
from .._sde._ensemble import DEFAULT_CHUNK
from .._sde._normals import normal_rows
from .._sde._sde import euler_or_heun
from ._network_data import NetworkData, draw_batches
from ._network_sme import NetworkSME
from ._network_sme_memory import MemoryNetworkSME
from ._network_stats import NetworkEnsemble, Observer, check_count, run_network_ensemble

SCHEMES = ("euler", "heun")
#: ``fold_in`` tag of the subset draws, apart from the normals of the same step.
_SUBSET_TAG = 0x5EED


def _flat(tree):
    return ravel_pytree(tree)[0]


def _sde_factory(sme: NetworkSME, unravel, solver: str):
    n_samples, S = sme.data.n_samples, sme.noise_samples
    subset = S < n_samples

    def factory(n, constrain):
        drift = jax.vmap(lambda col, hw: _flat(sme.drift_at(unravel(col), hw)),
                         in_axes=(1, None), out_axes=1)
        noise = jax.vmap(lambda col, rows, z, lr: _flat(sme.noise_at(unravel(col), rows, z, lr)),
                         in_axes=(1, 0, 1, None), out_axes=1)

        def step(x, k, ckey, args):
            lr, dt, hw = args
            z = constrain(normal_rows(ckey, k, n, S))   # (S, n)
            if subset:
                skey = jax.random.fold_in(jax.random.fold_in(ckey, k), _SUBSET_TAG)
                rows = sme.data.batch(draw_batches(skey, n, n_samples, S))
            else:
                rows = jax.tree_util.tree_map(
                    lambda a: jnp.broadcast_to(a, (n,) + a.shape), sme.data.arrays)
            dw = noise(x, rows, z, lr) * jnp.sqrt(dt)
            return euler_or_heun(x, lambda y: drift(y, hw), dt, dw, solver)

        return step

    return factory


def _memory_factory(sme: MemoryNetworkSME, unravel, solver: str):
    n_samples = sme.data.n_samples

    def factory(n, constrain):
        drift = jax.vmap(lambda col, coef: _flat(sme.drift_at(unravel(col), coef)),
                         in_axes=(1, None), out_axes=1)
        noise = jax.vmap(lambda col, z, coef: _flat(sme.noise_at(unravel(col), sme.data.arrays,
                                                                   z, coef)),
                         in_axes=(1, 1, None), out_axes=1)

        def estimated(col, z, coef, dt):
            state = unravel(col)
            gz = sme.sample_gz(state[0], sme.data.arrays, z)
            diag = jax.tree_util.tree_map(jnp.square, gz)
            dw = _flat(sme._noise_from(state, gz, coef)) * jnp.sqrt(dt)
            b = lambda y: _flat(sme.drift_at(unravel(y), coef, diag))
            return euler_or_heun(col, b, dt, dw, solver)

        estimated_all = jax.vmap(estimated, in_axes=(1, 1, None, None), out_axes=1)

        def step(x, k, ckey, args):
            coef, dt = args
            z = constrain(normal_rows(ckey, k, n, n_samples))   # (N, n)
            if sme.diag_estimate:
                return estimated_all(x, z, coef, dt)
            dw = noise(x, z, coef) * jnp.sqrt(dt)
            return euler_or_heun(x, lambda y: drift(y, coef), dt, dw, solver)

        return step

    return factory


def _simulate_memory(sme, params0, lr, n_steps, n_paths, substeps, solver, observe, test,
                     sharpness_iters, **run):
    state0 = sme.start() if params0 is None else sme.prepare_state(params0)
    flat, unravel = ravel_pytree(state0)
    unravel_params = ravel_pytree(state0[0])[1]
    test_data = None if test is None else NetworkData(sme.loss_fn, test, "test").arrays
    observer = Observer(observe, sme.loss_fn, sme.data, test_data, unravel_params,
                        sharpness_iters)
    start = np.broadcast_to(np.asarray(flat), (n_paths, flat.size))
    dt = sme.time_step(lr) / substeps
    if not bool(jnp.all(jnp.isfinite(flat))) or not bool(jnp.all(jnp.isfinite(
            _flat(sme.drift_at(state0, sme.coefficients(lr)))))):
        raise SymflowError(
            f"the drift of {sme!r} is not finite at the start state (with bias correction "
            "the SDE is singular at beta_n = 1, a real run's start): pass params0=(params, "
            "memory...) a little later on, or build the optimizer with bias_correction=False")
    ens = run_network_ensemble(
        sme.kernels, ("sde", solver), _memory_factory(sme, unravel, solver), start, observer,
        sme.dim, key=run.pop("key"), n_steps=n_steps, substeps=substeps, lr=lr,
        args=(sme.coefficients(lr), jnp.float64(dt)),
        method=f"SME order 1 of {sme.optimizer!r} ({solver}, {sme.time})", **run)
    ens.info["dt"] = dt   # in the SDE's own time; ts stay t = n*h as SGD's
    return ens


def simulate_network_sde(sme, params0=None, *, lr, n_steps, n_paths=64, key=0, substeps=1,
                         solver=None, observe=("loss",), test=None, sharpness_iters=20,
                         save_every=None, chunk_size=DEFAULT_CHUNK, devices=None,
                         progress=None, on_divergence="raise", max_abs=1e50) -> NetworkEnsemble:
    r"""Simulate ``n_paths`` paths of a :class:`~solvers.NetworkSME` to :math:`t = n_{steps}h`.

    Parameters
    ----------
    sme : NetworkSME or MemoryNetworkSME
        From :func:`solvers.network_sme` (SGD; momentum, Nesterov, RMSprop, Adam).
    params0 : pytree or model, optional
        The start of every path (default: the ``params`` the SME was built with). For an
        SME on the whole state, the tuple ``(params, memory...)``, or the parameters alone
        with the memory a real run starts from.
    lr : float
        The learning rate :math:`h` of the optimizer it models.
    n_steps : int
        The number of optimizer steps it stands for. The SDE's own time per step is
        :math:`h` (SGD, fixed momentum), :math:`\sqrt h` (slow momentum, :math:`s = n\sqrt
        h`) or :math:`h^2` (Malladi et al.'s scaling); the save times ``ts`` are
        :math:`nh` in every case, as those of :func:`solvers.run_sgd`.
    substeps : int
        SDE steps per optimizer step (:math:`\Delta t` = its time per step / ``substeps``).
    solver : "euler" or "heun"
        Default: Euler at order 1, Heun at order 2.
    observe, test, sharpness_iters
        The watched functions (:mod:`solvers._networks._network_stats`): built-in names
        ``"loss"``, ``"test_loss"`` (on ``test``), ``"grad_norm"``, ``"sharpness"``, or a
        dict of JAX functions of the parameters.
    save_every : int, optional
        Save every so many learning-rate steps (default: at the end only).
    key, chunk_size, devices, progress, on_divergence, max_abs
        As in :func:`solvers.simulate_sde`; the path axis is sharded over ``devices``.

    Returns
    -------
    NetworkEnsemble
        Mean and spread of each watched function at the save times :math:`t = nh`.
    """
    if not isinstance(sme, (NetworkSME, MemoryNetworkSME)):
        raise SymflowError(f"got {type(sme).__name__}; pass the NetworkSME of "
                           "sv.network_sme(sf.SGD(batch_size=B), loss_fn, params, dataset)")
    solver = ("euler" if sme.order == 1 else "heun") if solver is None else solver
    if solver not in SCHEMES:
        raise SymflowError(f"got solver={solver!r}; choose one of {SCHEMES}")
    lr = check_lr(lr)
    n_steps = check_count(n_steps, "n_steps")
    n_paths = check_count(n_paths, "n_paths")
    substeps = check_count(substeps, "substeps")
    if isinstance(sme, MemoryNetworkSME):
        return _simulate_memory(sme, params0, lr, n_steps, n_paths, substeps, solver, observe,
                                test, sharpness_iters, key=key, save_every=save_every,
                                chunk_size=chunk_size, devices=devices, progress=progress,
                                on_divergence=on_divergence, max_abs=max_abs)
    params0 = sme.params0 if params0 is None else sme.prepare(params0)
    flat, unravel = ravel_pytree(params0)
    if flat.size != sme.dim:
        raise SymflowError(f"got params0 with {flat.size} parameters; the SME has {sme.dim}")
    test_data = None
    if test is not None:
        test_data = NetworkData(sme.loss_fn, test, "test").arrays
    observer = Observer(observe, sme.loss_fn, sme.data, test_data, unravel, sharpness_iters)
    start = np.broadcast_to(np.asarray(flat), (n_paths, sme.dim))
    dt = lr / substeps
    args = (jnp.float64(lr), jnp.float64(dt), sme.field.weights(lr))
    return run_network_ensemble(
        sme.kernels, ("sde", solver), _sde_factory(sme, unravel, solver), start, observer,
        sme.dim, key=key, n_steps=n_steps, substeps=substeps, save_every=save_every, lr=lr,
        args=args, chunk_size=chunk_size, devices=devices, progress=progress,
        on_divergence=on_divergence, method=f"SME order {sme.order} ({solver})",
        max_abs=max_abs)


__all__ = ["simulate_network_sde"]
