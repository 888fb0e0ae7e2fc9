r"""The result of a derivation on a vector field or a stop-gradient loss.

:class:`FieldModifiedEquation` is a :class:`~symflow.ModifiedEquation` whose leading term is
a field :math:`F` (not :math:`-\nabla L`): it has no loss, says from which order the flow
stops being a gradient field, and gives the coordinate-free terms as elementary
differentials of :math:`g = -F` (:func:`elementary_differentials`) where the rule evaluates
the direction at points only.
"""

from __future__ import annotations

import functools

import sympy as sp

from .._core import _validate as v
from .._core._errors import SymflowError
from .._core._gradient import is_zero_expr
from .._trees._coordinate_free import coordinate_free_equation
from ._result import ModifiedEquation


def elementary_differentials(grad, params):
    r"""``G(tree)`` for a field :math:`g` that need not be a gradient (``grad`` a column).

    :math:`G(\bullet) = g`, :math:`G([\tau_1..\tau_m]) = g^{(m)}[G(\tau_1), .., G(\tau_m)]`
    (Hairer, Lubich & Wanner, *Geometric Numerical Integration*, ch. III.1), trees as in
    :mod:`symflow._trees._rooted`. Mixed partials commute, so :math:`g^{(m)}` is symmetric in
    its arguments and the trees of one gradient index the terms of any field: only
    :math:`H = g'` is no longer a symmetric matrix.

    Example::

        >>> import sympy as sp
        >>> from symflow._trees._rooted import LEAF, tree
        >>> x, y = sp.symbols("x y")
        >>> G = elementary_differentials(sp.Matrix([y, 0]), [x, y])
        >>> G(tree(LEAF)).T     # g'g for g = (y, 0)
        Matrix([[0, 0]])
    """
    params = tuple(params)
    grad = sp.Matrix(grad)
    dim = len(params)

    @functools.cache
    def directional(m):
        w = [sp.symbols(f"_w{i}_0:{dim}") for i in range(m)]
        out = grad
        for i in range(m):
            out = sum((out.diff(p) * w[i][b] for b, p in enumerate(params)), sp.zeros(dim, 1))
        return out, w

    @functools.cache
    def G(t):
        value, w = directional(len(t) - 1)
        sub = {}
        for i, child in enumerate(t[1:]):
            cv = G(child)
            sub.update({w[i][b]: cv[b] for b in range(dim)})
        return sp.ImmutableMatrix(value.xreplace(sub) if sub else value)

    return G


class FieldModifiedEquation(ModifiedEquation):
    r"""The modified flow of a rule driven by a field :math:`F` or a stop-gradient loss.

    As :class:`~symflow.ModifiedEquation`, with ``field_source`` (the leading field
    :math:`F`), ``stop_gradient`` (``{copy: param}``, empty for ``field=``), ``loss`` (the
    two-argument loss, or None) and :attr:`coordinate_free`. ``gradient_orders[0]`` is
    False when :math:`F` itself is not a gradient field: then no order has a modified loss.
    """

    def __init__(self, optimizer, direction, params, order, hyper, algebra, raw_terms,
                 raw_manifold=None):
        super().__init__(optimizer, direction.loss, params, order, hyper, algebra, raw_terms,
                         raw_manifold)
        self.direction = direction
        #: the field :math:`F` that replaces :math:`-\nabla L`
        self.field_source = sp.ImmutableMatrix(direction.field)
        self.stop_gradient = dict(zip(direction.held, (params[j] for j in direction.copies)))

    @property
    def time_scale(self):
        r"""The constant :math:`c` with ``terms[0] == c F`` (None if there is none)."""
        F = self.field_source
        k = next((i for i, f in enumerate(F) if f != 0), None)
        if k is None:
            return None
        c = sp.cancel(self.terms[0][k] / F[k])
        if c.free_symbols & set(self.params):
            return None
        return c if all(is_zero_expr(t - c * f) for t, f in zip(self.terms[0], F)) else None

    @functools.cached_property
    def potentials(self) -> tuple:
        r"""``potentials[k]`` is :math:`V_k` with ``terms[k] == -grad V_k`` (None if none)."""
        return tuple(self._alg.potential(vec) if ok else None
                     for vec, ok in zip(self._raw, self.gradient_orders))

    def truncate(self, order: int) -> FieldModifiedEquation:
        order = v.check_order(order)
        if order > self.order:
            raise SymflowError(
                f"got order={order}; this equation was derived to order {self.order} only")
        manifold = None if self._raw_manifold is None else self._raw_manifold[: order + 1]
        return FieldModifiedEquation(self.optimizer, self.direction, self.params, order,
                                     self.hyper, self._alg, self._raw[: order + 1], manifold)

    def check_validity(self, point, lr, hyper_values=None, warn: bool = True):
        raise SymflowError(
            "check_validity needs a loss (its Hessian); for a field F the step is limited by "
            "h times the eigenvalues of the Jacobian F' (explicit Euler: |1 + h lambda| < 1)")

    def gradient_summary(self) -> str:
        k = self.first_non_gradient_order
        what = ("the field" if not self.stop_gradient else
                f"the stop-gradient field (copies {self.stop_gradient})")
        if k is None:
            return f"{what} gives a gradient flow at every kept order (0..{self.order})"
        if k == 0:
            return (f"not a gradient field: {what} itself has a non-symmetric Jacobian "
                    "(order h^0), so there is no modified loss")
        return f"not a gradient field from order {self.step}^{k} on"

    def _held_calls(self) -> bool:
        """True when the rule calls ``grad(point, held)`` (held copies away from the point)."""
        calls = []

        def oracle(point, held=None):
            calls.append(held is not None)
            return sp.Matrix([sp.Function(f"_g{i}")(*point) for i in range(len(self.params))])

        theta = sp.Matrix(self.params)
        size = self.optimizer.memory_size(len(self.params))
        if size:
            self.optimizer.step_memory(theta, sp.Matrix(sp.symbols(f"_m0:{size}")), oracle,
                                       self.step)
        else:
            self.optimizer.step(theta, oracle, self.step)
        return any(calls)

    @functools.cached_property
    def coordinate_free(self):
        r"""The terms as elementary differentials of :math:`g = -F` (a ``CoordinateFreeEquation``).

        Its ``H``, ``T`` are the derivatives :math:`g', g''` of :math:`g = -F` (``H`` need not
        be symmetric); evaluate them with :func:`elementary_differentials`. Raises
        :class:`SymflowError` when the rule evaluates held copies away from the point (an
        EMA teacher): its terms are then not built from one field.
        """
        if self._held_calls():
            raise SymflowError(
                f"no coordinate-free form: the rule of {self.optimizer!r} evaluates the loss "
                "with its held copies away from the point (grad(p, q)), so its terms are not "
                "elementary differentials of one field (the trees of one gradient do not "
                "apply); use the concrete terms (.terms)")
        return coordinate_free_equation(self.optimizer, self.order)

    def __str__(self) -> str:
        text = super().__str__()
        return text + f"\n  F = {list(self.field_source)}"

    def __repr__(self) -> str:
        kind = "stop_gradient" if self.stop_gradient else "field"
        return (f"<FieldModifiedEquation {self.optimizer!r} {kind} order={self.order} "
                f"params={list(self.params)} path={self.path}>")
