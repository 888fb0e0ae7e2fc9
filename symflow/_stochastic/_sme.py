r"""Stochastic modified equations of SGD, and the mean flow of an epoch of reshuffled SGD.

**SME** (Li, Tai & E, *Stochastic modified equations and dynamics of stochastic gradient
algorithms I*, JMLR 20, 2019, Theorems 1 and 3). SGD,
:math:`\theta_{n+1} = \theta_n - h\,(\nabla L(\theta_n) + \xi_n)` with
:math:`\operatorname{Cov}\xi_n = \Sigma(\theta_n)`, is a weak approximation, at times
:math:`t = nh`, of

.. math::

    \text{order 1:}\quad d\Theta = -\nabla L\,dt + \sqrt{h}\,\Sigma^{1/2}\,dW ,\qquad
    \text{order 2:}\quad d\Theta = -\nabla\!\bigl(L + \tfrac h4\lVert\nabla L\rVert^2\bigr)\,dt
    + \sqrt{h}\,\Sigma^{1/2}\,dW .

The order-2 drift is *derived* here, as the order-1 modified equation of gradient descent
on :math:`L` (:func:`symflow.modified_equation`), not typed in. For minibatches of size
:math:`B` from :math:`N` samples, :math:`\Sigma = c_{N,B}\Sigma_1` (see
:class:`symflow.optimizers._sgd.SGD`).

*Diffusion factor.* The SDE needs :math:`\sigma` with :math:`\sigma\sigma^\top = h\Sigma`. No
symbolic matrix square root is taken: :math:`\sigma = \sqrt{h\,c_{N,B}}\,G` with :math:`G`
the exact factor of :meth:`Dataset.noise_factor` (centered per-sample gradients over
:math:`\sqrt N`, or data-moment features times an exact rational Cholesky factor), or the
rank-revealing Cholesky factor of a covariance the user gives. The covariance
:math:`\sigma\sigma^\top` is always exact.

*Stationary statistics.* Weak order 2 holds on bounded time intervals. On a quadratic
loss with constant noise the stationary covariance of SGD differs from that of the order-1
SME by a relative :math:`O(h)` (1-D: :math:`\tfrac{h\Sigma}{a(2-ha)}` against
:math:`\tfrac{h\Sigma}{2a}`), and the order-2 drift alone does not close that gap (it gives
:math:`\tfrac{h\Sigma}{a(2+ha)}`). ``noise_correction=True`` also matches the one-step
covariance of SGD to :math:`O(h^3)`, i.e. uses
:math:`G_h = G + \tfrac h2\,(\nabla^2L\,G + (\nabla L\cdot\nabla)G)`, which brings the
stationary gap on quadratics to relative :math:`O(h^2)`.

**Epoch mean flow** (Smith, Dherin, Barrett & De, *On the origin of implicit regularization
in stochastic gradient descent*, ICLR 2021). One epoch of SGD with random reshuffling over
:math:`m` batches with losses :math:`L_1, \dots, L_m` (:math:`L = \frac1m\sum_k L_k`) composes
:math:`m` gradient steps in a random order. The engine composes them symbolically, averages
the composed map over the :math:`m!` orders, and finds the modified flow of that mean map;
at first order it is the gradient flow of

.. math::

    \tilde L = L + \frac h4\lVert\nabla L\rVert^2
    + \frac h{4m}\sum_{k=1}^m\lVert\nabla L_k - \nabla L\rVert^2 .
"""

from __future__ import annotations

import copy
import functools
import itertools
import math
import numbers

import sympy as sp
from sympy.polys.rings import ring

from .._core import _validate as v
from .._core._display import NOT_COMPUTED, PENDING_LOSS, computed, shorten
from .._core._errors import SymflowError
from .._core._gradient import expr_is_gradient, expr_potential
from .._core._guard import as_sympy
from .._core._latex import LatexDisplay, aligned
from .._core._readable import readable
from .._core._symbols import h
from .._engine._modified import modified_equation
from ..optimizers import GD, AbstractOptimizer, AdaGrad, Custom
from ..optimizers._sgd import SGD
from ._dataset import as_dataset
from ._increment_moments import GradientNoise, map_increment_moments
from ._moment_matching import match_moments
from ._sde import SDE, _as_matrix, check_psd_numeric, factor_covariance, refuse_strings
from ._sme_memory import linear_noise_factor, memory_sme


