r"""Benchmark: networks checked per second for the input- vs parameter-gradient inequality.

What is measured
----------------
For MLPs of depth 4 and width 64 (``shape = (64, 64, 64, 64, 64)``, tanh), one "check" is
everything the numeric study needs for one network and input: :math:`\nabla_x f`,
:math:`\nabla_\theta f`, the Jacobians :math:`\nabla_x h^{(t)}`, and six matrix norms of
:math:`W^{(t)}` and :math:`\nabla_x h^{(t)}` (one SVD each), giving lhs and
rhs of the inequality for every norm (without the per-step diagnostics). Four ways to
run it side by side, in one process, on the same networks:

* **engine**: ``check_penalty_batch`` = ``jit(vmap(...))`` over a batch of ``--batch``
  networks (compiled once; compile time reported separately, not in the rate);
* **engine, two threads**: the same compiled function on the two halves of the batch from
  two Python threads (JAX releases the GIL), i.e. on two CPU cores;
* **baseline (loop, eager)**: :func:`_eager` below, the straightforward per-network
  code: a Python loop over layers, eager ``jax.grad``/``jax.jacfwd``, numpy SVDs, called
  once per network in a Python loop (it is written independently of the engine, so the
  agreement of the two is also a cross-check);
* **reference (loop, jit)**: ``check_penalty``, the engine's function jit-compiled for one
  network, called once per network in a Python loop (what vmap adds on top of jit).

Rates are networks per second. The machine may be shared, so the ways are timed in
``--repeats`` interleaved rounds (each way once per round, the eager loop over ``--loop``
networks, after an untimed warm-up) and the best round of each counts.
The engine's values are checked against the eager loop's (relative difference below
1e-9). Target: engine / eager loop >= 50x.

Where the time goes is printed too: the engine's singular values alone (its seven
``64 x 64`` SVDs per network, timed without the autodiff) and the loop's numpy SVDs alone.
The singular values cannot be skipped: the nuclear norm needs all of them. Cheaper routes
were measured and rejected: the square roots of the Gram matrix's eigenvalues lose the
small singular values to rounding (on rank-deficient 64 x 64 matrices, common in the study,
a zero singular value comes back as up to 2e-8 of the largest and the nuclear norm is off
by up to 2e-7), and JAX's ``eigvalsh`` computes eigenvectors on CPU (slower than the SVD:
640 against 340 us per matrix); a batched (vmapped) SVD is no faster
than one after another, and XLA runs the SVD loop on one core. So the SVD time bounds the
engine's rate from above whatever the autodiff costs; it is printed as a ceiling.

Run:  python benchmarks/bench_penalty.py [--batch 512] [--loop 8] [--repeats 3]
"""

import argparse
import os
import time
from concurrent.futures import ThreadPoolExecutor

import jax
import jax.numpy as jnp
import numpy as np

from solvers._claims._penalty_check import (
    _forward,
    _norms_of,
    _pad,
    check_penalty,
    check_penalty_batch,
    sample_networks,
)

SHAPE = (64, 64, 64, 64, 64)
TARGET = 50.0


def _one(params, x, u, t):
    return ([(W[t], b[t]) for W, b in params], x[t], u[t])


def _norms(A):
    """The six norms of NORMS (spectral, Frobenius, nuclear, max, l1, linf) with numpy."""
    sv = np.linalg.svd(A, compute_uv=False)
    a = np.abs(A)
    return np.array([sv[0], np.sqrt(np.sum(A**2)), sv.sum(), a.max(), a.sum(0).max(),
                     a.sum(1).max()])


def _eager(params, x, u):
    """The straightforward check of one tanh network: a Python loop over layers, eager
    ``jax.grad`` and ``jax.jacfwd``, numpy SVDs (no jit, no vmap, no padding)."""
    def hidden(ps, xx):
        hs = [xx]
        for W, b in ps:
            hs.append(jnp.tanh(W @ hs[-1] + b))
        return hs

    def f(ps, xx):
        return u @ hidden(ps, xx)[-1]

    gtheta, gx = jax.grad(f, argnums=(0, 1))(params, x)
    rhs = sum(float(jnp.sum(gw**2) + jnp.sum(gb**2)) for gw, gb in gtheta)
    hs = hidden(params, x)
    lhs = np.zeros(6)
    for t, (W, _) in enumerate(params):
        J = np.asarray(jax.jacfwd(lambda xx, t=t: hidden(params, xx)[t])(x))
        denom = _norms(np.asarray(W)) ** 2 * _norms(J) ** 2
        lhs += float(jnp.sum(gx**2)) * (1 + float(jnp.sum(hs[t] ** 2))) / denom
    return lhs, rhs


def _seconds(fn):
    """Wall time of one call of ``fn`` (results blocked on)."""
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - t0


def _engine_svd(params, x, u):
    """A function running the engine's singular-value work alone: the six norms of the
    4 W and 3 J of every network (the Jacobians precomputed by the engine's autodiff)."""
    Ws, bs, masks, active, xp, up = _pad(params, x, u, list(SHAPE))
    J = jax.jit(jax.vmap(_forward, in_axes=(0,) * 6 + (None,)))(
        Ws, bs, masks, active, xp, up, 0)[-1]
    norms = jax.jit(lambda Ws, J: (_norms_of(Ws), _norms_of(J)))
    jax.block_until_ready(norms(Ws, J))  # compile
    return lambda: norms(Ws, J)


