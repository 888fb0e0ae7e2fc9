r"""Numeric check of the input- vs parameter-gradient inequality over many random MLPs.

For each network :math:`h^{(t+1)} = g(W^{(t)}h^{(t)} + b^{(t)})`, :math:`f = u^\top h^{(l+1)}`,
JAX autodiff gives :math:`\nabla_x f`, :math:`\nabla_\theta f` (all :math:`W^{(t)}, b^{(t)}`)
and the Jacobians :math:`\nabla_x h^{(t)}`; the study evaluates

.. math::

    \text{lhs} = \lVert\nabla_x f\rVert^2\sum_{t=1}^{l}
    \frac{1 + \lVert h^{(t)}\rVert^2}{\lVert W^{(t)}\rVert^2\lVert\nabla_x h^{(t)}\rVert^2},
    \qquad \text{rhs} = \lVert\nabla_\theta f\rVert^2

for six matrix norms (:data:`symflow._claims._penalty.NORMS`) and reports the violations
(``rhs < lhs``; none is allowed for the spectral, Frobenius and nuclear norms, see
:mod:`symflow._claims._penalty`) and the distribution of ``rhs / lhs``. Networks of one shape are
checked together by one ``jit(vmap(...))`` (the activation is a traced switch, so one
compilation serves all four activations of a shape); :func:`check_penalty` checks one
network. ``benchmarks/bench_penalty.py`` times them against a plain per-network loop.

Reference: Dherin, Munn & Barrett, *The Geometric Occam's Razor Implicit in Deep
Learning*, arXiv:2111.15090 (2021); Su Jianlin, "输入梯度惩罚与参数梯度惩罚的一个不等式" (2021).
"""

from __future__ import annotations

import dataclasses
import functools
import numbers

import jax
import jax.numpy as jnp
import numpy as np

from symflow import SymflowError
from symflow._core._files import save_figure
from symflow._core._table import Table, TableDisplay
from symflow._claims._penalty import HOLDING_NORMS, NORMS
from symflow._core._progress import progress_bar

ACTIVATIONS = ("tanh", "relu", "sigmoid", "gelu")
_ACT_FNS = (jnp.tanh, jax.nn.relu, jax.nn.sigmoid,
            functools.partial(jax.nn.gelu, approximate=False))

#: Relative tolerance below 1 for a ratio rhs/lhs to count as a violation (rounding).
VIOLATION_RTOL = 1e-9


def _activation_index(name) -> int:
    if name not in ACTIVATIONS:
        raise SymflowError(f"got activation={name!r}; choose one of {ACTIVATIONS}")
    return ACTIVATIONS.index(name)


def _norms(A):
    """The six norms of NORMS, in that order, of one matrix."""
    a = jnp.abs(A)
    sv = jnp.linalg.svd(A, compute_uv=False)
    return jnp.stack([sv[0], jnp.sqrt(jnp.sum(A**2)), jnp.sum(sv), jnp.max(a),
                      jnp.max(jnp.sum(a, axis=0)), jnp.max(jnp.sum(a, axis=1))])


# -- one implementation for every network: zero-padded to L layers of width P -----------------
# Networks are zero-padded to L layers of width P and masked (padded units are multiplied by
# 0 after the activation, padded layers pass h through). This leaves every quantity of the
# inequality unchanged: zero rows and columns add only zero singular values and zero
# entries, J^(1) = diag(mask) has the norms of the true identity, and padded parameters get
# zero gradient (tested against the exact SymPy derivation). So one compiled function per
# (L, P) serves every architecture that fits, and the study mixes architectures freely.

def _identity_norms(d):
    """The six norms of the d x d identity (J^(1), the Jacobian of the input)."""
    return jnp.stack([jnp.ones_like(d), jnp.sqrt(d), d, jnp.ones_like(d), jnp.ones_like(d),
                      jnp.ones_like(d)], axis=-1)