def _grad(expr, params):
    return sp.Matrix([sp.diff(expr, p) for p in params])


def _refuse_non_finite(mat, what):
    bad = [e for e in mat if e.has(sp.nan, sp.oo, -sp.oo, sp.zoo)]
    if bad:
        raise SymflowError(f"got {what} with non-finite entries {bad}; a noise covariance "
                           "must be finite")


def _noise_from_user(noise, params):
    """(factor G with G G^T = Sigma, Sigma) from a user noise model."""
    refuse_strings(noise, "noise")
    d = len(params)
    if isinstance(noise, sp.MatrixBase) or isinstance(noise, (list, tuple)):
        cov = _as_matrix(noise, "noise")
        if cov.shape != (d, d):
            raise SymflowError(f"got a {cov.shape[0]}x{cov.shape[1]} noise covariance for "
                               f"{d} parameters; give a {d}x{d} matrix Sigma (the covariance "
                               "of the gradient noise), or a scalar variance s**2 for s**2*I")
        _refuse_non_finite(cov, "noise")
        return factor_covariance(cov, params, "noise covariance"), cov
    value = v.to_sympy(noise, "noise")
    if not isinstance(value, sp.Expr):
        raise SymflowError(f"got noise={v._describe(noise)}; give a d x d covariance Matrix "
                           "or a scalar variance (noise=s**2 means Sigma = s**2 I)")
    _refuse_non_finite(sp.Matrix([value]), "noise")
    sign = value.is_nonnegative
    if sign is False or (value.is_number and value < 0):
        raise SymflowError(f"got noise={value}; a variance must be >= 0 (noise=s**2 means "
                           "Sigma = s**2 I)")
    if value.free_symbols & set(params):
        check_psd_numeric(sp.Matrix([[value]]), params, "noise variance")
    return sp.sqrt(value) * sp.eye(d), value * sp.eye(d)


