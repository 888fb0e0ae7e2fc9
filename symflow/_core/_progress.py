r"""Progress bars that appear only for work that lasts, with honest estimates.

Every loop of symflow and solvers that can run long goes through :func:`progress_bar`.
``progress=None`` (the default everywhere) shows a bar only once the loop has run for
:data:`DELAY` seconds (tqdm's ``delay``), so a derivation of a few milliseconds prints
nothing; ``progress=False`` never shows one; ``progress=True`` shows it from the start.

A loop over orders (``unit="order"``) is not uniform: each order costs several times the
one before. Its bar (:class:`OrderProgress`) counts seconds, not orders: after each order
it predicts the rest by a geometric model

.. math::  t_j \approx t_k\, g^{\,j-k} \quad (j > k), \qquad g = \sqrt{\tfrac{t_k}{t_{k-1}}
           \tfrac{t_{k-1}}{t_{k-2}}},

with :math:`g` measured on the orders just done (:data:`GROWTH` until two are timed), so
the remaining time it shows grows with the order instead of assuming every order costs the
same. When the predicted rest of the run (this loop and, through :func:`run_plan`, the
stages after it) exceeds :data:`LONG_RUN` seconds, predicted with the cautious growth
(the smaller of the two last ratios, or at most :data:`GROWTH` while only one is measured)
once two orders have lasted at least :data:`MIN_TIMED` seconds, it warns once with a
:class:`~symflow.CostWarning` that names the estimate and how to make the run cheaper,
before the long orders start. :func:`stage_bar` covers the stages that are not loops over
orders (converting terms to expressions, the gradient test), its units weighted by size.

``tqdm.auto`` picks the notebook widget when one is available; in a notebook without
``ipywidgets`` it falls back to the text bar, and its warning about that is silenced here
(the text bar works, the warning only adds noise to every import).

Example:
    >>> from symflow._core._progress import progress_bar
    >>> sum(progress_bar(range(3), desc="demo", unit="item"))
    3
    >>> list(progress_bar(range(3), desc="demo", unit="order", progress=False))
    [0, 1, 2]
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import math
import os
import sys
import time
import warnings

from tqdm import TqdmExperimentalWarning, TqdmWarning

from ._errors import CostWarning

with warnings.catch_warnings():  # tqdm.auto warns "IProgress not found" on import
    warnings.simplefilter("ignore", TqdmExperimentalWarning)
    warnings.simplefilter("ignore", TqdmWarning)
    from tqdm.auto import tqdm

#: Seconds a loop runs before its bar appears (when ``progress`` is None).
DELAY = 1.0
#: Predicted seconds of remaining work above which a run warns (:class:`~symflow.CostWarning`).
LONG_RUN = 60.0
#: Cost ratio between successive orders assumed until two orders have been timed
#: (measured: 3 to 8 per order on the derivations of ``benchmarks/bench_modified.py``).
GROWTH = 3.0
#: Orders faster than this are too short (fixed overheads, noise) to measure the growth from.
MIN_TIMED = 0.05

_DEFAULT_CHEAPER = ("ask for a lower order, give the hyperparameters numeric values, or use "
                    "fewer parameters")


class _Plan:
    """The stages after the current loop, as a multiple of its cost, and the advice."""

    def __init__(self, later: float, cheaper: str, what: str):
        self.later, self.cheaper, self.what = later, cheaper, what
        self.warned = False


_PLAN: contextvars.ContextVar = contextvars.ContextVar("symflow_run_plan", default=None)


@contextlib.contextmanager
def run_plan(what: str, later: float = 0.0, cheaper: str = _DEFAULT_CHEAPER):
    """Within the block, loops over orders predict the whole run for their warning.

    ``later`` is the cost of the stages that follow the current loop as a multiple of the
    loop's own cost (set it again with :func:`set_later` between stages); ``cheaper``
    says how to make the run cheaper; ``what`` names the run in the warning. Nested
    plans keep the outer one (one warning per run).
    """
    if _PLAN.get() is not None:
        yield _PLAN.get()
        return
    plan = _Plan(later, cheaper, what)
    token = _PLAN.set(plan)
    try:
        yield plan
    finally:
        _PLAN.reset(token)


def set_later(later: float) -> None:
    """Say how much the stages after the next loop cost, relative to it."""
    plan = _PLAN.get()
    if plan is not None:
        plan.later = later


_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _user_level() -> int:
    """The ``stacklevel`` that points a warning at the first caller outside symflow."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    return level


