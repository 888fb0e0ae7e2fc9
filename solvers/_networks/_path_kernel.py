r"""The path kernel of a model trained by gradient flow, integrated with Diffrax.

Along the gradient flow :math:`\dot\theta = -\sum_i \ell'_i \nabla_\theta f(x_i;\theta)` the
ODE state carries, next to :math:`\theta`, for every query :math:`x_q` and training input
:math:`x_i`

.. math::

    K^p_{qi}(t) = \int_0^t K_{\theta_s}(x_q, x_i)\,ds, \qquad
    W_{qi}(t) = \int_0^t \ell'\bigl(y_i, f(x_i;\theta_s)\bigr) K_{\theta_s}(x_q, x_i)\,ds,

and :math:`\int_0^t \ell'_i\,ds` (for the frozen-kernel comparison). The tangent kernel is
:math:`J_q J_i^\top` with the per-example gradients :math:`J = \partial f/\partial\theta`
from JAX autodiff (``vmap`` of ``grad``). The kernel-machine identity of
:mod:`symflow._claims._kernel_machine`, :math:`f(x_q;\theta_T) = f(x_q;\theta_0) - \sum_i W_{qi}(T)
= b + \sum_i a_i(x_q) K^p_{qi}(T)`, then holds to the solver's tolerance
(:attr:`PathKernel.residual`). With a learning rate ``lr`` the same sums run along the
gradient-descent iterates (left Riemann sums, Domingos 2020 Sec. 2), and the identity
only holds up to :math:`O(h)`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp

from symflow import SymflowError
from symflow._core._table import Table, TableDisplay
from symflow._claims._kernel_machine import LOSSES, KernelMachine

from .._ode._compile import vector_function
from .._ode._iterate import check_lr

MAX_STEPS = 100_000


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class PathKernel(TableDisplay):
    r"""Path kernel and kernel-machine form of a trained model, at the saved times ``ts``.

    ``theta[s]`` the parameters, ``prediction[s, q]`` :math:`f(x_q;\theta_{t_s})`,
    ``kernel[s, q, i]`` :math:`K^p(x_q, x_i)` accumulated to :math:`t_s`, ``weighted[s, q, i]``
    :math:`\int_0^{t_s}\ell'_i K\,dt`, ``frozen[s, q]`` what the same loss derivatives
    would give with the tangent kernel frozen at :math:`\theta_0`,
    :math:`f_0 - \sum_i K_{\theta_0}(x_q, x_i)\int_0^{t_s}\ell'_i\,dt` (its gap to the
    prediction measures how far the kernel moved). ``lr`` is ``None`` for the gradient flow.
    """

    ts: np.ndarray
    theta: np.ndarray
    prediction: np.ndarray
    kernel: np.ndarray
    weighted: np.ndarray
    frozen: np.ndarray
    lr: float | None = None

    @property
    def bias(self) -> np.ndarray:
        r""":math:`b = f(x_q;\theta_0)`."""
        return self.prediction[0]

    @property
    def coefficients(self) -> np.ndarray:
        r""":math:`a_i(x_q)` at the final time, shape ``(Q, N)`` (Domingos's weighted
        mean of :math:`-\ell'_i`)."""
        return -self.weighted[-1] / self.kernel[-1]

    @property
    def kernel_machine(self) -> np.ndarray:
        r""":math:`b + \sum_i a_i(x_q) K^p(x_q, x_i)` at every saved time, shape ``(S, Q)``."""
        return self.bias - self.weighted.sum(-1)

    @property
    def residual(self) -> float:
        """Largest gap between the trained model and its kernel-machine form (any saved time)."""
        return float(np.abs(self.prediction - self.kernel_machine).max())

    @property
    def frozen_gap(self) -> float:
        """Largest gap between the trained model and the frozen-kernel prediction."""
        return float(np.abs(self.prediction - self.frozen).max())

    def _table(self) -> Table:
        lines = str(self).split("\n")
        rows = [[f"{q}", f"{self.prediction[0, q]:.6g}", f"{self.prediction[-1, q]:.6g}",
                 f"{self.kernel_machine[-1, q]:.6g}", f"{self.frozen[-1, q]:.6g}"]
                for q in range(self.prediction.shape[1])]
        rows.append(["largest gap", "", "", f"{self.residual:.3e}", f"{self.frozen_gap:.3e}"])
        return Table(["query", "f at t = 0", "f at T", "kernel machine b + sum a_i K^p",
                      "frozen kernel"], rows, lines[0], [s.strip() for s in lines[-1:]])

    def __str__(self) -> str:
        how = "gradient flow (Diffrax)" if self.lr is None else f"gradient descent, lr = {self.lr:g}"
        moved = float(np.abs(self.prediction[-1] - self.bias).max())
        a = self.coefficients
        with np.errstate(invalid="ignore", divide="ignore"):
            spread = np.ptp(a, axis=0) / np.abs(a).max(axis=0)
        return "\n".join([
            f"path kernel along {how}, T = {self.ts[-1]:g}, {self.kernel.shape[1]} queries, "
            f"{self.kernel.shape[2]} training points",
            f"  predictions moved by up to {moved:.3e}",
            f"  |f(x; theta_T) - (b + sum_i a_i K^p)|   = {self.residual:.3e}",
            f"  |f(x; theta_T) - frozen-kernel predict| = {self.frozen_gap:.3e}",
            "  a_i(x) vary over the queries by (max - min)/max|a_i| = "
            + ", ".join(f"{s:.2g}" for s in spread),
        ])


# -- compiled problems ----------------------------------------------------------------------

def _loss_derivative(loss):
    """``dl(y, p)`` for a loss name or a JAX function ``loss(y, p)``."""
    if isinstance(loss, str):
        if loss not in LOSSES:
            raise SymflowError(f"got loss={loss!r}; choose one of {sorted(LOSSES)} or pass a "
                               "JAX function loss(y, p)")
        return _symbolic_derivative(LOSSES[loss])
    if not callable(loss):
        raise SymflowError(f"got loss={loss!r}; pass a loss name or a function loss(y, p)")
    return _jax_derivative(loss)


@functools.lru_cache(maxsize=16)
def _jax_derivative(loss):
    """One ``jax.grad`` per loss function, so that the compiled problem is reused."""
    return jax.grad(loss, argnums=1)


@functools.lru_cache(maxsize=16)
def _symbolic_derivative(loss_expr):
    y, p = sp.symbols("y p", real=True)
    d = vector_function(sp.Matrix([sp.diff(loss_expr, p)]), [p], [y])
    return lambda yv, pv: d(jnp.reshape(pv, (1,)), jnp.reshape(yv, (1,)))[0]


@functools.lru_cache(maxsize=16)
def _from_kernel_machine(km: KernelMachine):
    """The model ``f(theta, x)`` and ``dl(y, p)`` of a symbolic :class:`KernelMachine`."""
    fn = vector_function(sp.Matrix([km.model]), km.params, km.inputs)
    y, p = sp.symbols("y p", real=True)
    loss = km.loss_expr.xreplace({km.y_symbol: y, km.p_symbol: p})
    return (lambda theta, x: fn(theta, x)[0]), _symbolic_derivative(loss)


class _Problem:
    r"""Jitted gradient-flow and gradient-descent integrators for one model and loss.

    The state :math:`(\theta, K^p, W, \int\ell')` travels as one flat vector."""

    def __init__(self, f, dloss, rtol, atol):
        self.f, self.dloss = f, dloss
        self.values = jax.vmap(f, in_axes=(None, 0))
        self.jac = jax.vmap(jax.grad(f), in_axes=(None, 0))
        self.controller = diffrax.PIDController(rtol=rtol, atol=atol)
        self.flow = jax.jit(self._flow)
        self.gd = jax.jit(self._gd)
        self.predictions = jax.jit(self._predictions)

    def _rates(self, state, data):
        xs, ys, xq = data
        theta = state[: state.size - (2 * len(xq) + 1) * len(xs)]
        J, Jq = self.jac(theta, xs), self.jac(theta, xq)
        lp = jax.vmap(self.dloss)(ys, self.values(theta, xs))
        K = Jq @ J.T
        return jnp.concatenate([-J.T @ lp, K.ravel(), (K * lp).ravel(), lp])

    def _flow(self, state0, ts, data):
        term = diffrax.ODETerm(lambda t, s, args: self._rates(s, args))
        sol = diffrax.diffeqsolve(term, diffrax.Tsit5(), t0=ts[0], t1=ts[-1], dt0=None,
                                  y0=state0, args=data, saveat=diffrax.SaveAt(ts=ts),
                                  stepsize_controller=self.controller, max_steps=MAX_STEPS,
                                  throw=False)
        return sol.ys, sol.result == diffrax.RESULTS.successful

    def _predictions(self, thetas, data):
        r""":math:`f(x_q;\theta_s)` for every saved :math:`\theta_s`, and the frozen kernel."""
        xs, _, xq = data
        k0 = self.jac(thetas[0], xq) @ self.jac(thetas[0], xs).T
        return jax.vmap(lambda th: self.values(th, xq))(thetas), k0

    def _gd(self, state0, lr, n_steps, data):
        return jax.lax.fori_loop(0, n_steps, lambda _, s: s + lr * self._rates(s, data), state0)


@functools.lru_cache(maxsize=16)
def _problem(f, dloss, rtol, atol) -> _Problem:
    return _Problem(f, dloss, rtol, atol)


# -- the user-facing function ---------------------------------------------------------------

def _as_points(x, name, d=None):
    arr = np.asarray(x, dtype=float)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or not len(arr) or (d is not None and arr.shape[1] != d) \
            or not np.all(np.isfinite(arr)):
        want = "" if d is None else f" with {d} coordinate(s) each"
        raise SymflowError(f"got {name} of shape {np.shape(x)}; give a non-empty list of finite "
                           f"points{want} (shape (n,) or (n, d))")
    return jnp.asarray(arr)


def _numeric_data(km):
    try:
        xs = np.array([[float(c) for c in p] for p in km.x_train])
        ys = np.array([float(y) for y in km.y_train])
    except TypeError:
        raise SymflowError("this KernelMachine has symbolic training data; path_kernel needs "
                           "numbers: build it with numeric x_train and y_train") from None
    return xs, ys


def path_kernel(model, theta0, x_query, T, *, x_train=None, y_train=None, loss=None,
                ts=None, lr=None, rtol=1e-10, atol=1e-12) -> PathKernel:
    r"""Train ``model`` from ``theta0`` for time ``T`` and integrate its path kernel on the way.

    Parameters
    ----------
    model : symflow.KernelMachine or callable
        A symbolic :class:`~symflow.KernelMachine` (its model is compiled to JAX, its data and
        loss are used), or a JAX function ``f(theta, x) -> scalar`` with ``x`` a 1-D array of
        the input coordinates (then pass ``x_train``, ``y_train`` and ``loss``).
    theta0 : array
        Initial parameters.
    x_query : array, shape (Q,) or (Q, d)
        The inputs at which the kernel machine is evaluated.
    T : float
        Training time (gradient-flow time; ``T / lr`` steps of gradient descent).
    loss : str or callable
        ``"squared"`` (default), ``"logistic"`` or a JAX function ``loss(y, p)`` (callable
        models only: a KernelMachine holds its loss).
    ts : array, optional
        Save times in ``[0, T]`` (default ``[0, T]``; multiples of ``lr`` with ``lr``).
    lr : float, optional
        Run gradient descent with this learning rate instead of the gradient flow.
    rtol, atol : float
        Diffrax ``PIDController`` tolerances (``Tsit5``).

    Examples
    --------
    ::

        >>> import sympy as sp, symflow as sf, solvers as sv
        >>> x, w, b = sp.symbols("x w b")
        >>> km = sf.kernel_machine(w * sp.tanh(b * x), [w, b], [x], [1.0, 2.0], [0.5, 1.0])
        >>> pk = sv.path_kernel(km, theta0=[0.3, 0.8], x_query=[0.5, 1.5], T=2.0)
        >>> pk.residual < 1e-8 < pk.frozen_gap
        True
    """
    if isinstance(model, KernelMachine):
        if x_train is not None or y_train is not None or loss is not None:
            raise SymflowError("got a KernelMachine and x_train/y_train/loss; the "
                               "KernelMachine already holds its training data and loss")
        f, dloss = _from_kernel_machine(model)
        xs, ys = _numeric_data(model)
        d = len(model.inputs)
        if np.size(theta0) != len(model.params):
            raise SymflowError(f"got theta0 with {np.size(theta0)} entries; the model has "
                               f"{len(model.params)} parameters {list(model.params)}")
    elif callable(model):
        if x_train is None or y_train is None:
            raise SymflowError("a model given as a function f(theta, x) needs x_train and "
                               "y_train (or pass a symflow.KernelMachine)")
        f, dloss, d = model, _loss_derivative("squared" if loss is None else loss), None
        xs, ys = x_train, y_train
    else:
        raise SymflowError(f"got model={model!r}; pass a symflow.KernelMachine or a JAX "
                           "function f(theta, x)")
    xs = _as_points(xs, "x_train", d)
    xq = _as_points(x_query, "x_query", xs.shape[1])
    ys = jnp.asarray(np.asarray(ys, dtype=float).ravel())
    if ys.shape != (len(xs),):
        raise SymflowError(f"got {len(xs)} training inputs and {ys.size} targets; give one "
                           "target per input")
    theta0 = jnp.asarray(np.asarray(theta0, dtype=float).ravel())
    if not (np.all(np.isfinite(ys)) and np.all(np.isfinite(theta0))):
        raise SymflowError("got non-finite values (nan or inf) in y_train or theta0; give "
                           "finite numbers")
    if not (isinstance(T, numbers.Real) and T > 0 and math.isfinite(T)):
        raise SymflowError(f"got T={T!r}; the training time must be a positive number")
    ts = np.array([0.0, float(T)]) if ts is None else np.asarray(ts, dtype=float)
    if ts.ndim != 1 or ts[0] != 0 or not np.isclose(ts[-1], T) or np.any(np.diff(ts) <= 0):
        raise SymflowError(f"got ts={ts}; save times must increase from 0 to T = {T}")
    try:
        value = jax.eval_shape(f, theta0, xs[0])
    except Exception as err:  # noqa: BLE001 - report the user's model failure clearly
        raise SymflowError(f"the model failed on theta0 of shape {theta0.shape} and an input "
                           f"of shape {xs[0].shape}: {type(err).__name__}: {err}") from err
    if value.shape != ():
        raise SymflowError(f"the model returned shape {value.shape}; f(theta, x) must "
                           "return a scalar")

    problem = _problem(f, dloss, float(rtol), float(atol))
    data = (xs, ys, xq)
    q, n = len(xq), len(xs)
    state = jnp.concatenate([theta0, jnp.zeros((2 * q + 1) * n)])
    if lr is None:
        saved, ok = problem.flow(state, jnp.asarray(ts), data)
        if not bool(ok):
            raise SymflowError(f"the gradient flow could not be solved to T = {T} (stiff or "
                               "blowing up); try a shorter T or looser tolerances")
    else:
        lr = check_lr(lr)
        steps = np.rint(ts / lr).astype(int)
        if not np.allclose(steps * lr, ts, rtol=1e-9, atol=1e-12):
            raise SymflowError(f"got lr={lr} and save times up to T = {T}; every save time "
                               "must be a whole number of steps")
        saved = [state]
        for gap in np.diff(steps):
            saved.append(problem.gd(saved[-1], lr, int(gap), data))
        saved = jnp.stack(saved)
    p = theta0.size
    theta = saved[:, :p]
    kernel = saved[:, p:p + q * n].reshape(-1, q, n)
    weighted = saved[:, p + q * n:p + 2 * q * n].reshape(-1, q, n)
    lp_int = saved[:, p + 2 * q * n:]
    prediction, k0 = problem.predictions(theta, data)
    frozen = prediction[0] - lp_int @ k0.T
    return PathKernel(np.asarray(ts), np.asarray(theta), np.asarray(prediction),
                      np.asarray(kernel), np.asarray(weighted), np.asarray(frozen),
                      lr)