def sme(optimizer, losses=None, params=None, dataset=None, order: int = 1, noise=None,
        noise_factor=None, noise_correction: bool = False, hyper=(), batch_size=None,
        replacement=None) -> SDE:
    r"""The stochastic modified equation of a stochastic optimizer, as an :class:`~symflow.SDE`.

    Every gradient evaluation inside one step of the rule is the *same* minibatch gradient
    :math:`g = \frac1B\sum_{i\in\mathcal B_n}\nabla\ell_i` (as in real training: one batch
    per step), with :math:`\mathcal B_n` drawn afresh at every step, with or without
    replacement. The SDE is derived from the symbolic map by moment matching (Li, Tai & E,
    *Stochastic modified equations and dynamics of stochastic gradient algorithms I*, JMLR
    20, 2019, Theorems 1-3): its one-step increment has the map's mean to
    :math:`O(h^{p+1})` and the map's second moment to :math:`O(h^3)`
    (:mod:`symflow._stochastic._increment_moments`, :mod:`symflow._stochastic._moment_matching`).
    For SGD, :math:`\theta_{n+1} = \theta_n - h g`, this gives

    .. math::

        \text{order 1:}\quad d\Theta = -\nabla L\,dt + \sqrt{h\,c_{N,B}}\,\Sigma_1^{1/2}\,dW,
        \qquad \text{order 2:}\quad d\Theta = -\nabla\!\bigl(L + \tfrac h4\lVert\nabla
        L\rVert^2\bigr)dt + \sqrt{h\,c_{N,B}}\,\Sigma_1^{1/2}\,dW ,

    in :math:`t = nh`. Rules that evaluate the gradient elsewhere (extragradient) pick up a
    noise-induced drift at order 2, :math:`h\,\mathbb E[(\nabla\xi)\,\xi]`.

    *Memory.* With fixed hyperparameters (``HeavyBall(beta=0.9)``, ``Nesterov``) the memory
    is eliminated on its invariant manifold: the drift is the reduced flow of
    :func:`symflow.modified_equation` (time scale :math:`1/(1-\beta)` for heavy ball) and
    the noise passes the memory's linear filter at zero frequency (order 1; see
    :func:`symflow._stochastic._sme_memory.relaxed_memory_sme`). With slow memory the SDE is
    on the whole state :math:`(\theta, m)` (:func:`symflow._stochastic._sme_memory.slow_memory_sme`):
    heavy ball and Nesterov with :math:`1-\beta = c\sqrt h`, RMSprop and Adam with
    :math:`1-\beta = c h^2`, :math:`\epsilon = \epsilon_0/h` (Malladi, Lyu, Panigrahi &
    Arora, NeurIPS 2022).

    Parameters
    ----------
    optimizer : AbstractOptimizer
        ``SGD(batch_size=B, replacement=...)`` (shorthand for minibatch gradient descent),
        ``GD()`` with ``noise=...``, or any rule (``Custom``, ``HeavyBall``, ...) with
        ``batch_size=`` (minibatches from the training set) or ``noise=``.
    losses, dataset
        The training set: explicit per-sample losses, or a :class:`symflow.Dataset`. With a
        user ``noise`` model, ``losses`` may also be a single expression (the mean loss).
    params : sequence of Symbol
    order : 1 or 2
    noise : Matrix or scalar, optional
        The covariance :math:`\Sigma(\theta)` of the gradient noise of one step (``d x d``,
        or a scalar ``s**2`` for :math:`s^2 I`); it replaces the minibatch covariance.
    noise_factor : Matrix, optional
        :math:`G` (``d x m``) with :math:`\Sigma = GG^\top`.
    noise_correction : bool
        SGD (or GD with a noise model) at order 2: use
        :math:`G + \frac h2(\nabla^2L\,G + (\nabla L\cdot\nabla)G)`, which also matches
        the one-step covariance to :math:`O(h^3)` (see the module docstring).
    batch_size, replacement
        Minibatch size :math:`B` and sampling for optimizers other than ``SGD`` (``SGD``
        carries its own). ``replacement`` defaults to True.

    Example::

        >>> import sympy as sp, symflow as sf
        >>> w = sp.Symbol("w")
        >>> sde = sf.sme(sf.SGD(batch_size=2), losses=[(w - 1)**2 / 2, (w + 1)**2 / 2],
        ...              params=[w])
        >>> sde.drift, sde.covariance
        (Matrix([[-w]]), Matrix([[h/2]]))
        >>> sf.sme(sf.GD(), losses=w**4 / 4, params=[w], order=2, noise=3).drift
        Matrix([[-3*h*w**5/2 - w**3]])
        >>> x, y = sp.symbols("x y")                  # template + numeric data, N rows
        >>> ds = sf.Dataset(loss=(w*x - y)**2 / 2, params=[w], data_symbols=[x, y],
        ...                 data=[[1.0, 1.1], [2.0, 1.9], [-1.0, -0.8]])
        >>> sp.factor(sf.sme(sf.SGD(batch_size=1), dataset=ds).covariance[0, 0])
        h*(100*w**2 - 190*w + 91)/50
        >>> eg = sf.Custom(update=lambda th, g, h: th - h * g(th - h * g(th)), name="eg")
        >>> sf.sme(eg, losses=[w**2, 3*w**2], params=[w], batch_size=1, order=2).drift
        Matrix([[12*h*w - 4*w]])
    """
    if isinstance(optimizer, type) or not isinstance(optimizer, AbstractOptimizer):
        raise SymflowError(f"got optimizer={optimizer!r}; pass an instance such as "
                           "SGD(batch_size=4), sf.HeavyBall(beta=0.9) or sf.GD() (with "
                           "noise=...)")
    if isinstance(order, bool) or order not in (1, 2):
        raise SymflowError(f"got order={order!r}; the SME is available at order 1 or 2 (weak "
                           "order 1: drift -grad L; weak order 2: with its O(h) correction)")
    if isinstance(optimizer, AdaGrad):
        raise SymflowError(
            f"got {optimizer!r}: AdaGrad's accumulator s_n = sum of g_k^2 never forgets (its "
            "memory does not relax), so its step size decays like 1/sqrt(n) and there is no "
            "stationary SDE in t = n*h; sf.state_modified_equation(sf.AdaGrad(...), ..., "
            "reduce=False) returns its deterministic flow on the whole state (theta, w = "
            "h^2 s) in tau = n*h^2. Use RMSprop or Adam for an SME")
    if noise is not None and noise_factor is not None:
        raise SymflowError("give noise=<covariance> or noise_factor=<G>, not both")
    if replacement is not None and not isinstance(replacement, bool):
        raise SymflowError(f"got replacement={replacement!r}; pass True (minibatches drawn "
                           "with replacement) or False (without)")
    user_noise = noise is not None or noise_factor is not None
    if isinstance(optimizer, SGD):
        if batch_size is not None and batch_size != optimizer.batch_size:
            raise SymflowError(f"got batch_size={batch_size!r} with {optimizer.label}, which "
                               "has its own; give the batch size once (SGD(batch_size=B) or "
                               "sf.GD() with batch_size=B)")
        if replacement is not None and replacement != optimizer.replacement:
            raise SymflowError(f"got replacement={replacement} with {optimizer.label}; set it "
                               "on SGD(batch_size=B, replacement=...)")
        sampler = optimizer
    elif batch_size is not None:
        if user_noise:
            raise SymflowError("give batch_size=B (minibatch noise from the training set) or "
                               "noise=... (a noise model), not both")
        sampler = SGD(batch_size=batch_size, replacement=True if replacement is None
                      else replacement)
    else:
        sampler = None
    if sampler is not None and user_noise and not isinstance(optimizer, SGD):
        sampler = None
    if sampler is None and not user_noise:
        raise SymflowError(
            f"{optimizer.label} has no gradient noise (no noise source): its gradients are "
            "exact, so its SME is its modified equation. Give batch_size=B (minibatch gradients from the training "
            "set; for plain SGD, sf.SGD(batch_size=B)) or noise=<covariance of the gradient "
            "noise>")
    if noise_correction and not isinstance(optimizer, (SGD, GD)):
        raise SymflowError("noise_correction=True is the closed form for SGD (or GD with a "
                           f"noise model); got {optimizer.label}")
    if user_noise and dataset is None and isinstance(losses, (sp.Expr, int, float)):
        params = v.check_params(params)
        mean_loss = v.check_loss(losses, params, v.check_symbols(hyper, "hyper", params)
                                 | v.check_constant_hyper(optimizer, params))
        ds = None
        mean_gradient = _grad(mean_loss, params)
    else:
        ds = as_dataset(dataset, losses, params, hyper)
        params, mean_loss = ds.params, ds.mean_loss
        mean_gradient = sp.Matrix(ds.mean_gradient)
    d = len(params)
    if user_noise:
        if noise_factor is not None:
            factor = _as_matrix(noise_factor, "noise_factor")
            if factor.shape[0] != d:
                raise SymflowError(f"got a {factor.shape[0]}x{factor.shape[1]} noise_factor "
                                   f"for {d} parameters; it must be {d} x m")
            cov = (factor * factor.T).applyfunc(sp.expand)
        else:
            factor, cov = _noise_from_user(noise, params)
        scale = sp.S.One
    else:
        b = as_sympy(sampler.batch_size)
        if b.is_number and b > ds.n_samples:
            raise SymflowError(
                f"got batch_size={b} for a dataset of N={ds.n_samples} samples; a minibatch "
                f"holds at most N samples: give batch_size <= {ds.n_samples}")
        factor = sp.Matrix(ds.noise_factor)
        cov = sp.Matrix(ds.gradient_covariance)
        scale = sampler.noise_scale(ds.n_samples)
    noise_model = GradientNoise(params, mean_gradient, factor, scale)
    allowed = (v.check_symbols(hyper, "hyper", params) | v.check_constant_hyper(optimizer, params)
               | (mean_loss.free_symbols - set(params)))
    if optimizer.memory_size(d):
        return memory_sme(optimizer, noise_model, mean_loss, params, order,
                          tuple(sorted(allowed, key=str)))
    if type(optimizer) in (SGD, GD):
        drift, sigma, covariance, me = _gradient_step_sme(noise_model, cov, mean_loss,
                                                          params, allowed, order)
    else:
        me = None
        rule = _memoryless_rule(optimizer)
        where = optimizer.label
        moments = map_increment_moments(rule, params, params, h, noise_model, order,
                                        second_order=2, where=where)
        drift, covariance = match_moments(moments, h, order, 2, where)
        sigma, covariance = linear_noise_factor(moments, noise_model, h, 1, covariance,
                                                base_covariance=cov)
    if noise_correction:
        if order != 2:
            raise SymflowError("noise_correction=True belongs to the order-2 SME; pass order=2")
        hess = mean_gradient.jacobian(params)
        along = sp.zeros(*factor.shape)
        for j, p in enumerate(params):
            along += mean_gradient[j] * sp.diff(factor, p)
        factor = (factor + h / 2 * (hess * factor + along)).applyfunc(sp.expand)
        cov = (factor * factor.T).applyfunc(sp.expand)
        sigma = (sp.sqrt(h * scale) * factor).applyfunc(sp.expand)
        covariance = (h * scale * cov).applyfunc(sp.expand)
    potential = _potential(optimizer, mean_loss, params, allowed, order, drift, me)
    name = f"SME order {order} of {optimizer.label}"
    return SDE(drift=drift.applyfunc(sp.expand), diffusion=sigma, params=params,
               covariance=covariance, name=name, potential=potential)