def _forward(Ws, bs, masks, active, x, u, act):
    r"""Autodiff for one padded network: :math:`\lVert\nabla_\theta f\rVert^2`,
    :math:`\lVert\nabla_x f\rVert^2`, :math:`\lVert h^{(t)}\rVert^2`,
    :math:`\lVert\delta^{(t)}\rVert^2` and the Jacobians :math:`\nabla_x h^{(2..L)}`."""
    def g(z):
        return jax.lax.switch(act, _ACT_FNS, z)

    def hidden(Ws, bs, xx):
        def body(h, inp):
            W, b, m, a = inp
            return jnp.where(a, m * g(W @ h + b), h), h

        return jax.lax.scan(body, masks[0] * xx, (Ws, bs, masks[1:], active))

    def f(Ws, bs, xx):
        return jnp.dot(u, hidden(Ws, bs, xx)[0])

    gW, gb, gx = jax.grad(f, argnums=(0, 1, 2))(Ws, bs, x)
    hs = hidden(Ws, bs, x)[1]                                   # hs[t] = h^(t+1)
    J = jax.jacfwd(lambda xx: hidden(Ws, bs, xx)[1][1:])(x)     # (L-1, P, P)
    return (jnp.sum(gW**2) + jnp.sum(gb**2), jnp.sum(gx**2), jnp.sum(hs**2, axis=1),
            jnp.sum(gb**2, axis=1), J)


def _norms_of(A):
    """:func:`_norms` of every matrix in ``A`` (``(..., P, P)`` -> ``(..., 6)``). One SVD
    after another (``lax.map``): on CPU that is faster than one batched SVD."""
    P = A.shape[-1]
    flat = jax.lax.map(_norms, A.reshape((-1, P, P)))
    return flat.reshape(A.shape[:-2] + (6,))


def _check_padded(Ws, bs, masks, active, x, u, act, diagnostics=True):
    """The check for a batch of padded networks (leading axis ``n``).

    Returns lhs per norm ``(n, 6)``, rhs ``(n,)``, and with ``diagnostics`` the per-layer
    loss factors of the Cauchy–Schwarz and the norm-inequality steps ``(n, 6, L)`` (else
    ``None``: they cost one more SVD per layer); ``act`` indexes :data:`ACTIVATIONS`.
    """
    rhs, gx2, hn2, delta2, J = jax.vmap(_forward, in_axes=(0, 0, 0, 0, 0, 0, None))(
        Ws, bs, masks, active, x, u, act)
    nW = _norms_of(Ws)                                                    # (n, L, 6)
    nJ = jnp.concatenate([_identity_norms(jnp.sum(masks[:, 0], axis=1))[:, None],
                          _norms_of(J)], axis=1)
    denom = nW**2 * nJ**2
    ok = (denom > 0) & active[..., None]
    num = gx2[:, None, None] * (1 + hn2)[..., None]
    lhs = jnp.sum(jnp.where(ok, num / jnp.where(ok, denom, 1.0), 0.0), axis=1)
    if not diagnostics:
        return lhs, rhs, None, None
    nM = jnp.concatenate([nW[:, :1], _norms_of(Ws[:, 1:] @ J)], axis=1)
    good = active[..., None] & (gx2 > 0)[:, None, None]
    cs = jnp.where(good, delta2[..., None] * nM**2
                   / jnp.where(gx2 > 0, gx2, 1.0)[:, None, None], jnp.nan)
    sub = jnp.where(active[..., None] & (nM > 0), denom / jnp.where(nM > 0, nM**2, 1.0),
                    jnp.nan)
    return lhs, rhs, jnp.swapaxes(cs, 1, 2), jnp.swapaxes(sub, 1, 2)


#: Compiled once per (n, L, P); the activation index is traced, so one compilation serves
#: all four activations.
_check_jit = jax.jit(_check_padded, static_argnums=(7,))


def _bucket(width) -> int:
    """The padded width for a largest layer width: 8, 16, 32, 64, ..."""
    return max(8, 1 << int(np.ceil(np.log2(max(width, 1)))))


