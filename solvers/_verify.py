r"""Numerical proof of the order of a modified equation.

For each learning rate :math:`h` on a ladder and each truncation order :math:`p`, run the
optimizer for :math:`n = T/h` steps and solve the order-:math:`p` modified flow to
:math:`t = nh`. The global error :math:`\lVert\theta_n - \tilde\theta(nh)\rVert` of a
correct order-:math:`p` truncation is :math:`O(h^{p+1})`, so its log-log slope against
:math:`h` is :math:`p+1` (cf. the order tests of Diffrax, ``test_ode_order``).
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import sympy as sp
from tqdm.auto import tqdm

import symflow as sf
from symflow import SymflowError

from ._flow import compiled_flow
from ._iterate import as_start, check_lr, compiled_map, declared, manifold_memory
from ._compile import hyper_vector


@dataclasses.dataclass
class VerifyReport:
    """Errors and fitted slopes of :func:`verify_order`.

    ``errors[p][i]`` is the global error of the order-``p`` flow at learning rate
    ``lrs[i]``; ``slopes[p]`` the least-squares log-log slope (expected ``p + 1``).
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

    @property
    def expected(self) -> dict:
        return {p: p + 1 for p in self.orders}

    def passed(self, tol: float = 0.3) -> bool:
        """True when every slope is within ``tol`` of ``p + 1``."""
        return all(abs(self.slopes[p] - (p + 1)) <= tol for p in self.orders)

    def table(self) -> str:
        """The errors and slopes as a plain-text table."""
        head = "     lr  " + "".join(f"  order {p} error" for p in self.orders)
        rows = [head]
        for i, lr in enumerate(self.lrs):
            rows.append(f"{lr:8.4g} " + "".join(f"  {self.errors[p][i]:13.3e}" for p in self.orders))
        rows.append("  slope  " + "".join(f"  {self.slopes[p]:13.2f}" for p in self.orders))
        rows.append(" expect  " + "".join(f"  {p + 1:13d}" for p in self.orders))
        return "\n".join(rows)

    @property
    def offset_slope(self) -> float:
        """Log-log slope of :attr:`offsets` against ``h`` (about 1: the offset is O(h))."""
        if self.offsets is None or np.any(self.offsets <= 0):
            return float("nan")
        return float(np.polyfit(np.log(self.lrs), np.log(self.offsets), 1)[0])

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
        """Log-log error against ``h`` per order, with reference slopes; saved if ``path``."""
        if ax is None:
            import matplotlib.pyplot as plt

            fig, ax = plt.subplots(figsize=(5, 4), constrained_layout=True)
        else:
            fig = ax.figure
        for p in self.orders:
            line, = ax.loglog(self.lrs, self.errors[p], "o-",
                              label=f"order {p}: slope {self.slopes[p]:.2f}")
            ref = self.errors[p][-1] * (self.lrs / self.lrs[-1]) ** (p + 1)
            ax.loglog(self.lrs, ref, ":", color=line.get_color(), alpha=0.7)
        ax.set_xlabel("learning rate h")
        ax.set_ylabel(f"|theta_n - flow(nh)| at t = {self.T:g}")
        ax.set_title(f"{self.optimizer}: global error of modified flows", fontsize=10)
        ax.legend(title="dotted: slope p+1", fontsize=8)
        if path:
            fig.savefig(path, dpi=120)
        return fig


def _steps(T, lr):
    n = round(T / lr)
    if n < 1 or not math.isclose(n * lr, T, rel_tol=1e-9):
        raise SymflowError(
            f"got T={T} and lr={lr} (T/lr = {T / lr:.6g}); T must be a whole number of "
            "steps for every learning rate: pick learning rates that divide T"
        )
    return n