def _format_seconds(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    if seconds < 365 * 86400:
        return f"{seconds / 86400:.0f} days"
    return f"{seconds / (365 * 86400):.2g} years"


def predict_rest(times, remaining: int, growth: float = GROWTH,
                 cautious: bool = False) -> tuple[float, float]:
    r"""``(seconds, g)``: the predicted time of ``remaining`` more orders after ``times``.

    ``times`` are the measured seconds of the orders done, in order; the next ones are
    predicted as :math:`t_k g, t_k g^2, \dots` with :math:`g` the geometric mean of the last
    two measured ratios (orders under :data:`MIN_TIMED` seconds are not used; ``growth``
    until two are timed), and never below 1. ``cautious`` takes the smaller of the two
    ratios instead, or with a single ratio at most ``growth`` (a lower estimate, for the
    warning: no false alarm from one jump).

    Example:
        >>> predict_rest([0.1, 0.4, 1.6], 2)
        (32.0, 4.0)
    """
    timed = [t for t in times if t >= MIN_TIMED]
    ratios = [b / a for a, b in itertools.pairwise(timed)][-2:]
    if not ratios:
        g = growth
    elif cautious:  # one ratio may be a jump: no more than the prior then
        g = min(ratios) if len(ratios) > 1 else min(ratios[0], growth)
    else:
        g = math.prod(ratios) ** (1 / len(ratios))
    g = max(g, 1.0)
    last = times[-1] if times else 0.0
    rest = sum(last * g**j for j in range(1, remaining + 1))
    return round(rest, 12), round(g, 12)


class _NoBar:
    """Stands in for a tqdm bar when ``progress=False`` (no terminal work at all)."""

    total = n = 0

    def update(self, n=1):
        self.n += n

    def set_description_str(self, *args, **kwargs):
        pass

    def close(self):
        pass


def _bar(progress, **kwargs):
    if progress is False:
        return _NoBar()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TqdmWarning)
        return tqdm(delay=0.0 if progress else DELAY, smoothing=0, **kwargs)


class OrderProgress:
    """Iterate over orders with a bar in seconds whose remaining time follows
    :func:`predict_rest`, and warn once when the run will clearly take long."""

    _FORMAT = "{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]"

    def __init__(self, iterable, *, desc: str, progress: bool | None, leave: bool = False):
        self.items = list(iterable)
        self.desc = desc
        self.times: list[float] = []
        self.warned = False
        self.bar = _bar(progress, total=None, desc=desc, leave=leave, bar_format=self._FORMAT)
        self.bar.set_description_str(f"{desc} (order 0/{len(self.items)})", refresh=False)

    def __iter__(self):
        try:
            for k, item in enumerate(self.items):
                start = time.perf_counter()
                yield item
                self.times.append(time.perf_counter() - start)
                self._update(k + 1)
        finally:
            self.bar.close()

    def _update(self, done: int) -> None:
        rest, g = predict_rest(self.times, len(self.items) - done)
        elapsed = sum(self.times)
        self.bar.total = elapsed + rest
        self.bar.set_description_str(f"{self.desc} (order {done}/{len(self.items)}, "
                                     f"x{g:.1f} per order)", refresh=False)
        self.bar.update(elapsed - self.bar.n)  # shown once DELAY has passed (tqdm's delay)
        plan = _PLAN.get()
        measured = sum(t >= MIN_TIMED for t in self.times) >= 2  # a growth, not the prior
        if done < len(self.items) and measured and not self.warned and \
                (plan is None or not plan.warned):
            later = plan.later if plan is not None else 0.0
            low, g = predict_rest(self.times, len(self.items) - done, cautious=True)
            total = low + (elapsed + low) * later
            if total > LONG_RUN:
                self.warned = True
                if plan is not None:
                    plan.warned = True
                what = plan.what if plan is not None else self.desc
                cheaper = plan.cheaper if plan is not None else _DEFAULT_CHEAPER
                warnings.warn(
                    f"{what}: the remaining work is estimated at about "
                    f"{_format_seconds(total)} or more ({self.desc}: orders 0 to {done - 1} took "
                    f"{_format_seconds(elapsed)}, each further order costs about {g:.1f}x "
                    f"the one before). To make it cheaper: {cheaper}. Pass progress=True to "
                    "follow it, or interrupt it now.", CostWarning, stacklevel=_user_level())


def stage_bar(items, *, desc: str, progress: bool | None, weight=None):
    """Iterate over ``items`` (a stage that is not a loop over orders) with a bar whose
    units are ``weight(item)`` (default 1 each), so its remaining time is size-honest."""
    items = list(items)
    weights = [max(weight(i), 1) if weight else 1 for i in items]
    bar = _bar(progress, total=sum(weights), desc=desc, leave=False,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]")
    try:
        for item, w in zip(items, weights):
            yield item
            bar.update(w)
    finally:
        bar.close()


def progress_bar(iterable=None, *, desc: str, unit: str, progress: bool | None = None,
                 total=None, leave: bool = False, unit_scale: bool = False):
    """A tqdm bar over ``iterable`` (or a manual one with ``total``), shown only after
    :data:`DELAY` seconds unless ``progress`` is True; disabled when ``progress`` is False.
    A loop over orders (``unit="order"``) gets an :class:`OrderProgress`."""
    if unit == "order" and iterable is not None and total is None:
        return iter(OrderProgress(iterable, desc=desc, progress=progress, leave=leave))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TqdmWarning)
        return tqdm(iterable, desc=desc, unit=unit, total=total, leave=leave,
                    unit_scale=unit_scale, disable=progress is False,
                    delay=0.0 if progress else DELAY)
