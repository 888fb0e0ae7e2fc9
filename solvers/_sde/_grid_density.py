r"""Densities on a grid of cells, and how far a sample is from them.

A :class:`GridDensity` holds a probability density on a box :math:`\prod_k[a_k, b_k]` cut
into cells (1-D or 2-D), normalised so that :math:`\sum_c p_c\,|c| = 1`. It comes from a
numerical Fokker–Planck solve (:func:`solvers.solve_fokker_planck`) or from a symbolic
stationary density (:func:`density_on_grid`), and compares itself with samples by a
*distance* with a known noise level:

* **Kolmogorov–Smirnov** (1-D, and per marginal in 2-D):
  :math:`D_n = \sup_x |F_n(x) - F(x)|`, with :math:`F` piecewise linear inside cells; for
  exact samples :math:`\sqrt n D_n` follows Kolmogorov's law (p-value
  :func:`scipy.special.kolmogorov`; Kolmogorov 1933, Smirnov 1948);
* **total variation** of the binned sample against the cell masses,
  :math:`\tfrac12\sum_c|\hat P_c - P_c|` (+ half the sample mass outside the box), next to
  its noise floor for exact samples,
  :math:`\tfrac12\sum_c\sqrt{2P_c(1-P_c)/(\pi n)}` (normal approximation of
  :math:`\mathbb E|\hat P_c - P_c|`).
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np
import sympy as sp
from scipy.special import kolmogorov

from symflow import SymflowError
from symflow._core._files import save_figure
from symflow._core._table import Table, TableDisplay
from symflow._stochastic._fokker_planck import StationaryDensity

from .._ode._compile import hyper_vector, vector_function


def check_box(bounds, cells, dim):
    """``bounds`` as ``dim`` pairs ``(lo, hi)`` and ``cells`` as ``dim`` ints >= 3."""
    if dim not in (1, 2):
        raise SymflowError(f"got a {dim}-dimensional state; grid densities are for 1-D and "
                           "2-D problems (use ensembles in higher dimension)")
    try:
        box = np.asarray(bounds, dtype=float).reshape(dim, 2)
    except (TypeError, ValueError):
        raise SymflowError(f"got bounds={bounds!r}; give {dim} pair(s) (lo, hi), e.g. "
                           f"{[(-3, 3)] * dim}") from None
    if not np.all(np.isfinite(box)) or np.any(box[:, 1] <= box[:, 0]):
        raise SymflowError(f"got bounds={bounds!r}; every pair needs finite lo < hi")
    cells = (cells,) * dim if np.isscalar(cells) else tuple(cells)
    if len(cells) != dim or any(not isinstance(c, (int, np.integer)) or isinstance(c, bool)
                                or c < 3 for c in cells):
        raise SymflowError(f"got cells={cells!r}; give {dim} whole number(s) >= 3")
    return box, tuple(int(c) for c in cells)


class GridDensity:
    """A probability density on a 1-D or 2-D grid of cells (values at the cell centers)."""

    def __init__(self, edges, values, names=None, label="density"):
        self.edges = tuple(np.asarray(e, dtype=float) for e in edges)
        values = np.clip(np.asarray(values, dtype=float), 0.0, None)
        self.names = tuple(names) if names else tuple(f"x{k}" for k in range(len(edges)))
        self.label = label
        total = float(np.sum(values * self.volumes))
        if not np.isfinite(total) or total <= 0:
            raise SymflowError(f"the {label} has no positive mass on the grid")
        self.values = values / total

    @property
    def dim(self) -> int:
        return len(self.edges)

    @property
    def centers(self) -> tuple:
        return tuple(cell_centers(self.edges))

    @property
    def volumes(self) -> np.ndarray:
        widths = [np.diff(e) for e in self.edges]
        return widths[0] if self.dim == 1 else np.outer(widths[0], widths[1])

    @property
    def masses(self) -> np.ndarray:
        """Probability of each cell."""
        return self.values * self.volumes

    def marginal(self, axis: int) -> "GridDensity":
        """The 1-D marginal density along ``axis``."""
        if self.dim == 1:
            return self
        other = 1 - axis
        mass = self.masses.sum(axis=other)
        return GridDensity([self.edges[axis]], mass / np.diff(self.edges[axis]),
                           [self.names[axis]], f"{self.label} (marginal {self.names[axis]})")

    def mean(self) -> np.ndarray:
        """:math:`\\mathbb E X` under the grid density (cell centers)."""
        margs = [self.marginal(k) for k in range(self.dim)]
        return np.array([float(np.sum(m.masses * m.centers[0])) for m in margs])

    def cdf(self, x) -> np.ndarray:
        """The 1-D distribution function (linear inside cells, 0/1 outside the box)."""
        if self.dim != 1:
            raise SymflowError("cdf is for 1-D densities; use marginal(axis).cdf")
        at_edges = np.concatenate([[0.0], np.cumsum(self.masses)])
        return np.interp(x, self.edges[0], at_edges, left=0.0, right=1.0)

    def ks_distance(self, samples) -> tuple:
        r"""``(D_n, p_value)``: Kolmogorov–Smirnov distance of 1-D samples from this density."""
        xs = np.sort(np.asarray(samples, dtype=float).reshape(-1))
        n = xs.size
        if n == 0:
            raise SymflowError("got no samples to compare")
        f = self.cdf(xs)
        d = float(max(np.max(np.arange(1, n + 1) / n - f), np.max(f - np.arange(n) / n)))
        return d, float(kolmogorov(np.sqrt(n) * d))

    def tv_distance(self, samples, coarsen: int = 1) -> tuple:
        r"""``(TV, noise_floor)``: total variation of the binned samples from the cell masses.

        ``coarsen`` merges ``coarsen`` cells per axis into one bin first (fewer, fuller
        bins: a lower noise floor).
        """
        pts = _as_points(samples, self.dim)
        n = pts.shape[0]
        edges = [e[::coarsen] if (len(e) - 1) % coarsen == 0 else
                 np.append(e[::coarsen], e[-1]) for e in self.edges]
        hist, _ = np.histogramdd(pts, bins=edges)
        emp = hist / n
        outside = 1.0 - emp.sum()
        probs = _rebin(self.masses, coarsen)
        tv = 0.5 * (np.abs(emp - probs).sum() + outside)
        floor = 0.5 * np.sum(np.sqrt(2 * probs * (1 - probs) / (np.pi * n)))
        return float(tv), float(floor)

    def plot(self, ax=None, **kwargs):
        """The density (1-D curve, or 2-D contour lines) on ``ax``, with axis labels."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(5, 4), constrained_layout=True)
        if self.dim == 1:
            ax.plot(self.centers[0], self.values, **{"lw": 2, "label": self.label, **kwargs})
            labels = (self.names[0], "density")
        else:
            cx, cy = self.centers
            ax.contour(cx, cy, self.values.T, levels=8, **{"cmap": "viridis", **kwargs})
            labels = self.names
            if not ax.get_title():
                ax.set_title(f"{self.label} (contour lines)", fontsize=10)
        if not ax.get_xlabel() and not ax.get_ylabel():  # keep the caller's labels
            ax.set_xlabel(str(labels[0]))
            ax.set_ylabel(str(labels[1]))
        return ax

    def __repr__(self) -> str:
        shape = "x".join(str(len(e) - 1) for e in self.edges)
        return f"<GridDensity {self.label!r} {shape} cells on {self.names}>"


