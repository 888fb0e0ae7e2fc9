r"""Modified equations (backward error analysis) of one-step optimizers.

For an optimizer map :math:`\theta_{n+1} = \Phi_h(\theta_n)` the *modified equation* is the
ODE :math:`\dot\theta = f_h(\theta) = \sum_{k\ge0} h^k f_k(\theta)` whose exact flow at time
:math:`t = nh` interpolates the iterates: truncating after :math:`h^p` leaves a global error
:math:`O(h^{p+1})` on bounded time intervals. For gradient descent
:math:`f_0 = -\nabla L` and :math:`f_1 = -\tfrac12 H\nabla L = -\nabla\bigl(\tfrac14\lVert\nabla
L\rVert^2\bigr)` (Barrett & Dherin 2021, *Implicit Gradient Regularization*).
"""

from __future__ import annotations

import functools

import sympy as sp

from . import _validate as v
from ._algebra import expand_map
from ._bea import modified_field
from ._errors import SymflowError
from ._gradient import is_zero_expr
from ._latex import LatexDisplay, aligned
from ._memory import expand_reduced_map, symbolic_rule
from ._symbols import h
from .optimizers import AbstractOptimizer


def _check_optimizer(optimizer) -> AbstractOptimizer:
    if isinstance(optimizer, type) and issubclass(optimizer, AbstractOptimizer):
        raise SymflowError(
            f"got the class {optimizer.__name__}; pass an instance, e.g. sf.{optimizer.__name__}()"
        )
    if not isinstance(optimizer, AbstractOptimizer):
        raise SymflowError(
            f"got optimizer={optimizer!r}; pass an optimizer such as sf.GD() or "
            "sf.Custom(update=lambda theta, grad, h: ...)"
        )
    return optimizer


def _at(expr, params, point):
    """``expr`` with ``params`` set to ``point``. The derivatives of an undefined loss
    ``F(x, y)`` become ``Subs`` objects there (``xreplace`` cannot put an expression in a
    derivative's variable), so rules that evaluate the gradient away from theta
    (extragradient, Nesterov) work for a generic loss too."""
    rule = dict(zip(params, point))
    if expr.has(sp.Derivative):
        return expr.subs(rule, simultaneous=True)
    return expr.xreplace(rule)


def gradient_oracle(loss, params):
    """The gradient column of ``loss`` and a callable evaluating it at any point."""
    grad = sp.Matrix([sp.diff(loss, p) for p in params])

    def oracle(point):
        point = sp.Matrix(point) if isinstance(point, (list, tuple)) else point
        if not isinstance(point, sp.MatrixBase) or len(point) != len(params):
            raise SymflowError(
                f"grad() was called with {point!r}; it takes a column Matrix of "
                f"{len(params)} entries (one per parameter)"
            )
        return _at(grad, params, point)

    return grad, oracle


def _prepare(optimizer, loss, params, hyper):
    """Validate the inputs once; return them normalised, with the closed-form map
    (``None`` for an optimizer with memory: see :func:`state_map`)."""
    optimizer = _check_optimizer(optimizer)
    params = v.check_params(params)
    allowed = v.check_symbols(hyper, "hyper", params) | optimizer.hyper_symbols
    loss = v.check_loss(loss, params, allowed)
    if has_memory(optimizer, params):
        state_map(optimizer, loss, params, allowed)  # validates the rule
        return optimizer, loss, params, allowed, None
    _, oracle = gradient_oracle(loss, params)
    phi = optimizer.step(sp.Matrix(params), oracle, h).applyfunc(v.rationalize)
    v.check_free_symbols(phi, params, allowed | {h}, f"the update rule of {optimizer!r}")
    return optimizer, loss, params, allowed, phi


def has_memory(optimizer, params) -> bool:
    """True when the optimizer carries memory (momentum, moment estimates) for ``params``."""
    return optimizer.memory_size(len(params)) > 0


def state_map(optimizer, loss, params, allowed):
    r"""The closed-form map on the whole state :math:`(\theta, m)`.

    Returns ``(theta_next, memory_next, memory_symbols)`` with gradients of ``loss``
    substituted; the memory symbols stand for :math:`m_n`.
    """
    A, B, memory, fns = symbolic_rule(optimizer, params)
    grad, _ = gradient_oracle(loss, params)
    def concrete(expr):
        for i, f in enumerate(fns):
            expr = expr.replace(f, lambda *point, i=i: _at(grad[i], params, point))
        return v.rationalize(expr)

    theta_next = (sp.Matrix(params) + A).applyfunc(concrete)
    memory_next = B.applyfunc(concrete)
    what = f"the update rule of {optimizer!r}"
    for expr in (theta_next, memory_next):
        v.check_free_symbols(expr, tuple(params) + memory, allowed | {h}, what)
    return theta_next, memory_next, memory


