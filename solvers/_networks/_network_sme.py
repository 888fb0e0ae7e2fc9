r"""The stochastic modified equation of SGD on a JAX model, with an exact low-rank diffusion.

Minibatch SGD on :math:`L = \frac1N\sum_i\ell_i` is, in the time :math:`t = nh`, a weak
approximation of (Li, Tai & E, *Stochastic modified equations and dynamics of stochastic
gradient algorithms I*, JMLR 20, 2019, Theorems 1 and 3)

.. math::

    d\Theta = b_p(\Theta)\,dt + \sqrt{h\,c_{N,B}}\;G(\Theta)\,dW_t ,\qquad
    G = \frac1{\sqrt N}\bigl[\nabla\ell_1 - \nabla L, \dots, \nabla\ell_N - \nabla L\bigr],

with :math:`GG^\top = \Sigma_1` the covariance of one sample's gradient,
:math:`c_{N,B} = 1/B` with replacement and :math:`(N-B)/(B(N-1))` without (the
finite-population factor, :meth:`symflow.SGD.noise_scale`). The drift is the modified field
of the mean step to order :math:`p - 1`, derived by the engine
(``sf.modified_equation(optimizer, order=p-1)``: :math:`b_1 = -g`, :math:`b_2 = -g - \frac
h2 Hg = -\nabla(L + \frac h4\lVert\nabla L\rVert^2)`) and evaluated on the network by nested
jvp (:mod:`solvers._networks._tree_eval`).

The :math:`d\times N` factor :math:`G` is exact and of rank :math:`\le N - 1`; the
:math:`d\times d` covariance is never formed. A noise increment :math:`G z` needs not even
:math:`G`: with :math:`\bar z` the mean of :math:`z`,
:math:`\sqrt N\,Gz = \sum_i (z_i - \bar z)\nabla\ell_i = \nabla\sum_i(z_i - \bar z)\ell_i`, one
reverse pass over the samples (:class:`~solvers._networks._network_data.NetworkData`).
:meth:`NetworkSME.factor` builds :math:`G` itself (``vmap(grad)``) for small models and
checks.

**A fresh subset for large datasets** (``noise_samples=S < N``). Each step (and each path)
draws :math:`S` samples without replacement and uses

.. math::

    G_S = \sqrt{\frac{N-1}{N(S-1)}}\,\bigl[\nabla\ell_i - \bar g_S\bigr]_{i\in S},\qquad
    \mathbb E_S\,G_SG_S^\top = \Sigma_1

(the sample covariance with :math:`S - 1` is unbiased for :math:`\frac N{N-1}\Sigma_1`;
Cochran, *Sampling Techniques*, 1977, Thm 2.4). The increment then has the right mean and
covariance but is a mixture of Gaussians, not a Gaussian: the simulated process is an
*estimate* of the SME. The unbiasedness is checked exactly (over every subset) in
``tests/solvers/networks/test_network_sme.py``; the error it adds is measured by
``benchmarks/bench_network_sde.py``: on a 2-4-1 tanh MLP with :math:`N = 64`, :math:`B = 4`,
:math:`h = 0.1`, :math:`t = 2` (:math:`2^{14}` paths) the mean loss does not move beyond the
Monte Carlo error (:math:`4\cdot10^{-4}`), while its spread grows with the heavier tails:
+1% at :math:`S = 16`, +10% at :math:`S = 4`, +28% at :math:`S = 2`. The drift always uses
the whole dataset.

Example::

    >>> import jax.numpy as jnp, symflow as sf, solvers as sv
    >>> loss = lambda p, batch: 0.5 * jnp.mean((batch[0] * p - batch[1]) ** 2)
    >>> data = (jnp.array([1.0, 2.0, -1.0]), jnp.array([1.0, 2.5, -0.5]))
    >>> sme = sv.network_sme(sf.SGD(batch_size=1), loss, jnp.array(0.0), data)
    >>> round(float(sme.drift(jnp.array(1.0), lr=0.1)), 6)     # -(1/N) sum x (w x - y)
    0.166667
    >>> round(float(sme.covariance(jnp.array(1.0), lr=0.1)[0, 0]), 6)   # h Sigma_1 / B = 0.1*7/18
    0.038889
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

import symflow as sf
from symflow import SymflowError

from .._ode._iterate import check_lr
from ._network_data import NetworkData, batch_settings, check_batch_size
from ._network_sme_memory import MemoryNetworkSME, dense_covariance, is_memory_optimizer
from ._tree_eval import check_params, network_field, split_model


def sgd_noise(optimizer, batch_size, replacement):
    """``(batch_size, replacement)`` of the minibatches, from an ``sf.SGD`` or the arguments
    (momentum and adaptive rules go to :class:`MemoryNetworkSME`)."""
    if isinstance(optimizer, type) or not isinstance(optimizer, sf.SGD):
        raise SymflowError(
            f"got optimizer={optimizer!r}; the network SME is available for sf.SGD(batch_size="
            "B), and with batch_size=B for sf.HeavyBall and sf.Nesterov (fixed beta or 1 - beta "
            "= c*sqrt(sf.h)) and for sf.RMSprop and sf.Adam in Malladi et al.'s scaling "
            "(1 - beta = c*sf.h**2, eps = eps0/sf.h)")
    return batch_settings(optimizer, batch_size, replacement)


def check_order(order) -> int:
    if isinstance(order, bool) or order not in (1, 2):
        raise SymflowError(f"got order={order!r}; the SME is available at order 1 or 2")
    return int(order)


class NetworkSME:
    r"""The SME :math:`d\Theta = b\,dt + \sqrt{h c_{N,B}}\,G\,dW` of SGD on a JAX model.

    Attributes
    ----------
    optimizer, order, batch_size, replacement
    n_samples : int
        :math:`N`, the size of the training set.
    noise_scale : sympy.Rational
        :math:`c_{N,B}`, exact.
    noise_samples : int
        :math:`S`, the samples behind each step's diffusion factor (``N``: the exact factor).
    field : NetworkField
        The drift, a coordinate-free field of the mean step (order ``order - 1`` in ``h``).
    loss_fn, data
        The loss on the parameter arrays (an equinox model's functions held fixed) and the
        :class:`~solvers._networks._network_data.NetworkData`.
    """

    def __init__(self, optimizer, loss_fn, params, dataset, batch_size=None, order=1,
                 replacement=None, noise_samples=None, hyper=None):
        self.order = check_order(order)
        batch_size, replacement = sgd_noise(optimizer, batch_size, replacement)
        if not callable(loss_fn):
            raise SymflowError(f"got loss_fn={loss_fn!r}; pass a function loss_fn(params, "
                               "batch) returning the mean loss over the batch")
        self.user_loss = loss_fn
        loss_fn, arrays = split_model(loss_fn, params)
        self.params0 = check_params(arrays)
        self.loss_fn = loss_fn
        self.data = NetworkData(loss_fn, dataset)
        n = self.data.n_samples
        self.batch_size = check_batch_size(batch_size, n)
        self.replacement = bool(replacement)
        self.data.check(self.params0, self.batch_size)
        self.optimizer = sf.SGD(batch_size=self.batch_size, replacement=self.replacement)
        self.noise_scale = self.optimizer.noise_scale(n)
        self._c = float(self.noise_scale)
        if noise_samples is None:
            noise_samples = n
        if isinstance(noise_samples, bool) or not isinstance(noise_samples, (int, np.integer)) \
                or not 2 <= noise_samples <= n:
            raise SymflowError(f"got noise_samples={noise_samples!r}; give a whole number of "
                               f"samples in 2..N={n} for each step's diffusion factor (N: the "
                               "exact factor)")
        self.noise_samples = int(noise_samples)
        self._subset_scale = math.sqrt((n - 1) / (n * (self.noise_samples - 1)))
        cf = sf.modified_equation(self.optimizer, order=self.order - 1)
        self.field = network_field(cf, loss_fn, hyper)
        self.dim = int(ravel_pytree(self.params0)[0].size)
        self.kernels: dict = {}   # compiled ensemble steps (solvers._networks._network_sde)

    # -- the coefficients at one point ------------------------------------------------------
    def prepare(self, params):
        """Float64 parameter arrays of ``params`` (a pytree or model like the one given)."""
        return check_params(split_model(self.loss_fn, params)[1])

    def drift_at(self, params, hw):
        """:math:`b(\\theta)` on the whole dataset, with run-time weights ``hw`` (traceable)."""
        return self.field._evaluate(params, self.data.arrays, hw)

    def noise_at(self, params, rows, z, lr):
        r""":math:`\sqrt{h c}\,G_S z` for the rows ``rows`` (:math:`S` samples) and normals ``z``
        (traceable): one reverse pass, :math:`G_S` never formed."""
        weights = (z - jnp.mean(z)) * (jnp.sqrt(lr * self._c) * self._subset_scale)
        return self.data.weighted_gradient(params, rows, weights)

    def drift(self, params, lr):
        """The drift :math:`b(\\theta)` at ``params`` (a pytree like the parameters)."""
        return self.field._field(self.prepare(params), self.data.arrays,
                                 self.field.weights(check_lr(lr)))

    def factor(self, params, lr):
        r"""The exact factor :math:`\sqrt{h c}\,G`, ``(d, N)`` in ``ravel_pytree`` order,
        from the per-sample gradients (``vmap(grad)``); :math:`\sigma\sigma^\top = h\,c\,\Sigma_1`."""
        params = self.prepare(params)
        grads = self.data.sample_gradients(params, self.data.arrays)
        flat = jax.vmap(lambda g: ravel_pytree(g)[0])(grads)             # (N, d)
        centred = flat - flat.mean(axis=0)
        return np.asarray(centred.T) * math.sqrt(check_lr(lr) * self._c / self.data.n_samples)

    def covariance(self, params, lr):
        """The dense diffusion matrix :math:`\\sigma\\sigma^\\top` (small models only)."""
        return dense_covariance(self, params, lr, self.dim, "the model has d={} parameters")

    def __repr__(self):
        rep = "with" if self.replacement else "without"
        sub = "" if self.noise_samples == self.data.n_samples else \
            f", diffusion factor from {self.noise_samples} fresh samples per step (an estimate)"
        return (f"NetworkSME(order {self.order} of SGD, B={self.batch_size} {rep} "
                f"replacement from N={self.data.n_samples}, c_NB={self.noise_scale}, "
                f"d={self.dim}{sub})")


def network_sme(optimizer, loss_fn, params, dataset, batch_size=None, order=1, *,
                replacement=None, noise_samples=None, hyper=None, diag_estimate=False):
    r"""The stochastic modified equation of a minibatch optimizer on ``loss_fn(params, batch)``.

    Parameters
    ----------
    optimizer : symflow.SGD, HeavyBall, Nesterov, RMSprop or Adam
        ``sf.SGD(batch_size=B, replacement=...)``: a :class:`NetworkSME`. Heavy ball and
        Nesterov (fixed :math:`\beta`, or :math:`1-\beta = \gamma\sqrt h`), RMSprop and
        Adam in Malladi et al.'s scaling (:math:`1-\beta_i = c_ih^2`, :math:`\epsilon =
        \epsilon_0/h`) with ``batch_size=B``: a
        :class:`~solvers._networks._network_sme_memory.MemoryNetworkSME`, the forms of
        :func:`symflow.sme` (order 1).
    loss_fn : callable
        ``loss_fn(params, batch)``: the mean of per-sample losses over the batch.
    params : pytree or equinox model
        The model's parameters (for the shapes, the input checks and the default start).
    dataset : pytree of arrays
        The training set, a leading sample axis of length :math:`N` on every array.
    batch_size : int, optional
        :math:`B` (default: the optimizer's).
    order : 1 or 2
        The drift's order: :math:`-g`, or :math:`-g - \frac h2 Hg` (SGD); 1 for the others.
    replacement : bool, optional
        Minibatches drawn with replacement (default) or without.
    noise_samples : int, optional
        :math:`S < N`: the diffusion factor from :math:`S` fresh samples per step (an
        unbiased estimate of the covariance; see the module docstring). SGD only.
    hyper : dict, optional
        Values of the symbols in the optimizer's hyperparameters, e.g. ``{"c": 1.0}`` for
        ``sf.HeavyBall(beta=1 - c*sp.sqrt(sf.h))``.
    diag_estimate : bool
        RMSprop and Adam: simulate with :math:`\operatorname{diag}\Sigma_1` estimated from
        each step's noise pass, not from per-sample gradients (cheaper; see
        :mod:`solvers._networks._network_sme_memory`).
    """
    if is_memory_optimizer(optimizer):
        if noise_samples is not None:
            raise SymflowError(f"got noise_samples={noise_samples!r} with {optimizer!r}; the "
                               "fresh-subset diffusion factor is available for SGD only")
        return MemoryNetworkSME(optimizer, loss_fn, params, dataset, batch_size, order,
                                replacement, hyper, diag_estimate)
    if diag_estimate:
        raise SymflowError("got diag_estimate=True for SGD; it applies to RMSprop and Adam")
    return NetworkSME(optimizer, loss_fn, params, dataset, batch_size, order, replacement,
                      noise_samples, hyper)


__all__ = ["NetworkSME", "check_order", "network_sme", "sgd_noise"]

