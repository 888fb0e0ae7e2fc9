r"""Run the real optimizer: the same symbolic map as the derivation, compiled to JAX."""

from __future__ import annotations

import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp

import symflow as sf
from symflow import SymflowError
from symflow._core._guard import check_symbolic, to_sympy

from ._compile import hyper_vector, vector_function


class CompiledMap:
    r"""The optimizer map as ``step(state, extra) -> state`` with ``extra = (h, *hyper)``,
    plus jitted drivers for many steps.

    The state is :math:`\theta` for one-step methods and :math:`(\theta, m)` (parameters,
    then memory) for optimizers with memory; ``n_params`` tells them apart.
    """

    def __init__(self, optimizer, loss, params, hyper_names=()):
        out = sf.optimizer_map(optimizer, loss, params, declared(loss, hyper_names))
        self.params = tuple(params)
        self.n_params = len(self.params)
        if isinstance(out, tuple):  # memory: (theta_next, memory_next, memory symbols)
            theta_next, memory_next, self.memory = out
            phi = sp.Matrix.vstack(theta_next, memory_next)
            grad = sp.Matrix([sp.diff(loss, p) for p in self.params])
            oracle = lambda point: grad.xreplace(dict(zip(self.params, point)))  # noqa: E731
            init = sp.Matrix(optimizer.initial_memory(sp.Matrix(self.params), oracle, sf.h))
        else:
            phi, self.memory, init = out, (), sp.zeros(0, 1)
        state = self.params + tuple(self.memory)
        self.hyper = tuple(sorted((phi.free_symbols | init.free_symbols) - set(state) - {sf.h},
                                  key=str))
        self._step = vector_function(phi, state, (sf.h,) + self.hyper)
        self._init = vector_function(init, self.params, (sf.h,) + self.hyper) if self.memory \
            else None
        self.trajectory = jax.jit(self._trajectory, static_argnames="n_steps")
        self.final = jax.jit(self._final)

    def _trajectory(self, state0, extra, n_steps):
        def body(state, _):
            nxt = self._step(state, extra)
            return nxt, nxt

        _, ys = jax.lax.scan(body, state0, None, length=n_steps)
        return jnp.concatenate([state0[None], ys])

    def _final(self, state0, extra, n_steps):
        return jax.lax.fori_loop(0, n_steps, lambda _, z: self._step(z, extra), state0)

    def extra(self, lr, hyper_values):
        return jnp.concatenate([jnp.array([float(lr)]), hyper_vector(self.hyper, hyper_values)])

    def start(self, theta0, extra, memory0=None):
        """The initial state: ``theta0`` and the optimizer's initial memory (or ``memory0``)."""
        if not self.memory:
            return theta0
        if memory0 is None:
            memory0 = self._init(theta0, extra)
        memory0 = jnp.asarray(memory0, dtype=jnp.float64).ravel()
        if memory0.shape != (len(self.memory),):
            raise SymflowError(f"got a memory of shape {memory0.shape}; this optimizer "
                               f"keeps {len(self.memory)} memory components")
        return jnp.concatenate([theta0, memory0])


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
    """``lr`` as a float, or a clear error unless it is a positive finite number."""
    if isinstance(lr, bool) or not isinstance(lr, (int, float, np.floating)) or \
            not lr > 0 or not np.isfinite(lr):
        raise SymflowError(f"got lr={lr!r}; the learning rate must be a positive number")
    return float(lr)


#: Iterates beyond this size count as diverged (their squares would overflow float64).
HUGE = 1e100
#: The most memory that saved outputs (all iterates, all flow states) may take.
MAX_SAVED_BYTES = 4 * 2**30


def check_saved_memory(n_rows: int, width: int, what: str, fix: str) -> None:
    """Refuse, with the figure, outputs of ``n_rows x width`` float64 values above
    :data:`MAX_SAVED_BYTES` (``fix``: what to do instead), before anything is computed."""
    need = 8 * int(n_rows) * max(int(width), 1)
    if need > MAX_SAVED_BYTES:
        raise SymflowError(
            f"{what} would keep {n_rows:.3g} x {width} float64 values = {need / 1e9:.3g} GB "
            f"(more at the peak), over the limit of {MAX_SAVED_BYTES / 1e9:.3g} GB; {fix}")


def divergence(state, huge: float = HUGE):
    """The index of the first row of ``state`` (rows: steps) that is not finite or exceeds
    ``huge`` in size, or ``None`` when every row is fine."""
    state = np.asarray(state)
    bad = ~np.all(np.isfinite(state) & (np.abs(state) <= huge), axis=-1)
    if not np.any(bad):
        return None
    return int(np.argmax(np.atleast_1d(bad)))


