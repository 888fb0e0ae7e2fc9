r"""Parse user expression strings into SymPy without executing any code.

The string is parsed by Python's :mod:`ast` and the tree is walked here, node by node:
only numbers, whitelisted names, arithmetic operators (``+ - * / **``, and ``^`` read as
a power) and calls of whitelisted functions are accepted. Attribute access, subscripts,
keywords, lambdas, comprehensions and dunder names are rejected with a clear message, so
``"__import__('os').system('x')"`` never runs. Decimal literals become exact rationals
(``0.1 -> 1/10``).
"""

from __future__ import annotations

import ast
import math
import operator

import sympy as sp

from ._errors import SymflowError, UnsafeExpressionError

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

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.Div: operator.truediv, ast.Pow: operator.pow}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos}


def _fail(text: str, why: str, fix: str = ""):
    msg = f"cannot parse {text!r}: {why}"
    raise UnsafeExpressionError(msg + (f"; {fix}" if fix else ""))


def _power(base, exp, text):
    if isinstance(base, sp.Number) and isinstance(exp, sp.Integer) and abs(base) > 1:
        digits = abs(int(exp)) * math.log10(float(abs(base)))
        if digits > MAX_DIGITS:
            _fail(text, f"the number {base}**{exp} is too large (about {digits:.3g} digits)")
    return base**exp


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
    if not isinstance(text, str):
        raise UnsafeExpressionError(f"expected an expression string, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        _fail(text[:40] + "...", f"longer than {MAX_LENGTH} characters")
    functions = FUNCTIONS if functions is None else functions
    try:
        # '^' means a power, with the precedence of '**' (not Python's XOR)
        tree = ast.parse(text.strip().replace("^", "**"), mode="eval")
    except SyntaxError as err:
        _fail(text, f"invalid syntax ({err.msg})")

    def walk(node):
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
                _fail(text, f"the literal {node.value!r} is not a number")
            return sp.Rational(repr(node.value)) if isinstance(node.value, float) \
                else sp.Integer(node.value)
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
    names = [n.strip() for n in text.split(",") if n.strip()]
    for n in names:
        if not n.isidentifier() or n.startswith("_") or n in FUNCTIONS or n in CONSTANTS:
            raise UnsafeExpressionError(
                f"got {what} name {n!r}; use plain identifiers such as x, y, w1 "
                "(not function names or names starting with '_')"
            )
    return tuple(sp.Symbol(n) for n in names)
