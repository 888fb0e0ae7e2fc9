"""Cost of coordinate-free modified fields on MLPs: nested jvp vs one gradient vs the dense Hessian.

For tanh MLPs with about 10^3, 10^4 and 10^5 parameters (generated regression data, full
batch) this times, side by side in one process:

* ``grad``: one gradient ``jax.grad(loss)`` (the unit);
* the order-1 and order-2 fields of gradient descent derived coordinate-free by the engine
  (``-g - h/2 H g`` and ``... - h^2 (H^2 g/3 + T[g, g]/12)``) and evaluated by
  ``sv.network_field`` (nested jvp, never forming a Hessian);
* the same fields through the dense Hessian formed with ``jax.hessian`` (and its jvp along
  ``g`` for ``T[g, g]``), where it fits in memory.

Times are the minimum over interleaved repeats (robust to a shared machine); the FLOP
ratios from XLA's cost analysis are printed too (independent of load). Targets: order-2
field at most 6x a gradient at every size; at 10^4 parameters at least 20x faster than
the dense path.

Run:  python benchmarks/bench_autodiff.py [--repeats 30] [--dense-max 20000]
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

import solvers as sv
import symflow as sf

SIZES = {"1e3": [8, 28, 28, 1], "1e4": [8, 96, 96, 1], "1e5": [8, 310, 310, 1]}


def min_times(fns, repeats):
    """Minimum wall time of each ``(fn, args)``, calls interleaved."""
    for fn, args in fns:
        jax.block_until_ready(fn(*args))
    best = [np.inf] * len(fns)
    for _ in range(repeats):
        for i, (fn, args) in enumerate(fns):
            t = time.perf_counter()
            jax.block_until_ready(fn(*args))
            best[i] = min(best[i], time.perf_counter() - t)
    return np.array(best)


def flops(fn, *args):
    cost = jax.jit(fn).lower(*args).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return float(cost.get("flops", np.nan))


def dense_fields(loss, params, batch, lr):
    """Order-1 and order-2 GD fields through the dense Hessian (and its derivative along g)."""
    flat, unravel = ravel_pytree(params)
    f = lambda p: loss(unravel(p), batch)  # noqa: E731
    hess = jax.hessian(f)

    def order1(p):
        g = jax.grad(f)(p)
        H = hess(p)
        return -g - lr / 2 * H @ g

    def order2(p):
        g = jax.grad(f)(p)
        H, dH = jax.jvp(hess, (p,), (g,))   # dH = T[g, .]
        Hg = H @ g
        return -g - lr / 2 * Hg - lr**2 * (H @ Hg / 3 + dH @ g / 12)

    return flat, jax.jit(order1), jax.jit(order2)


def main(repeats, dense_max):
    lr = 0.05
    batch = sv.toy_regression(128, dim=8, seed=0)
    loss = sv.mse_loss
    fields = {p: sv.network_field(sf.modified_equation(sf.GD(), order=p), loss) for p in (1, 2)}
    print("coordinate-free GD field (sf.modified_equation(sf.GD(), order=2)):")
    print("  " + str(fields[2].series).replace("\n", "\n  "))
    print(f"batch: {len(batch[0])} samples, 8 inputs; lr = {lr}; min of {repeats} interleaved "
          "repeats; CPU, shared machine\n")
    head = (f"{'params':>8} {'grad':>9} | {'order 1':>7} {'order 2':>7}  x grad (time)"
            f" | {'order 1':>7} {'order 2':>7}  x grad (FLOPs) | dense o1 / o2 time"
            f" | dense/autodiff o1, o2")
    print(head)
    rows = []
    for name, sizes in SIZES.items():
        params = sv.mlp_init(sizes, seed=0)
        n = sv.count_params(params)
        grad = jax.jit(jax.grad(loss))
        evals = [jax.jit(fields[p]._evaluate) for p in (1, 2)]
        weights = [fields[p].weights(lr) for p in (1, 2)]
        fns = [(grad, (params, batch))] + [(e, (params, batch, w)) for e, w in zip(evals, weights)]
        dense_ok = n <= dense_max
        if dense_ok:
            flat, d1, d2 = dense_fields(loss, params, batch, lr)
            auto2 = ravel_pytree(evals[1](params, batch, weights[1]))[0]
            rel = float(jnp.linalg.norm(d2(flat) - auto2) / jnp.linalg.norm(auto2))
        t = min_times(fns, repeats)
        fl = [flops(jax.grad(loss), params, batch)] + \
             [flops(fields[p]._evaluate, params, batch, w) for p, w in zip((1, 2), weights)]
        line = (f"{n:8d} {t[0] * 1e3:7.3f}ms | {t[1] / t[0]:7.2f} {t[2] / t[0]:7.2f}"
                f"               | {fl[1] / fl[0]:7.2f} {fl[2] / fl[0]:7.2f}"
                f"                 |")
        if dense_ok:
            td = min_times([(d1, (flat,)), (d2, (flat,))], 3 if n < 5000 else 1)
            line += (f" {td[0]:7.3f}s {td[1]:7.3f}s | {td[0] / t[1]:9.0f} {td[1] / t[2]:9.0f}"
                     f"   (dense vs autodiff order 2: rel. diff {rel:.1e})")
            rows.append((n, t[2] / t[0], fl[2] / fl[0], td[1] / t[2]))
        else:
            gib = n * n * 8 / 2**30
            line += f" dense Hessian needs {gib:.0f} GiB: skipped"
            rows.append((n, t[2] / t[0], fl[2] / fl[0], None))
        print(line, flush=True)
    print("\ntargets:")
    for n, ratio, fratio, speedup in rows:
        ok = "met" if ratio <= 6 else "MISSED"
        print(f"  {n:6d} params: order-2 field = {ratio:.2f}x a gradient in time "
              f"({fratio:.2f}x in FLOPs), target <= 6x: {ok}")
    n, _, _, speedup = min(rows, key=lambda r: abs(np.log10(r[0]) - 4))
    if speedup is not None:
        print(f"  {n:6d} params: {speedup:.0f}x faster than the dense Hessian, target >= 20x: "
              f"{'met' if speedup >= 20 else 'MISSED'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--dense-max", type=int, default=20000,
                        help="largest parameter count for the dense Hessian baseline")
    args = parser.parse_args()
    main(args.repeats, args.dense_max)