def _gradient_step_sme(noise, cov, mean_loss, params, allowed, order):
    r"""The SME of one gradient step :math:`\theta - h g` in closed form (what moment matching
    gives for this rule, ``tests/symflow/stochastic/test_sme_general.py`` checks it against
    the general path): drift :math:`-\nabla L`, at order 2 the engine's modified field of GD
    :math:`-\nabla L - \frac h2 \nabla^2L\,\nabla L`; the increment's covariance is exactly
    :math:`h^2 c\,\Sigma_1`, so :math:`\sigma = \sqrt{h c}\,G`. Moment matching of
    non-polynomial losses costs seconds to minutes; this costs one modified equation
    (returned too, for the potential; None at order 1)."""
    me = None
    if order == 1:
        drift = -sp.Matrix(noise.mean_gradient)
    else:
        me = modified_equation(GD(), mean_loss, params, 1, hyper=tuple(sorted(allowed, key=str)))
        drift = sp.Matrix(me.field)
    sigma = (sp.sqrt(h * noise.scale) * sp.Matrix(noise.factor)).applyfunc(sp.expand)
    return drift, sigma, (h * noise.scale * sp.Matrix(cov)).applyfunc(sp.expand), me


def _memoryless_rule(optimizer):
    def rule(z, oracle):
        return optimizer.step(z, oracle, h)
    return rule


