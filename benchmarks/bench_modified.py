r"""Benchmark: symflow's modified-equation engine against a naive SymPy baseline.

What is measured
----------------
Wall time (``time.perf_counter``) of deriving the modified equation of gradient descent,
:math:`\dot\theta = \sum_{k=0}^{N} h^k f_k(\theta)`, whose exact time-``h`` flow reproduces
the step :math:`\theta \mapsto \theta - h\nabla L(\theta)` up to :math:`O(h^{N+2})`:

* **engine**: ``sf.modified_equation(sf.GD(), loss, params, N, progress=False)``, including
  the conversion of its terms to SymPy expressions (``.terms``), i.e. what a user waits for;
* **baseline**: :func:`baseline_modified_field` below, the approach one would write by hand
  with plain SymPy expressions (no polynomial rings, no jets, no caching across orders).

Two 2-parameter losses are used:

* polynomial ``L = (x*y - 1)**2/2`` at orders ``N = 2..10`` (engine: ``polynomial`` path);
* non-polynomial ``L = log(1 + exp(x*y)) + (x - y)**2/4`` at orders ``1..4`` with the
  target at order 4 (engine: ``jet`` path).

Separately, the engine's exact gradient-structure test ``me.gradient_orders`` is timed
for the polynomial loss at order 8 (the derivation itself is not included in that time).

Every timed run starts from a cleared SymPy cache (``sympy.core.cache.clear_cache``), so
that neither side profits from work cached by the other or by a previous repeat. Fast
runs (under ``--fast-threshold`` seconds) are repeated ``--repeats`` times and the best
time is kept; slow runs are timed once.

The baseline
------------
For ``n = 0, 1, ..., N`` it recomputes, from scratch, the Lie series of the flow of the
already-known part of the field :math:`F = \sum_{k<n} h^k f_k`:

.. math::

    \exp(hD_F)\,\theta = \theta + \sum_{j\ge1} \frac{h^j}{j!}\,u_j,
    \qquad u_1 = F,\quad u_j = (\partial u_{j-1})\,F
    \quad(\texttt{u.jacobian(theta) * F}),

keeping powers of ``h`` up to :math:`h^{n+1}` (``sp.expand`` and ``.coeff(h, k)`` after each
product), and reads off

.. math::

    f_n = d_{n+1} - [h^{n+1}]\sum_{j=2}^{n+1} \frac{h^j}{j!}\,u_j ,

with :math:`d_1 = -\nabla L` and :math:`d_k = 0` for :math:`k \ge 2` (gradient descent). The
unknown :math:`f_n` reaches the coefficient of :math:`h^{n+1}` only through the ``j = 1`` term
:math:`hF`, so it need not be part of ``F``. Truncating in ``h`` after every product only
makes the baseline faster than a fully naive one, so the reported ratios are conservative.

The baseline's cost grows steeply with the order, so it has a per-case cap: an order is
*skipped* when the previous order's baseline took longer than ``--baseline-cap`` seconds
(default 60), or when extrapolating the last growth factor predicts more than
``--baseline-limit`` seconds (default 300); a run that is still going after
``--baseline-limit`` seconds is *aborted* (SIGALRM; Unix only), and later orders of that
loss are skipped. A skipped order shows, where it can be computed, the extrapolated time
``~N s?`` (previous measured or extrapolated time times the last measured growth factor;
a rough guess, not a measurement).

Wherever both sides ran, their terms are checked to agree exactly:
``sp.expand(a - b) == 0`` componentwise (an ``AssertionError`` otherwise). For the
non-polynomial loss a non-zero expanded difference is passed to ``sp.simplify``; if that
symbolic check does not finish within ``--check-limit`` seconds (or does not reach 0), the
difference is instead evaluated at 3 random points with 30 significant digits and must
vanish to 1e-12 relative; the output says which check was used.

Finally a table lists engine and baseline seconds and the ratio baseline/engine, followed
by the targets (engine times): polynomial order 8 < 2 s, order 10 < 30 s, non-polynomial
order 4 < 10 s.

Optimizers with memory
----------------------
A second table times the reduced flow of optimizers with memory on the non-polynomial
loss (memory eliminated on its invariant manifold, then backward error analysis):
heavy ball at orders ``1..4`` and Adam (bias correction on) at orders ``0..2``, each with
numeric hyperparameters (``beta = 9/10``; ``beta1, beta2, eps = 9/10, 999/1000, 1e-8``)
and with symbolic ones (``beta``; ``beta1, beta2, eps``; Adam symbolic up to order 3, and
at orders 2 and 3 also on the polynomial loss ``(xy - 1)^2/2`` of issue 17, row
``sym, poly``). Side by side:

* **engine**: ``sf.modified_equation(opt, loss, params, N)`` (jet or rational-jet path),
  terms converted to expressions;
* **expression baseline**: the same engine forced onto plain SymPy expressions
  (``path="general"``): the same algorithm without the exact jet arithmetic;
* **naive baseline** (lowest order of each optimizer only, as it grows too steeply):
  :func:`naive_reduced_flow`, what one writes by hand in plain SymPy: the manifold
  :math:`M_h` order by order from ``sp.series`` of
  :math:`B_h(\theta, M) - M(\theta + A_h(\theta, M))`, then the reduced map's Taylor
  coefficients and the Lie-series matching of the GD baseline above.

Agreement is checked numerically (2 random points, random hyperparameter values, 30
digits, 1e-12 relative). Targets: Adam order 2 and heavy ball order 4, numeric and
symbolic, and Adam with symbolic betas at order 3 (both losses), each under 10 s (engine).
Before issue 17 the symbolic Adam order 3 took about 25 s (fractions in the betas cancelled
by gcds at every step); the expression path is the baseline measured side by side.

The tree path
-------------
``--tree-only`` runs GD at growing size (today's polynomial or jet path against
``path="tree"``), then :func:`tree_extras`: a 10-parameter tanh network at order 2 against
``path="general"``, the exact gradient test on softplus d = 8, order 4 against
``expr_is_gradient``, and the non-polynomial epoch modified loss against
``path="series"``; goals: network < 30 s, epoch < 5 s.

How to run
----------
From the repository root::

    .venv/bin/python benchmarks/bench_modified.py              # full run (several minutes)
    .venv/bin/python benchmarks/bench_modified.py --quick      # smoke test: orders 2..6
    .venv/bin/python benchmarks/bench_modified.py --max-order 8 --baseline-cap 30
    .venv/bin/python benchmarks/bench_modified.py --memory-only  # optimizers with memory
    .venv/bin/python benchmarks/bench_modified.py --tree-only    # the tree path, d up to 16

The exit status is 1 when a target that was run fails and 0 otherwise (targets beyond
``--max-order`` are reported as not run); an agreement failure raises ``AssertionError``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import math
import os
import platform
import random
import signal
import sys
import time
from dataclasses import dataclass

import sympy as sp
from sympy.core.cache import clear_cache

import symflow as sf
from symflow._core._gradient import expr_is_gradient

X, Y = sp.symbols("x y")
PARAMS = (X, Y)
H = sf.h

POLY_NAME, POLY_LOSS = "polynomial", (X * Y - 1) ** 2 / 2
NONPOLY_NAME, NONPOLY_LOSS = "non-polynomial", sp.log(1 + sp.exp(X * Y)) + (X - Y) ** 2 / 4
NONPOLY_ORDER = 4
GRADIENT_TEST_ORDER = 8

#: (loss name, order, limit in seconds on the engine's time)
TARGETS = ((POLY_NAME, 8, 2.0), (POLY_NAME, 10, 30.0), (NONPOLY_NAME, NONPOLY_ORDER, 10.0))


# -- timing helpers ----------------------------------------------------------------------

class TimeLimitExceeded(Exception):
    """Raised inside a computation that ran past its time limit."""


@contextlib.contextmanager
def time_limit(seconds: float | None):
    """Interrupt the enclosed block after ``seconds`` (SIGALRM; a no-op where unavailable)."""
    if not seconds or not hasattr(signal, "setitimer"):
        yield
        return

    def on_alarm(signum, frame):
        raise TimeLimitExceeded

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def best_time(fn, repeats: int, fast_threshold: float):
    """``(best seconds, result)`` of ``fn()`` over cold-cache runs; a slow case runs once."""
    best, result = math.inf, None
    for _ in range(max(1, repeats)):
        clear_cache()
        start = time.perf_counter()
        result = fn()
        elapsed = time.perf_counter() - start
        best = min(best, elapsed)
        if elapsed > fast_threshold:
            break
    return best, result


# -- the engine and the baseline ---------------------------------------------------------

def run_engine(loss, order: int):
    """The engine's modified equation (``ModifiedEquation``) of GD on ``loss``."""
    return sf.modified_equation(sf.GD(), loss, PARAMS, order, progress=False)


