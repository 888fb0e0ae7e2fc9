r"""Every model trained by gradient flow is a kernel machine with the path kernel (Domingos 2020).

Train a model :math:`f(x;\theta)` on data :math:`(x_i, y_i)_{i=1}^N` by the gradient flow of
:math:`L(\theta) = \sum_i \ell(y_i, f(x_i;\theta))`. Along the flow, by the chain rule,

.. math::

    \frac{d}{dt} f(x;\theta_t) = \nabla_\theta f(x;\theta_t)\cdot\dot\theta_t
    = -\sum_{i=1}^N \ell'\bigl(y_i, f(x_i;\theta_t)\bigr)\, K_{\theta_t}(x, x_i),
    \qquad K_\theta(x, x') = \nabla_\theta f(x;\theta)\cdot\nabla_\theta f(x';\theta),

with :math:`\ell' = \partial\ell/\partial f` and :math:`K_\theta` the tangent kernel.
Integrating over :math:`[0, T]` gives the kernel-machine form of the trained model
(Domingos, *Every model learned by gradient descent is approximately a kernel machine*,
arXiv:2012.00152, 2020, Theorem 1; Su, *SGD ≈ SVM?*, kexue.fm 2020):

.. math::

    f(x;\theta_T) = b + \sum_{i=1}^N a_i(x)\, K^p(x, x_i), \qquad
    K^p(x, x') = \int_0^T K_{\theta_t}(x, x')\,dt, \qquad b = f(x;\theta_0),

    a_i(x) = -\frac{\int_0^T \ell'(y_i, f(x_i;\theta_t))\,K_{\theta_t}(x, x_i)\,dt}
    {\int_0^T K_{\theta_t}(x, x_i)\,dt},

the path kernel :math:`K^p` and the kernel-weighted mean loss derivatives :math:`a_i`
(which depend on :math:`x` only through the weighting: the "approximately" of the title,
together with the :math:`O(h)` gap of a finite learning rate). :class:`KernelMachine` holds
the statement for a concrete model, with its exact tangent kernel, and checks the rate
identity by substitution (:meth:`KernelMachine.residual`); ``solvers.path_kernel``
integrates :math:`K^p` and the numerator alongside the parameters with Diffrax and checks
the integrated identity to solver tolerance.
"""

from __future__ import annotations

import dataclasses
import functools

import sympy as sp

from .._core._errors import SymflowError
from .._core._gradient import is_zero_expr
from .._core._latex import LatexDisplay, aligned
from .._core._guard import check_symbolic, to_sympy
from .._core._validate import check_params, rationalize

__all__ = ["KernelMachine", "kernel_machine"]

_Y, _P = sp.symbols("y p", real=True)

#: Named pointwise losses :math:`\ell(y, p)` (``p`` the model's prediction).
LOSSES = {
    "squared": (_P - _Y) ** 2 / 2,
    "logistic": sp.log(1 + sp.exp(-_Y * _P)),
}


def _check_inputs(inputs, params):
    try:
        inputs = check_params(inputs)
    except SymflowError as err:
        raise SymflowError(str(err).replace("params", "inputs").replace("parameter",
                                                                        "input")) from None
    both = set(inputs) & set(params)
    if both:
        raise SymflowError(f"got {sorted(map(str, both))} both as inputs and as parameters; "
                           "a symbol is either the model's input x or a trained parameter")
    return inputs


def _check_data(x_train, y_train, inputs, params):
    if isinstance(x_train, (str, sp.Basic)) or not hasattr(x_train, "__len__") \
            or isinstance(y_train, (str, sp.Basic)) or not hasattr(y_train, "__len__"):
        raise SymflowError(f"got x_train={x_train!r}, y_train={y_train!r}; give two lists of "
                           "the same length: the training inputs and their targets")
    if len(x_train) != len(y_train) or not x_train:
        raise SymflowError(f"got {len(x_train)} training inputs and {len(y_train)} targets; "
                           "give at least one example and one target per input")
    points = []
    for x in x_train:
        point = (x,) if len(inputs) == 1 and not isinstance(x, (list, tuple)) else tuple(x)
        if len(point) != len(inputs):
            raise SymflowError(f"got the training input {x!r} for inputs {list(inputs)}; give "
                               f"{len(inputs)} coordinate(s) per training input")
        points.append(tuple(to_sympy(c, "x_train") for c in point))
    targets = tuple(to_sympy(y, "y_train") for y in y_train)
    for value in [c for p in points for c in p] + list(targets):
        if value.is_number and value.is_finite is not True:
            raise SymflowError(f"got the data value {value}; training inputs and targets must "
                               "be finite numbers or symbols")
        if value.free_symbols & (set(params) | set(inputs)):
            raise SymflowError(f"got the data value {value}, which involves the model's inputs "
                               "or parameters; data are numbers or other symbols")
    return tuple(points), targets


