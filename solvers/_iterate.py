r"""Run the real optimizer: the same symbolic map as the derivation, compiled to JAX."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp

import symflow as sf
from symflow import SymflowError

from ._compile import hyper_vector, vector_function


class CompiledMap:
    r"""The optimizer map :math:`\Phi_h` as ``step(theta, extra) -> theta`` with
    ``extra = (h, *hyper)``, plus jitted drivers for many steps."""

    def __init__(self, optimizer, loss, params, hyper_names=()):
        phi = sf.optimizer_map(optimizer, loss, params, declared(loss, hyper_names))
        self.params = tuple(params)
        self.hyper = tuple(sorted(phi.free_symbols - set(self.params) - {sf.h}, key=str))
        self._step = vector_function(phi, self.params, (sf.h,) + self.hyper)
        self.trajectory = jax.jit(self._trajectory, static_argnames="n_steps")
        self.final = jax.jit(self._final)

    def _trajectory(self, theta0, extra, n_steps):
        def body(theta, _):
            nxt = self._step(theta, extra)
            return nxt, nxt

        _, ys = jax.lax.scan(body, theta0, None, length=n_steps)
        return jnp.concatenate([theta0[None], ys])

    def _final(self, theta0, extra, n_steps):
        return jax.lax.fori_loop(0, n_steps, lambda _, th: self._step(th, extra), theta0)

    def extra(self, lr, hyper_values):
        return jnp.concatenate([jnp.array([float(lr)]), hyper_vector(self.hyper, hyper_values)])


def declared(expr, names) -> tuple:
    """The free symbols of ``expr`` whose names are in ``names`` (hyperparameters)."""
    names = {str(n) for n in names}
    return tuple(sorted((s for s in expr.free_symbols if s.name in names), key=str))


@functools.lru_cache(maxsize=64)
def compiled_map(optimizer, loss, params, hyper_names=()) -> CompiledMap:
    """Cached :class:`CompiledMap` (optimizers compare by identity)."""
    return CompiledMap(optimizer, loss, params, hyper_names)


def as_start(x0, params) -> jnp.ndarray:
    """Validate a starting point: one finite float per parameter."""
    arr = np.asarray(x0, dtype=float).ravel()
    if arr.shape != (len(params),) or not np.all(np.isfinite(arr)):
        raise SymflowError(
            f"got x0={list(np.ravel(x0))}; give {len(params)} finite numbers, one per "
            f"parameter {list(params)}"
        )
    return jnp.asarray(arr)


def check_lr(lr) -> float:
    if not isinstance(lr, (int, float, np.floating)) or not lr > 0 or not np.isfinite(lr):
        raise SymflowError(f"got lr={lr!r}; the learning rate must be a positive number")
    return float(lr)


def iterate(optimizer, loss, params, x0, lr, n_steps, hyper=None):
    r"""The iterates :math:`\theta_0, \dots, \theta_n` of ``optimizer`` (``lax.scan``).

    Returns an array of shape ``(n_steps + 1, d)``. ``hyper`` maps hyperparameter
    symbols (or their names) to numbers.

    Example::

        >>> import sympy as sp, symflow as sf, solvers as sv
        >>> x = sp.Symbol("x")
        >>> sv.iterate(sf.GD(), x**2 / 2, [x], x0=[1.0], lr=0.5, n_steps=2)[:, 0]
        Array([1.  , 0.5 , 0.25], dtype=float64)
    """
    params = tuple(params)
    cmap = compiled_map(optimizer, sp.sympify(loss), params, tuple(sorted(map(str, hyper or ()))))
    if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)) or n_steps < 0:
        raise SymflowError(f"got n_steps={n_steps!r}; give a non-negative integer")
    ys = cmap.trajectory(as_start(x0, params), cmap.extra(check_lr(lr), hyper), int(n_steps))
    return ys
