"""The network SME against real minibatch SGD: cost per step, paths per second, memory.

Baselines, side by side in one run (tanh MLPs [8, w, w, 1], N = 256 generated samples,
minibatch B = 32 without replacement, 8 paths, float64, CPU):

* ``sgd``      -- one step of real minibatch SGD (``sv.run_sgd``), the baseline;
* ``sde1``     -- one Euler step of the order-1 SME: the drift on all N samples and the
  noise :math:`\\sqrt{hc}\\,Gz` by one more reverse pass over the N samples;
* ``sde1 S=B`` -- the same with the diffusion factor from S = 32 fresh samples per step;
* ``sde2``     -- one Heun step of the order-2 SME (two order-2 drifts, one noise pass).

Momentum and Adam (``--memory``, at 10^3 and 10^4 parameters, the same problem), against
the baseline ``hb sgd``, one step of real heavy-ball minibatch SGD (beta = 0.9):

* ``hb sde``   -- one Euler step of the SME of heavy ball with fixed beta (on theta);
* ``slow sde`` -- one Euler step of the SME of heavy ball with 1 - beta = sqrt(h) (on
  (theta, u));
* ``adam sde`` -- one Euler step of Adam's SME in Malladi et al.'s scaling (on (theta, m,
  u): also the per-sample gradients for diag Sigma_1, N x d per path);
* ``adam est`` -- the same with diag Sigma_1 estimated from the step's noise pass
  (``diag_estimate=True``).

(10 and 60 steps per difference here, the runs taking turns, the median of 5 rounds: the
minimum of a difference is fragile on a loaded machine.)

Per-step times are differences of two runs (10 and 30 steps) after a warm-up, so
compilation and fixed costs cancel. Then the paths per second of the order-1 SME at 10^4
parameters (64 paths, 100 steps), and the peak resident memory of that run, measured in a
fresh process (``ru_maxrss``) against the same process before the run. Last, the error the
fresh-subset factor adds (mean and spread of the loss against the exact factor).

    python benchmarks/bench_network_sde.py [--quick] [--memory]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time

import jax.numpy as jnp
import numpy as np
import sympy as sp

import solvers as sv
import symflow as sf

N, B, PATHS = 256, 32, 8
WIDTHS = {"1e3": 27, "1e4": 95, "1e5": 311}


def problem(width, n=N, seed=0):
    params = sv.mlp_init([8, width, width, 1], seed=seed)
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, size=(n, 8))
    y = np.sin(x @ rng.normal(size=(8, 1)))
    return params, (jnp.asarray(x), jnp.asarray(y))


def per_step(run, reps=3, steps=(10, 30), stat=min):
    """Seconds per step: ``stat`` (min) over reps of (t(30 steps) - t(10 steps)) / 20, after a
    warm-up of both lengths."""
    few, many = steps
    run(few)
    run(many)
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        run(few)
        t1 = time.perf_counter()
        run(many)
        t2 = time.perf_counter()
        out.append(((t2 - t1) - (t1 - t0)) / (many - few))
    return stat(out)


def step_costs(width, reps):
    params, data = problem(width)
    opt = sf.SGD(batch_size=B, replacement=False)
    kw = {"lr": 0.05, "n_paths": PATHS, "key": 0, "progress": False}
    sme1 = sv.network_sme(opt, sv.mse_loss, params, data, order=1)
    sub1 = sv.network_sme(opt, sv.mse_loss, params, data, order=1, noise_samples=B)
    sme2 = sv.network_sme(opt, sv.mse_loss, params, data, order=2)
    runs = {
        "sgd": lambda n: sv.run_sgd(opt, sv.mse_loss, params, data, n_steps=n, **kw),
        "sde1": lambda n: sv.simulate_network_sde(sme1, n_steps=n, **kw),
        "sde1 S=B": lambda n: sv.simulate_network_sde(sub1, n_steps=n, **kw),
        "sde2": lambda n: sv.simulate_network_sde(sme2, n_steps=n, **kw),
    }
    return sv.count_params(params), {k: per_step(r, reps) for k, r in runs.items()}


def memory_costs(width, reps):
    """Seconds per step of the momentum and Adam SMEs and of real heavy-ball SGD."""
    params, data = problem(width)
    kw = {"lr": 0.05, "n_paths": PATHS, "key": 0, "progress": False}
    hb = sf.HeavyBall(beta=0.9)
    slow = sf.HeavyBall(beta=1 - sp.sqrt(sf.h))
    adam = sf.Adam(beta1=1 - sf.h**2, beta2=1 - sf.h**2, eps=sp.Rational(1, 10) / sf.h,
                   bias_correction=False)
    smes = {name: sv.network_sme(opt, sv.mse_loss, params, data, batch_size=B,
                                 replacement=False)
            for name, opt in (("hb sde", hb), ("slow sde", slow), ("adam sde", adam))}
    smes["adam est"] = sv.network_sme(adam, sv.mse_loss, params, data, batch_size=B,
                                      replacement=False, diag_estimate=True)
    runs = {"hb sgd": lambda n: sv.run_sgd(hb, sv.mse_loss, params, data, batch_size=B,
                                           replacement=False, n_steps=n, **kw)}
    for name, sme in smes.items():
        runs[name] = lambda n, sme=sme: sv.simulate_network_sde(sme, n_steps=n, **kw)
    return sv.count_params(params), interleaved(runs, reps, (10, 60))


def interleaved(runs, reps, steps):
    """Seconds per step of each run: the median over ``reps`` rounds of (t(many) - t(few)) /
    (many - few), the runs taking turns within each round so that they share the load."""
    few, many = steps
    for run in runs.values():
        run(few)
        run(many)
    out = {k: [] for k in runs}
    for _ in range(reps):
        for k, run in runs.items():
            t0 = time.perf_counter()
            run(few)
            t1 = time.perf_counter()
            run(many)
            out[k].append(((time.perf_counter() - t1) - (t1 - t0)) / (many - few))
    return {k: float(np.median(v)) for k, v in out.items()}


MEMORY = """
import resource, time, numpy as np, jax.numpy as jnp, symflow as sf, solvers as sv
import sys; sys.path.insert(0, {here!r})
from bench_network_sde import problem, N, B
params, data = problem(95)
sme = sv.network_sme(sf.SGD(batch_size=B, replacement=False), sv.mse_loss, params, data)
sv.simulate_network_sde(sme, lr=0.05, n_steps=1, n_paths=64, key=0, progress=False)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
ens = sv.simulate_network_sde(sme, lr=0.05, n_steps=100, n_paths=64, key=1, progress=False,
                              observe=("loss",))