def gd_increments(loss, params, order: int):
    r"""Taylor coefficients :math:`d_1..d_{order+1}` of the GD step (index 0 unused)."""
    grad = sp.Matrix([sp.diff(loss, p) for p in params])
    zero = sp.zeros(len(params), 1)
    return [None, -grad] + [zero] * order


def truncate_in_h(expr, max_power: int):
    """``expr`` expanded, without the powers of ``h`` above ``max_power``."""
    expr = sp.expand(expr)
    return sp.Add(*[H**k * expr.coeff(H, k) for k in range(max_power + 1)])


def baseline_modified_field(loss, params, order: int) -> list[sp.Matrix]:
    """``[f_0, ..., f_order]`` by matching Lie-series coefficients with plain expressions.

    Deliberately naive: the Lie series is recomputed from scratch for every ``n``.
    """
    theta = sp.Matrix(params)
    d = gd_increments(loss, params, order)
    f: list[sp.Matrix] = []
    for n in range(order + 1):
        known = sp.zeros(len(params), 1)  # F = sum_{k<n} h^k f_k
        for k, f_k in enumerate(f):
            known += H**k * f_k
        lie_tail = sp.zeros(len(params), 1)  # sum_{j>=2} h^j/j! u_j, up to h^(n+1)
        u = known
        for j in range(2, n + 2):
            u = (u.jacobian(theta) * known).applyfunc(lambda e: truncate_in_h(e, n + 1 - j))
            lie_tail += H**j / math.factorial(j) * u
        coefficient = lie_tail.applyfunc(lambda e: sp.expand(e).coeff(H, n + 1))
        f.append((d[n + 1] - coefficient).applyfunc(sp.expand))
    return f


