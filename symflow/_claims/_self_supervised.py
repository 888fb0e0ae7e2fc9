r"""Why BYOL and SimSiam do not collapse: the linear model of Tian, Chen & Ganguli (ICML 2021).

An online network :math:`W`, a predictor :math:`W_p` and a target :math:`W_a` (a stop-gradient
copy of :math:`W`, or its exponential moving average, the EMA teacher) see two augmented
views :math:`x_1 = x + e_1`, :math:`x_2 = x + e_2` of an input, with
:math:`\mathbb{E}\,xx^\top = I` and augmentation noise :math:`\mathbb{E}\,ee^\top =
\sigma^2 I`, and minimise (Tian, Chen & Ganguli, *Understanding self-supervised learning
dynamics without contrastive pairs*, ICML 2021, eq. 1, with weight decay :math:`\eta`)

.. math::  J = \tfrac12\,\mathbb{E}\,\lVert W_p W x_1 - \mathrm{sg}(W_a)\,x_2\rVert^2
           + \tfrac\eta2\bigl(\lVert W\rVert^2 + \lVert W_p\rVert^2\bigr).

When :math:`W, W_p, W_a` share eigenvectors the problem splits into independent eigenmodes,
each a scalar copy of the model: online strength :math:`w`, predictor eigenvalue :math:`p`,
target :math:`w_a`. :func:`linear_ssl` derives the mode loss by taking the expectation
exactly, and the mode dynamics with :func:`symflow.modified_equation` (the gradient with
``stop_gradient={w_a: w}``, an EMA teacher as memory on its invariant manifold):

.. math::  \dot w = w\,p\,\bigl(1 - (1+\sigma^2)p\bigr) - \eta w, \qquad
           \dot p = w^2\bigl(1 - (1+\sigma^2)p\bigr) - \eta p .

A collapsed point :math:`(0, p_0)` (a fixed point when :math:`\eta p_0 = 0`) is unstable
exactly when :math:`p_0(1 - (1+\sigma^2)p_0) > \eta`: with a predictor and stop-gradient
(and :math:`\eta = 0`) every :math:`0 < p_0 < 1/(1+\sigma^2)` repels. Without stop-gradient
the rate is :math:`-\bigl((1-p_0)^2 + \sigma^2(1+p_0^2)\bigr) - \eta \le 0`, and without a
predictor (:math:`p \equiv 1`) it is :math:`-(\sigma^2 + \eta)`: collapse attracts.

Example::

    >>> import symflow as sf
    >>> m = sf.linear_ssl()
    >>> m.flow.T
    Matrix([[-eta*w - p**2*sigma2*w - p**2*w + p*w, -eta*p - p*sigma2*w**2 - p*w**2 + w**2]])
    >>> m.collapse_rate()          # growth rate of w at the collapsed point (0, p)
    -eta - p**2*sigma2 - p**2 + p
"""

from __future__ import annotations

import functools

import sympy as sp

from .._core._errors import SymflowError
from .._core._guard import as_sympy, check_symbolic
from .._core._latex import LatexDisplay, aligned
from .._core._symbols import h as H
from .._engine._modified import modified_equation
from ..optimizers._custom import Custom
from ..optimizers._gd import GD

w, p, w_a = sp.symbols("w p w_a", real=True)
sigma2 = sp.Symbol("sigma2", nonnegative=True)
eta = sp.Symbol("eta", nonnegative=True)
tau = sp.Symbol("tau", positive=True)
_x, _e1, _e2 = sp.symbols("x e1 e2", real=True)


