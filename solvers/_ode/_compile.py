r"""The one conversion point from SymPy matrices to jit-able, vmap-able JAX functions.

``vector_function(matrix, params, extra)`` returns ``f(theta, extra_values) -> array``
with ``theta`` of shape ``(d,)`` and ``extra_values`` of shape ``(m,)`` (learning rate,
hyperparameters). It is built with SymPy's JAX printer and common-subexpression
elimination, and cached on the (immutable) SymPy input, so converting the same
expression twice costs nothing and jitted callers are reused.
"""

from __future__ import annotations

import functools
import math

import jax.numpy as jnp
import sympy as sp
from sympy.core.function import AppliedUndef
from sympy.printing.codeprinter import PrintMethodNotImplementedError
from sympy.printing.numpy import JaxPrinter

from symflow import SymflowError
from symflow._core._guard import check_symbolic


class UnsupportedFunctionError(SymflowError):
    """A SymPy function has no JAX counterpart."""


def _check_supported(matrix):
    """Raise, naming the function, when some entry cannot be printed as JAX code."""
    undefined = sorted({str(f.func) for f in matrix.atoms(AppliedUndef)})
    if undefined:
        raise UnsupportedFunctionError(
            f"cannot compile the undefined function(s) {', '.join(undefined)} to JAX; "
            "replace them by explicit expressions"
        )
    printer = JaxPrinter()  # strict: unknown functions raise instead of printing a name
    for func in {type(f) for f in matrix.atoms(sp.Function)}:
        try:
            printer.doprint(next(f for f in matrix.atoms(func)))
        except PrintMethodNotImplementedError:
            raise UnsupportedFunctionError(
                f"the function {func.__name__!r} has no JAX translation; rewrite the "
                "expression with elementary functions (exp, log, tanh, erf, ...)"
            ) from None


#: Integers beyond this size are printed as floats: JAX refuses Python ints outside int64
#: (``jnp.sqrt(3837093615056360901746771)``, from exact noise factors of real data).
_BIG_INTEGER = 2**53


def _float_big_integers(matrix):
    big = {n: sp.Float(n, 20) for n in matrix.atoms(sp.Integer) if abs(n) > _BIG_INTEGER}
    return matrix.xreplace(big) if big else matrix


@functools.lru_cache(maxsize=256)
def _lambdified(matrix: sp.ImmutableMatrix, symbols: tuple):
    _check_supported(matrix)
    matrix = _float_big_integers(matrix)
    return sp.lambdify(symbols, list(matrix), modules="jax", cse=True)


def vector_function(matrix, params, extra=()):
    """Compile a SymPy column (or any) Matrix into ``f(theta, extra_values) -> (n,) array``.

    Example::

        >>> import sympy as sp, solvers as sv
        >>> x, y, a = sp.symbols("x y a")
        >>> f = sv.vector_function(sp.Matrix([a * x * y, sp.exp(y)]), [x, y], [a])
        >>> f(jnp.array([1.0, 0.0]), jnp.array([2.0]))
        Array([0., 1.], dtype=float64)
    """
    check_symbolic(matrix=matrix, params=params, extra=extra)
    matrix = sp.ImmutableMatrix(matrix)
    params, extra = tuple(params), tuple(extra)
    fn = _lambdified(matrix, params + extra)
    shape = (len(matrix),)

    def f(theta, extra_values=None):
        theta = jnp.asarray(theta)
        values = [theta[i] for i in range(len(params))]
        if extra:
            extra_values = jnp.asarray(extra_values)
            values += [extra_values[i] for i in range(len(extra))]
        out = fn(*values)
        return jnp.stack([jnp.broadcast_to(jnp.asarray(o, dtype=theta.dtype), theta.shape[1:])
                          for o in out]).reshape(shape + theta.shape[1:])

    return f


def hyper_vector(symbols, values) -> jnp.ndarray:
    """Numeric values, in the order of ``symbols``, from a ``{symbol or name: number}`` map."""
    values = values or {}
    by_name = {str(k): v for k, v in values.items()}
    missing = [str(s) for s in symbols if str(s) not in by_name]
    if missing:
        raise SymflowError(
            f"no numeric value for the hyperparameter(s) {', '.join(missing)}; pass "
            f"hyper={{{', '.join(repr(m) + ': ...' for m in missing)}}}"
        )
    out = []
    for s in symbols:
        value = by_name[str(s)]
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = float("nan")
        if isinstance(value, bool) or not math.isfinite(number):
            raise SymflowError(f"got hyper[{str(s)!r}]={value!r}; hyperparameter values must "
                               "be finite numbers")
        out.append(number)
    return jnp.array(out, dtype=jnp.float64)
