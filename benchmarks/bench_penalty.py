r"""Benchmark: networks checked per second for the input- vs parameter-gradient inequality.

What is measured
----------------
For MLPs of depth 4 and width 64 (``shape = (64, 64, 64, 64, 64)``, tanh), one "check" is
everything the numeric study needs for one network and input: :math:`\nabla_x f`,
:math:`\nabla_\theta f`, the Jacobians :math:`\nabla_x h^{(t)}`, and six matrix norms of
:math:`W^{(t)}` and :math:`\nabla_x h^{(t)}` (one SVD each), giving lhs and
rhs of the inequality for every norm (without the per-step diagnostics). Three ways to
run it side by side, in one process, on the same networks:

* **engine**: ``check_penalty_batch`` = ``jit(vmap(...))`` over a batch of ``--batch``
  networks (compiled once; compile time reported separately, not in the rate);
* **baseline (loop, eager)**: :func:`_eager` below, the straightforward per-network
  code: a Python loop over layers, eager ``jax.grad``/``jax.jacfwd``, numpy SVDs, called
  once per network in a Python loop (it is written independently of the engine, so the
  agreement of the two is also a cross-check);
* **reference (loop, jit)**: ``check_penalty``, the engine's function jit-compiled for one
  network, called once per network in a Python loop (what vmap adds on top of jit).

Rates are networks per second (best of ``--repeats`` runs for the engine and the jitted
loop; the eager loop is timed over ``--loop`` networks after one untimed warm-up network).
The engine's values are checked against the eager loop's (relative difference below
1e-9). Target: engine / eager loop >= 50x.

Run:  python benchmarks/bench_penalty.py [--batch 512] [--loop 8] [--repeats 3]
"""

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

import solvers  # noqa: F401  (float64)
from solvers._penalty_check import check_penalty, check_penalty_batch, sample_networks

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


def _eager(params, x, u, act):
    """The straightforward check of one network: a Python loop over layers, eager
    ``jax.grad`` and ``jax.jacfwd``, numpy SVDs (no jit, no vmap, no padding)."""
    g = jax.nn.tanh if act == "tanh" else None

    def hidden(ps, xx):
        hs = [xx]
        for W, b in ps:
            hs.append(g(W @ hs[-1] + b))
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


def main(batch, loop, repeats):
    params, x, u = sample_networks(0, SHAPE, batch)
    act = "tanh"

    t0 = time.perf_counter()
    lhs, rhs = check_penalty_batch(params, x, u, act)
    jax.block_until_ready((lhs, rhs))
    compile_s = time.perf_counter() - t0
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(check_penalty_batch(params, x, u, act))
        best = min(best, time.perf_counter() - t0)
    rate_engine = batch / best

    _eager(*_one(params, x, u, loop), act)  # warm-up: JAX caches per-op kernels
    t0 = time.perf_counter()
    eager = [_eager(*_one(params, x, u, t), act) for t in range(loop)]
    rate_eager = loop / (time.perf_counter() - t0)

    nets = [_one(params, x, u, t) for t in range(batch)]
    check_penalty(*nets[0], act)  # compile
    best_j = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        for p, xx, uu in nets:
            check_penalty(p, xx, uu, act)
        best_j = min(best_j, time.perf_counter() - t0)
    rate_jit = batch / best_j

    lhs = np.asarray(lhs)
    rhs = np.asarray(rhs)
    worst = 0.0
    for t, (e_lhs, e_rhs) in enumerate(eager):
        ref = np.concatenate([e_lhs, [e_rhs]])
        got = np.concatenate([lhs[t], [rhs[t]]])
        worst = max(worst, float(np.max(np.abs(got - ref) / np.abs(ref))))

    print(f"networks of shape {SHAPE} (depth 4, width 64), tanh; CPU cores visible: "
          f"{os.cpu_count()}; jax {jax.__version__} on {jax.devices()[0].platform}")
    print(f"  engine  jit(vmap), batch {batch:5d}: {rate_engine:10.1f} networks/s   "
          f"(compile {compile_s:.2f} s, not counted)")
    print(f"  loop    eager, {loop:5d} networks:  {rate_eager:10.2f} networks/s")
    print(f"  loop    jit, no vmap, {batch:5d}:    {rate_jit:10.1f} networks/s")
    print(f"  engine / eager loop = {rate_engine / rate_eager:8.1f}x   (target >= {TARGET:.0f}x: "
          f"{'met' if rate_engine / rate_eager >= TARGET else 'NOT met'})")
    print(f"  engine / jit loop   = {rate_engine / rate_jit:8.2f}x")
    print(f"  largest relative difference engine vs eager loop: {worst:.2e}")
    return rate_engine / rate_eager


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--loop", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    main(args.batch, args.loop, args.repeats)
