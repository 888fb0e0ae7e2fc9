"""Input checks shared by the public entry points.

Each check returns a normalised value or raises :class:`SymflowError` with a message
that names what was received and how to fix it.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable

import sympy as sp

from ._errors import SymflowError
from ._symbols import h


def _describe(obj) -> str:
    text = repr(obj)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(obj).__name__})"


def check_params(params) -> tuple[sp.Symbol, ...]:
    """Return ``params`` as a tuple of distinct SymPy symbols."""
    if isinstance(params, sp.Symbol):
        params = (params,)
    if isinstance(params, str) or not isinstance(params, Iterable):
        raise SymflowError(
            f"got params={_describe(params)}; params must be a list of SymPy symbols, "
            "e.g. params=sp.symbols('x y')"
        )
    params = tuple(params)
    if not params:
        raise SymflowError("got params=[]; give at least one parameter symbol")
    for p in params:
        if not isinstance(p, sp.Symbol):
            raise SymflowError(
                f"got parameter {_describe(p)}; every parameter must be a SymPy Symbol, "
                "e.g. x, y = sp.symbols('x y')"
            )
        if p == h:
            raise SymflowError("the learning-rate symbol sf.h cannot be a parameter")
    if len(set(params)) != len(params):
        raise SymflowError(f"got params={list(params)}; parameters must be distinct")
    return params


def check_order(order) -> int:
    """Return ``order`` if it is a non-negative integer."""
    if isinstance(order, bool) or not isinstance(order, numbers.Integral) or order < 0:
        raise SymflowError(
            f"got order={order!r}; order must be a non-negative integer (0 gives the "
            "gradient flow, 1 the first correction, ...)"
        )
    return int(order)


def check_symbols(symbols, what: str, params=()) -> frozenset:
    """Return declared hyperparameter symbols as a frozenset (not parameters, not ``h``)."""
    if isinstance(symbols, sp.Symbol):
        symbols = (symbols,)
    out = []
    for s in symbols or ():
        if not isinstance(s, sp.Symbol):
            raise SymflowError(f"got {what} entry {_describe(s)}; {what} must be SymPy symbols")
        if s == h:
            raise SymflowError(f"got sf.h in {what}; h is the learning rate, not a constant")
        if s in params:
            raise SymflowError(
                f"got {s} both as a parameter and in {what}; a symbol is either a parameter "
                "(it evolves) or a constant hyperparameter"
            )
        out.append(s)
    return frozenset(out)


def resolve_values(values, expr, what: str = "hyper_values") -> dict:
    """``{symbol or name: number}`` -> ``{symbol of expr: number}``, matching by name.

    Matching by name lets ``{"lam": 4}`` reach ``Symbol("lam", positive=True)``.
    """
    by_name = {s.name: s for s in expr.free_symbols}
    out = {}
    for key, value in (values or {}).items():
        name = key.name if isinstance(key, sp.Symbol) else str(key)
        out[by_name.get(name, sp.Symbol(name))] = value
    return out


def rationalize(expr):
    """Replace floats by the rationals they were written as (0.1 -> 1/10)."""
    if isinstance(expr, sp.Basic) and expr.atoms(sp.Float):
        return sp.nsimplify(expr, rational=True)
    return expr


def check_loss(loss, params, allowed: frozenset) -> sp.Expr:
    """Return the loss as a scalar SymPy expression in ``params`` and ``allowed`` symbols."""
    if isinstance(loss, str):
        raise SymflowError(
            f"got loss={loss!r} (a string); pass a SymPy expression, or parse the string "
            "safely first with sf.parse_expression(text, params)"
        )
    if isinstance(loss, sp.MatrixBase):
        if loss.shape != (1, 1):
            raise SymflowError(
                f"got a {loss.shape[0]}x{loss.shape[1]} Matrix as loss; the loss must be a "
                "scalar expression (sum the components or take a norm)"
            )
        loss = loss[0, 0]
    if isinstance(loss, (list, tuple)):
        raise SymflowError(
            f"got a {type(loss).__name__} of {len(loss)} items as loss; the loss must be a "
            "scalar expression"
        )
    if isinstance(loss, numbers.Number):
        loss = sp.sympify(loss)
    if not isinstance(loss, sp.Expr):
        raise SymflowError(f"got loss={_describe(loss)}; the loss must be a SymPy expression")
    loss = rationalize(loss)
    check_free_symbols(loss, params, allowed, "the loss")
    return loss


def check_free_symbols(expr, params, allowed, what: str) -> None:
    """Raise if ``expr`` holds symbols that are neither parameters nor declared."""
    free = expr.free_symbols
    if h in free and h not in allowed:
        raise SymflowError(
            f"{what} contains the learning-rate symbol sf.h; the loss must not depend on h"
        )
    extra = free - set(params) - set(allowed)
    if extra:
        names = ", ".join(sorted(map(str, extra)))
        raise SymflowError(
            f"{what} contains the symbols {{{names}}}, which are neither parameters "
            f"(params={list(params)}) nor declared hyperparameters; add them to params, or "
            f"declare them as constants with hyper=[{names}]"
        )
