r"""Parse user expression strings into SymPy without executing any code.

The string is parsed by Python's :mod:`ast` and the tree is walked here, node by node:
only numbers, whitelisted names, arithmetic operators (``+ - * / **``, and ``^`` read as
a power) and calls of whitelisted functions are accepted. Attribute access, subscripts,
keywords, lambdas, comprehensions and dunder names are rejected with a clear message, so
``"__import__('os').system('x')"`` never runs. Decimal literals become the exact rationals
of their digits as written (``0.1 -> 1/10``, ``1e-400`` stays :math:`10^{-400}`): the rule
of :mod:`symflow._core._guard`, the same as for Python floats.

Limits, each refused with a clear message before any work: text longer than
:data:`MAX_LENGTH` characters or not valid Unicode (lone surrogates); nesting deeper than
:data:`MAX_DEPTH` (long sums and products are flat, so 3000-term sums are fine; 2000-level
towers are not); a number with more than :data:`MAX_DIGITS` digits, as a literal or as a
power of numbers (``(1/3)**(10**8)``); a power above :data:`MAX_POWER` of an expression in
symbols (``(x+y)**3000``, whose expansion is too large). Names are read as Python reads them,
NFKC-normalised (full-width ``ｘ`` is ``x``), on both the text and the declared symbols.
"""

from __future__ import annotations

import ast
import math
import operator
import sys
import unicodedata

import sympy as sp

from ._errors import SymflowError, UnsafeExpressionError
from ._guard import read_decimal

#: Functions a loss string may call.
FUNCTIONS = {
    "exp": sp.exp, "log": sp.log, "sqrt": sp.sqrt, "abs": sp.Abs,
    "sin": sp.sin, "cos": sp.cos, "tan": sp.tan, "atan": sp.atan,
    "sinh": sp.sinh, "cosh": sp.cosh, "tanh": sp.tanh, "erf": sp.erf,
    "softplus": lambda z: sp.log(1 + sp.exp(z)),
    "sigmoid": lambda z: 1 / (1 + sp.exp(-z)),
}
CONSTANTS = {"pi": sp.pi, "E": sp.E}
MAX_LENGTH = 10_000
MAX_DIGITS = 10_000
MAX_DEPTH = 100
MAX_POWER = 1000

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.Div: operator.truediv, ast.Pow: operator.pow}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos}


def _fail(text: str, why: str, fix: str = ""):
    if len(text) > 60:
        text = text[:40] + "..." + text[-10:]
    msg = f"cannot parse {text!r}: {why}"
    raise UnsafeExpressionError(msg + (f"; {fix}" if fix else ""))


def _log10(q: sp.Rational) -> float:
    """The number of decimal digits of the larger of numerator and denominator."""
    return max(math.log10(abs(int(q.p))) if q.p else 0.0, math.log10(int(q.q)))


def _power(base, exp, text):
    if isinstance(base, sp.Rational) and isinstance(exp, sp.Rational) and abs(base) != 1 \
            and base != 0:
        size = _log10(base)
        if abs(exp) * size > MAX_DIGITS:
            _fail(text, f"the number {_head(base)}**{_head(exp)} is too large to hold "
                  f"exactly (about {sp.Float(abs(exp) * size, 3)} digits, more than "
                  f"{MAX_DIGITS})")
    elif isinstance(exp, sp.Rational) and abs(exp) > MAX_POWER and not base.is_number:
        _fail(text, f"the power ({_head(base)})**{_head(exp)} is too large to expand or "
              f"differentiate (exponents up to {MAX_POWER})")
    return base**exp


def _head(value) -> str:
    if isinstance(value, sp.Rational) and max(abs(value.p), value.q).bit_length() > 200:
        return f"(a {int(_log10(value)) + 1}-digit number)"
    text = str(value)
    return text if len(text) <= 20 else text[:17] + "..."


def _normal(name: str) -> str:
    return unicodedata.normalize("NFKC", name)


def _depth(tree) -> int:
    """The nesting depth of ``tree``, long ``+ -`` and ``* /`` chains counted as one level."""
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, d = stack.pop()
        deepest = max(deepest, d)
        for child in ast.iter_child_nodes(node):
            flat = isinstance(node, ast.BinOp) and isinstance(child, ast.BinOp) and \
                _family(node.op) is not None and _family(node.op) == _family(child.op) \
                and child is node.left
            stack.append((child, d if flat else d + 1))
    return deepest


def _family(op):
    if isinstance(op, (ast.Add, ast.Sub)):
        return "add"
    if isinstance(op, (ast.Mult, ast.Div)):
        return "mul"
    return None