def _read_networks(params, x, u, batched):
    """Float arrays ``(params, x, u)`` and the widths ``[d_in, d_1, ..., d_l]``, checked.

    With ``batched`` every array carries a leading axis of one common length (networks)."""
    lead = int(batched)
    if isinstance(params, np.ndarray) or not isinstance(params, (list, tuple)) or not params:
        raise SymflowError(f"got params of type {type(params).__name__}; give a non-empty list "
                           "of layers [(W1, b1), (W2, b2), ...]")
    try:
        layers = [(np.asarray(W, float), np.asarray(b, float)) for W, b in params]
        x, u = np.asarray(x, float), np.asarray(u, float)
    except (TypeError, ValueError) as exc:
        raise SymflowError(f"could not read the network ({exc}); give params=[(W1, b1), (W2, "
                           "b2), ...] with numeric arrays W (out, in) and b (out,), and numeric "
                           "vectors x and u") from None
    arrays = [x, u] + [a for layer in layers for a in layer]
    if x.ndim != 1 + lead or u.ndim != 1 + lead:
        raise SymflowError(f"got x of shape {x.shape} and u of shape {u.shape}; give "
                           + ("(n, d) arrays, one row per network" if batched else "vectors"))
    if batched and len({a.shape[0] if a.ndim else -1 for a in arrays}) != 1:
        raise SymflowError("the arrays have different numbers of networks (leading axes "
                           f"{sorted({a.shape[0] if a.ndim else 0 for a in arrays})}); give "
                           "every W, b, x and u the same leading batch axis")
    if not all(np.all(np.isfinite(a)) for a in arrays):
        raise SymflowError("got non-finite values (nan or inf) in the weights, biases, input "
                           "or readout; give finite numbers")
    d = x.shape[-1]
    widths = [d]
    for t, (W, b) in enumerate(layers):
        ws, bs = W.shape[lead:], b.shape[lead:]
        if len(ws) != 2 or ws[1] != d:
            raise SymflowError(
                f"layer shapes do not chain: layer {t + 1} has W of shape {ws} but receives a "
                f"vector of size {d}; W^(t) must have shape (width_out, {d})")
        if bs != ws[:1]:
            raise SymflowError(f"layer {t + 1}: b has shape {bs} but W has {ws[0]} rows; "
                               "give one bias per output unit")
        d = ws[0]
        widths.append(d)
    if u.shape[-1] != d:
        raise SymflowError(f"the readout u has shape {u.shape[lead:]} but the network outputs "
                           f"{d} values; give u of size {d}")
    return layers, x, u, widths


def _pad(params, x, u, widths):
    """Zero-padded arrays (with any leading batch axes) for :func:`_check_padded`."""
    L, P = len(params), _bucket(max(widths))
    lead = np.shape(x)[:-1]
    Ws, bs = np.zeros(lead + (L, P, P)), np.zeros(lead + (L, P))
    for t, (W, b) in enumerate(params):
        Ws[..., t, :widths[t + 1], :widths[t]] = W
        bs[..., t, :widths[t + 1]] = b
    masks = (np.arange(P)[None, :] < np.array(widths)[:, None]).astype(float)
    xp, up = np.zeros(lead + (P,)), np.zeros(lead + (P,))
    xp[..., :widths[0]], up[..., :widths[-1]] = x, u
    masks = np.broadcast_to(masks, lead + masks.shape)
    active = np.ones(lead + (L,), bool)
    return tuple(jnp.asarray(a) for a in (Ws, bs, masks, active, xp, up))


def check_penalty(params, x, u, activation="tanh") -> dict:
    r"""The inequality for one network (compiled once per depth and width bucket).

    ``params`` is a list of ``(W, b)``; :math:`f = u^\top h^{(l+1)}`. Returns
    ``{"lhs": {norm: value}, "rhs": value, "ratio": {norm: rhs/lhs}}``.

    Example::

        >>> import numpy as np
        >>> W = np.array([[1.0, 1.0]]); b = np.array([0.0])
        >>> out = check_penalty([(W, b)], np.array([0.3, -0.2]), np.array([1.0]), "tanh")
        >>> round(float(out["ratio"]["spectral"]), 12), round(float(out["ratio"]["max"]), 3)
        (1.0, 0.5)
    """
    params, x, u, widths = _read_networks(params, x, u, batched=False)
    params = [(W[None], b[None]) for W, b in params]
    lhs, rhs, _, _ = _check_jit(*_pad(params, x[None], u[None], widths),
                                _activation_index(activation), False)
    lhs = np.asarray(lhs)[0]
    rhs = float(rhs[0])
    return {"lhs": dict(zip(NORMS, lhs)), "rhs": rhs,
            "ratio": {k: (rhs / v if v > 0 else np.inf) for k, v in zip(NORMS, lhs)}}


