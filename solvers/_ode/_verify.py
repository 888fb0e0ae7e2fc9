r"""Numerical proof of the order of a modified equation.

For each learning rate :math:`h` on a ladder and each truncation order :math:`p`, run the
optimizer for :math:`n = T/h` steps and solve the order-:math:`p` modified flow to
:math:`t = nh`. The global error :math:`\lVert\theta_n - \tilde\theta(nh)\rVert` of a
correct order-:math:`p` truncation is :math:`O(h^{p+1})`, so its log-log slope against
:math:`h` is :math:`p+1` (cf. the order tests of Diffrax, ``test_ode_order``).

Optimizers with memory are checked on their reduced flow, with the memory started on its
invariant manifold :math:`M_h(\theta_0)`; what the optimizer's own start (zeros) does
instead, the transient and the offset it leaves (:math:`O(h)`; :math:`O(h^2)` for Adam, whose
bias correction starts the moments on their manifold to leading order), is reported and
plotted.
Flows on the whole state (slow memory, AdaGrad) are checked on the whole state, in their
own step (:math:`\sqrt h` for heavy ball with :math:`1-\beta = c\sqrt h`, :math:`h^2` for
AdaGrad) and scaled memory variables.
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import jax.numpy as jnp
import numpy as np

import symflow as sf
from symflow import SymflowError
from symflow._core._files import save_figure
from symflow._core._guard import as_sympy, check_symbolic, to_sympy
from symflow._core._progress import progress_bar
from symflow._core._table import Table, TableDisplay
from symflow._core._validate import check_order

from ._compile import hyper_vector
from ._flow import compiled_flow, flow_step, unsolved
from ._iterate import (
    as_start,
    check_lr,
    compiled_map,
    declared,
    divergence,
    manifold_function,
)


@dataclasses.dataclass
class Transient:
    """What the optimizer's own initial memory does, at one learning rate.

    ``n`` are the step numbers; ``theta_gap`` is
    :math:`\\lVert\\theta_n^{\\text{initial}} - \\theta_n^{\\text{manifold}}\\rVert` (the two runs
    differ only in their starting memory) and ``memory_gap`` is
    :math:`\\lVert m_n - M_h(\\theta_n)\\rVert` along the run from the initial memory: it decays
    geometrically, while ``theta_gap`` settles at the offset.
    """

    lr: float
    n: np.ndarray
    theta_gap: np.ndarray
    memory_gap: np.ndarray


@dataclasses.dataclass(repr=False)
class VerifyReport(TableDisplay):
    """Errors and fitted slopes of :func:`verify_order`.

    ``errors[p][i]`` is the global error of the order-``p`` flow at learning rate
    ``lrs[i]``; ``slopes[p]`` the least-squares log-log slope against the expansion step
    ``steps`` (the learning rate itself, except for flows on the whole state), expected
    ``p + 1``.
    """

    optimizer: str
    lrs: np.ndarray
    T: float
    orders: tuple
    errors: dict
    slopes: dict
    validity: object = None
    #: For optimizers with memory: ``|theta_n(initial memory) - theta_n(manifold memory)|``
    #: per learning rate, the offset that a real (zero-initialized) start leaves behind.
    offsets: np.ndarray = None
    #: The expansion step per learning rate and its name (``h``, ``delta``, ``kappa``).
    steps: np.ndarray = None
    step_name: str = "h"
    #: One :class:`Transient` per learning rate (optimizers with memory, reduced flows).
    transients: list = None

    def __post_init__(self):
        if self.steps is None:
            self.steps = self.lrs

    @property
    def expected(self) -> dict:
        return {p: p + 1 for p in self.orders}

    def passed(self, tol: float = 0.3) -> bool:
        """True when every slope is within ``tol`` of ``p + 1``."""
        return all(abs(self.slopes[p] - (p + 1)) <= tol for p in self.orders)

    def table(self) -> str:
        """The errors and slopes as a plain-text table."""
        extra = self.step_name != "h"
        first = f"{self.step_name:>8} " if extra else ""
        pad = " " * 9 if extra else ""
        rows = ["     lr  " + first + "".join(f"  order {p} error" for p in self.orders)]
        for i, lr in enumerate(self.lrs):
            step = f"{self.steps[i]:8.4g} " if extra else ""
            rows.append(f"{lr:8.4g} " + step
                        + "".join(f"  {self.errors[p][i]:13.3e}" for p in self.orders))
        rows.append("  slope  " + pad + "".join(f"  {self.slopes[p]:13.2f}" for p in self.orders))
        rows.append(" expect  " + pad + "".join(f"  {p + 1:13d}" for p in self.orders))
        if extra:
            rows.append(f"(slopes against the step {self.step_name})")
        return "\n".join(rows)

    def _table(self) -> Table:
        extra = self.step_name != "h"
        header = ["lr"] + ([self.step_name] if extra else []) + [
            f"order {p} error" for p in self.orders]
        rows = [[f"{lr:.4g}"] + ([f"{self.steps[i]:.4g}"] if extra else [])
                + [f"{self.errors[p][i]:.3e}" for p in self.orders]
                for i, lr in enumerate(self.lrs)]
        blank = [""] if extra else []
        rows.append(["slope"] + blank + [f"{self.slopes[p]:.2f}" for p in self.orders])
        rows.append(["expected"] + blank + [f"{p + 1}" for p in self.orders])
        notes = str(self).split("\n")[1 + len(self.table().split("\n")):]
        return Table(header, rows, f"verify_order: {self.optimizer}, T = {self.T:g}", notes)

    @property
    def offset_slope(self) -> float:
        """Log-log slope of :attr:`offsets` against ``h`` (about 1: the offset is O(h))."""
        return _slope(self.lrs, self.offsets) if self.offsets is not None else float("nan")

    def __str__(self) -> str:
        lines = [f"verify_order: {self.optimizer}, T = {self.T:g}", self.table()]
        if self.offsets is not None:
            lines.append("memory started on its invariant manifold; a start from the "
                         "optimizer's initial memory leaves offsets "
                         + ", ".join(f"{o:.2e}" for o in self.offsets)
                         + f" (slope {self.offset_slope:.2f})")
        if self.validity is not None:
            lines.append(str(self.validity))
        return "\n".join(lines)

    def plot(self, path=None, ax=None):
        """Log-log error against the step per order, with reference slopes; saved if ``path``.

        With memory (and no ``ax`` given) a second panel shows the transient of a start
        from the optimizer's initial memory: its distance to the manifold and the gap it
        leaves in :math:`\\theta`; the offsets are drawn on the first panel.
        """
        import matplotlib.pyplot as plt

        if ax is None:
            panels = 2 if self.transients else 1
            fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 4), constrained_layout=True)
            ax = axes[0] if panels == 2 else axes
        else:
            fig, axes = ax.figure, None
        for p in self.orders:
            line, = ax.loglog(self.steps, self.errors[p], "o-",
                              label=f"order {p}: slope {self.slopes[p]:.2f}")
            # the reference slope, drawn a factor 4 below the data so that both show
            ref = self.errors[p][-1] / 4 * (self.steps / self.steps[-1]) ** (p + 1)
            ax.loglog(self.steps, ref, ":", color=line.get_color(), lw=1.5)
        if self.offsets is not None:
            ax.loglog(self.steps, self.offsets, "s--", color="0.4", ms=4,
                      label=f"zero memory start: offset, slope {self.offset_slope:.2f}")
        ax.set_xticks(self.steps, [f"{s:.3g}" for s in self.steps], minor=False)
        ax.minorticks_off()
        ax.set_xlabel("learning rate h" if self.step_name == "h" else f"step {self.step_name}")
        ax.set_ylabel(f"global error at t = {self.T:g}")
        ax.set_title(f"{self.optimizer}: global error of modified flows", fontsize=10)
        ax.plot([], [], ":", color="0.3", lw=1.5, label="reference slope p + 1 (x 1/4)")
        low, high = ax.get_ylim()
        rows = len(self.orders) + 1 + (self.offsets is not None)
        ax.set_ylim(low / (high / low) ** (0.09 * rows), high)
        ax.legend(fontsize=8, loc="lower right")  # in the room made below the lines
        if self.transients and axes is not None and len(np.atleast_1d(axes)) == 2:
            self._plot_transients(axes[1])
        if path:
            save_figure(fig, path, dpi=120)
        return fig

    def _plot_transients(self, ax):
        for tr in self.transients:
            line, = ax.semilogy(tr.n, tr.theta_gap, "-", label=f"theta gap, h = {tr.lr:g}")
            ax.semilogy(tr.n, tr.memory_gap, ":", color=line.get_color())
        ax.set_xscale("log")
        ax.set_xlabel("step n")
        ax.set_ylabel("distance")
        ax.set_title("zero-initialized memory: |m_n - M_h(theta_n)| (dotted) and\n"
                     "|theta_n - theta_n(manifold start)| (solid)", fontsize=9)
        ax.legend(fontsize=8)


def _slope(x, y) -> float:
    y = np.asarray(y)
    if np.any(y <= 0) or not np.all(np.isfinite(y)):
        return float("nan")
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def check_ladder(lrs, orders):
    """Validate an order study's inputs: ``(lrs, orders)`` with ``lrs`` a float array sorted
    largest first (at least two, each positive) and ``orders`` a non-empty tuple of
    non-negative integers. Shared by :func:`verify_order` and ``verify_order_network``."""
    orders = tuple(check_order(p) for p in orders)
    if not orders:
        raise SymflowError("got orders=[]; give at least one truncation order, e.g. [0, 1, 2]")
    if len(set(orders)) != len(orders):
        raise SymflowError(f"got orders={list(orders)}, with repeats; give each truncation "
                           "order once, e.g. [0, 1, 2]")
    lrs = np.array(sorted((check_lr(lr) for lr in lrs), reverse=True))
    if len(lrs) < 2:
        raise SymflowError(f"got lrs={list(lrs)}; a slope needs at least two learning rates")
    if np.any(np.isclose(lrs[1:], lrs[:-1], rtol=1e-9, atol=0.0)):
        raise SymflowError(f"got lrs={list(map(float, lrs))}, with repeats; a slope needs "
                           "distinct learning rates, e.g. halving ones [0.04, 0.02, 0.01]")
    return lrs, orders


def check_horizon(T) -> float:
    """``T`` as a float, or a clear error unless it is a positive finite number."""
    if isinstance(T, bool) or not isinstance(T, (int, float, np.integer, np.floating)) or \
            not np.isfinite(T) or not T > 0:
        raise SymflowError(f"got T={T!r}; the final time must be a positive finite number")
    return float(T)


def step_count(T, step, name: str = "lr") -> int:
    """The number of steps ``n`` with ``n * step == T`` (``name``: what ``step`` is called
    in the message); a clear error when ``step`` does not divide ``T``."""
    T = check_horizon(T)
    n = round(T / step)
    if n < 1 or not math.isclose(n * step, T, rel_tol=1e-9):
        raise SymflowError(
            f"got T={T} and {name}={step} (T/{name} = {T / step:.6g}); T must be a whole "
            f"number of steps for every learning rate: pick learning rates whose {name} "
            "divides T"
        )
    return n


def _diverged(optimizer, lr, start, state):
    if divergence(state) is not None:
        raise SymflowError(f"{optimizer!r} diverged at lr = {lr} from x0 = "
                           f"{list(map(float, start))}; use smaller learning rates")


def _transient(optimizer, cmap, start, extra, lr, n, manifold):
    """Runs from the manifold and from the initial memory, compared step by step
    (``manifold``: ``theta -> M_h(theta)`` at this ``lr``)."""
    d = cmap.n_params
    on = cmap.trajectory(cmap.start(start, extra, manifold(start)), extra, n)
    off = cmap.trajectory(cmap.start(start, extra), extra, n)
    _diverged(optimizer, lr, start, on[-1])
    _diverged(optimizer, lr, start, off[-1])
    theta_gap = np.linalg.norm(np.asarray(off[:, :d] - on[:, :d]), axis=1)
    on_manifold = np.asarray(manifold(off[:, :d].T))
    memory_gap = np.linalg.norm(np.asarray(off[:, d:]).T - on_manifold, axis=0)
    return on[-1, :d], Transient(lr, np.arange(n + 1), theta_gap, memory_gap)


def verify_order(optimizer, loss, params, x0, lrs, T, orders=(0, 1, 2), hyper=None,
                 stiff=False, rtol=1e-12, atol=1e-12, me=None, progress=None,
                 memory0=None) -> VerifyReport:
    r"""Check numerically that the order-:math:`p` modified flow has global error :math:`O(h^{p+1})`.

    Parameters
    ----------
    optimizer, loss, params
        As for :func:`symflow.modified_equation`.
    x0 : sequence of float
        Starting point of the optimizer and of the flows.
    lrs : sequence of float
        Ladder of learning rates; each must divide ``T`` (for a flow on the whole state,
        its step must: :math:`\sqrt h` or :math:`h^2`).
    T : float
        Final time :math:`t = nh` (or the flow's own time, e.g. :math:`\tau = nh^2`).
    orders : sequence of int
        Truncation orders to test.
    hyper : dict
        Numeric values of hyperparameter symbols (by symbol or name).
    me : ModifiedEquation, optional
        A derivation to reuse (else derived here to ``max(orders)``; for an optimizer whose
        memory does not relax, or with slow memory, pass the flow on the whole state).
    memory0 : sequence of float, optional
        Flows on the whole state only: the initial memory in the flow's (scaled) variables,
        e.g. AdaGrad's :math:`w_0 = h^2 s_0`, held fixed as :math:`h` shrinks. By default
        the optimizer's own initial memory, scaled.

    Notes
    -----
    For an optimizer with memory the flows are the reduced ones, and the optimizer's
    memory starts on the invariant manifold :math:`M_h(x_0)` computed by the engine; the
    report's ``offsets`` and ``transients`` also show what the optimizer's own initial
    memory (zeros) leaves behind after its transient.

    Examples
    --------
    ::

        >>> import sympy as sp, symflow as sf, solvers as sv
        >>> x, y = sp.symbols("x y")
        >>> rep = sv.verify_order(sf.GD(), (x*y - 1)**2 / 2, [x, y], x0=[1.0, 0.5],
        ...                       lrs=[0.04, 0.02, 0.01, 0.005], T=1.0, orders=[0, 1, 2])
        >>> {p: round(s) for p, s in rep.slopes.items()}
        {0: 1, 1: 2, 2: 3}
    """
    check_symbolic(loss=loss, params=params, x0=x0, lrs=lrs, T=T, hyper=hyper, memory0=memory0)
    params = tuple(params)
    lrs, orders = check_ladder(lrs, orders)
    T = check_horizon(T)
    hyper_vector(tuple(hyper or ()), hyper)  # finite numbers, refused before any work
    names = tuple(sorted(map(str, hyper or ())))
    loss = to_sympy(loss, "loss")
    cmap = compiled_map(optimizer, loss, params, names)
    if me is None:
        me = sf.modified_equation(optimizer, loss, params, max(orders),
                                  hyper=declared(loss, names),
                                  reduce=optimizer.memory_relaxes)
    elif me.order < max(orders):
        raise SymflowError(f"the given equation has order {me.order} < max(orders)")
    state = isinstance(me, sf.StateModifiedEquation)
    if memory0 is not None and not state:
        raise SymflowError("memory0 applies to flows on the whole state only; a reduced flow "
                           "starts the memory on its invariant manifold")
    flow = compiled_flow(me)
    start = as_start(x0, params)
    with warnings.catch_warnings():
        warnings.simplefilter("always", sf.ValidityWarning)
        validity = sf.check_validity(loss, params, np.asarray(start), float(lrs[0]), hyper,
                                     optimizer=optimizer, series=not state)
    solve = flow.solver(stiff, rtol, atol)
    hv_flow = hyper_vector(flow.hyper, hyper)
    errors = {p: [] for p in orders}
    reduced_memory = bool(cmap.memory) and not state
    offsets, transients, steps = [], [], []
    d = cmap.n_params
    for lr in progress_bar(lrs, desc="verify_order", unit="lr", progress=progress):
        extra = cmap.extra(lr, hyper)
        if state:
            step = flow_step(me, lr)
            n = step_count(T, step, str(me.step))
            scale = float(as_sympy(me.memory_scale).subs(me.step, step))
            real0 = None if memory0 is None else np.asarray(memory0, dtype=float) / scale
            z0 = cmap.start(start, extra, real0)
            z_n = cmap.final(z0, extra, n)
            _diverged(optimizer, lr, start, z_n)
            y0 = np.concatenate([np.asarray(start), np.asarray(z0[d:]) * scale])
            target = np.concatenate([np.asarray(z_n[:d]), np.asarray(z_n[d:]) * scale])
        else:
            step, n = lr, step_count(T, lr)
            y0 = start
            if reduced_memory:
                target, tr = _transient(optimizer, cmap, start, extra, lr, n,
                                        manifold_function(me, lr, hyper))
                transients.append(tr)
                offsets.append(float(tr.theta_gap[-1]))
            else:
                target = cmap.final(start, extra, n)
                _diverged(optimizer, lr, start, target)
        steps.append(step)
        ts = np.array([0.0, n * step])
        for p in orders:
            w = flow.weights(step, p)
            ys, ok = solve(jnp.asarray(y0), ts, w, hv_flow)
            if not bool(ok) or not bool(jnp.all(jnp.isfinite(ys))):
                raise unsolved(me, flow, y0, w, hv_flow, p, f"to T = {T} at lr = {lr}")
            errors[p].append(float(np.linalg.norm(np.asarray(target) - np.asarray(ys[-1]))))
    errors = {p: np.array(e) for p, e in errors.items()}
    steps = np.array(steps)
    slopes = {p: _slope(steps, errors[p]) for p in orders}
    return VerifyReport(optimizer.label, lrs, float(T), orders, errors, slopes, validity,
                        np.array(offsets) if reduced_memory else None, steps,
                        str(me.step), transients if reduced_memory else None)