def parse_expression(text: str, names, functions: dict | None = None):
    """Parse ``text`` with the symbols in ``names``: a dict (name -> SymPy object or
    callable) or a sequence of SymPy symbols, each known by its own name.

    Example::

        >>> import sympy as sp, symflow as sf
        >>> x, y = sp.symbols("x y")
        >>> sf.parse_expression("(x*y - 0.5)^2/2", {"x": x, "y": y})
        (x*y - 1/2)**2/2
        >>> sf.parse_expression("exp(x) + y", [x, y])
        y + exp(x)
    """
    if not isinstance(names, dict):
        symbols = list(names) if isinstance(names, (list, tuple, sp.MatrixBase)) else [names]
        if not all(isinstance(s, sp.Symbol) for s in symbols):
            raise SymflowError(f"got names={names!r}; pass a dict such as {{'x': x}} or a "
                               "list of SymPy symbols such as [x, y]")
        names = {s.name: s for s in symbols}
    normal = {}
    for key, value in names.items():
        if _normal(key) in normal and normal[_normal(key)] is not value:
            raise SymflowError(f"got the names {key!r} and another that reads the same once "
                               f"normalised ({_normal(key)!r}); rename one of them")
        normal[_normal(key)] = value
    names = normal
    if not isinstance(text, str):
        raise UnsafeExpressionError(f"expected an expression string, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        _fail(text[:40] + "...", f"longer than {MAX_LENGTH} characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        _fail(text.encode("utf-8", "backslashreplace").decode(),
              f"it is not valid Unicode ({err.reason} at position {err.start})",
              "remove the stray character")
    functions = FUNCTIONS if functions is None else functions
    # '^' means a power, with the precedence of '**' (not Python's XOR)
    source = text.strip().replace("^", "**")
    limit = sys.getrecursionlimit()
    try:  # Python builds the tree of a long flat sum recursively: allow MAX_LENGTH levels
        sys.setrecursionlimit(max(limit, 2 * MAX_LENGTH + 100))
        tree = ast.parse(source, mode="eval")
    except SyntaxError as err:
        _fail(text, f"invalid syntax ({err.msg})")
    except (RecursionError, MemoryError):
        _fail(text, f"nested more than {MAX_DEPTH} levels deep")
    except ValueError as err:  # e.g. an integer literal beyond Python's digit limit
        _fail(text, str(err))
    finally:
        sys.setrecursionlimit(limit)
    if _depth(tree) > MAX_DEPTH:
        _fail(text, f"nested more than {MAX_DEPTH} levels deep",
              "write long towers of powers or nested calls in steps")

    def walk(node):
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
                _fail(text, f"the literal {node.value!r} is not a number")
            if isinstance(node.value, float):
                literal = ast.get_source_segment(source, node) or repr(node.value)
                try:
                    return read_decimal(literal.replace("_", ""), "the literal")
                except SymflowError as err:
                    _fail(text, str(err))
            if node.value.bit_length() > MAX_DIGITS * 3.33:
                _fail(text, f"an integer literal has more than {MAX_DIGITS} digits")
            return sp.Integer(node.value)
        if isinstance(node, ast.Name):
            if node.id.startswith("_"):
                _fail(text, f"the name {node.id!r} is not allowed (no underscore names)")
            if node.id in names:
                return names[node.id]
            if node.id in CONSTANTS:
                return CONSTANTS[node.id]
            if node.id in functions:
                _fail(text, f"{node.id!r} is a function; call it, e.g. {node.id}(x)")
            known = ", ".join(sorted(names)) or "none"
            _fail(text, f"unknown name {node.id!r}",
                  f"the known symbols are {known}; declare it as a parameter or hyperparameter")
        if isinstance(node, ast.BinOp) and _family(node.op) is not None:
            chain, family = [], _family(node.op)  # a long sum or product, read without recursion
            while isinstance(node, ast.BinOp) and _family(node.op) == family:
                chain.append((node.op, node.right))
                node = node.left
            total = walk(node)
            for op, right in reversed(chain):
                total = _BINARY[type(op)](total, walk(right))
            return total
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            left, right = walk(node.left), walk(node.right)
            if isinstance(node.op, ast.Pow):
                return _power(left, right, text)
            return _BINARY[type(node.op)](left, right)
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            return _UNARY[type(node.op)](walk(node.operand))
        if isinstance(node, ast.Call):
            if isinstance(node.func, ast.Attribute):
                _fail(text, f"attribute access ('.{node.func.attr}') is not allowed")
            if not isinstance(node.func, ast.Name):
                _fail(text, "only calls of plain function names are allowed")
            fname = node.func.id
            fn = functions.get(fname) or (names.get(fname) if callable(names.get(fname))
                                          and not isinstance(names.get(fname), sp.Basic) else None)
            if fn is None or fname.startswith("_"):
                allowed = ", ".join(sorted(functions))
                _fail(text, f"the function {fname!r} is not allowed",
                      f"allowed functions: {allowed}")
            if node.keywords or len(node.args) != 1:
                _fail(text, f"{fname}() takes exactly one positional argument")
            return fn(walk(node.args[0]))
        if isinstance(node, ast.Attribute):
            _fail(text, f"attribute access ('.{node.attr}') is not allowed")
        _fail(text, f"{type(node).__name__} syntax is not allowed",
              "use numbers, symbols, + - * / ** and functions such as exp, log, tanh")

    return walk(tree)


def parse_symbols(text: str, what: str):
    """``"x,y"`` -> ``(Symbol('x'), Symbol('y'))`` with validated identifier names."""
    names = [_normal(n.strip()) for n in text.split(",") if n.strip()]
    for n in names:
        if not n.isidentifier() or n.startswith("_") or n in FUNCTIONS or n in CONSTANTS:
            raise UnsafeExpressionError(
                f"got {what} name {n!r}; use plain identifiers such as x, y, w1 "
                "(not function names or names starting with '_')"
            )
    return tuple(sp.Symbol(n) for n in names)
