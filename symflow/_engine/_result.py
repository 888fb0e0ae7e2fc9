r"""The result of a concrete derivation: :class:`ModifiedEquation`.

It holds the exact terms :math:`f_k` of the modified flow
:math:`\dot\theta = \sum_{k=0}^{p} h^k f_k(\theta)`, tests each for being a gradient field,
finds the modified loss where one exists, and displays itself as LaTeX.
"""

from __future__ import annotations

import copy
import functools

import sympy as sp

from .._core import _validate as v
from .._core._display import NOT_COMPUTED, PENDING_LOSS, computed, shorten
from .._core._errors import SymflowError
from .._core._gradient import is_zero_expr
from .._core._latex import LatexDisplay, aligned
from .._core._readable import readable, readable_constant
from .._core._symbols import h
from ._validity import check_validity


class ModifiedEquation(LatexDisplay):
    r"""The modified flow :math:`\dot\theta = \sum_{k=0}^{p} h^k\, \text{terms}[k]` of an optimizer.

    Attributes
    ----------
    terms : tuple of sympy column Matrix
        ``terms[k]`` is the exact coefficient of :math:`h^k`; for gradient descent
        ``terms[0] == -grad L``.
    params, loss, optimizer, order, hyper
        What was derived. ``path`` is ``"polynomial"`` (exact ring arithmetic) or
        ``"jet"`` (polynomials in the derivatives of L) or ``"general"`` (expressions).

    Use :attr:`field`, :attr:`is_gradient`, :attr:`gradient_orders`,
    :attr:`first_non_gradient_order`, :attr:`modified_loss`, :meth:`latex`, and
    :meth:`check_validity`.
    """

    #: The expansion variable: the learning rate (other regimes may expand in sqrt(h)).
    step = h

    def __init__(self, optimizer, loss, params, order, hyper, algebra, raw_terms,
                 raw_manifold=None):
        self.optimizer = optimizer
        self.loss = loss
        self.params = tuple(params)
        self.order = order
        self.hyper = frozenset(hyper)
        self.path = algebra.kind
        self._alg = algebra
        self._raw = list(raw_terms)
        self.terms = tuple(
            sp.ImmutableMatrix([algebra.to_expr(c) for c in vec]) for vec in self._raw
        )
        self._raw_manifold = raw_manifold
        self._potential: dict = {}
        #: ``manifold_terms[k]`` is :math:`M_k` in the memory :math:`m = \sum_k h^k M_k(\theta)`
        #: on the invariant manifold (None for optimizers without memory).
        self.manifold_terms = None if raw_manifold is None else tuple(
            sp.ImmutableMatrix([algebra.to_expr(c) for c in vec]) for vec in raw_manifold)

    @property
    def manifold(self):
        r"""The memory on its invariant manifold, :math:`M_h(\theta) = \sum_k h^k M_k(\theta)`.

        Starting the optimizer's memory there removes the transient: the iterates then
        follow the reduced flow to the order derived. ``None`` without memory.
        """
        if self.manifold_terms is None:
            return None
        out = sp.zeros(len(self.manifold_terms[0]), 1)
        for k, term in enumerate(self.manifold_terms):
            out += h**k * sp.Matrix(term)
        return out

    @property
    def time_scale(self):
        r"""The constant :math:`c` with ``terms[0] == -c grad L`` (time runs :math:`c` times faster).

        Heavy ball with fixed :math:`\beta` gives :math:`c = 1/(1-\beta)`. ``None`` when the
        leading flow is not a rescaled gradient flow (e.g. Adam's).
        """
        c = self._loss_multiple(self.terms[0])
        return None if c is None else readable_constant(c)

    def _loss_multiple(self, term):
        """The constant :math:`c` with ``term == -c grad L``, or None."""
        grad = [sp.diff(self.loss, p) for p in self.params]
        k = next((i for i, g in enumerate(grad) if g != 0), None)
        if k is None:
            return None
        c = sp.cancel(-term[k] / grad[k])
        if c.free_symbols & set(self.params):
            return None
        if all(is_zero_expr(t + c * g) for t, g in zip(term, grad)):
            return c
        return None

    # -- the field ---------------------------------------------------------------------
    @property
    def field(self) -> sp.Matrix:
        """:math:`\\sum_k h^k\\,\\text{terms}[k]` as one column Matrix."""
        out = sp.zeros(len(self.params), 1)
        for k, term in enumerate(self.terms):
            out += self.step**k * sp.Matrix(term)
        return out

    def truncate(self, order: int) -> ModifiedEquation:
        """The same equation keeping only the terms up to ``h**order``."""
        order = v.check_order(order)
        if order > self.order:
            raise SymflowError(
                f"got order={order}; this equation was derived to order {self.order} only"
            )
        manifold = None if self._raw_manifold is None else self._raw_manifold[: order + 1]
        return ModifiedEquation(self.optimizer, self.loss, self.params, order, self.hyper,
                                self._alg, self._raw[: order + 1], manifold)

    # -- gradient structure ------------------------------------------------------------
    @functools.cached_property
    def gradient_orders(self) -> tuple[bool, ...]:
        """``gradient_orders[k]`` is True when ``terms[k]`` has a symmetric Jacobian."""
        return tuple(self._alg.is_gradient(vec) for vec in self._raw)

    @property
    def is_gradient(self) -> bool:
        """True when every kept term is a gradient field (exact symmetric-Jacobian test)."""
        return all(self.gradient_orders)

    @property
    def first_non_gradient_order(self) -> int | None:
        """The lowest power of ``h`` whose term is not a gradient field, or None."""
        for k, ok in enumerate(self.gradient_orders):
            if not ok:
                return k
        return None

    @functools.cached_property
    def potentials(self) -> tuple:
        r"""``potentials[k]`` is :math:`V_k` with ``terms[k] == -grad V_k`` (None if none found).

        :math:`V_0` is the loss itself when ``terms[0] == -grad L``.
        """
        return tuple(self.potential(k) for k in range(len(self._raw)))

    def potential(self, k: int):
        """:math:`V_k` alone (``potentials[k]``), without finding the other orders' potentials."""
        if "potentials" in self.__dict__:
            return self.potentials[k]
        if k not in self._potential:
            if not self.gradient_orders[k]:
                found = None
            elif k == 0 and (c := self._loss_multiple(self.terms[0])) is not None:
                found = readable_constant(c) * self.loss  # by structure, no integration
            else:
                found = self._alg.potential(self._raw[k])
            self._potential[k] = found
        return self._potential[k]

    @property
    def modified_loss(self):
        r"""The modified loss :math:`\tilde L = \sum_k h^k V_k` with ``field == -grad L~``.

        ``None`` when some kept term is not a gradient field (see
        :attr:`first_non_gradient_order`) or when a potential has no closed form.
        """
        if not self.is_gradient or any(p is None for p in self.potentials):
            return None
        return sp.Add(*[h**k * p for k, p in enumerate(self.potentials)])

    # -- validity ----------------------------------------------------------------------
    def check_validity(self, point, lr, hyper_values=None, warn: bool = True):
        """Report :math:`h\\,\\lambda_{\\max}` at ``point``; see :func:`symflow.check_validity`."""
        return check_validity(self.loss, self.params, point, lr, hyper_values, warn=warn,
                              optimizer=self.optimizer)

    # -- readable forms ----------------------------------------------------------------
    def simplify(self) -> ModifiedEquation:
        """A copy whose terms (and modified loss, when computed) are passed to ``sp.simplify``.

        The exact content is the same; only the printed form changes. This can be slow on
        large results, which is why it is never done by printing.
        """
        new = copy.copy(self)
        new.__dict__ = dict(self.__dict__)
        new.terms = tuple(t.applyfunc(sp.simplify) for t in self.terms)
        self._map_potentials(new, sp.simplify)
        return new

    def _map_potentials(self, new, fn) -> None:
        """Give ``new`` this result's potentials found so far, each passed through ``fn``."""
        new._potential = {k: None if p is None else fn(p) for k, p in self._potential.items()}
        if "potentials" in self.__dict__:
            new.potentials = tuple(None if p is None else fn(p) for p in self.potentials)

    def _shown(self, expr):
        return readable(expr, self.params)

    def _shown_loss(self):
        """The computed modified loss as :math:`\\sum_k h^k V_k`, each :math:`V_k` readable."""
        return sp.Add(*[self.step**k * self._shown(p) for k, p in enumerate(self.potentials)])

    # -- display (shows only what is computed: see symflow._core._display) ---------------
    def _component_latex(self, i: int) -> str:
        parts = []
        for k, term in enumerate(self.terms):
            c = term[i]
            if c == 0:
                continue
            body = sp.latex(self._shown(c))
            if k == 0:
                parts.append(body)
            else:
                s = sp.latex(self.step)
                hk = s if k == 1 else f"{{{s}}}^{{{k}}}"
                parts.append(f"{hk} \\left({body}\\right)")
        text = " + ".join(parts) if parts else "0"
        return text.replace("+ -", "- ")

    def _computed_modified_loss(self):
        """The modified loss if its potentials were computed (None if there is none), else
        ``NOT_COMPUTED``; never computes."""
        orders, pots = computed(self, "gradient_orders"), computed(self, "potentials")
        if orders is not NOT_COMPUTED and not all(orders):
            return None
        if pots is NOT_COMPUTED:
            return NOT_COMPUTED
        return self.modified_loss

    def latex(self) -> str:
        """The equation (and the modified loss, once computed) as LaTeX; computes nothing."""
        rows = [
            f"\\frac{{d{sp.latex(p)}}}{{dt}} &= {self._component_latex(i)}"
            for i, p in enumerate(self.params)
        ]
        ml = self._computed_modified_loss()
        if ml is NOT_COMPUTED:
            rows.append(f"&\\text{{{PENDING_LOSS}}}")
        elif ml is not None:
            rows.append(f"\\tilde{{L}} &= {sp.latex(self._shown_loss())}")
        return aligned(rows)

    def gradient_summary(self) -> str:
        """One sentence: gradient field or not, and from which order on."""
        k = self.first_non_gradient_order
        if k is None:
            return f"gradient field at every kept order (0..{self.order})"
        return f"not a gradient field: the {self.step}^{k} term has a non-symmetric Jacobian"

    def _text(self, limit=None) -> str:
        cut = (lambda t: t) if limit is None else (lambda t: shorten(t, limit))
        head = (f"Modified equation of {self.optimizer!r} to order {self.order} in "
                f"{self.step} ({self.path} path), {self._time_text()}, "
                f"theta = ({', '.join(map(str, self.params))})")
        lines = [head]
        for k, term in enumerate(self.terms):
            lines.append(cut(f"  {self.step}^{k}: {[self._shown(c) for c in term]}"))
        if computed(self, "gradient_orders") is NOT_COMPUTED:
            lines.append("  (gradient structure: call .is_gradient)")
        else:
            lines.append("  " + self.gradient_summary())
        ml = self._computed_modified_loss()
        if ml is NOT_COMPUTED:
            lines.append(f"  {PENDING_LOSS}")
        elif ml is not None:
            lines.append(cut(f"  modified loss: {self._shown_loss()}"))
        return "\n".join(lines)

    def _time_text(self) -> str:
        return "t = n*h"

    def __str__(self) -> str:
        return self._text()

    def __repr__(self) -> str:
        return self._text(limit=REPR_LINE_LIMIT)


#: The longest line a plain-REPL ``repr`` of a result shows before shortening it.
REPR_LINE_LIMIT = 400
