r"""The one guard for symbolic arguments: no user string ever reaches SymPy.

Almost every SymPy function (``sympify``, ``Matrix``, ``subs``, ``exp``, ``diff``,
``simplify`` ...) reads a string argument with ``parse_expr``, which *evaluates it as
Python*: ``sp.exp("__import__('os').system('rm -rf ~')")`` runs the command. So every
public entry point of symflow and solvers passes its symbolic arguments through
:func:`check_symbolic` before it touches SymPy, and code inside the packages converts
values with :func:`to_sympy`, never with ``sympify``:

* a string (or bytes) anywhere in an argument -- also inside a list, a tuple, a dict
  value or a NumPy array -- is refused with a :class:`~symflow.SymflowError` that names
  the argument and points to the safe parser :func:`symflow.parse_expression`;
* a dict key may be a plain identifier (``{"lam": 4}`` means the symbol named ``lam``);
* SymPy objects, numbers, NumPy/JAX numeric arrays and callables pass (the value a user
  callable returns is checked again where it is used);
* any other object is refused: SymPy would read it through ``str(obj)`` and evaluate that.

**Reading decimals.** A decimal is read as the exact rational number of its decimal
digits: in a string, the digits as written (``"0.1"`` is :math:`1/10`,
``"1.00000000000000001"`` keeps every digit, ``"1e-400"`` is :math:`10^{-400}`); for a
Python ``float``, the digits Python prints for it (``repr``: ``0.1`` is :math:`1/10`,
``1e-300`` is :math:`10^{-300}`, never a 300-digit binary fraction). A float and the
string of its ``repr`` therefore give the same rational. A decimal exponent beyond
:data:`MAX_EXPONENT` is refused; :func:`to_sympy` turns ``nan`` and ``inf`` into SymPy's
``nan`` and ``oo``, which each caller refuses with a message about its own argument.

Example::

    >>> import sympy as sp
    >>> x = sp.Symbol("x")
    >>> check_symbolic(loss=x**2, point=[1.0, 2])            # passes silently
    >>> check_symbolic(loss="__import__('os').system('ls')")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    symflow.SymflowError: got loss="__import__('..." (a string); symflow never evaluates ...
    >>> to_sympy(1e-300) == sp.Rational(1, 10**300), to_sympy(0.1)
    (True, 1/10)
"""

from __future__ import annotations

import math
import numbers

import sympy as sp

from ._errors import SymflowError

#: A decimal exponent beyond this is refused (the exact rational would be that many digits).
MAX_EXPONENT = 10_000
_MAX_NESTING = 50


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 30 else text[:13] + "..." + text[-1]


def _refuse_string(path: str, value) -> None:
    raise SymflowError(
        f"got {path}={_short(value)} (a string); symflow never evaluates strings, which "
        "could run code: pass a SymPy expression or a number, or read the text safely "
        "first with sf.parse_expression(text, symbols)")


def _is_identifier(key) -> bool:
    return isinstance(key, str) and key.isidentifier() and not key.startswith("_")


def _check(value, path: str, depth: int) -> None:
    if isinstance(value, (str, bytes)):
        _refuse_string(path, value)
    if value is None or isinstance(value, (sp.Basic, sp.MatrixBase, numbers.Number)):
        return
    if depth > _MAX_NESTING:
        raise SymflowError(f"got {path} nested more than {_MAX_NESTING} levels deep; "
                           "pass flat lists of numbers or expressions")
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, (str, bytes)):
                if not _is_identifier(key):
                    raise SymflowError(
                        f"got the key {_short(key)} in {path}; a string key must be a "
                        "plain symbol name such as 'lam' (or use the SymPy symbol itself)")
            else:
                _check(key, f"{path} key", depth + 1)
            _check(item, f"{path}[{key!r}]", depth + 1)
        return
    if isinstance(value, (list, tuple, set, frozenset)):
        for i, item in enumerate(value):
            _check(item, f"{path}[{i}]", depth + 1)
        return
    dtype = getattr(value, "dtype", None)
    if dtype is not None and hasattr(value, "__array__"):
        kind = getattr(dtype, "kind", "O")
        if kind in "biufc":
            return
        if kind == "O":
            for i, item in enumerate(value.ravel().tolist()):
                _check(item, f"{path}[{i}]", depth + 1)
            return
        _refuse_string(path, value)
    if callable(value):
        return
    raise SymflowError(
        f"got {path}={_short(value)} ({type(value).__name__}); expected a SymPy expression, "
        "a number, or a list of them (other objects are refused: SymPy would read them "
        "through their text)")


