r"""Gradient descent on the linear BYOL / SimSiam model, mode by mode against the derived flow.

The model of Tian, Chen & Ganguli (ICML 2021) with matrices: online :math:`W`, predictor
:math:`W_p`, target :math:`W_a`, and the population loss over inputs
:math:`\mathbb{E}xx^\top = I` and augmentations :math:`\mathbb{E}ee^\top = \sigma^2 I`

.. math::  J = \tfrac12\bigl[(1+\sigma^2)\lVert W_pW\rVert_F^2 - 2\,\mathrm{tr}(W_pW W_a^\top)
           + (1+\sigma^2)\lVert W_a\rVert_F^2\bigr] + \tfrac\eta2(\lVert W\rVert_F^2 +
           \lVert W_p\rVert_F^2).

The target is ``jax.lax.stop_gradient(W)`` (SimSiam), an EMA teacher
:math:`W_a \leftarrow \tau W_a + (1-\tau)W` (BYOL), or :math:`W` itself (no stop-gradient);
without a predictor :math:`W_p = I`. Started with :math:`W, W_p` diagonal in one random
orthonormal basis :math:`Q`, the run stays there, and the modes :math:`\mathrm{diag}(Q^\top W
Q)`, :math:`\mathrm{diag}(Q^\top W_p Q)` are compared with :class:`symflow.LinearSSL`'s flow
solved by Diffrax. Nothing of the symbolic derivation enters the run: the gradients are
JAX's, of the matrix loss above.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from symflow import SymflowError

from .._ode._flow import solve_flow
from .._ode._iterate import check_lr, check_steps


def _loss(W, Wp, Wa, sigma2, eta):
    P = Wp @ W
    return 0.5 * ((1 + sigma2) * jnp.sum(P**2) - 2 * jnp.sum(P * Wa)
                  + (1 + sigma2) * jnp.sum(Wa**2)) + 0.5 * eta * (jnp.sum(W**2) + jnp.sum(Wp**2))


@functools.lru_cache(maxsize=16)
def _runner(stop_gradient: bool, predictor: bool, ema: bool, chunk: int):
    """Jitted ``chunk`` GD steps, returning the state and its modes (one compilation per
    kind of model and chunk, whatever the number of steps)."""
    def target(W, Wa):
        if ema:
            return Wa
        return jax.lax.stop_gradient(W) if stop_gradient else W

    def objective(W, Wp, Wa, s2, eta):
        Wp = Wp if predictor else jnp.eye(W.shape[0])
        return _loss(W, Wp, target(W, Wa), s2, eta)

    grad = jax.grad(objective, argnums=(0, 1))

    @jax.jit
    def run(state, s2, eta, lr, tau, Q):
        def step(state, _):
            W, Wp, Wa = state
            gW, gP = grad(W, Wp, Wa, s2, eta)
            W_new = W - lr * gW
            Wp_new = Wp - lr * gP if predictor else Wp
            return (W_new, Wp_new, tau * Wa + (1 - tau) * W_new), None

        state, _ = jax.lax.scan(step, state, None, length=chunk)
        W, Wp, _ = state
        return state, jnp.diag(Q.T @ W @ Q), jnp.diag(Q.T @ Wp @ Q)

    return run


@dataclasses.dataclass
class SSLRun:
    """Mode strengths along GD (``w``, ``p``: shape ``(n_steps + 1, modes)``) at ``times``
    (``n h``), and, when asked, the derived flow at the same times (``w_flow``, ``p_flow``)."""

    times: np.ndarray
    w: np.ndarray
    p: np.ndarray
    w_flow: np.ndarray | None = None
    p_flow: np.ndarray | None = None

    def flow_gap(self) -> float:
        """Largest gap between GD's modes and the flow's."""
        gaps = [np.max(np.abs(self.w - self.w_flow))]
        if self.p_flow is not None:
            gaps.append(np.max(np.abs(self.p - self.p_flow)))
        return float(max(gaps))


def ssl_run(w0, p0, sigma2=0.5, eta=0.0, lr=0.01, n_steps=1000, stop_gradient=True,
            predictor=True, ema=None, flow=None, order=None, save_every=1,
            seed=0) -> SSLRun:
    r"""GD on the matrix model with modes ``w0``, ``p0`` (one entry per mode).

    ``ema``: the teacher's decay :math:`\tau` (None: no EMA teacher). ``flow``: a
    :class:`symflow.LinearSSL` whose flow is solved from the same modes for comparison,
    truncated at ``order`` (default: all its terms). The modes are saved every
    ``save_every`` steps (``n_steps`` must be a multiple of it).

    Example::

        >>> import symflow as sf, solvers as sv
        >>> run = sv.ssl_run([0.1, 0.1], [0.3, 0.9], sigma2=0.5, lr=0.01, n_steps=200,
        ...                  save_every=20, flow=sf.linear_ssl())
        >>> run.flow_gap() < 1e-3          # GD follows the derived mode flow, O(h)
        True
    """
    w0, p0 = np.asarray(w0, dtype=float), np.asarray(p0, dtype=float)
    if w0.ndim != 1 or w0.shape != p0.shape:
        raise SymflowError(f"got w0 of shape {w0.shape} and p0 of shape {p0.shape}; give one "
                           "value per mode in two 1-D arrays of equal length")
    lr, n_steps = check_lr(lr), check_steps(n_steps)
    save_every = check_steps(save_every, "save_every", 1)
    if n_steps % save_every:
        raise SymflowError(f"got n_steps={n_steps}, save_every={save_every}; n_steps must be "
                           "a multiple of save_every")
    if ema is not None and not (0 <= ema < 1 and stop_gradient):
        raise SymflowError(f"got ema={ema!r}; an EMA teacher needs 0 <= ema < 1 and "
                           "stop_gradient=True")
    d = w0.size
    Q = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))[0]
    pred0 = p0 if predictor else np.ones(d)
    W = jnp.asarray(Q @ np.diag(w0) @ Q.T)
    state = (W, jnp.asarray(Q @ np.diag(pred0) @ Q.T), W)
    run = _runner(bool(stop_gradient), bool(predictor), ema is not None, save_every)
    tau = 0.0 if ema is None else float(ema)
    ws, ps = [w0], [pred0]
    for _ in range(n_steps // save_every):
        state, wm, pm = run(state, sigma2, eta, lr, tau, jnp.asarray(Q))
        ws.append(np.asarray(wm))
        ps.append(np.asarray(pm))
    times = lr * save_every * np.arange(len(ws))
    out = SSLRun(times, np.array(ws), np.array(ps))
    if flow is not None:
        hyper = {"sigma2": sigma2, "eta": eta, **({"tau": ema} if ema is not None else {})}
        cols = []
        for i in range(d):
            x0 = [w0[i], p0[i]] if flow.predictor else [w0[i]]
            _, ys = solve_flow(flow.equation, x0, lr, None, order=order, hyper=hyper, ts=times)
            cols.append(np.asarray(ys))
        out.w_flow = np.stack([c[:, 0] for c in cols], axis=1)
        out.p_flow = np.stack([c[:, 1] for c in cols], axis=1) if flow.predictor else None
    return out