def optimizer_map(optimizer, loss, params, hyper=()):
    r"""The closed-form one-step map :math:`\Phi_h(\theta)` as a SymPy column Matrix in ``sf.h``.

    For an optimizer with memory this is the map on the whole state: a pair
    ``(theta_next, memory_next)`` plus the tuple of memory symbols (see :func:`state_map`).
    """
    optimizer, loss, params, allowed, phi = _prepare(optimizer, loss, params, hyper)
    if phi is None:
        return state_map(optimizer, loss, params, allowed)
    return phi


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
        grad = [sp.diff(self.loss, p) for p in self.params]
        k = next((i for i, g in enumerate(grad) if g != 0), None)
        if k is None:
            return None
        c = sp.cancel(-self.terms[0][k] / grad[k])
        if c.free_symbols & set(self.params):
            return None
        if all(is_zero_expr(t + c * g) for t, g in zip(self.terms[0], grad)):
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

    def truncate(self, order: int) -> "ModifiedEquation":
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
        out = []
        for k, vec in enumerate(self._raw):
            if not self.gradient_orders[k]:
                out.append(None)
            elif k == 0 and self._is_minus_grad_loss(self.terms[0]):
                out.append(self.loss)
            else:
                out.append(self._alg.potential(vec))
        return tuple(out)

    def _is_minus_grad_loss(self, term) -> bool:
        return all(is_zero_expr(t + sp.diff(self.loss, p)) for t, p in zip(term, self.params))

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
        from ._validity import check_validity

        return check_validity(self.loss, self.params, point, lr, hyper_values, warn=warn,
                              optimizer=self.optimizer)

    # -- display -----------------------------------------------------------------------
    def _component_latex(self, i: int) -> str:
        parts = []
        for k, term in enumerate(self.terms):
            c = term[i]
            if c == 0:
                continue
            body = sp.latex(c)
            if k == 0:
                parts.append(body)
            else:
                s = sp.latex(self.step)
                hk = s if k == 1 else f"{{{s}}}^{{{k}}}"
                parts.append(f"{hk} \\left({body}\\right)")
        text = " + ".join(parts) if parts else "0"
        return text.replace("+ -", "- ")

    def latex(self) -> str:
        """The equation (and the modified loss, when there is one) as LaTeX."""
        rows = [
            f"\\frac{{d{sp.latex(p)}}}{{dt}} &= {self._component_latex(i)}"
            for i, p in enumerate(self.params)
        ]
        ml = self.modified_loss
        if ml is not None:
            rows.append(f"\\tilde{{L}} &= {sp.latex(ml)}")
        return aligned(rows)

    def gradient_summary(self) -> str:
        """One sentence: gradient field or not, and from which order on."""
        k = self.first_non_gradient_order
        if k is None:
            return f"gradient field at every kept order (0..{self.order})"
        return f"not a gradient field: the {self.step}^{k} term has a non-symmetric Jacobian"

    def __str__(self) -> str:
        head = (f"Modified equation of {self.optimizer!r} to order {self.order} in h "
                f"({self.path} path), t = n*h, theta = ({', '.join(map(str, self.params))})")
        lines = [head]
        for k, term in enumerate(self.terms):
            lines.append(f"  {self.step}^{k}: {list(term)}")
        lines.append("  " + self.gradient_summary())
        ml = self.modified_loss
        if ml is not None:
            lines.append(f"  modified loss: {ml}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"<ModifiedEquation {self.optimizer!r} order={self.order} "
                f"params={list(self.params)} path={self.path}>")


