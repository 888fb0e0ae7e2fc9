"""Figures: optimizer iterates over loss contours, with modified flows drawn through them."""

from __future__ import annotations

import numpy as np
import sympy as sp

from symflow import StateModifiedEquation, SymflowError
from symflow._core._files import save_figure
from symflow._core._guard import as_sympy

from ._compile import hyper_vector, vector_function
from ._flow import flow_step, solve_flow
from ._iterate import iterate, manifold_memory


def _runs(me, x0, lr, n_steps, hyper, memory0, zero_start):
    """``(theta params, iterates, other iterates or None, flow start)`` for ``me``."""
    opt, loss = me.optimizer, me.loss
    if isinstance(me, StateModifiedEquation):
        theta, d = me.theta, len(me.theta)
        scale = float(as_sympy(me.memory_scale).subs(me.step, flow_step(me, lr)))
        real0 = None if memory0 is None else np.asarray(memory0, dtype=float) / scale
        run = np.asarray(iterate(opt, loss, theta, x0, lr, n_steps, hyper, memory0=real0,
                                 return_memory=True))
        return theta, run[:, :d], None, np.concatenate([run[0, :d], run[0, d:] * scale])
    if memory0 is not None:
        raise SymflowError("memory0 applies to flows on the whole state; a reduced flow "
                           "starts the memory on its invariant manifold")
    if me.manifold is None:
        return me.params, np.asarray(iterate(opt, loss, me.params, x0, lr, n_steps, hyper)), \
            None, x0
    on = iterate(opt, loss, me.params, x0, lr, n_steps, hyper,
                 memory0=manifold_memory(me, x0, lr, hyper))
    off = iterate(opt, loss, me.params, x0, lr, n_steps, hyper) if zero_start else None
    return me.params, np.asarray(on), None if off is None else np.asarray(off), x0


def plot_trajectories(me, x0, lr, n_steps, orders=None, hyper=None, ax=None, path=None,
                      margin=0.3, memory0=None, zero_start=True, title=None):
    """Overlay the optimizer's iterates on the order-``p`` flows over contours of the loss.

    ``me`` is a :class:`symflow.ModifiedEquation` of a 2-parameter problem. For an
    optimizer with memory the iterates start with the memory on its invariant manifold
    :math:`M_h(x_0)`, and (``zero_start=True``) the iterates from the optimizer's own
    initial memory are drawn too, as open circles. For a flow on the whole state
    (:class:`symflow.StateModifiedEquation`) the parameters of the flow are drawn;
    ``memory0`` is then the initial memory in the flow's variables (default: the
    optimizer's own, scaled). Returns the figure.
    """
    import matplotlib.pyplot as plt
    from matplotlib.transforms import offset_copy

    theta, its, off, y0 = _runs(me, x0, lr, n_steps, hyper, memory0, zero_start)
    if len(theta) != 2:
        raise SymflowError(
            f"got {len(theta)} parameters; plot_trajectories draws 2-parameter problems")
    orders = range(me.order + 1) if orders is None else orders
    flows = {p: solve_flow(me, y0, lr, n_steps, order=p, hyper=hyper)[1][:, :2]
             for p in orders}
    if ax is None:
        fig, ax = plt.subplots(figsize=(5, 4.5), constrained_layout=True)
    else:
        fig = ax.figure
    pts = np.concatenate([its] + list(flows.values()) + ([] if off is None else [off]))
    lo, hi = pts.min(0) - margin, pts.max(0) + margin
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], 200), np.linspace(lo[1], hi[1], 200))
    consts = tuple(sorted(me.loss.free_symbols - set(theta), key=str))
    loss_fn = vector_function(sp.Matrix([me.loss]), theta, consts)
    zz = np.asarray(loss_fn(np.stack([gx, gy]), hyper_vector(consts, hyper)))[0]
    # from the 1% quantile up: lower level sets of a narrow valley are thinner than the grid
    # and came out as broken fragments that looked like dashes
    levels = np.unique(np.quantile(zz, np.linspace(0.1, 1.0, 24) ** 2))
    ax.contour(gx, gy, zz, levels=levels, cmap="Greys_r", linewidths=0.6, alpha=0.8,
               linestyles="solid")
    ax.plot([], [], "-", color="0.55", lw=0.6,
            label="contours of the loss (darker: lower)")
    for p, ys in flows.items():
        ax.plot(ys[:, 0], ys[:, 1], "-", lw=1.6, zorder=3, label=f"order-{p} modified flow")
    start = ", memory on its manifold" if off is not None else f", h = {lr:g}"
    size = 6 if n_steps <= 60 else 3
    ax.plot(its[:, 0], its[:, 1], "k.", ms=size, label=f"{me.optimizer.name} iterates{start}")
    if off is not None:
        ax.plot(off[:, 0], off[:, 1], "o", mfc="none", mec="0.45", ms=size - 1,
                label="iterates from zero memory")
    ax.set_xlabel(str(theta[0]))
    ax.set_ylabel(str(theta[1]))
    ax.set_title(title or f"{me.optimizer.name} at h = {lr:g}, {n_steps} steps: iterates "
                 "(dots)\nand the truncated modified flows (lines) over the loss contours",
                 fontsize=9)
    # below the axes and their x label (inside, it covered the spirals and circles)
    below = offset_copy(ax.transAxes, fig=fig, y=-34, units="points")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, 0.0), bbox_transform=below,
              ncol=2)
    if path:
        save_figure(fig, path, dpi=120)
    return fig
