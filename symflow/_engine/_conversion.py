"""Converting the scalars of a derivation to SymPy expressions, under one progress bar.

A result (:class:`~symflow.ModifiedEquation`) converts every scalar of its terms and of
its memory manifold with ``algebra.to_expr`` when it is built; on a large derivation that
conversion takes as long as the derivation itself. :func:`converted` does it first, under
a bar whose units are the numbers of ring terms (so its remaining time follows the sizes),
and within its block hands the converted expressions back to the result.

Example::

    >>> import sympy as sp
    >>> from symflow._engine._algebra import ExprAlgebra
    >>> x = sp.Symbol("x")
    >>> alg, vec = ExprAlgebra([x]), (x**2 + 1,)
    >>> with converted(alg, [vec]):
    ...     alg.to_expr(vec[0])
    x**2 + 1
"""

from __future__ import annotations

import contextlib

from .._core._progress import stage_bar


def _size(c) -> int:
    return len(c) if hasattr(c, "terms") else 1


@contextlib.contextmanager
def converted(algebra, vectors, progress=None):
    """Convert every scalar of ``vectors`` to an expression under one bar; inside the block
    ``algebra.to_expr`` returns those conversions (by identity) without converting again."""
    items = [c for vec in vectors for c in vec]
    memo = {}
    for c in stage_bar(items, desc="converting terms to expressions", progress=progress,
                       weight=_size):
        if id(c) not in memo:
            memo[id(c)] = algebra.to_expr(c)
    original = algebra.to_expr
    algebra.to_expr = lambda a: memo[id(a)] if id(a) in memo else original(a)
    try:
        yield
    finally:
        del algebra.to_expr
