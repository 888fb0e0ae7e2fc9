"""SDE ensembles: the engine against hand-written baselines, side by side in one run.

Part A (speed). 10,000 paths, d = 2, 100 Euler–Maruyama steps to T = 1, float64, diagonal
state-dependent noise

    dX = (-X + X_rev / 2) dt + diag(sqrt(1 + X^2) / 2) dW,   X_rev = (X_2, X_1),

timed after a warm-up that compiles, the methods interleaved round-robin so that load on a
shared machine hits all alike; the median and the minimum (the least disturbed run) of the
repeats are printed with the load average. Methods:

* ``engine``:   ``solvers.simulate_sde`` (SymPy SDE -> compiled fixed-step ensemble) on one
  device;
* ``engine xK``: the same, its paths sharded over K CPU devices, when the process has
  several (``XLA_FLAGS=--xla_force_host_platform_device_count=2``); the paths are the same;
* ``numpy``:    a hand-written NumPy loop over the steps (vectorised over paths);
* ``lax.scan``: a hand-written JAX ``lax.scan`` under ``jit``;
* ``torchsde``: ``torchsde.sdeint(method="euler")`` with torch's default threads and with one
  thread (install it for the benchmark only: ``pip install torch==2.13.0 torchsde``;
  skipped with a message when absent). Torch's threads spin when the machine is loaded, so
  the faster of the two is the baseline.

Targets (on medians): engine within 1.5x of the NumPy loop, and at least 5x faster than
torchsde. The sample means are printed next to the exact mean 0.5 e^{-1.5} (+-), to show
that all of them simulate the same SDE.

Part B (memory). 10^6 paths, d = 10, 1000 Euler steps, streaming mean and second moment
at 10 save times, in a fresh process; its peak resident memory must stay under 4 GB.

Run:  python benchmarks/bench_sde.py [--repeats 5] [--skip-stream] [--stream-paths N]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

N_PATHS, DIM, N_STEPS, T = 10_000, 2, 100, 1.0
DT = T / N_STEPS
X0 = np.array([0.5, -0.5])


def symbolic_sde(d):
    import sympy as sp

    import symflow as sf

    xs = sp.symbols(f"x0:{d}")
    drift = [-xs[i] + xs[d - 1 - i] / 2 for i in range(d)] if d == 2 else \
        [-xs[i] + xs[(i + 1) % d] / 2 for i in range(d)]
    sigma = sp.diag(*[sp.sqrt(1 + q**2) / 2 for q in xs])
    return sf.SDE(drift=drift, diffusion=sigma, params=xs)


def engine(devices=1):
    import jax

    import solvers as sv

    sde = symbolic_sde(DIM)
    key = jax.random.key(0)
    return lambda: sv.simulate_sde(sde, X0, T, N_PATHS, key, dt=DT, devices=devices).final()


def numpy_loop():
    rng = np.random.default_rng(0)
    sq = np.sqrt(DT)

    def run():
        x = np.empty((DIM, N_PATHS))
        x[:] = X0[:, None]
        for _ in range(N_STEPS):
            drift = -x + x[::-1] / 2
            sigma = np.sqrt(1 + x * x) / 2
            x = x + drift * DT + sigma * (sq * rng.standard_normal((DIM, N_PATHS)))
        return x.T

    return run


def lax_scan():
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)

    @jax.jit
    def run_jit(key):
        def step(x, k):
            drift = -x + x[::-1] / 2
            sigma = jnp.sqrt(1 + x * x) / 2
            dw = jax.random.normal(k, x.shape, dtype=jnp.float64) * jnp.sqrt(DT)
            return x + drift * DT + sigma * dw, None

        x0 = jnp.broadcast_to(jnp.asarray(X0)[:, None], (DIM, N_PATHS))
        x, _ = jax.lax.scan(step, x0, jax.random.split(key, N_STEPS))
        return x.T

    key = jax.random.key(1)
    return lambda: np.asarray(run_jit(key))


def torchsde_euler(threads=None):
    try:
        import torch
        import torchsde
    except ImportError:
        return None
    threads = threads or torch.get_num_threads()
    torch.set_default_dtype(torch.float64)

    class Diagonal(torch.nn.Module):
        noise_type, sde_type = "diagonal", "ito"

        def f(self, t, y):
            return -y + y.flip(1) / 2

        def g(self, t, y):
            return torch.sqrt(1 + y * y) / 2

    sde = Diagonal()
    y0 = torch.tensor(X0).repeat(N_PATHS, 1)
    ts = torch.tensor([0.0, T])

    def run():
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            with torch.no_grad():
                return torchsde.sdeint(sde, y0, ts, method="euler", dt=DT)[-1].numpy()
        finally:
            torch.set_num_threads(previous)

    return run


def interleaved(runs: dict, repeats: int):
    """First-call time, warm times and last output per method, timed round-robin (so that a
    change of load on a shared machine hits every method alike)."""
    first, times, outs = {}, {name: [] for name in runs}, {}
    for name, fn in runs.items():
        t0 = time.perf_counter()
        outs[name] = fn()
        first[name] = time.perf_counter() - t0
    for _ in range(repeats):
        for name, fn in runs.items():
            t0 = time.perf_counter()
            outs[name] = fn()
            times[name].append(time.perf_counter() - t0)
    return first, times, outs


def stream_part(n_paths):
    """Part B body (run in a fresh process): prints a JSON line."""
    import jax

    import solvers as sv

    sde = symbolic_sde(10)
    t0 = time.perf_counter()
    sol = sv.simulate_sde(sde, np.full(10, 0.5), 1.0, n_paths, jax.random.key(0), dt=1e-3,
                          save_at=np.linspace(0.1, 1.0, 10), stats=["second_moment"],
                          progress=True)
    sec = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    print(json.dumps({"seconds": sec, "peak_rss_gib": peak, "chunks": sol.info["chunks"],
                      "mean_T": sol.stats["mean"][-1][:3].tolist(),
                      "finite_paths": float(sol.stats["count"][-1])}))


def main(repeats, skip_stream, stream_paths):
    import jax

    print(f"Part A: {N_PATHS} paths, d={DIM}, {N_STEPS} Euler steps, float64, diagonal "
          f"state-dependent noise ({repeats} warm runs, interleaved; load average before "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    runs = {"engine": engine()}
    n_dev = len(jax.devices())
    if n_dev > 1:
        runs[f"engine x{n_dev}"] = engine(devices=None)
    runs.update({"numpy": numpy_loop(), "lax.scan": lax_scan()})
    torch_run = torchsde_euler()
    if torch_run is None:
        print("  torchsde: not installed (pip install torch==2.13.0 torchsde); skipped")
    else:
        runs["torchsde"] = torch_run
        runs["torchsde 1thr"] = torchsde_euler(threads=1)
    first, times, outs = interleaved(runs, repeats)
    sec = {k: float(np.median(v)) for k, v in times.items()}
    print(f"  engine first call (SymPy -> JAX compile + run): {first['engine']:.2f} s; load "
          f"average after {os.getloadavg()[0]:.1f}")
    base = sec["engine"]
    print(f"  {'method':13s} {'median s':>9s} {'min s':>8s} {'x engine':>9s}   sample mean "
          f"at T (exact {0.5 * np.exp(-1.5):.4f}, {-0.5 * np.exp(-1.5):.4f})")
    for name in runs:
        print(f"  {name:13s} {sec[name]:9.4f} {min(times[name]):8.4f} {sec[name] / base:9.2f}"
              f"   {np.round(outs[name].mean(axis=0), 4)}")
    ratio = base / sec["numpy"]
    print(f"  target engine <= 1.5 x numpy: {ratio:.2f} x -> {'met' if ratio <= 1.5 else 'NOT met'}")
    if "torchsde" in runs:
        speed = min(sec["torchsde"], sec["torchsde 1thr"]) / base
        print(f"  target engine >= 5 x faster than torchsde (its faster setting): {speed:.1f} x "
              f"-> {'met' if speed >= 5 else 'NOT met'}")
    if skip_stream:
        return
    print(f"\nPart B: {stream_paths:.0e} paths, d=10, 1000 Euler steps, streaming statistics "
          "(fresh process)")
    out = subprocess.run([sys.executable, __file__, "--stream-body", str(stream_paths)],
                         capture_output=True, text=True, check=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"  {res['seconds']:.1f} s, {res['chunks']} chunks, peak RSS "
          f"{res['peak_rss_gib']:.2f} GiB ({res['finite_paths']:.0f} finite paths; "
          f"E X_T[:3] = {np.round(res['mean_T'], 4)})")
    print(f"  target peak < 4 GB: {'met' if res['peak_rss_gib'] * 2**30 < 4e9 else 'NOT met'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-stream", action="store_true")
    parser.add_argument("--stream-paths", type=int, default=10**6)
    parser.add_argument("--stream-body", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stream_body:
        stream_part(args.stream_body)
    else:
        main(args.repeats, args.skip_stream, args.stream_paths)