# -- agreement checks --------------------------------------------------------------------

def expanded_differences(engine, baseline):
    """``[(k, i, difference)]`` for the components whose expanded difference is not 0."""
    assert len(engine) == len(baseline), (len(engine), len(baseline))
    out = []
    for k, (e_vec, b_vec) in enumerate(zip(engine, baseline)):
        for i, (a, b) in enumerate(zip(e_vec, b_vec)):
            diff = sp.expand(a - b)
            if diff != 0:
                out.append((k, i, diff))
    return out


def numerically_zero(engine, baseline, points: int = 3, rel_tol: float = 1e-12) -> bool:
    """``engine - baseline`` vanishes at random parameters and hyperparameters (30-digit
    floats: exact substitution into the expression baseline's large trees is too slow)."""
    rng = random.Random(20240601)
    symbols = set().union(*(e.free_symbols for vec in list(engine) + list(baseline)
                            for e in vec)) - {H}

    def value(low, high):
        return sp.Float(sp.Rational(rng.randint(low, high), 100), 30)

    for _ in range(points):
        point = {s: value(-150, 150) for s in PARAMS}
        point.update({s: value(20, 80) for s in symbols - set(PARAMS)})
        for e_vec, b_vec in zip(engine, baseline):
            for a, b in zip(e_vec, b_vec):
                va, vb = sp.N(a.xreplace(point), 30), sp.N(b.xreplace(point), 30)
                if abs(va - vb) > rel_tol * max(abs(va), abs(vb), sp.Float("1e-30")):
                    return False
    return True


def check_exact(engine, baseline) -> str:
    """Assert ``sp.expand(a - b) == 0`` componentwise."""
    bad = expanded_differences(engine, baseline)
    assert not bad, f"engine and baseline disagree at (h^k, component) {[b[:2] for b in bad]}"
    return "exact (expand)"


def check_with_fallback(engine, baseline, limit: float) -> str:
    """expand, then simplify, then (if too slow or inconclusive) a numerical check."""
    try:
        with time_limit(limit):
            bad = expanded_differences(engine, baseline)
            if not bad:
                return "exact (expand)"
            if all(sp.simplify(diff) == 0 for _, _, diff in bad):
                return "exact (expand + simplify)"
            reason = "simplify inconclusive"
    except TimeLimitExceeded:
        reason = f"symbolic check > {limit:.0f} s"
    assert numerically_zero(engine, baseline), "engine and baseline disagree numerically"
    return f"numeric, 3 points, 1e-12 rel ({reason})"


# -- the benchmark -----------------------------------------------------------------------

@dataclass
class Row:
    loss: str
    order: int
    path: str
    engine_s: float
    baseline_s: float | None = None
    baseline_note: str = ""
    predicted_s: float | None = None
    check: str = "-"

    @property
    def baseline_text(self) -> str:
        if self.baseline_s is not None:
            return f"{self.baseline_s:.3f}"
        if self.predicted_s is not None:
            return f"{self.baseline_note} ~{self.predicted_s:.3g} s?"
        return self.baseline_note

    @property
    def ratio_text(self) -> str:
        if self.baseline_s is None:
            return "-"
        ratio = self.baseline_s / self.engine_s
        return f"{ratio:.1f}x" if ratio < 10 else f"{ratio:.0f}x"


def extrapolate(history: list[Row]) -> float | None:
    """The baseline time of the next order, extrapolating the last measured growth factor."""
    known = [r.baseline_s or r.predicted_s for r in history]
    measured = [r.baseline_s for r in history if r.baseline_s is not None]
    if not known or known[-1] is None or len(measured) < 2:
        return None
    return known[-1] * max(1.0, measured[-1] / measured[-2])


