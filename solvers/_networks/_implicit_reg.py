r"""Implicit gradient regularization of gradient descent on a network, made explicit.

Gradient descent with learning rate :math:`h` follows, to first order in :math:`h`, the
gradient flow of the modified loss

.. math::

    \tilde L = L + \frac h4\,\lVert\nabla L\rVert^2, \qquad
    \dot\theta = -\nabla\tilde L = -g - \frac h2\,Hg ,

the order-1 coordinate-free modified equation of GD (Barrett & Dherin, *Implicit Gradient
Regularization*, ICLR 2021; the "learning rate should not be too small" argument of the
seed article). A finite learning rate thus penalises :math:`\lVert\nabla L\rVert^2`, which
plain gradient flow (:math:`h \to 0`) does not. The study runs GD at several learning
rates, solves the regularized flow (the engine's order-1 field, evaluated by nested jvp)
and plain gradient flow from the same start, and records :math:`L` and
:math:`\lVert\nabla L\rVert^2` at common times :math:`t = nh`, together with
:math:`h\,\lambda_{\max}` along the GD path. The regularizer tracks GD while
:math:`h\lambda_{\max}` is small and stops doing so as it approaches the stability limit 2.

Example::

    >>> import solvers as sv
    >>> params = sv.mlp_init([2, 8, 1], seed=0)
    >>> study = sv.implicit_regularization(sv.mse_loss, params, sv.toy_regression(16),
    ...                                    lrs=[0.1, 0.25], T=2.0, n_saves=4)  # doctest: +SKIP
    >>> study.gaps()["regularized"] < study.gaps()["gradient flow"]  # doctest: +SKIP
    array([ True,  True])
    >>> study.plot("igr.png")  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
from jax.flatten_util import ravel_pytree

import symflow as sf
from symflow import SymflowError
from symflow._core._files import save_figure
from symflow._core._progress import progress_bar
from symflow._core._table import Table, TableDisplay

from .._ode._iterate import check_lr
from ._network_run import network_optimizer
from ._network_verify import solve_network_flow
from ._sharpness import sharpness
from ._tree_eval import network_field, split_model


@dataclasses.dataclass(repr=False)
class ImplicitRegularization(TableDisplay):
    r"""Loss and :math:`\lVert\nabla L\rVert^2` of GD, the regularized flow and gradient flow.

    ``gd[i]``, ``regularized[i]``: dicts of arrays ``loss``, ``grad_sq``, ``params`` (flat)
    at ``times`` for learning rate ``lrs[i]``; ``flow`` the same for plain gradient flow;
    ``h_sharpness[i]`` is :math:`h\,\lambda_{\max}` along the GD path.
    """

    lrs: np.ndarray
    times: np.ndarray
    gd: list
    regularized: list
    flow: dict
    h_sharpness: list

    def gaps(self) -> dict:
        r"""Per learning rate, :math:`\max_t \lVert\theta_{GD} - \theta_{flow}\rVert` for both flows."""
        def gap(a, b):
            return float(np.max(np.linalg.norm(a["params"] - b["params"], axis=-1)))

        return {"regularized": np.array([gap(g, r) for g, r in zip(self.gd, self.regularized)]),
                "gradient flow": np.array([gap(g, self.flow) for g in self.gd])}

    def table(self) -> str:
        r"""Per learning rate: the largest distance to GD of each flow, the largest relative
        gaps in :math:`L` and :math:`\lVert\nabla L\rVert^2`, and the range of :math:`h\lambda_{\max}`."""
        gaps = self.gaps()

        def rel(a, b, key):
            return float(np.max(np.abs(a[key] - b[key]) / np.abs(a[key])))

        rows = ["     h   h*lam_max (min..max)   |dtheta| reg   |dtheta| GF   "
                "dL/L reg  dL/L GF   d|g|^2 reg  d|g|^2 GF"]
        for i, h in enumerate(self.lrs):
            g, r = self.gd[i], self.regularized[i]
            hs = self.h_sharpness[i]
            rows.append(
                f"{h:6.3g}   {hs.min():7.3f} .. {hs.max():6.3f}   {gaps['regularized'][i]:11.2e}"
                f"   {gaps['gradient flow'][i]:11.2e}   {rel(g, r, 'loss'):8.2e}  "
                f"{rel(g, self.flow, 'loss'):8.2e}   {rel(g, r, 'grad_sq'):9.2e}  "
                f"{rel(g, self.flow, 'grad_sq'):9.2e}")
        return "\n".join(rows)

    def _table(self) -> Table:
        gaps = self.gaps()

        def rel(a, b, key):
            return f"{float(np.max(np.abs(a[key] - b[key]) / np.abs(a[key]))):.2e}"

        rows = []
        for i, h in enumerate(self.lrs):
            g, r, hs = self.gd[i], self.regularized[i], self.h_sharpness[i]
            rows.append([f"{h:.3g}", f"{hs.min():.3f} .. {hs.max():.3f}",
                         f"{gaps['regularized'][i]:.2e}", f"{gaps['gradient flow'][i]:.2e}",
                         rel(g, r, "loss"), rel(g, self.flow, "loss"), rel(g, r, "grad_sq"),
                         rel(g, self.flow, "grad_sq")])
        return Table(["h", "h*lam_max (min..max)", "|dtheta| reg", "|dtheta| GF", "dL/L reg",
                      "dL/L GF", "d|g|^2 reg", "d|g|^2 GF"], rows, str(self).split("\n")[0])

    def __str__(self) -> str:
        return ("Implicit gradient regularization: GD vs the flow of L + h/4 |grad L|^2 (reg) "
                f"and gradient flow (GF), t in [0, {self.times[-1]:g}]\n" + self.table())

    def plot(self, path=None):
        r"""One figure. Top: :math:`L` and :math:`\lVert\nabla L\rVert^2` relative to gradient
        flow (dots GD, lines the regularized flow) and the distances to GD along the way;
        bottom: the largest distance against :math:`h`, and :math:`h\lambda_{\max}` along the
        GD path (stability limit 2). Saved when ``path`` is given."""
        import matplotlib.pyplot as plt

        fig, ax = plt.subplot_mosaic([["loss", "grad", "dist"], ["gap", "gap", "sharp"]],
                                     figsize=(15, 8.5), constrained_layout=True)
        t = self.times
        colors = plt.cm.viridis(np.linspace(0.0, 0.85, len(self.lrs)))
        runs = list(zip(colors, self.lrs, self.gd, self.regularized, self.h_sharpness))
        reg = r"$L + \frac{h}{4}|\nabla L|^2$"
        for key, name in (("loss", "$L$"), ("grad", r"$|\nabla L|^2$")):
            field = "loss" if key == "loss" else "grad_sq"
            base = self.flow[field]
            for c, h, g, r, _ in runs:
                ax[key].plot(t, g[field] / base - 1, "o", ms=3.5, color=c, label=f"GD, h = {h:g}")
                ax[key].plot(t, r[field] / base - 1, "-", color=c, lw=1.3)
            ax[key].axhline(0.0, color="k", lw=0.8, ls=":")
            ax[key].set_yscale("symlog", linthresh=1e-3)
            ax[key].set_xlabel("t = n h")
            ax[key].set_title(f"{name} relative to gradient flow (ratio - 1):\n"
                              f"dots GD, lines the flow of {reg}", fontsize=10)
        ax["loss"].legend(fontsize=8)
        for c, h, g, r, _ in runs:
            ax["dist"].semilogy(t, np.linalg.norm(g["params"] - r["params"], axis=-1), "-",
                                color=c, label=f"h = {h:g}")
            ax["dist"].semilogy(t, np.linalg.norm(g["params"] - self.flow["params"], axis=-1),
                                ":", color=c)
        ax["dist"].set_xlabel("t = n h")
        ax["dist"].set_title(r"$|\theta_{GD} - \theta_{flow}|$: solid the flow of " + reg
                             + ",\ndotted gradient flow", fontsize=10)
        # outside, to the right: inside it covered the largest learning rate's curves
        ax["dist"].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        gaps = self.gaps()
        a = ax["gap"]
        a.loglog(self.lrs, gaps["regularized"], "o-", label=f"flow of {reg}: O($h^2$)")
        a.loglog(self.lrs, gaps["gradient flow"], "s--", label="gradient flow: O($h$)")
        a.set_xticks(self.lrs, [f"{h:g}" for h in self.lrs], minor=False)
        a.minorticks_off()
        a.set_xlabel("learning rate h")
        a.set_ylabel(r"$\max_t |\theta_{GD} - \theta_{flow}|$")
        for h, hs, y in zip(self.lrs, self.h_sharpness, gaps["regularized"]):
            a.annotate(rf"$h\lambda_{{\max}} \leq {hs.max():.2f}$", (h, y), fontsize=8,
                       textcoords="offset points", xytext=(6, -14))
        a.set_title("where the explicit regularizer stops tracking GD", fontsize=10)
        a.legend(fontsize=9)
        for c, h, _, _, hs in runs:
            ax["sharp"].plot(t, hs, "o-", ms=3, color=c, label=f"h = {h:g}")
        ax["sharp"].axhline(2.0, color="r", lw=1, ls="--", label="stability limit 2")
        ax["sharp"].set_xlabel("t = n h")
        ax["sharp"].set_title(r"$h\lambda_{\max}$ along the GD path (power iteration)",
                              fontsize=10)
        ax["sharp"].legend(fontsize=8, ncol=2, loc="center", bbox_to_anchor=(0.5, 0.62))
        if path:
            save_figure(fig, path, dpi=110)
        return fig


def _observables(loss_fn, batch):
    def observe(params):
        value, grad = jax.value_and_grad(loss_fn)(params, batch)
        flat = ravel_pytree(grad)[0]
        return value, flat @ flat, ravel_pytree(params)[0]

    return observe


def implicit_regularization(loss_fn, params0, batch, lrs, T, n_saves=40, rtol=1e-9,
                            atol=1e-12, sharpness_iters=50, progress=None):
    r"""Compare GD with the flows of :math:`L + \frac h4\lVert\nabla L\rVert^2` and of :math:`L`.

    Parameters
    ----------
    loss_fn, params0, batch
        The model: ``loss_fn(params, batch)`` (full batch), the common starting point.
    lrs : sequence of float
        Learning rates; ``T / n_saves`` must be a whole number of steps for each.
    T : float
        Final time :math:`t = nh`.
    n_saves : int
        Number of common save times :math:`t_j = jT/n_{saves}`.
    """
    lrs = np.array(sorted(check_lr(lr) for lr in lrs))
    if not len(lrs):
        raise SymflowError("got lrs=[]; give at least one learning rate")
    if isinstance(n_saves, bool) or not isinstance(n_saves, int) or n_saves < 1:
        raise SymflowError(f"got n_saves={n_saves!r}; give a positive integer")
    dt = float(T) / n_saves
    every = []
    for h in lrs:
        k = round(dt / h)
        if k < 1 or abs(k * h - dt) > 1e-9 * dt:
            raise SymflowError(f"got lr={h} with T={T}, n_saves={n_saves}: the save interval "
                               f"{dt:g} must be a whole number of steps; pick lrs dividing it")
        every.append(k)
    cf = sf.modified_equation(sf.GD(), order=1)   # -g - h/2 H g = -grad(L + h/4 |g|^2)
    loss_fn, params0 = split_model(loss_fn, params0)   # an equinox model: its arrays
    field = network_field(cf, loss_fn)
    run = network_optimizer(cf, loss_fn)
    params0 = field.prepare(params0, batch)
    observe = _observables(loss_fn, batch)
    times = dt * np.arange(1, n_saves + 1)
    stack = jax.jit(jax.vmap(observe))
    unravel = ravel_pytree(params0)[1]

    def on_flow(ys):
        loss, grad_sq, flat = stack(ys)
        return {"loss": np.asarray(loss), "grad_sq": np.asarray(grad_sq),
                "params": np.asarray(flat)}

    flow = on_flow(solve_network_flow(field, params0, batch, 1.0, times, 0, rtol, atol))
    gd, regularized, h_sharpness = [], [], []
    for h, k in progress_bar(list(zip(lrs, every)), desc="implicit regularization",
                             unit="lr", progress=progress):
        (loss, grad_sq, flat), _ = run.trajectory(params0, batch, float(h), k * n_saves,
                                                  observe, every=k)
        if not np.all(np.isfinite(np.asarray(loss))):
            raise SymflowError(f"GD diverged at lr = {h}; use smaller learning rates")
        gd.append({"loss": np.asarray(loss), "grad_sq": np.asarray(grad_sq),
                   "params": np.asarray(flat)})
        regularized.append(on_flow(solve_network_flow(field, params0, batch, float(h), times,
                                                      1, rtol, atol)))
        h_sharpness.append(h * np.array([sharpness(loss_fn, unravel(p), batch, sharpness_iters)
                                         for p in np.asarray(flat)]))
    return ImplicitRegularization(lrs, times, gd, regularized, flow, h_sharpness)