def mode_loss(predictor: bool = True):
    r"""The loss of one eigenmode, :math:`\mathbb{E}` taken exactly over :math:`x, e_1, e_2`.

    The expansion of :math:`\tfrac12(p w x_1 - w_a x_2)^2` is averaged with the moments
    :math:`\mathbb{E}x^2 = 1`, :math:`\mathbb{E}e_i^2 = \sigma^2` and zero odd / cross
    moments (independent, centred); without a predictor :math:`p = 1`.
    """
    pred = p if predictor else sp.S.One
    sample = sp.expand((pred * w * (_x + _e1) - w_a * (_x + _e2))**2 / 2)
    moments = {_x: 1, _e1: sigma2, _e2: sigma2}
    out = sp.S.Zero
    for term in sp.Add.make_args(sample):
        powers = term.as_powers_dict()
        value = term.subs({v: 1 for v in moments})
        for v, second in moments.items():
            k = int(powers.get(v, 0))
            if k not in (0, 2):   # odd moments vanish; the square has no fourth moments
                value = sp.S.Zero
            elif k == 2:
                value *= second
        out += value
    decay = eta / 2 * (w**2 + (p**2 if predictor else 0))
    return sp.expand(out + decay)


def ema_teacher(decay=tau):
    r"""The BYOL rule: a GD step of the online parameters against the EMA teacher, and
    the teacher update :math:`w_a \leftarrow \tau w_a + (1-\tau) w` (memory ``w_a``)."""
    def update(theta, teacher, grad, h):
        nxt = theta - h * grad(theta, teacher)
        return nxt, decay * teacher + (1 - decay) * nxt[0:1, :]

    hyper = [s for s in as_sympy(decay).free_symbols]
    return Custom(update=update, memory0=lambda theta: [theta[0]], hyper=hyper, name="byol-ema")


