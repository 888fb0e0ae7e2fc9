r"""Stochastic modified equations of SGD and of every optimizer.

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
"""

from __future__ import annotations

import sympy as sp

from .._core import _validate as v
from .._core._errors import SymflowError
from .._core._gradient import expr_is_gradient, expr_potential
from .._core._guard import as_sympy
from .._core._symbols import h
from .._engine._modified import modified_equation
from ..optimizers import GD, AbstractOptimizer, AdaGrad
from ..optimizers._sgd import SGD
from ._dataset import as_dataset
from ._increment_moments import GradientNoise, map_increment_moments, symbolic_jets
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
    The matching runs on symbols for the jets of :math:`\nabla L` and for the pair moments
    of the noise (:class:`~symflow._stochastic._increment_moments.NoiseJets`); the loss
    enters once, in the matched SDE, so a non-polynomial loss costs little more than a
    polynomial one. For SGD, :math:`\theta_{n+1} = \theta_n - h g`, this gives

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

    Examples
    --------
    ::

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
        cov = None   # Sigma_1, formed below where the path uses it (memory rules do not)
        scale = sampler.noise_scale(ds.n_samples)
    noise_model = GradientNoise(params, mean_gradient, factor, scale)
    allowed = (v.check_symbols(hyper, "hyper", params) | v.check_constant_hyper(optimizer, params)
               | (mean_loss.free_symbols - set(params)))
    if optimizer.memory_size(d):
        return memory_sme(optimizer, noise_model, mean_loss, params, order,
                          tuple(sorted(allowed, key=str)))
    if cov is None:
        cov = sp.Matrix(ds.gradient_covariance)
    if type(optimizer) in (SGD, GD):
        drift, sigma, covariance, me = _gradient_step_sme(noise_model, cov, mean_loss,
                                                          params, allowed, order)
    else:
        me = None
        rule = _memoryless_rule(optimizer)
        where = optimizer.label
        moments = map_increment_moments(rule, params, params, h, noise_model, order,
                                        second_order=2, where=where, jets=symbolic_jets())
        drift, covariance = match_moments(moments, h, order, 2, where)
        sigma, covariance = linear_noise_factor(moments, noise_model, h, 1, covariance,
                                                base_covariance=cov)
        if moments.jets is not None:
            drift = moments.jets.substitute(drift)
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


__all__ = ["sme"]