def _check_loss(loss):
    if isinstance(loss, str):
        if loss not in LOSSES:
            raise SymflowError(f"got loss={loss!r}; choose one of {sorted(LOSSES)} or pass a "
                               "function loss(y, p) returning a SymPy expression")
        return loss, LOSSES[loss]
    if not callable(loss):
        raise SymflowError(f"got loss={loss!r}; pass 'squared', 'logistic' or a function "
                           "loss(y, p) of the target y and the prediction p")
    expr = to_sympy(loss(_Y, _P), "loss(y, p)")
    if not isinstance(expr, sp.Expr) or not expr.has(_P):
        raise SymflowError(f"loss(y, p) returned {expr!r}; it must be a SymPy expression in the "
                           "prediction p (and the target y)")
    return getattr(loss, "__name__", "custom"), rationalize(expr)


@dataclasses.dataclass(frozen=True, repr=False)
class KernelMachine(LatexDisplay):
    r"""The kernel-machine identity of a concrete model trained by gradient flow.

    ``model`` is :math:`f(x;\theta)` in ``inputs`` and ``params``; ``x_train`` (tuples of
    coordinates) and ``y_train`` the data; ``loss_expr`` the pointwise loss
    :math:`\ell(y, p)` in the symbols ``y_symbol`` and ``p_symbol``. See the module
    docstring for the statement; build with :func:`symflow.kernel_machine`.
    """

    model: sp.Expr
    params: tuple
    inputs: tuple
    x_train: tuple
    y_train: tuple
    loss_name: str
    loss_expr: sp.Expr
    y_symbol: sp.Symbol = _Y
    p_symbol: sp.Symbol = _P

    # -- the pieces ---------------------------------------------------------------------
    def at(self, point, expr=None) -> sp.Expr:
        """``expr`` (default: the model) with the inputs set to ``point``."""
        check_symbolic(point=point, expr=expr)
        expr = self.model if expr is None else to_sympy(expr, "expr")
        return expr.xreplace({x: to_sympy(c, "point") for x, c in zip(self.inputs, point)})

    @functools.cached_property
    def loss_derivative(self) -> sp.Expr:
        r""":math:`\ell'(y, p) = \partial\ell/\partial p`."""
        return sp.diff(self.loss_expr, self.p_symbol)

    def _pointwise(self, expr, i):
        return expr.xreplace({self.y_symbol: self.y_train[i],
                              self.p_symbol: self.at(self.x_train[i])})

    @functools.cached_property
    def training_loss(self) -> sp.Expr:
        r""":math:`L(\theta) = \sum_i \ell(y_i, f(x_i;\theta))`."""
        return sp.Add(*[self._pointwise(self.loss_expr, i) for i in range(len(self.y_train))])

    @functools.cached_property
    def flow(self) -> sp.Matrix:
        r"""The gradient flow :math:`\dot\theta = -\nabla_\theta L` (the order-0 modified
        equation of gradient descent on :attr:`training_loss`)."""
        return sp.Matrix([-sp.diff(self.training_loss, p) for p in self.params])

    def gradient(self, point=None) -> sp.Matrix:
        r""":math:`\nabla_\theta f(x;\theta)` at ``point`` (default: the symbolic inputs)."""
        point = self.inputs if point is None else point
        return sp.Matrix([sp.diff(self.at(point), p) for p in self.params])

    @functools.cached_property
    def primed_inputs(self) -> tuple:
        """Symbols for the second argument :math:`x'` of the kernel."""
        return tuple(sp.Symbol(f"{x.name}'", **x.assumptions0) for x in self.inputs)

    def tangent_kernel(self, a=None, b=None) -> sp.Expr:
        r""":math:`K_\theta(a, b) = \nabla_\theta f(a;\theta)\cdot\nabla_\theta f(b;\theta)`
        (default :math:`a = x`, :math:`b = x'`)."""
        a = self.inputs if a is None else a
        b = self.primed_inputs if b is None else b
        return (self.gradient(a).T * self.gradient(b))[0]

    # -- the identity -------------------------------------------------------------------
    def kernel_rate(self, point=None) -> sp.Expr:
        r"""The kernel form :math:`-\sum_i \ell'(y_i, f(x_i;\theta)) K_\theta(x, x_i)`."""
        point = self.inputs if point is None else point
        return -sp.Add(*[self._pointwise(self.loss_derivative, i)
                         * self.tangent_kernel(point, self.x_train[i])
                         for i in range(len(self.y_train))])

    def residual(self, point=None) -> sp.Expr:
        r""":math:`\frac{d}{dt} f(x;\theta_t)` along the flow minus the kernel form: 0.

        The derivative is taken by the chain rule on :math:`\theta_p(t)` (undefined
        functions of time), then :math:`\dot\theta_p(t)` is replaced by the flow: a check
        by substitution, independent of how :meth:`kernel_rate` is assembled.
        """
        point = self.inputs if point is None else point
        t = sp.Symbol("t", real=True)
        path = {p: sp.Function(p.name)(t) for p in self.params}
        rate = sp.diff(self.at(point).xreplace(path), t)
        rate = rate.subs({path[p].diff(t): v.xreplace(path)
                          for p, v in zip(self.params, self.flow)})
        out = sp.simplify(rate - self.kernel_rate(point).xreplace(path))
        return out.xreplace({v: k for k, v in path.items()})

    @property
    def holds(self) -> bool:
        """True when :meth:`residual` is exactly zero (it always should be)."""
        return is_zero_expr(self.residual())

    # -- display ------------------------------------------------------------------------
    def latex(self) -> str:
        r"""The identity, the kernel-machine form and this model's tangent kernel, as LaTeX."""
        x = ", ".join(map(sp.latex, self.inputs))
        xp = ", ".join(map(sp.latex, self.primed_inputs))
        rows = [
            r"\frac{d}{dt} f(x;\theta_t) &= -\sum_{i=1}^{N} \ell'\bigl(y_i, f(x_i;\theta_t)"
            r"\bigr)\, K_{\theta_t}(x, x_i)",
            r"f(x;\theta_T) &= f(x;\theta_0) + \sum_{i=1}^{N} a_i(x)\, K^p(x, x_i), \quad "
            r"K^p(x, x') = \int_0^T K_{\theta_t}(x, x')\,dt, \quad a_i(x) = -\frac{\int_0^T "
            r"\ell'_i\, K_{\theta_t}(x, x_i)\,dt}{\int_0^T K_{\theta_t}(x, x_i)\,dt}",
            f"f({x};\\theta) &= {sp.latex(self.model)}, \\quad \\ell(y, p) = "
            f"{sp.latex(self.loss_expr)}, \\quad N = {len(self.y_train)}",
            f"K_\\theta({x}, {xp}) &= {sp.latex(sp.factor_terms(self.tangent_kernel()))}",
        ]
        return aligned(rows)

    def __repr__(self) -> str:
        return (f"<KernelMachine f = {self.model}, params={list(self.params)}, "
                f"N={len(self.y_train)}, loss={self.loss_name}>")

    def __str__(self) -> str:
        return "\n".join([
            f"Kernel machine of f({', '.join(map(str, self.inputs))}; "
            f"{', '.join(map(str, self.params))}) = {self.model}, trained by the gradient flow "
            f"of sum_i l(y_i, f(x_i)), l(y, p) = {self.loss_expr}, N = {len(self.y_train)}",
            "  d/dt f(x; theta_t) = -sum_i l'(y_i, f(x_i; theta_t)) K_theta_t(x, x_i)   "
            "(an identity: .residual() checks it)",
            f"  K_theta(x, x') = {self.tangent_kernel()}",
            "  f(x; theta_T) = f(x; theta_0) + sum_i a_i(x) K^p(x, x_i),  "
            "K^p = int_0^T K_theta_t dt  (solvers.path_kernel integrates it)",
        ])


