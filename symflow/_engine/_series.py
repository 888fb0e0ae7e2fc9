r"""Truncated power series in :math:`h` over an exact arithmetic, and an evaluator for rules.

A series is a list ``[c_0, ..., c_K]`` of scalars of an algebra (:mod:`symflow._engine._algebra`,
:mod:`symflow._engine._jets`, :mod:`symflow._engine._ratjets`) standing for :math:`\sum_k c_k h^k + O(h^{K+1})`.
:func:`evaluate` computes an optimizer's update rule, a SymPy expression, on series
arguments. Gradients appear in the rule as applications ``G_i(point)`` of undefined
functions; with :math:`\delta = \text{point} - \theta = O(h)` they are expanded by Taylor's
formula

.. math::  \nabla_i L(\theta + \delta) = \sum_{|\beta| \le K}
           \frac{\partial^\beta \nabla_i L(\theta)}{\beta!}\,\delta^\beta + O(h^{K+1}).

Powers with negative or half-integer exponents use the binomial series
:math:`c_0^q (1 + u)^q = c_0^q \sum_k \binom{q}{k} u^k`, :math:`u = (s - c_0)/c_0 = O(h)`,
which needs :math:`c_0^{-1}` and :math:`\sqrt{c_0}` from the algebra (rational arithmetics
provide them; polynomial ones raise :class:`NotExpressible`).
"""

from __future__ import annotations

import itertools
import math

import sympy as sp

from .._core._guard import as_sympy


class NotExpressible(Exception):
    """The rule cannot be expanded in this arithmetic (the caller tries another)."""


class SeriesOps:
    """Series arithmetic truncated after ``h**order`` in the algebra ``alg``."""

    def __init__(self, alg, order: int):
        self.alg = alg
        self.order = order
        self.reduce = getattr(alg, "reduce", lambda a: a)

    def const(self, c):
        return [c] + [self.alg.zero] * self.order

    def zero(self):
        return [self.alg.zero] * (self.order + 1)

    def h(self):
        out = self.zero()
        if self.order >= 1:
            out[1] = self.alg.const(1)
        return out

    def add(self, a, b):
        return [x + y for x, y in zip(a, b)]

    def sub(self, a, b):
        return [x - y for x, y in zip(a, b)]

    def scale(self, a, c):
        return [self.reduce(x * c) for x in a]

    def mul(self, a, b):
        alg, out = self.alg, self.zero()
        nz_b = [j for j, y in enumerate(b) if not alg.is_zero(y)]
        for i, x in enumerate(a):
            if alg.is_zero(x):
                continue
            for j in nz_b:
                if i + j > self.order:
                    break
                out[i + j] = out[i + j] + x * b[j]
        return [self.reduce(c) for c in out]

    def power(self, a, n: int):
        out = self.const(self.alg.const(1))
        for _ in range(n):
            out = self.mul(out, a)
        return out

    def rational_power(self, a, q: sp.Rational):
        r"""``a**q`` for an integer or half-integer ``q`` by the binomial series."""
        alg = self.alg
        if q.q not in (1, 2):
            raise NotExpressible(f"power {q} of a series")
        if q.q == 1 and q >= 0:
            return self.power(a, int(q))
        c0 = a[0]
        if alg.is_zero(c0):
            raise NotExpressible("negative or fractional power of a quantity that vanishes at h = 0")
        inv = alg.inverse(c0)
        lead = alg.sqrt(c0) if q.q == 2 else alg.const(1)
        whole = q - sp.Rational(1, 2) if q.q == 2 else q
        if whole >= 0:
            for _ in range(int(whole)):
                lead = lead * c0
        else:
            for _ in range(int(-whole)):
                lead = lead * inv
        u = [alg.zero] + [c * inv for c in a[1:]]
        acc, u_pow = self.const(alg.const(1)), self.const(alg.const(1))
        for k in range(1, self.order + 1):
            u_pow = self.mul(u_pow, u)
            acc = self.add(acc, self.scale(u_pow, alg.const(sp.binomial(q, k))))
        return self.scale(acc, lead)


def multi_indices(active, n: int, dim: int):
    r"""The multi-indices :math:`\beta` of length ``dim`` and order :math:`|\beta| = n` supported
    on the coordinates ``active``, each with its Taylor weight :math:`1/\beta!`."""
    for combo in itertools.combinations_with_replacement(active, n):
        beta = [0] * dim
        for k in combo:
            beta[k] += 1
        yield tuple(beta), sp.Rational(1, math.prod(math.factorial(b) for b in beta))