def skip_reason(history: list[Row], cap: float, limit: float) -> str | None:
    """Why the next baseline order should not run, or None (``history``: earlier rows)."""
    if not history:
        return None
    last = history[-1]
    if last.baseline_s is None or last.baseline_s > cap:
        return "skipped (> cap)"
    predicted = extrapolate(history)
    if predicted is not None and predicted > limit:
        return "skipped (> cap)"
    return None


def print_row(row: Row) -> None:
    print(f"  {row.loss:<15} {row.order:>5}  {row.path:<10} {row.engine_s:>10.3f}  "
          f"{row.baseline_text:>28}  {row.ratio_text:>8}  {row.check}", flush=True)


def print_header() -> None:
    print(f"  {'loss':<15} {'order':>5}  {'path':<10} {'engine s':>10}  {'baseline s':>28}  "
          f"{'ratio':>8}  check (engine vs baseline)")
    print("  " + "-" * 118)


def run_ladder(name, loss, orders, args, check) -> list[Row]:
    """Engine and baseline side by side at each order of ``orders``."""
    rows: list[Row] = []
    for order in orders:
        engine_s, me = best_time(lambda: run_engine(loss, order), args.repeats,
                                 args.fast_threshold)
        row = Row(name, order, me.path, engine_s)
        reason = skip_reason(rows, args.baseline_cap, args.baseline_limit)
        if reason is not None:
            row.baseline_note = reason
            row.predicted_s = extrapolate(rows)
        else:
            try:
                with time_limit(args.baseline_limit):
                    row.baseline_s, f = best_time(
                        lambda: baseline_modified_field(loss, PARAMS, order),
                        args.repeats, args.fast_threshold)
            except TimeLimitExceeded:
                row.baseline_note = f"aborted (> {args.baseline_limit:.0f} s)"
            else:
                row.check = check(me.terms, f)
        rows.append(row)
        print_row(row)
    return rows


def time_gradient_test(order: int, args):
    """Seconds of ``me.gradient_orders`` (polynomial loss), derivation excluded."""
    best, result = math.inf, None
    for _ in range(max(1, args.repeats)):
        me = run_engine(POLY_LOSS, order)
        clear_cache()
        start = time.perf_counter()
        result = me.gradient_orders
        elapsed = time.perf_counter() - start
        best = min(best, elapsed)
        if elapsed > args.fast_threshold:
            break
    return best, result


# -- optimizers with memory ---------------------------------------------------------------

BETA, BETA1, BETA2, EPS = sp.symbols("beta beta1 beta2 epsilon", positive=True)
R = sp.Rational
#: (name, hyperparameters kind, optimizer, orders)
MEMORY_CASES = (
    ("heavy ball", "numeric", sf.HeavyBall(beta=R(9, 10)), range(1, 5)),
    ("heavy ball", "symbolic", sf.HeavyBall(beta=BETA), range(1, 5)),
    ("Adam", "numeric", sf.Adam(R(9, 10), R(999, 1000), R(1, 10**8)), range(0, 3)),
    ("Adam", "symbolic", sf.Adam(BETA1, BETA2, EPS), range(0, 4)),
    # issue 17's case: symbolic betas on the polynomial loss (a fifth entry: the loss)
    ("Adam", "sym, poly", sf.Adam(BETA1, BETA2, EPS), range(2, 4), POLY_LOSS),
)
MEMORY_TARGETS = (("heavy ball", 4, 10.0), ("Adam", 2, 10.0), ("Adam", 3, 10.0))


def series_coefficients(expr, n: int):
    """``[h^0, ..., h^n]`` coefficients of ``expr`` by ``sp.series``."""
    s = sp.series(expr, H, 0, n + 1).removeO()
    return [s.coeff(H, k) for k in range(n + 1)]


def naive_reduced_flow(opt, loss, params, order: int) -> list[sp.Matrix]:
    """The reduced flow ``[f_0..f_order]`` in plain SymPy expressions (the naive baseline)."""
    theta = sp.Matrix(params)
    grad = sp.Matrix([sp.diff(loss, p) for p in params])
    size = opt.memory_size(len(params))
    memory = sp.Matrix(sp.symbols(f"m0:{size}"))
    nxt, B = opt.step_memory(theta, memory, lambda pt: grad.xreplace(dict(zip(params, pt))), H)
    A, B = sp.Matrix(nxt) - theta, sp.Matrix(B)
    inv = (sp.eye(size) - B.jacobian(memory).subs(H, 0)).inv()
    K = order + 1
    M = sp.zeros(size, 1)  # M_h = sum_k h^k M_k, solved order by order
    for k in range(K + 1):
        on = dict(zip(memory, M))
        moved = M.xreplace(dict(zip(params, theta + A.xreplace(on))))
        residual = (B.xreplace(on) - moved).applyfunc(lambda e: series_coefficients(e, k)[k])
        M += H**k * inv * residual
    reduced = A.xreplace(dict(zip(memory, M)))
    d = [None] + [reduced.applyfunc(lambda e: series_coefficients(e, K)[j])
                  for j in range(1, K + 1)]
    f: list[sp.Matrix] = []
    for n in range(order + 1):  # Lie-series matching, as in baseline_modified_field
        known = sp.zeros(len(params), 1)
        for k, f_k in enumerate(f):
            known += H**k * f_k
        lie_tail, u = sp.zeros(len(params), 1), known
        for j in range(2, n + 2):
            u = (u.jacobian(theta) * known).applyfunc(lambda e: truncate_in_h(e, n + 1 - j))
            lie_tail += H**j / math.factorial(j) * u
        f.append(d[n + 1] - lie_tail.applyfunc(lambda e: sp.expand(e).coeff(H, n + 1)))
    return f