def check_on_divergence(on_divergence) -> str:
    if on_divergence not in ("raise", "flag"):
        raise SymflowError(f"got on_divergence={on_divergence!r}; use 'raise' (a clear error) "
                           "or 'flag' (return the iterates as they are, with a warning)")
    return on_divergence


def check_steps(n, name: str = "n_steps", least: int = 0) -> int:
    """``n`` as an int, or a clear error unless it is a whole number ``>= least``."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < least:
        raise SymflowError(f"got {name}={n!r}; give a whole number >= {least}")
    return int(n)


def iterate(optimizer, loss, params, x0, lr, n_steps, hyper=None, memory0=None,
            return_memory=False, on_divergence="raise"):
    r"""The iterates :math:`\theta_0, \dots, \theta_n` of ``optimizer`` (``lax.scan``).

    Returns an array of shape ``(n_steps + 1, d)`` (with the memory appended to each row
    when ``return_memory``). ``hyper`` maps hyperparameter symbols (or their names) to
    numbers. Optimizers with memory start from their ``initial_memory`` (zeros for
    momentum and moment estimates) unless ``memory0`` is given, e.g. the invariant
    manifold ``me.manifold`` evaluated at ``x0`` (see :func:`manifold_memory`).

    A run whose state stops being finite (or exceeds :data:`HUGE` in size) has diverged:
    by default a :class:`~symflow.SymflowError` names the step; ``on_divergence="flag"``
    returns the iterates as they are, with a ``RuntimeWarning``. All iterates are kept, so
    runs whose iterates would take more than :data:`MAX_SAVED_BYTES` are refused up front.

    Example::

        >>> import sympy as sp, symflow as sf, solvers as sv
        >>> x = sp.Symbol("x")
        >>> sv.iterate(sf.GD(), x**2 / 2, [x], x0=[1.0], lr=0.5, n_steps=2)[:, 0]
        Array([1.  , 0.5 , 0.25], dtype=float64)
    """
    check_symbolic(loss=loss, params=params, x0=x0, lr=lr, hyper=hyper, memory0=memory0)
    params = tuple(params)
    cmap = compiled_map(optimizer, to_sympy(loss, "loss"), params,
                        tuple(sorted(map(str, hyper or ()))))
    n_steps = check_steps(n_steps)
    check_on_divergence(on_divergence)
    check_saved_memory(n_steps + 1, len(params) + len(cmap.memory), "iterate",
                       "take fewer steps (every iterate is kept)")
    extra = cmap.extra(check_lr(lr), hyper)
    start = as_start(x0, params)
    ys = cmap.trajectory(cmap.start(start, extra, memory0), extra, int(n_steps))
    bad = divergence(ys)
    if bad is not None:
        message = (f"{optimizer!r} diverged at step {bad} of {n_steps} (lr = {lr}, x0 = "
                   f"{list(map(float, start))}): the state is not finite or beyond {HUGE:g}")
        if on_divergence == "raise":
            raise SymflowError(message + "; use a smaller learning rate or fewer steps, or "
                               "pass on_divergence='flag' to get the iterates anyway")
        warnings.warn(message, RuntimeWarning, stacklevel=2)
    return ys if return_memory else ys[:, : cmap.n_params]


def manifold_memory(me, x0, lr, hyper=None):
    r"""The memory on the invariant manifold, :math:`M_h(\theta_0)`, as a float array.

    ``me`` is the reduced :class:`~symflow.ModifiedEquation` of an optimizer with memory.
    Starting there instead of at zero removes the transient (to the order derived).
    """
    return manifold_function(me, lr, hyper)(as_start(x0, me.params))


def manifold_function(me, lr, hyper=None):
    r"""``theta -> M_h(theta)`` at learning rate ``lr``, for ``theta`` of shape ``(d, ...)``."""
    if getattr(me, "manifold", None) is None:
        raise SymflowError(f"{me!r} has no memory manifold (the optimizer keeps no memory)")
    hyper_syms = tuple(sorted(me.manifold.free_symbols - set(me.params) - {sf.h}, key=str))
    f = vector_function(sp.ImmutableMatrix(me.manifold), me.params, (sf.h,) + hyper_syms)
    extra = jnp.concatenate([jnp.array([check_lr(lr)]), hyper_vector(hyper_syms, hyper)])
    return lambda theta: f(theta, extra)
