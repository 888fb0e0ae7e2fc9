"""Figures: optimizer iterates over loss contours, with modified flows drawn through them."""

from __future__ import annotations

import numpy as np
import sympy as sp

from symflow import SymflowError

from ._compile import hyper_vector, vector_function
from ._flow import solve_flow
from ._iterate import iterate


def plot_trajectories(me, x0, lr, n_steps, orders=None, hyper=None, ax=None, path=None,
                      margin=0.3):
    """Overlay the optimizer's iterates on the order-``p`` flows over contours of the loss.

    ``me`` is a 2-parameter :class:`symflow.ModifiedEquation`. Returns the figure.
    """
    import matplotlib.pyplot as plt

    if len(me.params) != 2:
        raise SymflowError(
            f"got {len(me.params)} parameters; plot_trajectories draws 2-parameter problems")
    orders = range(me.order + 1) if orders is None else orders
    its = np.asarray(iterate(me.optimizer, me.loss, me.params, x0, lr, n_steps, hyper))
    flows = {p: solve_flow(me, x0, lr, n_steps, order=p, hyper=hyper)[1] for p in orders}
    if ax is None:
        fig, ax = plt.subplots(figsize=(5, 4.5), constrained_layout=True)
    else:
        fig = ax.figure
    pts = np.concatenate([its] + list(flows.values()))
    lo, hi = pts.min(0) - margin, pts.max(0) + margin
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], 200), np.linspace(lo[1], hi[1], 200))
    consts = tuple(sorted(me.loss.free_symbols - set(me.params), key=str))
    loss_fn = vector_function(sp.Matrix([me.loss]), me.params, consts)
    zz = np.asarray(loss_fn(np.stack([gx, gy]), hyper_vector(consts, hyper)))[0]
    levels = np.unique(np.quantile(zz, np.linspace(0.0, 1.0, 25) ** 2))
    ax.contour(gx, gy, zz, levels=levels, cmap="Greys_r", linewidths=0.6, alpha=0.8)
    for p, ys in flows.items():
        ax.plot(ys[:, 0], ys[:, 1], "-", lw=1.6, label=f"order-{p} modified flow")
    ax.plot(its[:, 0], its[:, 1], "k.", ms=6, label=f"{me.optimizer.label} iterates, h = {lr:g}")
    ax.set_xlabel(str(me.params[0]))
    ax.set_ylabel(str(me.params[1]))
    ax.legend(fontsize=8)
    if path:
        fig.savefig(path, dpi=120)
    return fig