@dataclass
class MemoryRow:
    name: str
    kind: str
    order: int
    engine_s: float
    expr_s: float | None = None
    expr_note: str = ""
    naive_s: float | None = None
    naive_note: str = "-"
    check: str = "-"

    def text(self) -> str:
        def seconds(value, note):
            return f"{value:.3f}" if value is not None else note

        def ratio(value):
            return f"{value / self.engine_s:.1f}x" if value is not None else "-"

        return (f"  {self.name:<11} {self.kind:<9} {self.order:>5}  {self.engine_s:>9.3f}  "
                f"{seconds(self.expr_s, self.expr_note):>14} {ratio(self.expr_s):>7}  "
                f"{seconds(self.naive_s, self.naive_note):>18} {ratio(self.naive_s):>7}  "
                f"{self.check}")


def memory_header() -> None:
    print(f"  {'optimizer':<11} {'betas':<9} {'order':>5}  {'engine s':>9}  "
          f"{'expr-path s':>14} {'ratio':>7}  {'naive SymPy s':>18} {'ratio':>7}  check")
    print("  " + "-" * 108)


def timed(fn, limit):
    """``(seconds, result)`` of a cold-cache run, or ``(None, note)`` past ``limit``."""
    try:
        with time_limit(limit):
            clear_cache()
            start = time.perf_counter()
            result = fn()
            return time.perf_counter() - start, result
    except TimeLimitExceeded:
        return None, f"aborted > {limit:.0f} s"


def run_memory(args) -> list[MemoryRow]:
    rows = []
    memory_header()
    for name, kind, opt, orders, *rest in MEMORY_CASES:
        loss = rest[0] if rest else NONPOLY_LOSS
        skip_expr = False
        for order in orders:
            engine_s, me = best_time(
                lambda: sf.modified_equation(opt, loss, PARAMS, order, progress=False),
                args.repeats, args.fast_threshold)
            row = MemoryRow(name, kind, order, engine_s)
            if skip_expr:
                row.expr_note = "skipped (> cap)"
            else:
                row.expr_s, expr = timed(lambda: sf.modified_equation(
                    opt, loss, PARAMS, order, progress=False, path="general"),
                    args.baseline_limit)
                if row.expr_s is None:
                    row.expr_note, skip_expr = expr, True
                else:
                    skip_expr = row.expr_s > args.baseline_cap
                    ok = numerically_zero(me.terms, expr.terms, points=2)
                    assert ok, f"engine and expression path disagree: {name} {kind} {order}"
                    row.check = "expr: numeric 1e-12"
            if order == orders[0]:
                row.naive_s, naive = timed(
                    lambda: naive_reduced_flow(opt, loss, PARAMS, order),
                    args.naive_limit)
                if row.naive_s is None:
                    row.naive_note = naive
                else:
                    assert numerically_zero(me.terms, naive, points=2), \
                        f"engine and naive baseline disagree: {name} {kind} {order}"
                    row.check += ", naive: numeric 1e-12"
            rows.append(row)
            print(row.text(), flush=True)
    return rows



# -- the tree path at growing size -----------------------------------------------------------

def chain_loss(d: int):
    """``sum_i (x_i x_{i+1} - 1)^2 / 2``: polynomial, sparse derivatives."""
    x = sp.symbols(f"x0:{d}")
    return sum((x[i] * x[i + 1] - 1) ** 2 for i in range(d - 1)) / 2, x


def softplus_loss(d: int):
    """``log(1 + exp(sum_i (i+1) x_i))``: softplus of a linear form, dense derivatives."""
    x = sp.symbols(f"x0:{d}")
    return sp.log(1 + sp.exp(sum((i + 1) * x[i] for i in range(d)))), x


#: (name, loss builder, d, order, goal on the tree path in seconds or None)
TREE_CASES = (
    [("polynomial", chain_loss, 2, k, None) for k in range(2, 11)]
    + [("polynomial", chain_loss, 16, 6, 5.0),
       ("softplus", softplus_loss, 8, 4, 10.0),
       ("softplus", softplus_loss, 16, 3, 10.0)])