def modified_equation(optimizer, loss=None, params=None, order=None, hyper=(), progress=None,
                      path="auto", reduce=True) -> ModifiedEquation:
    r"""Derive the modified equation of ``optimizer`` on ``loss`` up to ``h**order``, exactly.

    Without ``loss`` and ``params`` (``sf.modified_equation(optimizer, order=k)``) the result
    is coordinate-free: a :class:`~symflow._coordinate_free.CoordinateFreeEquation` whose
    terms are exact combinations of elementary differentials of any loss (``-1/2 H g``,
    ``-1/12 T[g, g]``), for optimizers built from gradient evaluations (GD, heavy ball,
    Nesterov, ``Custom`` rules, gradient descent-ascent).

    Parameters
    ----------
    optimizer : AbstractOptimizer
        ``sf.GD()``, ``sf.Custom(update=...)``, ...
    loss : sympy.Expr
        A scalar expression in ``params`` (and declared hyperparameter symbols).
        Floats are read as the rationals they were written as (``0.1 -> 1/10``).
    params : sequence of sympy.Symbol
    order : int
        Highest power of the learning rate :math:`h` kept (``0`` is the gradient flow).
    hyper : sequence of sympy.Symbol
        Constant symbols in the loss (the optimizer's own hyperparameters are known).
    progress : bool or None
        Show a progress bar; by default for ``order >= 6``.
    path : str
        Arithmetic: ``"polynomial"`` (exact sparse polynomials; polynomial losses),
        ``"jet"`` (polynomials in the derivatives of L; any loss), ``"general"`` (SymPy
        expressions), or ``"auto"`` (the first that applies, in that order); optimizers
        with memory may also use ``"rational"`` (rational functions of the derivatives of L
        and square roots: RMSprop, Adam).
    reduce : bool
        For optimizers with memory: eliminate the memory on its invariant manifold and
        return the flow on theta alone (default), or ``False`` for the flow on the whole
        state :math:`(\theta, m)`, which exists when the memory is itself slow (e.g.
        ``beta = 1 - c*h``; see :func:`symflow.state_modified_equation`).

    Example::

        >>> import sympy as sp, symflow as sf
        >>> x, y = sp.symbols("x y")
        >>> me = sf.modified_equation(sf.GD(), loss=(x*y - 1)**2 / 2, params=[x, y], order=2)
        >>> me.terms[0].T
        Matrix([[-x*y**2 + y, -x**2*y + x]])
        >>> me.gradient_orders  # the h^2 term, -H^2 g/3 - T[g,g]/12, is not a gradient
        (True, True, False)
        >>> print(sf.modified_equation(sf.GD(), order=1).field)  # any loss
        h^0: -g
        h^1: -1/2 H g
    """
    if loss is None or params is None or order is None:
        return _coordinate_free(optimizer, loss, params, order, hyper, progress, path, reduce)
    order = v.check_order(order)
    if path not in ("auto", "polynomial", "jet", "rational", "general"):
        raise SymflowError(
            f"got path={path!r}; choose 'auto', 'polynomial', 'jet', 'rational' or 'general'")
    optimizer, loss, params, allowed, phi = _prepare(optimizer, loss, params, hyper)
    if progress is None:
        progress = order >= 6
    if phi is None:
        if not reduce or not optimizer.memory_relaxes:
            from ._state import not_relaxing_note, state_modified_equation

            note = None if optimizer.memory_relaxes else not_relaxing_note(optimizer, reduce)
            return state_modified_equation(optimizer, loss, params, order, hyper=hyper,
                                           progress=progress, note=note)
        algebra, d, manifold = expand_reduced_map(optimizer, loss, params, allowed,
                                                  order + 1, path)
        raw = modified_field(algebra, d, order, progress=progress)
        return ModifiedEquation(optimizer, loss, params, order, allowed, algebra, raw,
                                manifold)
    if path == "rational":
        raise SymflowError("path='rational' applies to optimizers with memory only")
    algebra, d = expand_map(optimizer, loss, phi, params, h, allowed, order + 1, path)
    identity = [algebra.from_expr(p) for p in params]
    if not all(is_zero_expr(algebra.to_expr(a - b)) for a, b in zip(d[0], identity)):
        raise SymflowError(
            f"the update rule of {optimizer!r} does not reduce to the identity at h = 0 "
            f"(it gives {list(map(algebra.to_expr, d[0]))}); a modified equation exists only "
            "for consistent maps theta_{n+1} = theta_n + O(h)"
        )
    raw = modified_field(algebra, d, order, progress=progress)
    return ModifiedEquation(optimizer, loss, params, order, allowed, algebra, raw)


def _coordinate_free(optimizer, loss, params, order, hyper, progress, path, reduce):
    """``modified_equation`` called without a loss: the coordinate-free form (or a clear error)."""
    if order is None and params is None and isinstance(loss, int):
        raise SymflowError(
            f"got loss={loss!r} and no params; for the coordinate-free form pass the order "
            f"by keyword: sf.modified_equation(optimizer, order={loss})")
    if order is None:
        raise SymflowError("got no order; pass order=k, the highest power of h to keep")
    if loss is not None or params is not None:
        got = "params" if loss is None else "loss"
        raise SymflowError(
            f"got {got} but not {'loss' if got == 'params' else 'params'}; pass both (a concrete "
            "loss and its parameter symbols) or neither (the coordinate-free form, "
            "sf.modified_equation(optimizer, order=k))")
    if hyper or path != "auto" or not reduce:
        raise SymflowError(
            "hyper=, path= and reduce= apply to a concrete loss; the coordinate-free form "
            "takes its symbols from the optimizer and always eliminates the memory")
    from ._coordinate_free import coordinate_free_equation

    return coordinate_free_equation(optimizer, order, progress)