def _potential(optimizer, mean_loss, params, allowed, order, drift, me=None):
    """The potential of a gradient drift: the deterministic modified loss of the rule (``me``
    when already derived), plus the potential of the noise-induced drift (None when the
    drift is not a gradient)."""
    if order == 1:
        if all(sp.expand(b + sp.diff(mean_loss, p)) == 0 for b, p in zip(drift, params)):
            return mean_loss
        return None
    if me is None:
        try:
            me = modified_equation(optimizer, mean_loss, params, 1,
                                   hyper=tuple(sorted(allowed, key=str)))
        except SymflowError:
            return None
    if me.modified_loss is None:
        return None
    rest = (drift - sp.Matrix(me.field)).applyfunc(sp.expand)
    if rest.is_zero_matrix:
        return me.modified_loss
    if not expr_is_gradient(list(rest), params):
        return None
    extra = expr_potential(list(rest), params)
    return None if extra is None else sp.expand(me.modified_loss + extra)


# -- epoch mean flow ------------------------------------------------------------------------
class _SeriesMaps:
    """Truncated power series in ``h`` of maps: lists of coefficient columns d_0..d_K."""

    def __init__(self, params, grads, order, polynomial):
        self.params, self.order = tuple(params), order
        self.polynomial = polynomial
        if polynomial:
            self.ring, *gens = ring(self.params + (h,), sp.QQ)
            self.gens, self.h = gens[:-1], gens[-1]
            self.grads = [[self.ring(sp.expand(c)) for c in g] for g in grads]
        else:
            self.grads = grads

    def identity(self):
        return list(self.gens if self.polynomial else self.params)

    def step(self, current, k):
        """``current - h * grad_k(current)`` truncated after ``h**order``."""
        if self.polynomial:
            subs = list(zip(self.gens, current))
            out = []
            for c, g in zip(current, self.grads[k]):
                new = c - self.h * g.compose(subs)
                out.append(self.ring({m: co for m, co in new.terms() if m[-1] <= self.order}))
            return out
        eps = sp.Dummy("eps")
        shifted = {p: c.xreplace({h: eps}) for p, c in zip(self.params, current)}
        out = []
        for c, g in zip(current, self.grads[k]):
            comp = g.xreplace(shifted)
            series = sp.S.Zero
            deriv = comp
            for j in range(self.order):
                series += h ** (j + 1) * deriv.xreplace({eps: 0}) / math.factorial(j)
                deriv = sp.diff(deriv, eps)
            out.append(sp.expand(c - series))
        return out

    def to_expr(self, vec):
        if self.polynomial:
            return [p.as_expr() for p in vec]
        return vec