#: The exact agreement check (expanding the tree path's terms) runs up to this order.
CHECK_UP_TO = 6


def _derive(loss, params, order, path):
    return sf.modified_equation(sf.GD(), loss, params, order, path=path, progress=False)


def tree_section(args) -> bool:
    """GD at growing size: today's paths (polynomial or jet) against the tree path.

    Times the derivation (``sf.modified_equation`` returning ``.terms``, unexpanded on the
    tree path) from a cleared cache; today's path is cut at ``--legacy-limit`` seconds. At
    d = 2 the default ``path="auto"`` keeps today's path, so "auto" there must not slow
    down; where both finish, the terms are checked equal after expansion.
    """
    print("Tree path (coordinate-free coefficients contracted with the derivatives of L) "
          "against today's paths, GD")
    print("  ratio = today / tree; auto = the path and time of path='auto' (what a user gets)")
    print(f"  {'loss':<11}{'d':>3}{'order':>6}{'today path':>12}{'today s':>10}{'tree s':>9}"
          f"{'ratio':>8}{'auto':>19}  check")
    all_pass = True
    for name, build, d, order, goal in TREE_CASES:
        loss, x = build(d)
        legacy_path = "polynomial" if name == "polynomial" else "jet"
        tree_s, tree_me = best_time(functools.partial(_derive, loss, x, order, "tree"), args.repeats,
                                    args.fast_threshold)
        try:
            with time_limit(args.legacy_limit):
                old_s, old_me = best_time(functools.partial(_derive, loss, x, order, legacy_path),
                                          args.repeats, args.fast_threshold)
            old_text, ratio = f"{old_s:.3f}", f"{old_s / tree_s:.2f}"
        except TimeLimitExceeded:
            old_me, old_text, ratio = None, f"> {args.legacy_limit:g}", "-"
        auto_s, auto_me = best_time(functools.partial(_derive, loss, x, order, "auto"), args.repeats,
                                    args.fast_threshold)
        auto = f"{auto_me.path} {auto_s:.3f}"
        check = "-"
        if old_me is not None and name == "polynomial" and order <= CHECK_UP_TO:
            same = all(sp.expand(a - b) == 0
                       for u, w in zip(tree_me.expand().terms, old_me.terms)
                       for a, b in zip(u, w))
            assert same, f"tree and {legacy_path} paths disagree: {name} d={d} order {order}"
            check = "exact"
        verdict = ""
        if goal is not None:
            ok = tree_s < goal
            all_pass &= ok
            verdict = f"  goal < {goal:g} s: {'PASS' if ok else 'FAIL'}"
        print(f"  {name:<11}{d:>3}{order:>6}{legacy_path:>12}{old_text:>10}{tree_s:>9.3f}"
              f"{ratio:>8}{auto:>19}  {check}{verdict}", flush=True)
    all_pass &= tree_extras(args)
    return all_pass


def tanh_network_loss():
    """A 1-3-1 tanh network, squared loss on two fixed points; its 10 weights are the parameters.

    :math:`f(x) = \\sum_{j<3} v_j \\tanh(w_j x + b_j) + c`,
    :math:`L = \\frac14\\sum_{(x, y)} (f(x) - y)^2` over :math:`(1, 1/2)` and :math:`(-1/2, 1)`.
    """
    w, b, v = sp.symbols("w0:3"), sp.symbols("b0:3"), sp.symbols("v0:3")
    c = sp.Symbol("c")
    data = [(sp.Integer(1), sp.Rational(1, 2)), (sp.Rational(-1, 2), sp.Integer(1))]
    loss = sum((sum(v[j] * sp.tanh(w[j] * xi + b[j]) for j in range(3)) + c - yi) ** 2
               for xi, yi in data) / (2 * len(data))
    return loss, [*w, *b, *v, c]


def _capped(fn, limit):
    """``(seconds, result)`` of a cold-cache run of ``fn``, or ``(None, None)`` past ``limit``."""
    sec, out = timed(fn, limit)
    return (sec, out) if sec is not None else (None, None)


def _row(name, what, new_s, old_name, old_s, limit, goal=None) -> bool:
    old = f"{old_s:.3f}" if old_s is not None else f"> {limit:g}"
    ratio = f"{old_s / new_s:.1f}x" if old_s is not None else f"> {limit / new_s:.1f}x"
    ok = goal is None or new_s < goal
    verdict = "" if goal is None else f"  goal < {goal:g} s: {'PASS' if ok else 'FAIL'}"
    print(f"  {name:<27}{what:<24}{new_s:>9.3f}  {old_name:<26}{old:>9}{ratio:>9}{verdict}",
          flush=True)
    return ok


def _network_order2(path):
    loss, params = tanh_network_loss()
    me = sf.modified_equation(sf.GD(), loss, params, 2, path=path, progress=False)
    return me, me.gradient_orders