def kernel_machine(model, params, inputs, x_train, y_train, loss="squared") -> KernelMachine:
    r"""The kernel-machine identity (Domingos 2020) for ``model`` trained on the given data.

    Parameters
    ----------
    model : sympy.Expr
        :math:`f(x;\theta)`, an expression in ``inputs`` and ``params`` (an undefined
        function such as ``sp.Function("f")(x, w)`` states the identity for every model).
    params, inputs : sequence of sympy.Symbol
        The trained parameters :math:`\theta` and the model's input coordinates :math:`x`.
    x_train, y_train : sequences
        The training inputs (numbers, or tuples with one entry per input) and targets;
        numbers or symbols.
    loss : str or callable
        ``"squared"`` (:math:`(p-y)^2/2`), ``"logistic"`` (:math:`\log(1+e^{-yp})`), or a
        function ``loss(y, p)`` returning a SymPy expression.

    Examples
    --------
    ::

        >>> import sympy as sp, symflow as sf
        >>> x, w, b = sp.symbols("x w b")
        >>> km = sf.kernel_machine(w * sp.tanh(b * x), [w, b], [x], [1, 2], [0, 1])
        >>> km.residual()
        0
        >>> sp.simplify(km.tangent_kernel(a=[0], b=[0]))  # no gradient at x = 0
        0
    """
    check_symbolic(params=params, inputs=inputs, x_train=x_train, y_train=y_train)
    if isinstance(model, str):
        raise SymflowError(f"got model={model!r} (a string); pass a SymPy expression, or parse "
                           "the string safely first with sf.parse_expression(text, names)")
    if not isinstance(model, sp.Expr):
        raise SymflowError(f"got model={model!r} ({type(model).__name__}); the model must be a "
                           "SymPy expression in its inputs and parameters")
    params = check_params(params)
    inputs = _check_inputs(inputs, params)
    model = rationalize(model)
    extra = model.free_symbols - set(params) - set(inputs)
    if extra:
        names = ", ".join(sorted(map(str, extra)))
        raise SymflowError(f"the model contains {{{names}}}, which are neither parameters "
                           f"{list(params)} nor inputs {list(inputs)}; declare them as one or "
                           "the other, or substitute numbers")
    if not any(model.has(p) for p in params):
        raise SymflowError(f"the model {model} does not depend on the parameters {list(params)}; "
                           "nothing would be trained")
    x_train, y_train = _check_data(x_train, y_train, inputs, params)
    name, loss_expr = _check_loss(loss)
    return KernelMachine(model, params, inputs, x_train, y_train, name, loss_expr)
