r"""The order of coordinate-free modified flows, checked on a neural network.

For each learning rate :math:`h` on a ladder, run the optimizer on ``loss_fn(params, batch)``
(full batch) for :math:`n = T/h` steps, and solve the order-:math:`p` modified flow, its
terms evaluated by nested jvp (:mod:`solvers._networks._tree_eval`), with Diffrax to :math:`t = T`.
A correct truncation leaves a global error :math:`O(h^{p+1})`: log-log slope :math:`p + 1`.
Optimizers with memory start on the invariant manifold :math:`M_h(\theta_0)`, evaluated on
the network the same way; the report's ``offsets`` show what a zero start leaves behind.
The result is the :class:`~solvers.VerifyReport` of :func:`solvers.verify_order`.

Example::

    >>> import symflow as sf, solvers as sv
    >>> params = sv.mlp_init([2, 8, 1], seed=0)
    >>> rep = sv.verify_order_network(sf.GD(), sv.mse_loss, params, sv.toy_regression(16),
    ...                               lrs=[0.2, 0.1, 0.05], T=0.4, orders=[0, 1])  # doctest: +SKIP
    >>> {p: round(s) for p, s in rep.slopes.items()}  # doctest: +SKIP
    {0: 1, 1: 2}
"""

from __future__ import annotations

import functools

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

import symflow as sf
from symflow import SymflowError
from symflow._core._progress import progress_bar

from .._ode._verify import VerifyReport, _slope, check_ladder, step_count
from ._network_run import network_optimizer
from ._sharpness import sharpness
from ._tree_eval import manifold_fields, network_field, split_model

MAX_STEPS = 100_000


@functools.lru_cache(maxsize=32)
def _flow_solver(field, rtol, atol):
    """Jitted ``solve(params0, batch, ts, weights) -> (params at ts, ok)`` from ``t = 0``."""
    term = diffrax.ODETerm(lambda t, y, args: field._evaluate(y, args[0], args[1]))
    controller = diffrax.PIDController(rtol=rtol, atol=atol)

    def solve(y0, batch, ts, weights):
        sol = diffrax.diffeqsolve(term, diffrax.Tsit5(), t0=0.0, t1=ts[-1], dt0=None, y0=y0,
                                  args=(batch, weights), stepsize_controller=controller,
                                  saveat=diffrax.SaveAt(ts=ts), max_steps=MAX_STEPS,
                                  throw=False)
        return sol.ys, sol.result == diffrax.RESULTS.successful

    return jax.jit(solve)


def solve_network_flow(field, params0, batch, lr, ts, order=None, rtol=1e-10, atol=1e-12):
    r"""The order-``order`` modified flow of a :class:`NetworkField` from ``params0`` at ``t = 0``.

    Returns the parameters at the times ``ts`` (a pytree with a leading time axis), or at
    the single time ``ts`` (a pytree like ``params0``) when ``ts`` is a number.
    """
    params0 = field.prepare(params0, batch)
    times = jnp.atleast_1d(jnp.asarray(ts, dtype=jnp.float64))
    if times.ndim != 1 or not bool(jnp.all(times > 0)) or not bool(jnp.all(jnp.diff(times) >= 0)):
        raise SymflowError(f"got ts={ts!r}; give positive, increasing times")
    ys, ok = _flow_solver(field, rtol, atol)(params0, batch, times, field.weights(lr, order))
    if not bool(ok):
        raise SymflowError(f"the modified flow could not be solved to t = {float(times[-1]):g} "
                           f"at lr = {lr} (it blows up or is too stiff); use a smaller lr or T")
    if jnp.ndim(ts) == 0:
        return jax.tree_util.tree_map(lambda y: y[-1], ys)
    return ys


class _Sharpness:
    """``h * sharpness`` at the start, for the report."""

    def __init__(self, lam, lr):
        self.lam, self.lr = lam, lr

    def __str__(self):
        return (f"sharpness at x0: lambda_max = {self.lam:.4g}; h * lambda_max = "
                f"{self.lr * self.lam:.3g} at the largest lr (the series needs << 2)")


def _distance(a, b):
    return float(jnp.linalg.norm(ravel_pytree(a)[0] - ravel_pytree(b)[0]))


def verify_order_network(optimizer, loss_fn, params0, batch, lrs, T, orders=(0, 1, 2),
                         hyper=None, rtol=1e-10, atol=1e-12, cf=None,
                         progress=None) -> VerifyReport:
    r"""Check that the order-:math:`p` coordinate-free modified flow tracks ``optimizer`` on a network.

    Parameters
    ----------
    optimizer : AbstractOptimizer
        One with a coordinate-free form: GD, heavy ball, Nesterov, ``Custom`` gradient rules.
    loss_fn : callable
        ``loss_fn(params, batch)``, a JAX function returning a scalar (full batch).
    params0 : pytree of float arrays
        The starting point of the optimizer and of the flows.
    lrs, T, orders, hyper
        The learning-rate ladder (each divides ``T``), the final time, the truncation
        orders, and numeric values of symbolic hyperparameters.
    cf : CoordinateFreeEquation, optional
        A derivation to reuse (else ``sf.modified_equation(optimizer, order=max(orders))``).
    """
    lrs, orders = check_ladder(lrs, orders)
    if cf is None:
        cf = sf.modified_equation(optimizer, order=max(orders))
    elif not isinstance(cf, sf.CoordinateFreeEquation) or cf.optimizer != optimizer:
        raise SymflowError(f"got cf={cf!r}; pass sf.modified_equation(optimizer, order=k) of "
                           f"the same optimizer, {optimizer!r}, or leave it out")
    elif cf.order < max(orders):
        raise SymflowError(f"got cf of order {cf.order}; orders={list(orders)} needs order "
                           f"{max(orders)}")
    loss_fn, params0 = split_model(loss_fn, params0)   # an equinox model: its arrays
    field = network_field(cf, loss_fn, hyper)
    run = network_optimizer(cf, loss_fn, hyper)
    params0 = field.prepare(params0, batch)
    manifold = manifold_fields(cf, loss_fn, hyper) if cf.manifold else ()
    errors = {p: [] for p in orders}
    offsets = [] if manifold else None
    for lr in progress_bar(lrs, desc="verify_order_network", unit="lr",
                           progress=progress):
        n = step_count(T, lr)
        memory0 = tuple(m(params0, batch, lr) for m in manifold) or None
        theta_n, _ = run.final(params0, batch, lr, n, memory0)
        if not np.all(np.isfinite(ravel_pytree(theta_n)[0])):
            raise SymflowError(f"{optimizer!r} diverged at lr = {lr}; use smaller learning rates")
        if manifold:
            offsets.append(_distance(run.final(params0, batch, lr, n)[0], theta_n))
        for p in orders:
            y = solve_network_flow(field, params0, batch, lr, n * lr, p, rtol, atol)
            errors[p].append(_distance(theta_n, y))
    errors = {p: np.array(e) for p, e in errors.items()}
    slopes = {p: _slope(lrs, e) for p, e in errors.items()}
    validity = _Sharpness(sharpness(loss_fn, params0, batch), float(lrs[0]))
    return VerifyReport(optimizer.label, lrs, float(T), orders, errors, slopes, validity,
                        None if offsets is None else np.array(offsets))