def verify_order(optimizer, loss, params, x0, lrs, T, orders=(0, 1, 2), hyper=None,
                 stiff=False, rtol=1e-12, atol=1e-12, me=None, progress=False) -> VerifyReport:
    r"""Check numerically that the order-:math:`p` modified flow has global error :math:`O(h^{p+1})`.

    Parameters
    ----------
    optimizer, loss, params
        As for :func:`symflow.modified_equation`.
    x0 : sequence of float
        Starting point of the optimizer and of the flows.
    lrs : sequence of float
        Ladder of learning rates; each must divide ``T``.
    T : float
        Final time :math:`t = nh`.
    orders : sequence of int
        Truncation orders to test.
    hyper : dict
        Numeric values of hyperparameter symbols (by symbol or name).
    me : ModifiedEquation, optional
        A derivation to reuse (else derived here to ``max(orders)``).

    For an optimizer with memory the flows are the reduced ones, and the optimizer's
    memory starts on the invariant manifold :math:`M_h(x_0)` computed by the engine; the
    report's ``offsets`` also show what the optimizer's own initial memory (zeros) leaves
    behind after its transient.

    Example::

        >>> import sympy as sp, symflow as sf, solvers as sv
        >>> x, y = sp.symbols("x y")
        >>> rep = sv.verify_order(sf.GD(), (x*y - 1)**2 / 2, [x, y], x0=[1.0, 0.5],
        ...                       lrs=[0.04, 0.02, 0.01, 0.005], T=1.0, orders=[0, 1, 2])
        >>> {p: round(s) for p, s in rep.slopes.items()}
        {0: 1, 1: 2, 2: 3}
    """
    params = tuple(params)
    orders = tuple(sf._validate.check_order(p) for p in orders)
    if not orders:
        raise SymflowError("got orders=[]; give at least one truncation order, e.g. [0, 1, 2]")
    lrs = np.array(sorted((check_lr(lr) for lr in lrs), reverse=True))
    if len(lrs) < 2:
        raise SymflowError(f"got lrs={list(lrs)}; a slope needs at least two learning rates")
    names = tuple(sorted(map(str, hyper or ())))
    loss = sp.sympify(loss)
    cmap = compiled_map(optimizer, loss, params, names)
    if me is None:
        me = sf.modified_equation(optimizer, loss, params, max(orders),
                                  hyper=declared(loss, names))
    elif me.order < max(orders):
        raise SymflowError(f"the given equation has order {me.order} < max(orders)")
    flow = compiled_flow(me)
    start = as_start(x0, params)
    with warnings.catch_warnings():
        warnings.simplefilter("always", sf.ValidityWarning)
        validity = sf.check_validity(loss, params, np.asarray(start), float(lrs[0]), hyper)
    solve = flow.solver(stiff, rtol, atol)
    hv_flow = hyper_vector(flow.hyper, hyper)
    errors = {p: [] for p in orders}
    offsets = [] if cmap.memory else None
    d = cmap.n_params
    for lr in tqdm(lrs, desc="verify_order", unit="lr", disable=not progress):
        n = _steps(T, lr)
        extra = cmap.extra(lr, hyper)
        if cmap.memory:
            theta_n = cmap.final(cmap.start(start, extra, manifold_memory(me, start, lr, hyper)),
                                 extra, n)[:d]
            plain = cmap.final(cmap.start(start, extra), extra, n)[:d]
            offsets.append(float(np.linalg.norm(np.asarray(plain - theta_n))))
        else:
            theta_n = cmap.final(start, extra, n)
        if not np.all(np.isfinite(np.asarray(theta_n))):
            raise SymflowError(f"{optimizer!r} diverged at lr = {lr} from x0 = {list(map(float, start))}; "
                               "use smaller learning rates")
        ts = np.array([0.0, n * lr])
        for p in orders:
            ys, ok = solve(start, ts, flow.weights(lr, p), hv_flow)
            if not bool(ok):
                raise SymflowError(f"the order-{p} flow could not be solved at lr = {lr}; "
                                   "try stiff=True or a shorter T")
            errors[p].append(float(np.linalg.norm(np.asarray(theta_n) - np.asarray(ys[-1]))))
    errors = {p: np.array(e) for p, e in errors.items()}
    slopes = {}
    for p in orders:
        err = errors[p]
        if np.any(err <= 0):
            slopes[p] = float("nan")
        else:
            slopes[p] = float(np.polyfit(np.log(lrs), np.log(err), 1)[0])
    return VerifyReport(optimizer.label, lrs, float(T), orders, errors, slopes, validity,
                        None if offsets is None else np.array(offsets))
