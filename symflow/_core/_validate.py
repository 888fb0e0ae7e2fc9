"""Input checks shared by the public entry points.

Each check returns a normalised value or raises :class:`SymflowError` with a message
that names what was received and how to fix it.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Iterable

import sympy as sp

from ._errors import CostWarning, SymflowError
from ._guard import check_symbolic, rationalize, to_sympy
from ._parse import MAX_POWER
from ._symbols import h

#: Orders above this are refused: the work grows about tenfold per order (README).
MAX_ORDER = 30
#: Orders above this warn that the derivation may take long.
LONG_ORDER = 12


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
    """Return ``order`` if it is a non-negative integer of a size that can finish.

    The exact work grows several-fold per order (GD on a two-parameter quartic: order 10
    in 0.3 s, order 12 in 0.8 s, about 1.6x per order), so orders above
    :data:`MAX_ORDER` are refused and orders above :data:`LONG_ORDER` warn
    (:class:`~symflow.CostWarning`) with that estimate.
    """
    if isinstance(order, bool) or not isinstance(order, numbers.Integral) or order < 0:
        raise SymflowError(
            f"got order={order!r}; order must be a non-negative integer (0 gives the "
            "gradient flow, 1 the first correction, ...)"
        )
    order = int(order)
    if order > MAX_ORDER:
        raise SymflowError(
            f"got order={order}; orders above {MAX_ORDER} cannot finish (the exact work "
            "grows about 1.6x per order even for GD on a small polynomial: order 12 takes "
            "about 1 s, order 30 about an hour); ask for a lower order")
    if order > LONG_ORDER:
        seconds = 0.8 * 1.6 ** (order - LONG_ORDER)
        warnings.warn(
            f"order={order} may take long: the work grows about 1.6x per order (GD on a "
            f"two-parameter polynomial needs about {seconds:.2g} s at this order; "
            "optimizers with memory and non-polynomial losses need much more)",
            CostWarning, stacklevel=3)
    return order


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


def check_constant_hyper(optimizer, params) -> frozenset:
    """The optimizer's hyperparameter symbols, refused when they include a parameter."""
    symbols = optimizer.hyper_symbols
    clash = symbols & set(params)
    if clash:
        names = ", ".join(sorted(map(str, clash)))
        raise SymflowError(
            f"got {optimizer!r}, whose hyperparameters depend on the parameters {{{names}}}; "
            "hyperparameters are constants (numbers, or symbols declared in hyper=[...]); "
            "for a step that depends on the parameters write the rule with sf.Custom")
    return symbols


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


def check_loss(loss, params, allowed: frozenset) -> sp.Expr:
    r"""Return the loss as a finite, real scalar SymPy expression in ``params`` and ``allowed``.

    Floats become the rationals of their printed digits (:func:`rationalize`). A loss that
    is not finite (``1/0``, ``0/0``, ``log(0)``, ``nan*x``: SymPy's ``zoo``, ``nan``,
    ``oo``) or not real (``sqrt(-1)*x``) is refused. Parameters are real: ``Abs(e)`` of
    parameters not declared real is read as :math:`\sqrt{e^2}` (equal for real ``e``, and
    differentiable by SymPy without assumptions); ``re``, ``im``, ``arg``, ``sign`` and
    ``conjugate`` of such parameters are refused.
    """
    if isinstance(loss, str):
        raise SymflowError(
            f"got loss={loss!r} (a string); pass a SymPy expression, or parse the string "
            "safely first with sf.parse_expression(text, params)"
        )
    check_symbolic(loss=loss)
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
        loss = to_sympy(loss, "loss")
    if not isinstance(loss, sp.Expr):
        raise SymflowError(f"got loss={_describe(loss)}; the loss must be a SymPy expression")
    loss = check_finite_real(rationalize(loss), params, "the loss")
    check_free_symbols(loss, params, allowed, "the loss")
    huge = [e for e in loss.atoms(sp.Pow) if e.exp.is_Rational and abs(e.exp) > MAX_POWER
            and not e.base.is_number]
    if huge:
        raise SymflowError(
            f"the loss holds the power ({str(huge[0].base)[:40]})**{huge[0].exp}, too large to "
            f"expand or differentiate (exponents up to {MAX_POWER}, as in the parser); "
            "rescale the loss or use a lower power")
    return loss


_NOT_REAL = {sp.zoo: "complex infinity (a division by zero such as 1/0, or log(0))",
             sp.nan: "nan (an undefined value such as 0/0 or nan*x)",
             sp.oo: "infinity", -sp.oo: "minus infinity"}


def check_finite_real(expr, params, what: str):
    """``expr`` if it is finite and real for real ``params`` (``Abs`` read as a root)."""
    for bad, why in _NOT_REAL.items():
        if expr.has(bad):
            raise SymflowError(f"{what} {_describe(expr)} is not finite: it holds {why}; "
                               "give a loss with finite values")
    if expr.has(sp.I):
        raise SymflowError(f"{what} {_describe(expr)} is not real: it holds the imaginary "
                           "unit I (from sqrt(-1), log(-1), a complex number ...); losses "
                           "must be real")
    unreal = [p for p in params if isinstance(p, sp.Symbol) and not p.is_extended_real]
    if not unreal:
        return expr
    for fn in (sp.re, sp.im, sp.arg, sp.sign, sp.conjugate):
        for call in expr.atoms(fn):
            if call.free_symbols & set(unreal):
                raise SymflowError(
                    f"{what} uses {call}, but {sorted(call.free_symbols, key=str)} are not "
                    "declared real; declare them real, e.g. x = sp.Symbol('x', real=True)")
    return expr.replace(lambda e: isinstance(e, sp.Abs) and bool(e.free_symbols & set(unreal)),
                        lambda e: sp.sqrt(e.args[0]**2))


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
