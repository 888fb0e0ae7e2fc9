r"""Solve a modified flow :math:`\dot\theta = \sum_{k\le p} h^k f_k(\theta)` with Diffrax.

All terms are compiled once into one function returning the ``(p+1, d)`` array of
:math:`f_k(\theta)`; the truncation order and the learning rate enter only through the
weights :math:`w_k = h^k` (:math:`k \le p`, else 0), so one compiled solver serves every
order and every learning rate. Adaptive ``Tsit5`` with a ``PIDController`` by default;
``stiff=True`` uses the implicit ``Kvaerno5``.
"""

from __future__ import annotations

import functools

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp

from symflow import ModifiedEquation, StateModifiedEquation, SymflowError
from symflow._core._guard import as_sympy

from ._compile import hyper_vector, vector_function
from ._iterate import as_start, check_lr, check_saved_memory

MAX_STEPS = 100_000


class CompiledFlow:
    """The terms of a modified equation as one JAX function, with jitted solvers."""

    def __init__(self, stacked: sp.ImmutableMatrix, params: tuple, order: int):
        self.order = order
        self.dim = len(params)
        self.hyper = tuple(sorted(stacked.free_symbols - set(params), key=str))
        self._terms = vector_function(stacked, params, self.hyper)
        self._solvers = {}

    def terms(self, theta, hyper_values):
        """The ``(order+1, d)`` array of :math:`f_k(\\theta)`."""
        return self._terms(theta, hyper_values).reshape(self.order + 1, self.dim)

    def weights(self, lr, order):
        return jnp.array([lr**k if k <= order else 0.0 for k in range(self.order + 1)])

    def _vector_field(self, t, y, args):
        w, hv = args
        # terms beyond the order are dropped, not multiplied by 0: a higher term that is
        # singular where the kept ones are not (1/sqrt(v) at v = 0) must not turn them to NaN
        return jnp.where(w[:, None] != 0, w[:, None] * self.terms(y, hv), 0.0).sum(0)

    def field(self, y, w, hv):
        """The truncated field :math:`\\sum_k w_k f_k(y)` at one state ``y``."""
        return self._vector_field(0.0, jnp.asarray(y, dtype=jnp.float64), (w, hv))

    def solver(self, stiff: bool, rtol: float, atol: float):
        """Jitted ``solve(y0, ts, w, hv) -> ys`` at the times ``ts`` (``ts[0]`` is t0)."""
        key = (stiff, rtol, atol)
        if key not in self._solvers:
            method = diffrax.Kvaerno5() if stiff else diffrax.Tsit5()
            controller = diffrax.PIDController(rtol=rtol, atol=atol)
            term = diffrax.ODETerm(self._vector_field)

            def solve(y0, ts, w, hv):
                sol = diffrax.diffeqsolve(
                    term, method, t0=ts[0], t1=ts[-1], dt0=None, y0=y0, args=(w, hv),
                    saveat=diffrax.SaveAt(ts=ts), stepsize_controller=controller,
                    max_steps=MAX_STEPS, throw=False)
                return sol.ys, sol.result == diffrax.RESULTS.successful

            self._solvers[key] = jax.jit(solve)
        return self._solvers[key]


def compiled_flow(me: ModifiedEquation) -> CompiledFlow:
    """The :class:`CompiledFlow` of a derived equation, shared by equal derivations."""
    stacked = sp.ImmutableMatrix(sp.Matrix.vstack(*[sp.Matrix(t) for t in me.terms]))
    return _compiled_flow(stacked, me.params, me.order)


@functools.lru_cache(maxsize=64)
def _compiled_flow(stacked, params, order) -> CompiledFlow:
    return CompiledFlow(stacked, params, order)


