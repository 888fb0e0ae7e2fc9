r"""How fast a convolution smoothing :math:`f_s = f * \delta_s` approaches :math:`f`.

:func:`smoothing_error` takes the closed form of :func:`symflow.smooth` with a symbolic
width, evaluates :math:`f_s - f` on a grid of a window for a ladder of widths, and fits
log-log slopes of the sup error and of the :math:`L^1` error over the window. Near a kink
with slope jump :math:`\Delta` the error has the scaling form
:math:`f_s(x) - f(x) = s\,\Delta\,e(x/s)`, so the sup error is :math:`O(s)` and the
:math:`L^1` error :math:`O(s^2)`; near a jump of height :math:`J`, :math:`f_s - f =
J\,e(x/s)` gives a sup error that does not shrink (about :math:`J/2`) and an :math:`L^1`
error :math:`O(s)` (for kernels with a finite first absolute moment; the Cauchy kernel
adds a :math:`\log(1/s)`).
"""

from __future__ import annotations

import dataclasses

import mpmath
import numpy as np
import sympy as sp

from symflow import SymflowError
from symflow._core._files import save_figure
from symflow._core._table import Table, TableDisplay
from symflow._claims._smooth import read_function, smooth


def _numeric(expr, x):
    """A vectorized float function of ``x``: numpy/scipy on arrays where the expression
    allows, else point by point (``Integral`` by ``scipy.integrate.quad``, ``polylog`` by
    mpmath)."""
    fast = sp.lambdify(x, expr, modules=["scipy", "numpy"])
    try:
        fast(np.array([0.25, -0.5]))
        return lambda v: np.asarray(fast(v), dtype=float) * np.ones_like(v)
    except (NameError, TypeError, AttributeError, ValueError):
        pass
    scalar = sp.lambdify(x, expr, modules=[
        {"polylog": lambda k, z: float(mpmath.re(mpmath.polylog(k, z)))}, "scipy", "numpy"])
    return np.vectorize(lambda v: float(scalar(v)), otypes=[float])


def _slope(widths, err) -> float:
    ok = err > 0
    if ok.sum() < 2:
        return float("nan")
    return float(np.polyfit(np.log(widths[ok]), np.log(err[ok]), 1)[0])


@dataclasses.dataclass(repr=False)
class SmoothingError(TableDisplay):
    """Errors of :math:`f_s` against :math:`f` for a ladder of widths (see the module doc).

    ``sup[i]`` and ``l1[i]`` belong to ``widths[i]``; ``slope_sup`` and ``slope_l1`` are the
    fitted log-log slopes; ``grid``, ``f`` and ``smoothed[i]`` the sampled functions.
    """

    label: str
    widths: np.ndarray
    sup: np.ndarray
    l1: np.ndarray
    slope_sup: float
    slope_l1: float
    grid: np.ndarray
    f: np.ndarray
    smoothed: list

    def table(self) -> str:
        rows = [f"{self.label}: sup-error slope {self.slope_sup:.3f}, L1-error slope "
                f"{self.slope_l1:.3f}", "    width      sup |f_s - f|    L1 |f_s - f|"]
        rows += [f"  {w:8.4g}   {a:14.6g}  {b:14.6g}" for w, a, b in
                 zip(self.widths, self.sup, self.l1)]
        return "\n".join(rows)

    def _table(self) -> Table:
        rows = [[f"{w:.4g}", f"{a:.6g}", f"{b:.6g}"]
                for w, a, b in zip(self.widths, self.sup, self.l1)]
        rows.append(["slope", f"{self.slope_sup:.3f}", f"{self.slope_l1:.3f}"])
        return Table(["width s", "sup |f_s - f|", "L1 |f_s - f|"], rows, self.label)

    def __str__(self) -> str:
        return self.table()

    def plot(self, axes=None, path=None):
        """Left: f and f_s; right: the errors against the width (log-log). Returns the figure."""
        import matplotlib.pyplot as plt

        if axes is None:
            fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
        else:
            fig = axes[0].figure
        axes[0].plot(self.grid, self.f, "k", lw=2, label="f")
        for w, fs in zip(self.widths[::2], self.smoothed[::2]):
            axes[0].plot(self.grid, fs, lw=1, label=f"s = {w:.3g}")
        axes[0].set_title(self.label, fontsize=10)
        axes[0].legend(fontsize=7)
        axes[1].loglog(self.widths, self.sup, "o-", label=f"sup (slope {self.slope_sup:.2f})")
        axes[1].loglog(self.widths, self.l1, "s-", label=f"L1 (slope {self.slope_l1:.2f})")
        axes[1].set_xticks(self.widths, [f"{w:g}" for w in self.widths])
        axes[1].xaxis.set_minor_formatter(plt.NullFormatter())
        axes[1].set_xlabel("width s")
        axes[1].set_ylabel("|f_s - f|")
        axes[1].legend(fontsize=8)
        if path:
            save_figure(fig, path, dpi=120)
        return fig


def smoothing_error(expr, x, kernel="gaussian", widths=(0.4, 0.2, 0.1, 0.05, 0.025),
                    window=(-2.0, 2.0), n=4001, label=None) -> SmoothingError:
    r"""Sup and :math:`L^1` errors of :math:`f * \delta_s` on ``window`` for each width.

    The closed form is derived once with a symbolic width (:func:`symflow.smooth`) and
    evaluated on ``n`` grid points (plus both sides of the function's breakpoints).

    Example::

        >>> import sympy as sp
        >>> x = sp.Symbol("x", real=True)
        >>> rep = smoothing_error(sp.Max(0, x), x, "gaussian")
        >>> round(rep.slope_sup, 6), round(rep.slope_l1, 2)
        (1.0, 2.0)
    """
    widths = np.asarray(widths, dtype=float)
    if widths.ndim != 1 or len(widths) < 2 or not np.all(np.isfinite(widths) & (widths > 0)):
        raise SymflowError(f"got widths={widths.tolist()}; give at least two positive widths")
    try:
        lo, hi = map(float, window)
    except (TypeError, ValueError):
        lo = hi = float("nan")
    if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
        raise SymflowError(f"got window={window!r}; give two finite numbers (a, b) with a < b")
    s = sp.Symbol("s", positive=True)
    expr = read_function(expr, x)
    fs = smooth(expr, x, kernel, s)
    f = _numeric(expr, x)
    breaks = []
    for p in sp.piecewise_fold(expr.rewrite(sp.Piecewise)).atoms(sp.Rel):
        breaks += [float(r) for r in sp.solve(sp.Eq(p.lhs, p.rhs), x) if r.is_real]
    # both sides of every breakpoint, so that a jump costs the trapezoid rule nothing
    sides = [b + e for b in breaks if lo < b < hi for e in (-1e-12, 1e-12)]
    grid = np.unique(np.concatenate([np.linspace(lo, hi, n), sides]))
    f_grid = f(grid)
    sup, l1, curves = [], [], []
    for w in widths:
        with np.errstate(over="ignore"):  # exp overflow in a tail evaluates to the right limit
            fw = _numeric(fs.subs(s, w), x)(grid)
        err = np.abs(fw - f_grid)
        sup.append(err.max())
        l1.append(np.trapezoid(err, grid))
        curves.append(fw)
    sup, l1 = np.array(sup), np.array(l1)
    name = kernel if isinstance(kernel, str) else "custom kernel"
    return SmoothingError(label or f"{expr} * {name}", widths, sup, l1,
                          _slope(widths, sup), _slope(widths, l1), grid, f_grid, curves)