sec = time.perf_counter() - t0
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(f"RESULT {{sec}} {{before}} {{after}}")
"""


def memory_run():
    here = os.path.dirname(os.path.abspath(__file__))
    out = subprocess.run([sys.executable, "-c", MEMORY.format(here=here)], capture_output=True,
                         text=True, timeout=1200, check=False)
    line = [s for s in out.stdout.splitlines() if s.startswith("RESULT")]
    if not line:
        raise RuntimeError(out.stderr[-2000:])
    sec, before, after = map(float, line[0].split()[1:])
    return sec, before / 2**20, after / 2**20   # ru_maxrss is in KiB on Linux: GiB


def subset_error(n_paths=2**14):
    """What the fresh-subset factor adds: the loss of the order-1 SME with the factor from S
    of N = 64 samples per step, against the exact factor (S = N), on a 2-4-1 tanh MLP."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, size=(64, 2))
    data = (jnp.asarray(x), jnp.asarray(2 * np.sin(2 * x[:, :1]) + 0.3 * rng.normal(size=(64, 1))))
    params = sv.mlp_init([2, 4, 1], seed=0)
    out = {}
    for S in (64, 16, 4, 2):
        net = sv.network_sme(sf.SGD(batch_size=4), sv.mse_loss, params, data, noise_samples=S)
        ens = sv.simulate_network_sde(net, lr=0.1, n_steps=20, n_paths=n_paths, key=5,
                                      progress=False)
        out[S] = (ens.mean[-1, 0], ens.std[-1, 0])
    se = out[64][1] / np.sqrt(n_paths)
    print(f"fresh-subset factor (N=64, B=4, h=0.1, t=2, {n_paths} paths; Monte Carlo error of "
          f"a mean {se:.1e}):")
    for S, (m, sd) in out.items():
        print(f"  S={S:>2}: E L = {m:.5f} ({m - out[64][0]:+.1e}), sd L = {sd:.5f} "
              f"({sd / out[64][1] - 1:+.1%})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1e3 and 1e4 only")
    ap.add_argument("--memory", action="store_true",
                    help="only the momentum and Adam SMEs against heavy-ball SGD")
    args = ap.parse_args()
    sizes = ["1e3", "1e4"] if args.quick else list(WIDTHS)
    reps = 2
    print(f"load average {os.getloadavg()[0]:.1f}; N={N}, B={B}, {PATHS} paths, float64 CPU")
    if args.memory:
        print(f"{'params':>8} {'hb sgd ms':>10} {'hb sde/hb sgd':>14} {'slow sde/hb sgd':>16} "
              f"{'adam sde/hb sgd':>16} {'adam est/hb sgd':>16}")
        for size in ("1e3", "1e4"):
            d, t = memory_costs(WIDTHS[size], 5)
            base = t["hb sgd"]
            print(f"{d:>8} {1e3 * base:>10.2f} {t['hb sde'] / base:>14.2f} "
                  f"{t['slow sde'] / base:>16.2f} {t['adam sde'] / base:>16.2f} "
                  f"{t['adam est'] / base:>16.2f}", flush=True)
        return
    print(f"{'params':>8} {'sgd ms':>8} {'sde1/sgd':>9} {'sde1 S=B/sgd':>13} {'sde2/sgd':>9}")
    for size in sizes:
        d, t = step_costs(WIDTHS[size], reps)
        base = t["sgd"]
        print(f"{d:>8} {1e3 * base:>8.2f} {t['sde1'] / base:>9.2f} "
              f"{t['sde1 S=B'] / base:>13.2f} {t['sde2'] / base:>9.2f}", flush=True)
    subset_error()
    sec, before, after = memory_run()
    print(f"order-1 SME at 10 071 parameters, 64 paths x 100 steps: {sec:.2f} s = "
          f"{64 / sec:.1f} paths/s (100 steps each), {6400 / sec:.0f} path-steps/s; peak RSS "
          f"{after:.2f} GiB (process before the run: {before:.2f} GiB; goal < 2 GB)")
    print(f"benchmark process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")


if __name__ == "__main__":
    main()