def unsolved(me, flow, y0, w, hv, order: int, where: str) -> SymflowError:
    """The error for a flow that Diffrax could not solve: singular at its start, or on the way."""
    names = [str(p) for p in me.params]
    start = ", ".join(f"{n} = {float(v):.4g}" for n, v in zip(names, np.ravel(y0)))
    rate = np.asarray(flow.field(y0, w, hv))
    if not np.all(np.isfinite(rate)):
        bad = ", ".join(f"d{n}/dt = {r}" for n, r in zip(names, rate) if not np.isfinite(r))
        fix = ("start the memory where the flow is defined (memory0, in the flow's variables)"
               if isinstance(me, StateModifiedEquation) else "start where it is defined")
        return SymflowError(
            f"the order-{order} modified flow is not finite at its start ({start}): {bad}. "
            f"A term of order <= {order} is singular there (e.g. 1/sqrt(v) at v = 0); {fix}")
    hint = ""
    if not isinstance(me, StateModifiedEquation) and not me.optimizer.smooth_at_zero_gradient:
        hint = (f"; {me.optimizer!r} keeps eps outside the root, so its reduced flow has terms "
                "~ 1/|g_i|^k where a gradient component g_i vanishes (eps_in_sqrt=True for "
                "RMSprop, eps_root > 0 for Adam, or a path where the components keep their sign)")
    return SymflowError(
        f"the order-{order} modified flow could not be solved {where} from ({start}): it "
        f"blows up, is singular along the way or too stiff (try a smaller lr or T, or "
        f"stiff=True){hint}")


def flow_step(me, lr) -> float:
    r"""The expansion step of ``me`` at learning rate ``lr``: ``lr`` itself, or for a flow on
    the whole state its own step (:math:`\sqrt h` for heavy ball with
    :math:`1-\beta = c\sqrt h`, :math:`h^2` for AdaGrad)."""
    if not isinstance(me, StateModifiedEquation):
        return lr
    base, exponent = as_sympy(me.h_value).as_base_exp()
    if base != me.step:
        raise SymflowError(f"cannot invert h = {me.h_value} for the step {me.step}")
    return float(lr ** (1 / float(exponent)))


def solve_flow(me, x0, lr, n_steps, order=None, hyper=None, stiff=False,
               rtol=1e-12, atol=1e-12, ts=None):
    r"""Solve the order-``order`` truncation of ``me`` with learning rate ``lr``.

    Saved at the optimizer's step times :math:`t_n = n h`, :math:`n = 0..n_{steps}` (or at
    ``ts``). Returns ``(ts, ys)`` with ``ys`` of shape ``(len(ts), d)``. Raises when the
    solver fails (for instance a flow that blows up). For a flow on the whole state
    (:class:`~symflow.StateModifiedEquation`) ``x0`` is the whole state (parameters, then
    the scaled memory) and the times are :math:`n` times its own step (:func:`flow_step`).

    Example::

        >>> import sympy as sp, symflow as sf, solvers as sv
        >>> x = sp.Symbol("x")
        >>> me = sf.modified_equation(sf.GD(), x**2 / 2, [x], order=6)
        >>> ts, ys = sv.solve_flow(me, x0=[1.0], lr=0.1, n_steps=10)
        >>> round(float(ys[-1, 0]), 4)  # GD gives 0.9**10 = 0.3487
        0.3487
    """
    if not isinstance(me, ModifiedEquation):
        raise SymflowError(f"got {type(me).__name__}; solve_flow takes a ModifiedEquation "
                           "from sf.modified_equation(...)")
    order = me.order if order is None else order
    if not isinstance(order, int) or not 0 <= order <= me.order:
        raise SymflowError(f"got order={order!r}; choose an integer in 0..{me.order}")
    step = flow_step(me, check_lr(lr))
    flow = compiled_flow(me)
    if ts is None:
        n_steps = int(n_steps)
        check_saved_memory(n_steps + 1, len(me.params), "solve_flow",
                           "save fewer times (ts=...)")
        ts = step * np.arange(n_steps + 1)
    ts = jnp.asarray(ts, dtype=jnp.float64)
    y0, w, hv = as_start(x0, me.params), flow.weights(step, order), hyper_vector(flow.hyper, hyper)
    ys, ok = flow.solver(stiff, rtol, atol)(y0, ts, w, hv)
    if not bool(ok) or not bool(jnp.all(jnp.isfinite(ys))):
        raise unsolved(me, flow, y0, w, hv, order, f"to t = {float(ts[-1]):g} at lr = {lr}")
    return np.asarray(ts), np.asarray(ys)