def multi_index_powers(ops, delta):
    r"""A function ``beta -> delta**beta`` (series), cached, for :math:`|\beta| \le` order."""
    dim = len(delta)
    cache = {(0,) * dim: ops.const(ops.alg.const(1))}

    def power(beta):
        if beta not in cache:
            i = next(k for k, e in enumerate(beta) if e)
            lower = tuple(e - (k == i) for k, e in enumerate(beta))
            cache[beta] = ops.mul(power(lower), delta[i])
        return cache[beta]

    return power


def taylor_compose(ops, derivative, delta):
    r""":math:`F(\theta + \delta)` as a series, with ``derivative(beta)`` :math:`= \partial^\beta F(\theta)`.

    ``delta`` is a vector of series with zero constant terms.
    """
    alg, dim = ops.alg, len(delta)
    if any(not alg.is_zero(s[0]) for s in delta):
        raise NotExpressible("evaluated at a point that does not tend to theta as h -> 0")
    power = multi_index_powers(ops, delta)
    active = [i for i in range(dim) if any(not alg.is_zero(c) for c in delta[i])]
    out = ops.const(derivative((0,) * dim))
    for n in range(1, ops.order + 1):
        for beta, weight in multi_indices(active, n, dim):
            out = ops.add(out, ops.scale(power(beta), derivative(beta) * alg.const(weight)))
    return out


class Evaluator:
    r"""Evaluate SymPy expressions of a rule on series.

    ``leaves`` maps symbols to series (memory, ...); ``h`` is the learning rate;
    ``grads`` maps each undefined gradient function to ``(i, derivative)`` where
    ``derivative(beta)`` returns :math:`\partial^\beta \nabla_i L` in the algebra. Other
    symbols (parameters, hyperparameters) are constants of the algebra.
    """

    def __init__(self, ops, params, h, leaves, grads):
        self.ops, self.params, self.h = ops, tuple(params), h
        self.leaves = dict(leaves)
        self.grads = grads
        self.dynamic = set(self.leaves) | {h}
        self.memo = {}

    def __call__(self, expr):
        expr = as_sympy(expr)
        if expr not in self.memo:
            self.memo[expr] = self._evaluate(expr)
        return self.memo[expr]

    def _is_constant(self, expr):
        return not (expr.free_symbols & self.dynamic) and not any(
            isinstance(a, sp.core.function.AppliedUndef) for a in sp.preorder_traversal(expr))

    def _evaluate(self, expr):
        ops, alg = self.ops, self.ops.alg
        if expr in self.leaves:
            return self.leaves[expr]
        if expr == self.h:
            return ops.h()
        if self._is_constant(expr):
            try:
                return ops.const(alg.from_expr(expr))
            except Exception as err:  # noqa: BLE001 - any conversion failure means "not here"
                if isinstance(expr, (sp.Add, sp.Mul, sp.Pow)):
                    pass  # evaluate piecewise below (e.g. sqrt of a constant)
                else:
                    raise NotExpressible(f"{expr} is not a constant of this arithmetic") from err
        if isinstance(expr, sp.Add):
            out = ops.zero()
            for arg in expr.args:
                out = ops.add(out, self(arg))
            return out
        if isinstance(expr, sp.Mul):
            # gradient calls last, and not at all once the product is O(h^(order+1)): a
            # call h*grad(theta, m) is then never expanded about a memory not yet known
            out = ops.const(alg.const(1))
            for arg in sorted(expr.args, key=lambda a: a.has(sp.core.function.AppliedUndef)):
                out = ops.mul(out, self(arg))
                if all(alg.is_zero(c) for c in out):
                    break
            return out
        if isinstance(expr, sp.Pow):
            if not expr.exp.is_Rational:
                raise NotExpressible(f"power with exponent {expr.exp}")
            return ops.rational_power(self(expr.base), expr.exp)
        if isinstance(expr, sp.core.function.AppliedUndef) and expr.func in self.grads:
            i, derivative = self.grads[expr.func]
            delta = [ops.sub(self(a), ops.const(alg.from_expr(p)))
                     for a, p in zip(expr.args, self.params)]
            return taylor_compose(ops, derivative, delta)
        raise NotExpressible(f"cannot expand {type(expr).__name__} ({expr}) as a series in h")
