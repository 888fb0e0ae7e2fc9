r"""The SME of momentum, Nesterov, RMSprop and Adam on a JAX model, with an exact low-rank diffusion.

The forms are those of :func:`symflow.sme` (:mod:`symflow._stochastic._sme_memory`), on a
network. :math:`G = \frac1{\sqrt N}[\nabla\ell_1 - \nabla L, \dots, \nabla\ell_N - \nabla L]`
is the exact :math:`d\times N` factor of the covariance :math:`\Sigma_1` of one sample's
gradient and :math:`c = c_{N,B}` the minibatch factor (:meth:`symflow.SGD.noise_scale`), as
for SGD (:mod:`solvers._networks._network_sme`).

**Heavy ball and Nesterov, fixed** :math:`\beta` (order 1, SDE on :math:`\theta`, :math:`t =
nh`; Li, Tai & E, JMLR 20, 2019, section 5). The memory sits on its invariant manifold and
passes the noise with its zero-frequency gain:

.. math::

    d\Theta = -\frac{\nabla L}{1-\beta}\,dt + \frac{\sqrt{h\,c}}{1-\beta}\,G\,dW .

**Slow momentum**, :math:`1-\beta = \gamma\sqrt h` (order 1, SDE on :math:`(\theta, u)`,
:math:`u = v/\sqrt h`, :math:`s = n\sqrt h`): underdamped Langevin dynamics

.. math::

    d\Theta = U\,ds,\qquad dU = -(\gamma U + \nabla L)\,ds + h^{1/4}\sqrt c\;G\,dW .

A step of the optimizer is :math:`\Delta s = \sqrt h` of this time, coarse for
Euler–Maruyama: simulate with ``substeps`` of 4 or more (on a 2-parameter least-squares
problem at :math:`h = 0.01`, :math:`s = 2`, the mean loss of real heavy ball was 0.772, of
the SDE 1.138 at one substep and 0.835 at ten; the rest is the SME's own
:math:`O(\sqrt h)` weak error, 0.036 at :math:`h = 0.0025`).

The scalar coefficients of these two forms (:math:`-1/(1-\beta)`, the gains, :math:`\gamma`)
are read off :func:`symflow.sme` itself, on a one-parameter probe model whose per-sample
gradients are :math:`w \pm 1` (so :math:`\nabla L = w`, :math:`G = (1, -1)/\sqrt2`): the
engine derives them from the symbolic map, and the probe checks that its SME is linear in
:math:`(\nabla L, \text{memory})` with constant coefficients, which makes it coordinate-free.

**RMSprop and Adam** in the scaling of Malladi, Lyu, Panigrahi & Arora (*On the SDEs and
scaling rules for adaptive gradient algorithms*, NeurIPS 2022, Theorems 4.2 and 4.5):
:math:`1-\beta_i = c_i h^2`, :math:`\epsilon = \epsilon_0/h`, :math:`\sigma_0 = h\sqrt c`,
:math:`u = v/c`, time :math:`t = nh^2`. With :math:`P = \epsilon_0 + \sigma_0\sqrt{u}`
(coordinate-wise; :math:`\sqrt{u/(1-\beta_{2,n})}` and :math:`m/(1-\beta_{1,n})` with
bias correction, :math:`\beta_{i,n}` extra coordinates with :math:`d\beta_{i,n} =
-c_i\beta_{i,n}\,dt`):

.. math::

    \text{RMSprop:}\quad d\Theta = -P^{-1}\bigl(\nabla L\,dt - \sigma_0\,G\,dW\bigr),\qquad
    dU = c_2\,(\operatorname{diag}\Sigma_1 - U)\,dt;

    \text{Adam:}\quad d\Theta = -P^{-1}M\,dt,\quad dM = c_1(\nabla L - M)\,dt - c_1\sigma_0
    \,G\,dW,\quad dU = c_2\,(\operatorname{diag}\Sigma_1 - U)\,dt .

(the signs of :math:`G\,dW` are :func:`symflow.sme`'s: the factor is minus the derivative
of the step in the gradient, times :math:`G`). :math:`\operatorname{diag}\Sigma_1 =
\frac1N\sum_i(\nabla\ell_i - \nabla L)^2` needs the per-sample gradients (``vmap(grad)``,
:math:`N\times d`); it is always taken on the whole dataset.

Against real minibatch Adam (no bias correction) on a 2-8-1 tanh MLP, 32 samples,
:math:`c_1 = c_2 = 1`, :math:`\epsilon_0 = 0.1`, :math:`B = 1`, :math:`t = nh^2 = 2`, 500
paths: mean loss of the SDE 0.344 (one substep per step) against Adam's 0.231 at
:math:`h = 0.3`; with four substeps, 0.169 against 0.163 at :math:`h = 0.15` and 0.1343
against 0.1336 at :math:`h = 0.075` (spreads 0.020 and 0.018): the SDE approaches Adam as
:math:`h \to 0`, as Malladi et al.'s theorem says.

**A cheaper** :math:`\operatorname{diag}\Sigma_1` (``diag_estimate=True``): the step's noise
pass gives :math:`Gz` with :math:`z\sim N(0, I_N)`, and :math:`\mathbb E\,(Gz)^{\odot2} =
\operatorname{diag}GG^\top = \operatorname{diag}\Sigma_1` (Hutchinson's diagonal estimator;
Bekas, Kokiopoulou & Saad, *An estimator for the diagonal of a matrix*, Appl. Numer. Math. 57,
2007). The drift of :math:`U` then fluctuates around the exact one by :math:`O(1)` per step,
which adds :math:`O(\Delta t)` to the weak error of Euler's scheme (and is uncorrelated with
the noise of :math:`\Theta` and :math:`M`, odd Gaussian moments vanishing); no per-sample
gradient is formed. The error this adds is measured in
``tests/solvers/networks/test_network_sme_memory.py``.

The state is the tuple ``(params, memory_1, ...)`` of pytrees (``ravel_pytree`` order:
parameters first, then each memory slot in :func:`symflow.sme`'s order). A noise increment
:math:`\sigma z` is one reverse pass over the samples (:math:`Gz`), then a coordinate-wise
scaling per block: the :math:`D\times D` covariance is never formed.

Example::

    >>> import jax.numpy as jnp, symflow as sf, solvers as sv
    >>> loss = lambda p, batch: 0.5 * jnp.mean((batch[0] * p - batch[1]) ** 2)
    >>> data = (jnp.array([1.0, 2.0, -1.0]), jnp.array([1.0, 2.5, -0.5]))
    >>> sme = sv.network_sme(sf.HeavyBall(beta=0.5), loss, jnp.array(0.0), data, batch_size=1)
    >>> round(float(sme.drift(jnp.array(1.0), lr=0.1)), 6)   # -grad L/(1 - beta)
    0.333333
    >>> round(float(sme.covariance(jnp.array(1.0), lr=0.1)[0, 0]), 6)   # 4 h Sigma_1
    0.155556
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp
from jax.flatten_util import ravel_pytree

import symflow as sf
from symflow import SymflowError
from symflow._core._guard import as_sympy
from symflow._core._validate import resolve_values

from .._ode._iterate import check_lr
from ._network_data import NetworkData, batch_settings, check_batch_size
from ._tree_eval import check_params, split_model, tmap

#: The largest model or state whose dense covariance ``.covariance`` will form.
DENSE_LIMIT = 4096
MOMENTUM = (sf.HeavyBall, sf.Nesterov)
ADAPTIVE = (sf.RMSprop, sf.Adam)
_h = sf.h


def dense_covariance(sme, point, lr, size: int, what: str):
    """:math:`\\sigma\\sigma^\\top` from ``sme.factor(point, lr)``, refused above
    :data:`DENSE_LIMIT` entries (``what`` names them, ``{}`` standing for ``size``)."""
    if size > DENSE_LIMIT:
        raise SymflowError(f"{what.format(size)}; the dense covariance is formed only up to "
                           f"{DENSE_LIMIT}: use .factor(..., lr), of rank <= N - 1")
    f = sme.factor(point, lr)
    return f @ f.T


def is_memory_optimizer(optimizer) -> bool:
    """Momentum and adaptive rules, whose network SME is :class:`MemoryNetworkSME`."""
    return isinstance(optimizer, MOMENTUM + ADAPTIVE)


def _value(expr, hyper, lr, what):
    """``expr`` (SymPy, in ``h`` and hyperparameters) as a float at ``h = lr``."""
    expr = as_sympy(expr)
    if hyper:
        expr = expr.subs(resolve_values(hyper, expr))
    expr = expr.subs(_h, lr)
    if expr.free_symbols:
        names = ", ".join(sorted(map(str, expr.free_symbols)))
        raise SymflowError(f"{what} has the symbols {{{names}}}; give their values with "
                           f"hyper={{{names.split(', ')[0]!r}: ...}}")
    return float(expr)


def _hyper_symbols(optimizer):
    out = set()
    for value in optimizer.hyperparameters().values():
        if isinstance(value, sp.Basic):
            out |= value.free_symbols
    return sorted(out - {_h}, key=str)


# -- momentum: coefficients read off sf.sme on a probe model ----------------------------------

class _LinearForm:
    """The order-1 SME of a momentum rule, ``drift_r = A[r,0] g + sum_j A[r,1+j] mem_j``,
    ``sigma_r = K[r] sqrt(c) G``, with ``A``, ``K`` SymPy in ``h`` and hyperparameters."""

    def __init__(self, optimizer):
        w = sp.Symbol("w", real=True)
        losses = [w**2 / 2 + w, w**2 / 2 - w]   # grads w -+ 1: grad L = w, G = (1, -1)/sqrt 2
        sde = sf.sme(optimizer, losses=losses, params=[w], batch_size=1,
                     hyper=_hyper_symbols(optimizer))
        coords = list(sde.params)
        self.n_memory = len(coords) - 1
        self.time = "t = n*h" if self.n_memory == 0 else sde._time
        A = []
        for r in range(len(coords)):
            row = [sp.diff(sde.drift[r], s) for s in coords]
            rest = sp.expand(sde.drift[r] - sum(a * s for a, s in zip(row, coords)))
            if rest != 0 or any(sp.Matrix(row).free_symbols & set(coords)):
                raise SymflowError(f"the SME of {optimizer!r} is not linear in the gradient "
                                   "and the memory; the network SME covers heavy ball and "
                                   "Nesterov (fixed or slow beta), RMSprop and Adam")
            A.append(row)
        self.A, self.K = A, self._gains(sde, optimizer)
        if self.n_memory == 0:
            self.step = _h
        elif sde._time == "s = n*sqrt(h)":
            self.step = sp.sqrt(_h)
        else:
            raise SymflowError(f"the SME of {optimizer!r} runs in {sde._time}; the network "
                               "SME covers t = n*h (fixed beta) and s = n*sqrt(h) "
                               "(1 - beta = c*sqrt(h))")


    @staticmethod
    def _gains(sde, optimizer):
        r"""``K`` with :math:`\sigma = K\,G`: the first column of ``sde.diffusion`` times
        :math:`\sqrt2` when it is :math:`G`'s (the probe's :math:`\Sigma_1 = 1`, :math:`c =
        1`), else the rank-one factor of the covariance; checked: :math:`KK^\top = D`."""
        cov = sp.Matrix(sde.covariance)
        size = cov.shape[0]
        K = [sp.simplify(sde.diffusion[r, 0] * sp.sqrt(2)) for r in range(size)]
        if any(sp.simplify(K[r] * K[s] - cov[r, s]) != 0 for r in range(size)
               for s in range(size)):
            lead = next((r for r in range(size) if sp.simplify(cov[r, r]) != 0), None)
            if lead is None:
                return [sp.S.Zero] * size
            root = sp.sqrt(cov[lead, lead])
            K = [sp.simplify(cov[r, lead] / root) for r in range(size)]
            if any(sp.simplify(K[r] * K[s] - cov[r, s]) != 0 for r in range(size)
                   for s in range(size)):
                raise SymflowError(f"the noise of the SME of {optimizer!r} is not of rank "
                                   "one per sample noise (K G); the network SME covers heavy "
                                   "ball and Nesterov")
        return K


def _slow_coefficient(beta, hyper, name):
    gap = sp.simplify(1 - beta)
    c = sp.simplify(gap / _h**2)
    if gap == 0 or c.has(_h):
        raise SymflowError(
            f"got {name}={beta}; the network SME of RMSprop and Adam is Malladi et al.'s "
            "(NeurIPS 2022): 1 - beta = c*sf.h**2 and eps = eps0/sf.h, e.g. sf.Adam(beta1=1 - "
            "c1*sf.h**2, beta2=1 - c2*sf.h**2, eps=eps0/sf.h) with numbers or hyper={...}")
    return _value(c, hyper, 1.0, f"1 - {name} = c*h**2")


class MemoryNetworkSME:
    r"""The SME of a momentum or adaptive optimizer on a JAX model (see the module docstring).

    Attributes
    ----------
    optimizer, order, batch_size, replacement, n_samples, noise_scale
        As :class:`~solvers.NetworkSME`.
    kind : str
        ``"relaxed"`` (fixed :math:`\beta`, SDE on :math:`\theta`), ``"slow"`` (SDE on
        :math:`(\theta, u)`) or ``"adaptive"`` (Malladi et al.'s scaling).
    memory_names : tuple of str
        The memory slots of the state, in :func:`symflow.sme`'s order.
    time : str
        The SDE's time (``"t = n*h"``, ``"s = n*sqrt(h)"``, ``"t = n*h**2"``).
    dim, state_dim : int
        Parameters :math:`d`, and the whole state (parameters and memory).
    diag_estimate : bool
        RMSprop and Adam: in simulations, :math:`\operatorname{diag}\Sigma_1` is estimated
        by :math:`(Gz)^2` from the step's own noise pass (unbiased; see the module
        docstring) instead of the per-sample gradients.
    """

    noise_samples = None   # the fresh-subset estimate is SGD's only (solvers.NetworkSME)

    def __init__(self, optimizer, loss_fn, params, dataset, batch_size, order=1,
                 replacement=None, hyper=None, diag_estimate=False):
        if isinstance(order, bool) or order != 1:
            raise SymflowError(f"got order={order!r} for {optimizer!r}; on networks the SME of "
                               "momentum and adaptive methods is derived at order 1")
        self.order = 1
        batch_size, replacement = batch_settings(optimizer, batch_size, replacement)
        if not callable(loss_fn):
            raise SymflowError(f"got loss_fn={loss_fn!r}; pass a function loss_fn(params, "
                               "batch) returning the mean loss over the batch")
        if hyper is not None and not isinstance(hyper, dict):
            raise SymflowError(f"got hyper={hyper!r}; pass a dict of numbers, e.g. {{'c': 1}}")
        self.optimizer, self.hyper = optimizer, dict(hyper or {})
        self.user_loss = loss_fn
        loss_fn, arrays = split_model(loss_fn, params)
        self.params0 = check_params(arrays)
        self.loss_fn = loss_fn
        self.data = NetworkData(loss_fn, dataset)
        n = self.n_samples = self.data.n_samples
        self.batch_size = check_batch_size(batch_size, n)
        self.replacement = replacement
        self.data.check(self.params0, self.batch_size)
        self.noise_scale = sf.SGD(batch_size=self.batch_size,
                                  replacement=replacement).noise_scale(n)
        self._c = float(self.noise_scale)
        self.dim = int(ravel_pytree(self.params0)[0].size)
        if isinstance(optimizer, MOMENTUM):
            self._form = _LinearForm(optimizer)
            self.kind = "relaxed" if self._form.n_memory == 0 else "slow"
            self.memory_names = ("u",) * self._form.n_memory
            self.time = self._form.time
        else:
            self._setup_adaptive(optimizer)
        if not isinstance(diag_estimate, bool):
            raise SymflowError(f"got diag_estimate={diag_estimate!r}; pass True or False")
        if diag_estimate and self.kind != "adaptive":
            raise SymflowError(f"got diag_estimate=True with {optimizer!r}; only the SMEs of "
                               "RMSprop and Adam use diag(Sigma_1)")
        self.diag_estimate = diag_estimate
        self.coefficients(0.1)   # every hyperparameter has a value: fail here, not in a run
        self.state_dim = int(ravel_pytree(self.start())[0].size)
        self.kernels: dict = {}   # compiled ensemble steps (solvers._networks._network_sde)

    def _setup_adaptive(self, opt):
        self.kind = "adaptive"
        self.time = "t = n*h**2"
        adam = isinstance(opt, sf.Adam)
        if opt.eps_root != 0 or getattr(opt, "eps_in_sqrt", False):
            raise SymflowError(f"got {opt!r}; the network SME takes epsilon outside the root "
                               "(eps_root=0, eps_in_sqrt=False), as Malladi et al.'s SDE")
        self.bias = bool(opt.bias_correction)
        if adam:
            c1 = _slow_coefficient(opt.beta1, self.hyper, "beta1")
            c2 = _slow_coefficient(opt.beta2, self.hyper, "beta2")
        else:
            c1, c2 = 0.0, _slow_coefficient(opt.rho, self.hyper, "rho")
        eps0 = sp.simplify(opt.eps * _h)
        if eps0.has(_h):
            raise SymflowError(f"got eps={opt.eps}; Malladi et al.'s scaling has eps = "
                               "eps0/sf.h (eps0 fixed)")
        self._c1, self._c2 = c1, c2
        self._eps0 = _value(eps0, self.hyper, 1.0, "eps0 = eps*h")
        self._adam = adam
        names = (["m"] if adam else []) + ["u"]
        if self.bias:
            names += ["beta1_n", "beta2_n"] if adam else ["rho_n"]
        self.memory_names = tuple(names)
        self._u0 = float(getattr(opt, "initial_scale", 0) or 0) / self._c

    # -- the state -------------------------------------------------------------------------
    def prepare(self, params):
        """Float64 parameter arrays of ``params`` (a pytree or model like the one given)."""
        return check_params(split_model(self.loss_fn, params)[1])

    def start(self, params=None):
        """The state ``(params, memory...)`` a real run starts from (memory 0, the powers
        :math:`\\beta_{i,n}` at 1)."""
        params = self.params0 if params is None else self.prepare(params)
        zeros = tmap(jnp.zeros_like, params)
        slots = []
        for name in self.memory_names:
            if name == "u":
                slots.append(tmap(lambda a: jnp.full_like(a, self._u0 if self.kind ==
                                                          "adaptive" else 0.0), params))
            elif name == "m":
                slots.append(zeros)
            else:
                slots.append(jnp.float64(1.0))
        return (params, *slots)

    def prepare_state(self, state):
        """A state tuple ``(params, memory...)`` (or parameters alone: the memory starts as a
        real run's) as float64 arrays."""
        structure = jax.tree_util.tree_structure
        if isinstance(state, tuple) and len(state) == 1 + len(self.memory_names) and \
                structure(state[0]) == structure(self.params0):
            params = self.prepare(state[0])
            out = (params,) + tuple(check_params(s, f"memory {n}")
                                    for s, n in zip(state[1:], self.memory_names))
            template = ravel_pytree(self.start(params))[0].size
            if ravel_pytree(out)[0].size != template:
                raise SymflowError(f"got a state with {ravel_pytree(out)[0].size} entries; "
                                   f"this SME's state (params, {', '.join(self.memory_names)}) "
                                   f"has {template}")
            return out
        return self.start(state)

    # -- run-time coefficients --------------------------------------------------------------
    def time_step(self, lr) -> float:
        """SDE time per optimizer step: :math:`h`, :math:`\\sqrt h` or :math:`h^2`."""
        lr = check_lr(lr)
        if self.kind == "adaptive":
            return lr * lr
        return _value(self._form.step, None, lr, "the time step")

    def coefficients(self, lr):
        """The numbers the traced coefficient functions take at learning rate ``lr``."""
        lr = check_lr(lr)
        if self.kind == "adaptive":
            return jnp.array([self._c1, self._c2, self._eps0, lr * math.sqrt(self._c)])
        f = self._form
        what = f"the SME of {self.optimizer!r}"
        A = [[_value(a, self.hyper, lr, what) for a in row] for row in f.A]
        K = [_value(k, self.hyper, lr, what) * math.sqrt(self._c) for k in f.K]
        return jnp.array(np.concatenate([np.ravel(A), K]))

    # -- the coefficients at one state (traceable) -------------------------------------------
    def _grad(self, params):
        return jax.grad(self.loss_fn)(params, self.data.arrays)

    def _diag_sigma(self, params):
        grads = self.data.sample_gradients(params, self.data.arrays)
        return tmap(lambda a: jnp.mean((a - jnp.mean(a, axis=0)) ** 2, axis=0), grads)

    def _adaptive_parts(self, state, coef):
        """The memory slots by name, :math:`P` and the bias correction of :math:`m`."""
        slot = dict(zip(self.memory_names, state[1:]))
        eps0, s0 = coef[2], coef[3]
        u = slot["u"]
        b2 = slot.get("beta2_n", slot.get("rho_n", None))
        scale2 = 1.0 if b2 is None else 1.0 / (1.0 - b2)
        P = tmap(lambda a: eps0 + s0 * jnp.sqrt(a * scale2), u)
        b1 = slot.get("beta1_n")
        scale1 = 1.0 if b1 is None else 1.0 / (1.0 - b1)
        return slot, P, scale1

    def drift_at(self, state, coef, diag=None):
        r"""The drift at the state tuple ``state``, a tuple like it (``diag``: an estimate of
        :math:`\operatorname{diag}\Sigma_1` to use instead of the exact one)."""
        params = state[0]
        g = self._grad(params)
        if self.kind != "adaptive":
            k = len(state)
            A = coef[: k * k].reshape(k, k)
            sources = (g,) + tuple(state[1:])
            return tuple(tmap(lambda *leaves, r=r: sum(A[r, j] * leaves[j] for j in range(k)),
                              *sources) for r in range(k))
        slot, P, scale1 = self._adaptive_parts(state, coef)
        c1, c2 = coef[0], coef[1]
        push = slot["m"] if self._adam else g
        out = [tmap(lambda a, p: -scale1 * a / p, push, P)]
        diag = self._diag_sigma(params) if diag is None else diag
        for name in self.memory_names:
            if name == "m":
                out.append(tmap(lambda gg, m: c1 * (gg - m), g, slot["m"]))
            elif name == "u":
                out.append(tmap(lambda dg, u: c2 * (dg - u), diag, slot["u"]))
            else:
                rate = c1 if name == "beta1_n" else c2
                out.append(-rate * slot[name])
        return tuple(out)

    def _noise_from(self, state, gz, coef):
        """:math:`\\sigma z` from :math:`Gz` (a pytree like the parameters)."""
        if self.kind != "adaptive":
            k = len(state)
            K = coef[k * k:]
            return tuple(tmap(lambda a, r=r: K[r] * a, gz) for r in range(k))
        slot, P, _ = self._adaptive_parts(state, coef)
        c1, s0 = coef[0], coef[3]
        zero = tmap(jnp.zeros_like, state[0])
        if self._adam:
            out = [zero]
        else:
            out = [tmap(lambda a, p: s0 * a / p, gz, P)]
        for name in self.memory_names:
            if name == "m":
                out.append(tmap(lambda a: -c1 * s0 * a, gz))
            elif name == "u":
                out.append(zero)
            else:
                out.append(jnp.zeros_like(slot[name]))
        return tuple(out)

    def sample_gz(self, params, rows, z):
        r""":math:`Gz` for normals ``z`` over the samples ``rows``: one reverse pass."""
        weights = (z - jnp.mean(z)) / math.sqrt(self.data.n_samples)
        return self.data.weighted_gradient(params, rows, weights)

    def noise_at(self, state, rows, z, coef):
        r""":math:`\sigma z` for normals ``z`` over the samples ``rows`` (traceable): one reverse
        pass for :math:`Gz`, never the factor."""
        return self._noise_from(state, self.sample_gz(state[0], rows, z), coef)

    # -- the coefficients at one point, for checks --------------------------------------------
    def drift(self, state, lr):
        """The drift at ``state`` (a state tuple, or parameters with a real run's start
        memory), a tuple like the state (for ``kind="relaxed"``: like the parameters)."""
        state = self.prepare_state(state)
        out = self.drift_at(state, self.coefficients(lr))
        return out[0] if self.kind == "relaxed" else out

    def factor(self, state, lr):
        r"""The exact factor :math:`\sigma`, ``(D, N)`` in ``ravel_pytree`` order of the state;
        :math:`\sigma\sigma^\top` is the diffusion matrix."""
        state = self.prepare_state(state)
        coef = self.coefficients(lr)
        grads = self.data.sample_gradients(state[0], self.data.arrays)
        flat = jax.vmap(lambda g: ravel_pytree(g)[0])(grads)
        G = (flat - flat.mean(axis=0)).T / math.sqrt(self.data.n_samples)   # (d, N)
        unravel = ravel_pytree(state[0])[1]
        col = lambda v: ravel_pytree(self._noise_from(state, unravel(v), coef))[0]
        return np.asarray(jax.vmap(col, in_axes=1, out_axes=1)(G))

    def covariance(self, state, lr):
        """The dense diffusion matrix :math:`\\sigma\\sigma^\\top` (small models only)."""
        return dense_covariance(self, state, lr, self.state_dim, "the state has D={} entries")

    def __repr__(self):
        rep = "with" if self.replacement else "without"
        on = "theta" if self.kind == "relaxed" else f"(theta, {', '.join(self.memory_names)})"
        return (f"MemoryNetworkSME(order 1 of {self.optimizer!r} on {on}, {self.time}, "
                f"B={self.batch_size} {rep} replacement from N={self.data.n_samples}, "
                f"c_NB={self.noise_scale}, d={self.dim})")


__all__ = ["MemoryNetworkSME", "is_memory_optimizer"]