def _as_points(samples, dim):
    pts = np.asarray(samples, dtype=float)
    if pts.ndim == 1 and dim == 1:
        pts = pts[:, None]
    if pts.ndim != 2 or pts.shape[1] != dim:
        raise SymflowError(f"got samples of shape {np.shape(samples)}; give (n, {dim})")
    return pts[np.all(np.isfinite(pts), axis=1)]


def _rebin(masses, k):
    if k == 1:
        return masses
    out = masses
    for axis in range(masses.ndim):
        n = out.shape[axis]
        idx = np.arange(0, n, k)
        out = np.add.reduceat(out, idx, axis=axis)
    return out


def grid_edges(box, cells):
    return [np.linspace(lo, hi, n + 1) for (lo, hi), n in zip(box, cells)]


def cell_centers(edges):
    """The midpoints of the cells along each axis."""
    return [(e[1:] + e[:-1]) / 2 for e in edges]


def mesh_points(centers):
    """Cell centers as a batched state ``(d, n_cells)`` (C order)."""
    grids = np.meshgrid(*centers, indexing="ij")
    return np.stack([g.ravel() for g in grids])


def density_on_grid(density, bounds, cells=400, hyper=None, lr=None) -> GridDensity:
    r"""A symbolic :class:`symflow.StationaryDensity` evaluated on a grid (renormalised on the box).

    A closed form is evaluated as :math:`e^{-(\Phi - \min\Phi)}`. A 1-D density with no
    closed form (its potential an unevaluated integral) is built from
    :math:`\log p = \int v`, :math:`v` = ``density.log_gradient``, by the trapezoid rule
    on the cell centers.

    Example::

        >>> import sympy as sp, symflow as sf, solvers as sv
        >>> x = sp.Symbol("x")
        >>> ou = sf.SDE(drift=[-x], diffusion=sp.sqrt(2), params=[x])
        >>> g = sv.density_on_grid(sf.fokker_planck(ou).stationary_density(), [(-6, 6)], 600)
        >>> round(float(g.masses.sum()), 6), round(float(g.cdf(0.0)), 4)
        (1.0, 0.5)
    """
    if not isinstance(density, StationaryDensity):
        raise SymflowError(f"got {type(density).__name__}; pass the result of "
                           "sf.fokker_planck(sde).stationary_density()")
    params = density.params
    box, cells = check_box(bounds, cells, len(params))
    edges = grid_edges(box, cells)
    centers = cell_centers(edges)
    # the potential Phi (closed form), else the 1-D log-density gradient v
    expr = sp.Matrix([density.potential] if density.closed_form else density.log_gradient)
    consts = tuple(sorted(expr.free_symbols - set(params), key=str))
    cv = hyper_vector(consts, {**(hyper or {}), **({} if lr is None else {"h": lr})})
    vals = np.asarray(vector_function(expr, params, consts)(jnp.asarray(mesh_points(centers)),
                                                           cv))[0]
    if density.closed_form:
        log_p = -(vals - np.min(vals))
    else:
        log_p = np.concatenate([[0.0], np.cumsum((vals[1:] + vals[:-1]) / 2
                                                 * np.diff(centers[0]))])
        log_p -= log_p.max()
    values = np.exp(log_p).reshape(cells)
    return GridDensity(edges, values, [str(p) for p in params], "stationary density")