class EpochFlow(LatexDisplay):
    r"""The mean flow of one reshuffled epoch, per unit time :math:`t = nh`.

    Attributes
    ----------
    terms : tuple of column Matrix
        ``terms[k]`` is the coefficient of :math:`h^k` (``terms[0] == -grad L``).
    modified_loss : sympy.Expr or None
        :math:`\tilde L` with ``field == -grad L~`` when every term is a gradient field.
    mean_map : column Matrix
        The composed map averaged over the :math:`m!` batch orders, to :math:`h^{p+1}`.
    batch_losses, loss, params, order
    """

    def __init__(self, me, batch_losses, loss, params, mean_map):
        m = len(batch_losses)
        self.batch_losses, self.loss, self.params = tuple(batch_losses), loss, tuple(params)
        self.order, self.n_batches, self.mean_map = me.order, m, sp.ImmutableMatrix(mean_map)
        self.terms = tuple(sp.ImmutableMatrix((sp.Matrix(t) / m).applyfunc(sp.expand))
                           for t in me.terms)
        self.equation = me

    @property
    def gradient_orders(self) -> tuple:
        """``gradient_orders[k]``: is ``terms[k]`` a gradient field (symmetric Jacobian)."""
        return self.equation.gradient_orders

    @functools.cached_property
    def modified_loss(self):
        r""":math:`\tilde L` with ``field == -grad L~`` (None when not a gradient field).

        Computed on first access (for non-polynomial losses the potential is found by
        symbolic integration, which can be slow).
        """
        me, m = self.equation, self.n_batches
        if not me.is_gradient or any(p is None for p in me.potentials[1:]):
            return None
        return sp.expand(self.loss + sum(
            (h**k * p / m for k, p in enumerate(me.potentials) if k >= 1), sp.S.Zero))

    @property
    def field(self) -> sp.Matrix:
        """:math:`\\sum_k h^k\\,\\text{terms}[k]`."""
        out = sp.zeros(len(self.params), 1)
        for k, t in enumerate(self.terms):
            out += h**k * sp.Matrix(t)
        return out

    def simplify(self) -> "EpochFlow":
        """A copy whose terms (and modified loss, when computed) are passed to ``sp.simplify``."""
        new = copy.copy(self)
        new.__dict__ = dict(self.__dict__)
        new.terms = tuple(t.applyfunc(sp.simplify) for t in self.terms)
        if computed(self, "modified_loss") not in (NOT_COMPUTED, None):
            new.modified_loss = sp.simplify(self.modified_loss)
        return new

    # -- display: shows only what is computed (printing never integrates) -----------------
    def latex(self) -> str:
        field = self.field
        rows = [f"\\frac{{d{sp.latex(p)}}}{{dt}} &= "
                f"{sp.latex(readable(sp.expand(field[i]), self.params))}"
                for i, p in enumerate(self.params)]
        ml = computed(self, "modified_loss")
        if ml is NOT_COMPUTED:
            rows.append(f"&\\text{{{PENDING_LOSS}}}")
        elif ml is not None:
            rows.append(f"\\tilde{{L}} &= {sp.latex(readable(ml, self.params))}")
        return aligned(rows)

    def _text(self, limit=None) -> str:
        cut = (lambda t: t) if limit is None else (lambda t: shorten(t, limit))
        lines = [f"Mean flow of one reshuffled epoch ({self.n_batches} batches), order "
                 f"{self.order} in h, t = n*h"]
        for k, t in enumerate(self.terms):
            lines.append(cut(f"  h^{k}: {[readable(c, self.params) for c in t]}"))
        ml = computed(self, "modified_loss")
        if ml is NOT_COMPUTED:
            lines.append(f"  {PENDING_LOSS}")
        elif ml is not None:
            lines.append(cut(f"  modified loss: {readable(ml, self.params)}"))
        else:
            lines.append("  no modified loss: not a gradient field at every kept order")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self._text()

    def __repr__(self) -> str:
        return self._text(limit=400)