def _softplus_terms(d, order):
    loss, x = softplus_loss(d)
    return sf.modified_equation(sf.GD(), loss, x, order, path="tree", progress=False)


def _epoch_loss(path):
    x, y = sp.symbols("x y")
    batches = [sp.log(1 + sp.exp(-x - y)), sp.log(1 + sp.exp(x - 2 * y)), (x - y) ** 2 / 2]
    flow = sf.epoch_mean_flow(batches=batches, params=[x, y], order=1, path=path)
    return flow.modified_loss


def tree_extras(args) -> bool:
    """The tree path where today's paths stall: a tanh network, the exact gradient test, the
    epoch modified loss. Each side from a cleared cache, the baseline cut at
    ``--legacy-limit`` seconds (a cut baseline shows as ``> limit``, the ratio as a bound).

    * tanh 1-3-1 network (10 weights), GD order 2, derivation and ``gradient_orders``:
      ``path="tree"`` against ``path="general"``;
    * ``gradient_orders`` of softplus, d = 8, order 4 (the terms derived beforehand, not
      timed): the tree path's exact test (rerooting, probes, Laurent reading of
      :math:`J_{ij} - J_{ji}`) against the expression-level symmetric-Jacobian test
      (``expr_is_gradient``: SymPy derivatives, random probes, ``simplify``) on the same terms;
    * ``epoch_mean_flow`` of three non-polynomial batches, order 1, building the flow and its
      ``modified_loss``: ``path="tree"`` against ``path="series"``.
    """
    limit = args.legacy_limit
    print("Tree path where today's paths stall (seconds; ratio = baseline / tree)")
    print(f"  {'case':<27}{'what':<24}{'tree s':>9}  {'baseline':<26}{'base s':>9}{'ratio':>9}")
    all_pass = True
    # a 10-parameter tanh network
    tree_s, (_, orders) = _capped(functools.partial(_network_order2, "tree"), None)
    old_s, old = _capped(functools.partial(_network_order2, "general"), limit)
    if old is not None:
        assert old[1] == orders, "tree and general paths disagree on the gradient structure"
    all_pass &= _row("tanh 1-3-1 net, d=10", "GD order 2 + grad test", tree_s,
                     "path='general'", old_s, limit, goal=30.0)
    # the exact gradient-structure test
    me = _softplus_terms(8, 4)
    new_s, orders = _capped(lambda: tuple(me._alg.is_gradient(t) for t in me._raw), None)
    old_s, old_orders = _capped(lambda: tuple(expr_is_gradient(list(t), me.params)
                                              for t in me._raw), limit)
    if old_orders is not None:
        assert old_orders == orders, "the two gradient tests disagree"
    all_pass &= _row("softplus d=8 order 4", "gradient_orders", new_s,
                     "expr_is_gradient (SymPy)", old_s, limit)
    # the epoch modified loss on non-polynomial batches
    new_s, ml = _capped(functools.partial(_epoch_loss, "tree"), None)
    old_s, _ = _capped(functools.partial(_epoch_loss, "series"), limit)
    assert ml is not None
    all_pass &= _row("epoch m=3 non-polynomial", "flow + modified_loss", new_s,
                     "path='series'", old_s, limit, goal=5.0)
    return all_pass


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Time symflow's modified-equation engine against a naive SymPy baseline.")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: polynomial orders 2..6 and tighter baseline caps")
    parser.add_argument("--max-order", type=int, default=None,
                        help="highest polynomial order (default 10; 6 with --quick)")
    parser.add_argument("--baseline-cap", type=float, default=None,
                        help="skip a baseline order when the previous one took longer "
                             "(seconds; default 60, 10 with --quick)")
    parser.add_argument("--baseline-limit", type=float, default=None,
                        help="abort a baseline run after this many seconds, and skip an "
                             "order predicted to exceed it (default 300, 40 with --quick)")
    parser.add_argument("--check-limit", type=float, default=60.0,
                        help="seconds for the symbolic agreement check of the "
                             "non-polynomial loss before falling back to numerics")
    parser.add_argument("--repeats", type=int, default=3,
                        help="repeats of a fast case (best time kept)")
    parser.add_argument("--fast-threshold", type=float, default=1.0,
                        help="a run longer than this (seconds) is not repeated")
    parser.add_argument("--memory-only", action="store_true",
                        help="run only the table of optimizers with memory")
    parser.add_argument("--no-memory", action="store_true",
                        help="skip the table of optimizers with memory")
    parser.add_argument("--tree-only", action="store_true",
                        help="run only the tree-path table (GD at growing size)")
    parser.add_argument("--no-tree", action="store_true",
                        help="skip the tree-path table")
    parser.add_argument("--legacy-limit", type=float, default=60.0,
                        help="cut today's path after this many seconds in the tree table")
    parser.add_argument("--naive-limit", type=float, default=None,
                        help="abort the naive memory baseline after this many seconds "
                             "(default 120, 30 with --quick)")
    args = parser.parse_args(argv)
    if args.max_order is None:
        args.max_order = 6 if args.quick else 10
    if args.baseline_cap is None:
        args.baseline_cap = 10.0 if args.quick else 60.0
    if args.baseline_limit is None:
        args.baseline_limit = 40.0 if args.quick else 300.0
    if args.naive_limit is None:
        args.naive_limit = 30.0 if args.quick else 120.0
    if args.max_order < 2:
        parser.error("--max-order must be at least 2")
    return args