@dataclasses.dataclass(repr=False)
class StationaryReport(TableDisplay):
    """Distances of sample sets from a reference density (see :func:`compare_stationary`)."""

    density: GridDensity
    samples: dict
    ks: dict
    tv: dict

    def table(self) -> str:
        """KS distance and p-value per axis, total variation and its noise floor."""
        names = self.density.names
        head = f"{'sample':16s} {'n':>7s}" + "".join(f" {'KS ' + n:>9s} {'p':>6s}" for n in names)
        rows = [head + f" {'TV':>7s} {'floor':>7s}"]
        for name, pts in self.samples.items():
            ks = [self.ks[name]] if self.density.dim == 1 else self.ks[name]
            cells = "".join(f" {d:9.4f} {p:6.3f}" for d, p in ks)
            tv, floor = self.tv[name]
            rows.append(f"{name:16s} {len(pts):7d}{cells} {tv:7.4f} {floor:7.4f}")
        return "\n".join(rows)

    def _table(self) -> Table:
        names = self.density.names
        header = ["sample", "n"] + [c for n in names for c in (f"KS {n}", "p")] + ["TV",
                                                                              "TV noise floor"]
        rows = []
        for name, pts in self.samples.items():
            ks = [self.ks[name]] if self.density.dim == 1 else self.ks[name]
            tv, floor = self.tv[name]
            rows.append([name, f"{len(pts)}"] + [c for d, p in ks for c in (f"{d:.4f}", f"{p:.3f}")]
                        + [f"{tv:.4f}", f"{floor:.4f}"])
        return Table(header, rows, f"distances from the {self.density.label}")

    def __str__(self) -> str:
        return f"distances from the {self.density.label}\n{self.table()}"

    def plot(self, path=None, axes=None, bins=60):
        """Histograms of every sample set with the density (1-D, or each marginal in 2-D)."""
        import matplotlib.pyplot as plt

        d = self.density.dim
        if axes is None:
            fig, axes = plt.subplots(1, d, figsize=(5 * d, 4), constrained_layout=True)
        axes = np.atleast_1d(axes)
        for k, ax in enumerate(axes):
            marg = self.density.marginal(k)
            for name, pts in self.samples.items():
                col = np.asarray(pts).reshape(len(pts), -1)[:, k]
                ax.hist(col, bins=bins, range=(marg.edges[0][0], marg.edges[0][-1]),
                        density=True, histtype="step", lw=1.4, label=name)
            marg.plot(ax, color="k", label=self.density.label)
            ax.set_xlabel(self.density.names[k])
            ax.legend(fontsize=7)
        if path:
            save_figure(axes[0].figure, path, dpi=120)
        return axes[0].figure


def compare_stationary(density: GridDensity, samples: dict, coarsen: int = 1):
    """Kolmogorov–Smirnov (per axis) and total-variation distances of samples from a density.

    ``samples`` maps a label to an ``(n, d)`` array (e.g. ``ensemble.final()``).
    """
    if not isinstance(density, GridDensity):
        raise SymflowError(f"got {type(density).__name__}; pass a GridDensity "
                           "(solvers.solve_fokker_planck or solvers.density_on_grid)")
    pts = {name: _as_points(s, density.dim) for name, s in samples.items()}
    ks = {name: (density.ks_distance(p[:, 0]) if density.dim == 1 else
                 [density.marginal(k).ks_distance(p[:, k]) for k in range(density.dim)])
          for name, p in pts.items()}
    tv = {name: density.tv_distance(p, coarsen) for name, p in pts.items()}
    return StationaryReport(density, pts, ks, tv)


__all__ = ["GridDensity", "StationaryReport", "compare_stationary", "density_on_grid"]