def _loop_svd(params, x, u, loop):
    """A function running the eager loop's numpy SVDs alone (8 per network: W^(1..4),
    J^(1..4), the Jacobians precomputed in numpy)."""
    mats = []
    for t in range(loop):
        ps, xx, _ = _one(params, x, u, t)
        hs = [xx]
        for W, b in ps:
            hs.append(np.tanh(W @ hs[-1] + b))
        Js = [np.eye(len(xx))]
        for (W, _), hh in zip(ps[:-1], hs[1:]):
            Js.append((1 - hh**2)[:, None] * (W @ Js[-1]))
        mats += [W for W, _ in ps] + Js
    return lambda: [np.linalg.svd(A, compute_uv=False) for A in mats]


def main(batch, loop, repeats):
    params, x, u = sample_networks(0, SHAPE, batch)
    act = "tanh"
    half = batch // 2
    halves = [([(W[s], b[s]) for W, b in params], x[s], u[s])
              for s in (slice(0, half), slice(half, 2 * half))]
    nets = [_one(params, x, u, t) for t in range(batch)]

    t0 = time.perf_counter()
    lhs, rhs = jax.block_until_ready(check_penalty_batch(params, x, u, act))
    compile_s = time.perf_counter() - t0
    check_penalty_batch(*halves[0], act)  # compile for the half batch
    check_penalty(*nets[0], act)  # compile for one network
    eager = [_eager(*_one(params, x, u, t)) for t in range(loop + 1)]  # warm-up, values
    engine_svd, loop_svd = _engine_svd(params, x, u), _loop_svd(params, x, u, loop)

    # Interleaved rounds (the machine may be shared): every way is timed once per round,
    # so all of them see the same load; the best round of each counts.
    with ThreadPoolExecutor(2) as pool:
        ways = {
            "engine": (batch, lambda: check_penalty_batch(params, x, u, act)),
            "threads": (2 * half, lambda: list(pool.map(
                lambda net: jax.block_until_ready(check_penalty_batch(*net, act)), halves))),
            "eager": (loop, lambda: [_eager(*_one(params, x, u, t)) for t in range(loop)]),
            "jit": (batch, lambda: [check_penalty(p, xx, uu, act) for p, xx, uu in nets]),
            "engine_svd": (batch, engine_svd),
            "loop_svd": (loop, loop_svd),
        }
        best = {k: np.inf for k in ways}
        for _ in range(repeats):
            for k, (n, fn) in ways.items():
                best[k] = min(best[k], _seconds(fn) / n)
    rate = {k: 1 / v for k, v in best.items()}

    lhs, rhs = np.asarray(lhs), np.asarray(rhs)
    worst = 0.0
    for t, (e_lhs, e_rhs) in enumerate(eager[:loop]):
        ref = np.concatenate([e_lhs, [e_rhs]])
        got = np.concatenate([lhs[t], [rhs[t]]])
        worst = max(worst, float(np.max(np.abs(got - ref) / np.abs(ref))))

    cores = os.cpu_count()
    print(f"networks of shape {SHAPE} (depth 4, width 64), tanh; CPU cores visible: "
          f"{cores}; jax {jax.__version__} on {jax.devices()[0].platform}; best of {repeats} "
          "interleaved rounds")
    print(f"  engine  jit(vmap), batch {batch:5d}: {rate['engine']:10.1f} networks/s   "
          f"(compile {compile_s:.2f} s, not counted)")
    print(f"  engine  2 threads x {half:5d}:    {rate['threads']:10.1f} networks/s")
    print(f"  loop    eager, {loop:5d} networks:  {rate['eager']:10.2f} networks/s")
    print(f"  loop    jit, no vmap, {batch:5d}:    {rate['jit']:10.1f} networks/s")
    for name, key in (("engine", "engine"), ("engine, 2 threads", "threads")):
        ratio = rate[key] / rate["eager"]
        print(f"  {name} / eager loop = {ratio:6.1f}x   (target >= {TARGET:.0f}x: "
              f"{'met' if ratio >= TARGET else 'NOT met'})")
    print(f"  engine / jit loop = {rate['engine'] / rate['jit']:.2f}x")
    print(f"  largest relative difference engine vs eager loop: {worst:.2e}")
    print(f"  time per network: engine {1e3 * best['engine']:.2f} ms, of which its 7 SVDs "
          f"{1e3 * best['engine_svd']:.2f} ms; eager loop {1e3 * best['eager']:.1f} ms, of "
          f"which its 8 numpy SVDs {1e3 * best['loop_svd']:.2f} ms")
    print(f"  ceiling set by the SVDs alone (autodiff for free): {rate['engine_svd']:.0f} "
          f"networks/s on one core = {rate['engine_svd'] / rate['eager']:.0f}x the eager "
          f"loop; {cores} cores: {cores * rate['engine_svd'] / rate['eager']:.0f}x")
    return rate["engine"] / rate["eager"]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--loop", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    main(args.batch, args.loop, args.repeats)
