"""Progress bars that appear only for work that lasts.

Every loop of symflow and solvers that can run long goes through :func:`progress_bar`.
``progress=None`` (the default everywhere) shows a bar only once the loop has run for
:data:`DELAY` seconds (tqdm's ``delay``), so a derivation of a few milliseconds prints
nothing; ``progress=False`` never shows one; ``progress=True`` shows it from the start.

``tqdm.auto`` picks the notebook widget when one is available; in a notebook without
``ipywidgets`` it falls back to the text bar, and its warning about that is silenced here
(the text bar works, the warning only adds noise to every import).

Example:
    >>> from symflow._core._progress import progress_bar
    >>> sum(progress_bar(range(3), desc="demo", unit="item"))
    3
"""

from __future__ import annotations

import warnings

from tqdm import TqdmExperimentalWarning, TqdmWarning

with warnings.catch_warnings():  # tqdm.auto warns "IProgress not found" on import
    warnings.simplefilter("ignore", TqdmExperimentalWarning)
    warnings.simplefilter("ignore", TqdmWarning)
    from tqdm.auto import tqdm

#: Seconds a loop runs before its bar appears (when ``progress`` is None).
DELAY = 1.0


def progress_bar(iterable=None, *, desc: str, unit: str, progress: bool | None = None,
                 total=None, leave: bool = False, unit_scale: bool = False):
    """A tqdm bar over ``iterable`` (or a manual one with ``total``), shown only after
    :data:`DELAY` seconds unless ``progress`` is True; disabled when ``progress`` is False."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TqdmWarning)
        return tqdm(iterable, desc=desc, unit=unit, total=total, leave=leave,
                    unit_scale=unit_scale, disable=progress is False,
                    delay=0.0 if progress else DELAY)