def gd_section(args) -> bool:
    """The GD table (engine vs naive Lie-series matching); True when its targets pass."""
    # Warm up imports and first-call overheads on both sides (not timed).
    run_engine(POLY_LOSS, 1)
    run_engine(NONPOLY_LOSS, 1)
    baseline_modified_field(POLY_LOSS, PARAMS, 1)

    print_header()
    rows = run_ladder(POLY_NAME, POLY_LOSS, range(2, args.max_order + 1), args, check_exact)
    rows += run_ladder(NONPOLY_NAME, NONPOLY_LOSS, range(1, NONPOLY_ORDER + 1), args,
                       lambda e, b: check_with_fallback(e, b, args.check_limit))

    grad_order = min(GRADIENT_TEST_ORDER, args.max_order)
    grad_s, grad_result = time_gradient_test(grad_order, args)

    print()
    print("Summary (seconds; ratio = baseline / engine)")
    print_header()
    for row in rows:
        print_row(row)

    print()
    print(f"Gradient-structure test, polynomial loss, order {grad_order}: "
          f"me.gradient_orders took {grad_s:.4f} s -> {grad_result}")

    print()
    print("Targets (engine time)")
    all_pass = True
    for name, order, limit in TARGETS:
        row = next((r for r in rows if r.loss == name and r.order == order), None)
        if row is None:
            verdict, measured = "NOT RUN (raise --max-order)", "-"
        else:
            ok = row.engine_s < limit
            all_pass &= ok
            verdict, measured = ("PASS" if ok else "FAIL"), f"{row.engine_s:.3f} s"
        print(f"  {name:<15} order {order:>2} < {limit:>4g} s : {measured:>9}  {verdict}")
    return all_pass


def memory_section(args) -> bool:
    """The table of optimizers with memory; True when its targets pass."""
    print("Optimizers with memory: reduced flow (manifold + backward error analysis), "
          f"L = {NONPOLY_LOSS}")
    print("  ratio = baseline / engine; expr-path = the engine on plain expressions "
          "(path='general'); naive = plain SymPy series (lowest order only)")
    sf.modified_equation(sf.HeavyBall(beta=R(1, 2)), NONPOLY_LOSS, PARAMS, 0)  # warm up
    rows = run_memory(args)
    print()
    print("Targets (engine time)")
    all_pass = True
    for name, order, limit in MEMORY_TARGETS:
        for row in (r for r in rows if r.name == name and r.order == order):
            ok = row.engine_s < limit
            all_pass &= ok
            print(f"  {name:<11} {row.kind:<9} order {order} < {limit:g} s : "
                  f"{row.engine_s:>7.3f} s  {'PASS' if ok else 'FAIL'}")
    return all_pass


def main(argv=None) -> int:
    args = parse_args(argv)
    from sympy.external.gmpy import GROUND_TYPES

    print("symflow modified-equation benchmark: engine vs naive SymPy baselines")
    print(f"  python {platform.python_version()}, sympy {sp.__version__} "
          f"(ground types {GROUND_TYPES}), symflow {sf.__version__}, "
          f"{os.cpu_count()} CPUs, {platform.machine()}")
    print(f"  polynomial loss     L = {POLY_LOSS}")
    print(f"  non-polynomial loss L = {NONPOLY_LOSS}")
    print(f"  polynomial orders 2..{args.max_order}; non-polynomial orders 1..{NONPOLY_ORDER}; "
          f"best of {args.repeats} for runs < {args.fast_threshold:g} s; baseline cap "
          f"{args.baseline_cap:g} s, limit {args.baseline_limit:g} s")
    print()
    total_start = time.perf_counter()
    all_pass = True
    if not args.memory_only and not args.tree_only:
        all_pass &= gd_section(args)
        print()
    if not args.no_memory and not args.tree_only:
        all_pass &= memory_section(args)
        print()
    if not args.no_tree and not args.memory_only:
        all_pass &= tree_section(args)
        print()
    print(f"Total benchmark time {time.perf_counter() - total_start:.1f} s")
    return 0 if all_pass else 1


if __name__ == "__main__":
    sys.exit(main())