def check_symbolic(**arguments) -> None:
    """Refuse strings and unknown objects in the symbolic ``arguments`` (keyword: value).

    Call it first thing in every public function, with each argument that may reach
    SymPy: ``check_symbolic(loss=loss, params=params, point=point)``.
    """
    for name, value in arguments.items():
        _check(value, name, 0)


def read_float(value: float, what: str = "a number") -> sp.Rational:
    """The exact rational of a Python float's printed digits (``repr``): ``0.1 -> 1/10``."""
    if not math.isfinite(value):
        raise SymflowError(f"got {what}={value!r}; give finite numbers (not nan or inf)")
    return read_decimal(repr(float(value)), what)


def read_decimal(text: str, what: str = "a number") -> sp.Rational:
    """The exact rational of a decimal literal such as ``"1.5e-3"`` (digits as written)."""
    mantissa, _, exponent = text.lower().partition("e")
    if exponent and abs(int(exponent)) > MAX_EXPONENT:
        raise SymflowError(f"got {what}={text!r}; its decimal exponent is beyond "
                           f"+-{MAX_EXPONENT} (too many digits to hold exactly)")
    return sp.Rational(mantissa) * sp.Integer(10) ** int(exponent or 0)


def _float_atom(f: sp.Float) -> sp.Rational:
    if not f.is_finite:
        raise SymflowError(f"got the number {f}; give finite numbers (not nan or inf)")
    if f._prec == 53:  # a Python float: its repr is exact and shortest
        return read_float(float(f))
    return read_decimal(str(f))


def rationalize(expr):
    """Replace floats by the rationals of their printed digits (``0.1 -> 1/10``)."""
    if isinstance(expr, sp.MatrixBase):
        return expr.applyfunc(rationalize)
    if isinstance(expr, sp.Basic) and expr.atoms(sp.Float):
        return expr.xreplace({f: _float_atom(f) for f in expr.atoms(sp.Float)})
    return expr


def as_sympy(value):
    """``value`` as a SymPy object, unchanged (a float stays a ``Float``), for the packages'
    own values: expressions, numbers and matrices they built. SymPy's *strict* conversion,
    which never parses text (a string raises ``SympifyError``). It is the one place where
    symflow and solvers call ``sympify``; values from users go through
    :func:`check_symbolic` and :func:`to_sympy` instead.

    Example::

        >>> as_sympy(3), as_sympy(0.5)
        (3, 0.500000000000000)
    """
    _refuse_text(value)
    return sp.sympify(value, strict=True)


def _refuse_text(value) -> None:
    """Raise ``SympifyError`` on text anywhere in ``value``: SymPy's strict conversion refuses
    a string, but converts the items of a tuple, dict or set *without* ``strict`` (it would
    parse ``("x + 1",)``)."""
    if isinstance(value, (str, bytes)):
        raise sp.SympifyError(value)
    if isinstance(value, dict):
        for item in (*value.keys(), *value.values()):
            _refuse_text(item)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            _refuse_text(item)
    elif getattr(getattr(value, "dtype", None), "kind", "") in ("O", "S", "U"):  # array
        for item in value.flat:
            _refuse_text(item)


def to_sympy(value, what: str = "the value"):
    """``value`` as a SymPy object, floats read as exact rationals; never parses text.

    The replacement for ``sympify`` inside symflow: strings and unknown objects are
    refused (:func:`check_symbolic`), everything else goes through SymPy's strict
    conversion.
    """
    check_symbolic(**{what: value})
    if isinstance(value, bool):
        raise SymflowError(f"got {what}={value!r} (a bool); pass a number or an expression")
    if isinstance(value, float):  # nan and inf become SymPy's, refused by the caller in context
        return read_float(value, what) if math.isfinite(value) else sp.Float(value)
    try:
        out = as_sympy(value)
    except (sp.SympifyError, TypeError, ValueError) as err:
        raise SymflowError(f"got {what}={_short(value)} ({type(value).__name__}); expected "
                           f"a SymPy expression or a number ({err})") from None
    return rationalize(out)
