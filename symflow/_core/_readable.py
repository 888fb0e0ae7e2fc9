r"""Readable forms of exact results, for display only (the exact objects are never changed).

Cheap rewrites that a researcher would do by hand before reading a formula:

- constants in the hyperparameters are factored, with denominators whose constant term is
  positive: :math:`-1/(\beta - 1)` reads :math:`1/(1 - \beta)`;
- products of exponentials are combined: :math:`e^{2b} e^{4w} = e^{2b + 4w}`;
- logistic sigmoids are named: :math:`e^{u}/(e^{u} + 1)` reads :math:`\operatorname{sigmoid}(u)`.

Each rewrite is an identity (or a pure renaming, for the sigmoid), and each stays cheap:
nothing here simplifies, integrates or factors an expression that depends on the parameters.
"""

from __future__ import annotations

import sympy as sp

from ._guard import as_sympy

#: A display-only name for the logistic function :math:`1/(1 + e^{-u})`.
sigmoid = sp.Function("sigmoid")


def _flip_sign(q):
    """True when the factor ``q`` reads better negated (its constant term is negative)."""
    const, _ = q.as_coeff_Add()
    return bool(const.is_number and const.is_negative)


def readable_constant(c):
    r"""Factor a constant (no parameters) and make each denominator's constant term positive.

    >>> b = sp.Symbol("beta")
    >>> readable_constant(-1 / (b - 1))
    1/(1 - beta)
    >>> readable_constant((b / 2 + sp.Rational(1, 2)) / (b - 1) ** 3)
    -(beta + 1)/(2*(1 - beta)**3)
    """
    c = sp.factor(as_sympy(c))
    if not c.free_symbols:
        return c
    rational, numer, denom = sp.S.One, [], []
    for arg in sp.Mul.make_args(c):
        base, e = arg.as_base_exp() if arg.is_Pow else (arg, sp.S.One)
        if arg.is_Number:
            rational *= arg
        elif e.is_Integer and e < 0:
            if base.is_Add and _flip_sign(base):
                base, rational = -base, rational * (-1) ** e
            denom.append(sp.Pow(base, e))
        else:
            if base.is_Add and e.is_Integer and base.could_extract_minus_sign():
                base, rational = -base, rational * (-1) ** e
            numer.append(sp.Pow(base, e) if e != 1 else base)
    if not denom and len(numer) == 1 and rational == 1:
        return numer[0]
    return sp.Mul(rational, *numer, *denom)


def _logistic_argument(factor):
    """``u`` when ``factor`` is ``1/(1 + exp(-u))``, else None."""
    if factor.is_Pow and factor.exp == -1 and factor.base.is_Add and len(factor.base.args) == 2:
        other = factor.base - 1
        if isinstance(other, sp.exp) and other.args[0].could_extract_minus_sign():
            return -other.args[0]
    return None


def _name_sigmoids(expr):
    """``exp(u)/(exp(u) + 1)`` and ``1/(1 + exp(-u))`` as ``sigmoid(u)``, inside products too."""
    def rename(e):
        if not e.is_Mul and not e.is_Pow:
            return e
        factors = list(sp.Mul.make_args(e))
        for f in list(factors):
            u = _logistic_argument(f)
            if u is not None:
                factors[factors.index(f)] = sigmoid(u)
            elif f.is_Pow and f.exp == -1 and f.base.is_Add and len(f.base.args) == 2:
                top = f.base - 1
                if isinstance(top, sp.exp) and top in factors:
                    factors.remove(top)
                    factors[factors.index(f)] = sigmoid(top.args[0])
        out = factors
        return sp.Mul(*out)

    return expr.replace(lambda e: e.is_Mul or e.is_Pow, rename)


def _factor_coefficients(expr, params):
    """Group the terms by their parameter part and factor each constant coefficient."""
    groups = {}
    for term in sp.Add.make_args(sp.expand_mul(expr)) if expr.is_Add else [expr]:
        coeff, rest = term.as_independent(*params, as_Add=False)
        groups[rest] = groups.get(rest, sp.S.Zero) + coeff
    return sp.Add(*[readable_constant(c) * rest for rest, c in groups.items() if c != 0])


def readable(expr, params=()):
    r"""A display form of ``expr``: exponentials combined, sigmoids named, constants factored.

    With ``params``, the terms are grouped by their dependence on the parameters and each
    coefficient (a constant in the hyperparameters) is factored, with positive constant terms
    in its denominators.

    >>> b, w, u, x, beta = sp.symbols("b w u x beta")
    >>> readable(sp.exp(2 * b) * sp.exp(4 * w))
    exp(2*b + 4*w)
    >>> readable(sp.exp(u) / (sp.exp(u) + 1))
    sigmoid(u)
    >>> readable(-x**2 / (beta - 1) + (beta / 2 + sp.S.Half) * x / (beta - 1) ** 3, [x])
    x**2/(1 - beta) - x*(beta + 1)/(2*(1 - beta)**3)
    """
    expr = as_sympy(expr)
    if not isinstance(expr, sp.Basic) or expr.is_number:
        return expr
    if params and expr.free_symbols - set(params):
        expr = _factor_coefficients(expr, tuple(params))
    elif not params and not expr.free_symbols:
        expr = readable_constant(expr)
    if expr.has(sp.exp):
        expr = sp.powsimp(expr, combine="exp", deep=True)
        expr = _name_sigmoids(expr)
    return expr