def check_penalty_batch(params, x, u, activation="tanh"):
    r"""The inequality for a batch of networks of one shape: ``jit(vmap(...))`` (the
    autodiff is vmapped over the networks, the SVDs run one after another).

    ``params`` is a list of ``(W, b)`` with a leading batch axis (``W``: ``(n, out, in)``),
    ``x``: ``(n, d_in)``, ``u``: ``(n, d_out)``. Returns ``(lhs, rhs)`` with ``lhs`` of
    shape ``(n, 6)`` (one column per norm of :data:`NORMS`) and ``rhs`` of shape ``(n,)``.
    """
    params, x, u, widths = _read_networks(params, x, u, batched=True)
    lhs, rhs, _, _ = _check_jit(*_pad(params, x, u, widths),
                                _activation_index(activation), False)
    return lhs, rhs


def _sample_padded(rng, widths, P):
    r"""Random networks with architectures ``widths`` (``(n, L+1)`` ints, zero past each
    network's depth), zero-padded to width ``P``: the arrays of :func:`_check_padded`.

    Per network a gain :math:`\sigma_w \sim U(0.5, 2.5)` with :math:`W \sim N(0,
    \sigma_w^2/\text{fan-in})`, a bias scale :math:`\sigma_b \sim U(0, 1)`, an input scale
    :math:`s \sim U(0.2, 3)` (:math:`x \sim N(0, s^2 I)`) and a readout
    :math:`u \sim N(0, I/d_\text{out})`.
    """
    n, L = widths.shape[0], widths.shape[1] - 1
    masks = (np.arange(P)[None, None, :] < widths[:, :, None]).astype(float)  # (n, L+1, P)
    active = widths[:, 1:] > 0
    depth = active.sum(axis=1)
    gain = rng.uniform(0.5, 2.5, (n, 1, 1, 1))
    bscale = rng.uniform(0.0, 1.0, (n, 1, 1))
    xscale = rng.uniform(0.2, 3.0, (n, 1))
    fan_in = np.maximum(widths[:, :-1], 1)[:, :, None, None]
    Ws = (rng.normal(size=(n, L, P, P)) * gain / np.sqrt(fan_in)
          * masks[:, 1:, :, None] * masks[:, :-1, None, :])
    bs = rng.normal(size=(n, L, P)) * bscale * masks[:, 1:]
    out_mask = masks[np.arange(n), depth]                                     # (n, P)
    d_out = np.maximum(widths[np.arange(n), depth], 1)[:, None]
    x = rng.normal(size=(n, P)) * xscale * masks[:, 0]
    u = rng.normal(size=(n, P)) / np.sqrt(d_out) * out_mask
    return Ws, bs, masks, active, x, u


def sample_networks(seed, shape, n):
    """``n`` random networks of one ``shape = (d_in, d_1, ..., d_l)`` from the distribution
    of the study (:func:`_sample_padded`): ``(params, x, u)`` with a leading batch axis."""
    shape = tuple(int(w) for w in shape)
    Ws, bs, _, _, x, u = _sample_padded(np.random.default_rng(seed),
                                        np.tile(shape, (n, 1)), max(shape))
    params = [(Ws[:, t, :shape[t + 1], :shape[t]], bs[:, t, :shape[t + 1]])
              for t in range(len(shape) - 1)]
    return params, x[:, :shape[0]], u[:, :shape[-1]]


def random_architectures(n, seed=0, max_depth=5, max_width=64):
    """``(n, max_depth + 1)`` widths: depth uniform in 1..max_depth, widths log-uniform in
    1..max_width (so narrow layers, where some norms fail, are common); 0 past the depth."""
    rng = np.random.default_rng(seed)
    depth = rng.integers(1, max_depth + 1, n)
    widths = np.exp(rng.uniform(0, np.log(max_width + 1), (n, max_depth + 1))).astype(int)
    widths = np.clip(widths, 1, max_width)
    widths[np.arange(max_depth + 1)[None, :] > depth[:, None]] = 0
    return widths


