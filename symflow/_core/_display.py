r"""What printing may show: only what is already computed, shortened where it is long.

``str``, ``repr`` and ``_repr_latex_`` of a result never start a computation (a modified
loss of a non-polynomial field can take minutes to find). A lazily computed attribute
(a :func:`functools.cached_property`) is shown once it has been asked for; before that the
display says how to ask for it.

>>> import functools
>>> class Result:
...     @functools.cached_property
...     def modified_loss(self):
...         return 42
>>> r = Result()
>>> computed(r, "modified_loss") is NOT_COMPUTED
True
>>> r.modified_loss, computed(r, "modified_loss")
(42, 42)
>>> shorten("x" * 30, 20)
'xxxxxxxx ... (30 characters; print() shows all)'
"""

from __future__ import annotations

#: The line a display shows in place of a modified loss that has not been computed.
PENDING_LOSS = "(modified loss: call .modified_loss)"


class _NotComputed:
    def __repr__(self) -> str:
        return "NOT_COMPUTED"


#: Returned by :func:`computed` for an attribute that has not been computed yet.
NOT_COMPUTED = _NotComputed()


def computed(obj, name: str):
    """The value of the cached attribute ``name`` of ``obj`` if computed, else ``NOT_COMPUTED``."""
    return vars(obj).get(name, NOT_COMPUTED)


def shorten(text: str, limit: int = 400) -> str:
    """``text`` cut to about ``limit`` characters, saying how long it was."""
    if len(text) <= limit:
        return text
    tail = f" ... ({len(text)} characters; print() shows all)"
    return text[: max(limit - len(tail), 8)] + tail