class LinearSSL(LatexDisplay):
    r"""One eigenmode of the linear BYOL / SimSiam model and its derived dynamics.

    Attributes: ``loss`` (:math:`J(w, p; w_a)` of the mode), ``params`` (``(w, p)``, or
    ``(w,)`` without predictor), ``equation`` (the :class:`~symflow.ModifiedEquation`),
    ``flow`` (its :math:`h^0` term, the mode ODE), ``predictor``, ``stop_gradient``, ``ema``.
    """

    def __init__(self, predictor=True, stop_gradient=True, ema=None, order=0):
        check_symbolic(ema=ema)
        self.predictor, self.stop_gradient, self.ema = predictor, stop_gradient, ema
        self.params = (w, p) if predictor else (w,)
        self.loss = mode_loss(predictor)
        hyper = [sigma2, eta]
        if ema is not None and not stop_gradient:
            raise SymflowError("an EMA teacher is a held (stop-gradient) target; got "
                               "ema= with stop_gradient=False")
        if stop_gradient:
            opt = GD() if ema is None else ema_teacher(ema)
            self.equation = modified_equation(opt, loss=self.loss, params=self.params,
                                              order=order, hyper=hyper,
                                              stop_gradient={w_a: w})
        else:
            self.equation = modified_equation(GD(), loss=self.loss.subs(w_a, w),
                                              params=self.params, order=order, hyper=hyper)
        self.flow = sp.Matrix(self.equation.terms[0]).applyfunc(sp.expand)

    # -- fixed points and stability -----------------------------------------------------
    @functools.cached_property
    def jacobian(self) -> sp.Matrix:
        return self.flow.jacobian(self.params)

    def collapse_rate(self, order=0):
        r"""The growth rate of :math:`w` at a collapsed point :math:`w = 0` (with predictor
        value ``p``): :math:`\partial\dot w/\partial w` there. ``order=1`` adds the learning-rate
        term of the modified equation (coefficient of ``sf.h``; needs ``order >= 1``)."""
        if order > self.equation.order:
            raise SymflowError(f"got order={order}; this model was derived to order "
                               f"{self.equation.order} (linear_ssl(..., order=k))")
        from_terms = sum((H**k * sp.diff(self.equation.terms[k][0], w)
                          for k in range(order + 1)), sp.S.Zero)
        return sp.expand(from_terms.subs(w, 0))

    def collapsed_points(self, values=None):
        """Fixed points with ``w = 0``, as dicts (a line of them when ``eta = 0``);
        ``values`` substitutes numbers for ``sigma2``, ``eta`` first."""
        check_symbolic(values=values)
        if not self.predictor:
            return [{w: 0}]
        flow = self.flow.subs(values or {})
        return [{w: 0, **s} for s in sp.solve(flow.subs(w, 0)[1], p, dict=True)]

    def fixed_points(self, values=None):
        r"""The collapsed fixed points, then the others: :math:`\dot w / w = 0 = \dot p`
        (with a predictor and :math:`\eta > 0`: :math:`w^2 = p^2`, :math:`(1+\sigma^2)p^2 - p
        + \eta = 0`, real when :math:`4\eta(1+\sigma^2) \le 1`; the larger root is stable).
        ``values`` substitutes numbers for ``sigma2``, ``eta`` before solving."""
        out = self.collapsed_points(values)
        if self.predictor:
            flow = self.flow.subs(values or {})
            out += sp.solve([sp.cancel(flow[0] / w), flow[1]], [w, p], dict=True)
        return out

    def eigenvalues_at(self, point, values=None) -> list:
        """Eigenvalues of the Jacobian of the mode flow at ``point`` (a dict), simplified."""
        check_symbolic(point=point, values=values)
        J = self.jacobian.subs(values or {}).subs(point)
        return [sp.simplify(e) for e in J.eigenvals(multiple=True)]

    def max_collapse_rate(self):
        r"""The largest :meth:`collapse_rate` over the predictor value :math:`p` (a concave
        quadratic in :math:`p`, or a constant without predictor): with a predictor and
        stop-gradient :math:`\frac{1 - 4\eta(1+\sigma^2)}{4(1+\sigma^2)}`."""
        rate = self.collapse_rate()
        if not rate.has(p):
            return rate
        vertex = sp.solve(sp.diff(rate, p), p)[0]
        return sp.factor(sp.simplify(rate.subs(p, vertex)))

    def collapse_unstable_when(self):
        r"""The exact condition for some collapsed state :math:`(0, p)` to repel: the numerator
        of :meth:`max_collapse_rate` :math:`> 0` (its denominator is positive). SymPy's
        ``false`` when no :math:`\sigma^2, \eta \ge 0` allow it (collapse attracts)."""
        num, den = sp.fraction(sp.together(self.max_collapse_rate()))
        if not den.is_positive:
            raise AssertionError(f"the denominator {den} is not known to be positive")
        return sp.StrictGreaterThan(sp.expand(num), 0)

    def latex(self) -> str:
        rows = [f"\\dot{{{sp.latex(s)}}} &= {sp.latex(c)}" for s, c in zip(self.params,
                                                                        self.flow)]
        return aligned(rows)

    def __repr__(self) -> str:
        return (f"<LinearSSL predictor={self.predictor} stop_gradient={self.stop_gradient} "
                f"ema={self.ema}>")


def linear_ssl(predictor: bool = True, stop_gradient: bool = True, ema=None,
               order: int = 0) -> LinearSSL:
    r"""The eigenmode dynamics of the linear BYOL / SimSiam model (Tian, Chen & Ganguli 2021).

    ``predictor=False`` fixes :math:`W_p = I`; ``stop_gradient=False`` lets the gradient flow
    through the target; ``ema=tau`` (a number or symbol) makes the target an EMA teacher,
    eliminated on its invariant manifold by the memory engine; ``order`` the power of the
    learning rate kept. See :class:`LinearSSL`.

    Example::

        >>> import sympy as sp, symflow as sf
        >>> sf.linear_ssl(stop_gradient=False).collapse_rate()   # <= 0: collapse attracts
        -eta - p**2*sigma2 - p**2 + 2*p - sigma2 - 1
    """
    return LinearSSL(predictor, stop_gradient, ema, order)