@dataclasses.dataclass(repr=False)
class PenaltyStudy(TableDisplay):
    """Results of :func:`penalty_study`: one row per network.

    ``ratio[i, k]`` is rhs/lhs of network ``i`` for ``norms[k]`` (``inf`` where lhs = 0:
    a ReLU network with :math:`\\nabla_x f = 0`); ``widths[i]`` its architecture (zeros
    past its depth), ``activation[i]`` an index into :data:`ACTIVATIONS`;
    ``cauchy_schwarz`` / ``submultiplicative`` hold the per-layer loss factors of the
    derivation's steps 3 and 4 (``(n, 6, max_depth)``, nan past the depth).
    """

    norms: tuple
    widths: np.ndarray
    activation: np.ndarray
    lhs: np.ndarray
    rhs: np.ndarray
    ratio: np.ndarray
    cauchy_schwarz: np.ndarray
    submultiplicative: np.ndarray

    @property
    def n(self) -> int:
        return len(self.rhs)

    @property
    def depth(self) -> np.ndarray:
        return np.sum(self.widths[:, 1:] > 0, axis=1)

    def violations(self, rtol=VIOLATION_RTOL) -> dict:
        """Number of networks with ``rhs < (1 - rtol) lhs``, per norm."""
        return {k: int(np.sum(self.ratio[:, i] < 1 - rtol)) for i, k in enumerate(self.norms)}

    def quantiles(self, qs=(0.0, 0.01, 0.5, 0.99)) -> dict:
        """Quantiles of the finite ratios rhs/lhs, per norm."""
        out = {}
        for i, k in enumerate(self.norms):
            r = self.ratio[:, i]
            r = r[np.isfinite(r)]
            out[k] = np.quantile(r, qs) if len(r) else np.full(len(qs), np.nan)
        return out

    def step_losses(self, norm="spectral", stat=np.nanmedian) -> dict:
        """A statistic (default: the median) over all layers of all networks of the
        Cauchy–Schwarz (step 3) and the norm-inequality (step 4) loss factors of ``norm``.

        Both are >= 1 for the norms of :data:`HOLDING_NORMS`; ``stat=np.nanmin`` shows which
        step breaks for the others (l1, linf: step 3 only; max: both).
        """
        i = self.norms.index(norm)
        out = {}
        for name, arr in (("cauchy_schwarz", self.cauchy_schwarz),
                          ("submultiplicative", self.submultiplicative)):
            a = arr[:, i, :]
            out[name] = float(stat(np.where(np.isfinite(a), a, np.nan)))
        return out

    def table(self) -> str:
        """Violations, the distribution of rhs/lhs and the smallest step factors, per norm."""
        viol = self.violations()
        q = self.quantiles()
        rows = [f"{self.n} random networks (depth 1-{self.widths.shape[1] - 1}, widths "
                f"1-{int(self.widths.max())}, activations {', '.join(ACTIVATIONS)}); lhs = 0 "
                f"(trivially true) for {int(np.sum(~np.isfinite(self.ratio[:, 0])))}",
                "  norm       claim   violations   min rhs/lhs      1%   median       99%"
                "   min step-3   min step-4"]
        for k in self.norms:
            claim = "holds" if k in HOLDING_NORMS else "fails"
            mn, p1, med, p99 = q[k]
            lo = self.step_losses(k, np.nanmin)
            rows.append(f"  {k:9s}  {claim:5s}  {viol[k]:11d}   {mn:11.4g} {p1:7.3g} "
                        f"{med:8.3g} {p99:9.3g}   {lo['cauchy_schwarz']:10.3g}   "
                        f"{lo['submultiplicative']:10.3g}")
        sl = self.step_losses()
        rows.append(f"  median per-layer loss factor (spectral): Cauchy-Schwarz "
                    f"{sl['cauchy_schwarz']:.3g}, submultiplicativity "
                    f"{sl['submultiplicative']:.3g}")
        return "\n".join(rows)

    def _table(self) -> Table:
        viol, q = self.violations(), self.quantiles()
        rows = []
        for k in self.norms:
            lo = self.step_losses(k, np.nanmin)
            rows.append([k, "holds" if k in HOLDING_NORMS else "fails", f"{viol[k]}"]
                        + [f"{v:.4g}" for v in q[k]]
                        + [f"{lo['cauchy_schwarz']:.3g}", f"{lo['submultiplicative']:.3g}"])
        lines = self.table().split("\n")
        return Table(["norm", "claim", "violations", "min rhs/lhs", "1%", "median", "99%",
                      "min step-3 factor", "min step-4 factor"], rows, lines[0],
                     [lines[-1].strip()])

    def __str__(self) -> str:
        return self.table()

    def plot(self, path=None, norms=None):
        """Histograms of log10(rhs/lhs) per norm (violations lie left of 0); saved if ``path``."""
        import matplotlib.pyplot as plt

        norms = list(norms or self.norms)
        fig, axes = plt.subplots(2, (len(norms) + 1) // 2, figsize=(12, 6),
                                 constrained_layout=True, squeeze=False)
        viol = self.violations()
        for ax, k in zip(axes.ravel(), norms):
            r = self.ratio[:, self.norms.index(k)]
            r = np.log10(r[np.isfinite(r) & (r > 0)])
            ax.hist(r, bins=80, color="tab:blue" if k in HOLDING_NORMS else "tab:red", alpha=0.8)
            ax.axvline(0, color="k", lw=1)
            ax.set_title(f"{k}: {viol[k]} violations / {self.n}", fontsize=10)
            ax.set_xlabel("log10(rhs / lhs)")
            ax.set_ylabel("networks")
        for ax in axes.ravel()[len(norms):]:
            ax.axis("off")
        fig.suptitle("|grad_x f|^2 sum_t (1+|h_t|^2) / (|W_t|^2 |grad_x h_t|^2)  <=  "
                     "|grad_theta f|^2   (blue: norms that dominate the spectral norm)",
                     fontsize=10)
        if path:
            save_figure(fig, path, dpi=120)
        return fig


