r"""Evaluating an expression of the parameters at another point.

For a concrete loss this is plain substitution. For an undefined loss :math:`E(\phi, \theta)`
it is not: ``Derivative(E(phi, theta), theta).subs(phi, phi - h*E_phi)`` gives
:math:`\partial_\theta[E(\phi - hE_\phi, \theta)]`, which also differentiates the new
point (SymPy keeps a ``Derivative`` when the variable replaced is not the one
differentiated). The value wanted is :math:`(\partial_\theta E)(\phi - hE_\phi, \theta)`,
which SymPy writes ``Subs(Derivative(E(phi, theta), theta), phi, phi - h*E_phi)``.
Alternating gradient descent-ascent on an undefined loss needs exactly this.
"""

import sympy as sp


def at_point(expr, rule: dict):
    r"""``expr`` with the symbols of ``rule`` replaced simultaneously.

    Derivatives of undefined functions are evaluated, not re-differentiated: each one that
    holds a moved symbol becomes a ``Subs`` at the new point (see the module).

    Example::

        >>> import sympy as sp
        >>> x, y, h = sp.symbols("x y h")
        >>> E = sp.Function("E")(x, y)
        >>> at_point(E.diff(y), {x: x - h})
        Subs(Derivative(E(x, y), y), x, -h + x)
    """
    moved = {p: q for p, q in rule.items() if p != q}
    if not moved:
        return expr
    held = {}
    for d in expr.atoms(sp.Derivative):
        names = [p for p in moved if d.has(p)]
        if names:
            held[d] = (sp.Dummy(), sp.Subs(d, names, [moved[p] for p in names]))
    out = expr.xreplace({d: mark for d, (mark, _) in held.items()}).xreplace(moved)
    return out.xreplace(dict(held.values()))


def at_origin_of(expr, symbol):
    r"""``expr`` at ``symbol = 0``, with every ``Subs`` whose point no longer moves evaluated
    (``Subs(f(x), x, x)`` is ``f(x)``)."""
    out = expr.subs(symbol, 0)
    if out.has(sp.Subs):
        out = out.replace(lambda e: isinstance(e, sp.Subs), lambda e: e.doit(deep=False))
    return out