MAX_BATCHES = 6


def epoch_mean_flow(losses=None, params=None, dataset=None, batch_size=None, batches=None,
                    order: int = 1, hyper=()) -> EpochFlow:
    r"""The modified flow of the mean epoch map of SGD with random reshuffling.

    Give the batch losses directly (``batches=[L_1, ..., L_m]``, each the mean loss of one
    batch), or a training set (``losses`` or ``dataset``) with ``batch_size``: the samples
    are split in order into :math:`m = N/B` batches (one fixed partition; the average is
    over the order in which the batches are visited). The :math:`m` gradient steps
    :math:`\theta\mapsto\theta - h\nabla L_k(\theta)` are composed as power series in
    :math:`h` (sparse polynomials for polynomial losses, Taylor coefficients otherwise),
    averaged over all :math:`m!` orders (:math:`m \le 6`), and the mean map goes through
    :func:`symflow.modified_equation`; the field is divided by :math:`m` so that time is
    :math:`t = nh`.

    Example::

        >>> import sympy as sp
        >>> w = sp.Symbol("w")
        >>> flow = epoch_mean_flow(batches=[(w - 1)**2 / 2, (w + 1)**2 / 2, w**2], params=[w])
        >>> flow.terms[0], flow.modified_loss
        (Matrix([[-4*w/3]]), h*w**2/2 + 2*w**2/3 + 1/3)
    """
    order = v.check_order(order)
    if batches is not None:
        if losses is not None or dataset is not None:
            raise SymflowError("give batches=[...] or a training set (losses/dataset with "
                               "batch_size), not both")
        params = v.check_params(params)
        allowed = v.check_symbols(hyper, "hyper", params)
        batch_losses = [v.check_loss(b, params, allowed) for b in batches]
    else:
        ds = as_dataset(dataset, losses, params, hyper)
        params = ds.params
        n = ds.n_samples
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or \
                batch_size < 1:
            raise SymflowError(f"got batch_size={batch_size!r}; give a positive integer that "
                               f"divides the N={n} samples")
        if n % batch_size:
            raise SymflowError(f"batch_size={batch_size} does not divide N={n}; an epoch of "
                               "reshuffled SGD needs N/B whole batches")
        batch_losses = [ds.subset(range(k, k + batch_size)).mean_loss
                        for k in range(0, n, batch_size)]
    m = len(batch_losses)
    if m < 1 or m > MAX_BATCHES:
        raise SymflowError(f"got {m} batches; the average over the m! batch orders is formed "
                           f"exactly for 1 <= m <= {MAX_BATCHES}; use fewer, larger batches")
    loss = sp.expand(sp.Add(*batch_losses) / m)
    grads = [list(_grad(b, params)) for b in batch_losses]
    polynomial = all(b.is_polynomial(*params) and not (b.free_symbols - set(params))
                     for b in batch_losses)
    maps = _SeriesMaps(params, grads, order + 1, polynomial)
    total = [0] * len(params)
    cache = {(): maps.identity()}

    def composed(prefix):
        if prefix not in cache:
            cache[prefix] = maps.step(composed(prefix[:-1]), prefix[-1])
        return cache[prefix]

    for perm in itertools.permutations(range(m)):
        for i, c in enumerate(composed(perm)):
            total[i] = total[i] + c
    count = math.factorial(m)
    mean_map = sp.Matrix([sp.expand(e / count) for e in maps.to_expr(total)])
    custom = Custom(update=lambda theta, grad, step: mean_map, name="reshuffled-epoch")
    extra = tuple(sorted(loss.free_symbols - set(params), key=str))
    me = modified_equation(custom, loss, params, order, hyper=extra,
                           path="polynomial" if polynomial else "general")
    if not all(sp.expand(a / m + b) == 0 for a, b in zip(me.terms[0], _grad(loss, params))):
        raise SymflowError("internal: the epoch map does not start with m gradient steps")
    return EpochFlow(me, batch_losses, loss, params, mean_map)


__all__ = ["EpochFlow", "epoch_mean_flow", "sme"]