def penalty_study(n_networks=10_000, seed=0, max_depth=5, max_width=64, chunk=256,
                  progress=None) -> PenaltyStudy:
    """Check the inequality on ``n_networks`` random networks, each its own architecture.

    Architectures come from :func:`random_architectures`, activations cycle through
    :data:`ACTIVATIONS`, parameters and inputs from :func:`_sample_padded`. Networks are
    grouped by activation and by width bucket (8, 16, 32, 64) and checked ``chunk`` at a
    time by one compiled ``jit(vmap(...))`` per bucket.

    Example::

        >>> st = penalty_study(n_networks=256, seed=1, max_depth=3, max_width=8, progress=False)
        >>> st.violations()["spectral"], st.violations()["frobenius"]
        (0, 0)
    """
    for name, value in (("n_networks", n_networks), ("max_depth", max_depth),
                        ("max_width", max_width), ("chunk", chunk)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise SymflowError(f"got {name}={value!r}; {name} must be a positive integer")
    widths = random_architectures(n_networks, seed, max_depth, max_width)
    acts = np.arange(n_networks) % len(ACTIVATIONS)
    buckets = np.array([_bucket(w.max()) for w in widths])
    rng = np.random.default_rng(seed + 1)
    lhs, rhs = np.empty((n_networks, len(NORMS))), np.empty(n_networks)
    cs, sub = (np.empty((n_networks, len(NORMS), max_depth)) for _ in range(2))
    jobs = []
    for a in range(len(ACTIVATIONS)):
        for P in sorted(set(buckets)):
            idx = np.flatnonzero((acts == a) & (buckets == P))
            for s in range(0, len(idx), chunk):
                jobs.append((a, int(P), idx[s:s + chunk]))
    # one chunk size for all jobs (one compilation per bucket), no larger than needed
    chunk = min(chunk, _bucket(max(len(idx) for _, _, idx in jobs)))
    for a, P, idx in progress_bar(jobs, desc="penalty study", unit="chunk",
                                 progress=progress):
        pad = np.concatenate([idx, np.repeat(idx[-1:], chunk - len(idx))])  # one chunk size
        net = _sample_padded(rng, widths[pad], P)
        for whole, part in zip((lhs, rhs, cs, sub), _check_jit(*net, a, True)):
            whole[idx] = np.asarray(part)[:len(idx)]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(lhs > 0, rhs[:, None] / lhs, np.inf)
    return PenaltyStudy(NORMS, widths, acts, lhs, rhs, ratio, cs, sub)
