"""SMEs of optimizers with memory: derivation time, and the Adam SDE ensemble against NumPy.

Part A (derivation, one process, SymPy only). ``sf.sme`` on a 2-parameter non-polynomial
per-sample loss (logistic regression, 4 samples, log(1 + exp(-y (w x + b)))):

* Adam in Malladi et al.'s scaling (1 - beta_i = c_i h^2, eps = eps0/h) with numeric c_i,
  eps0, order 1 (goal < 5 s); order 2 (goal < 60 s) is refused by the engine, at once: an
  order-2 match there needs the third and fourth cumulants of the minibatch (the message
  is printed);
* heavy ball with symbolic slow memory, beta = 1 - c sqrt(h), order 2 on (theta, u).

Each case runs in a child process with a time budget (``--budget``, default 120 s), once on
the engine's path (symbolic jets, :class:`symflow._stochastic._increment_moments.NoiseJets`)
and once on the baseline, the earlier path that puts the loss's derivatives in at every
expectation and simplifies the result (``_increment_moments._JETS = False``; its own budget
``--baseline-budget``, default 120 s; ``--no-baseline`` skips it). The ratio baseline/engine
is printed side by side (a lower bound when the baseline runs over its budget).

Part B (speed). The Adam SDE (state (w, b, m_w, m_b, u_w, u_b)) of a 4-sample linear
regression, (w x + b - y)^2/2, 10,000 paths, 100 Euler-Maruyama steps, float64, timed after
a warm-up that compiles, round-robin:

* ``engine``: ``solvers.simulate_sde`` on the derived SDE;
* ``numpy``:  a hand-written NumPy loop of the same SDE, d theta = -m/(eps0 + sigma0
  sqrt(u)) dt, dm = c1 (grad L - m) dt + sigma0 c1 G dW, du = c2 (diag Sigma_1 - u) dt,
  with G = (grad l_s - grad L)/sqrt(N) (an N-column factor of Sigma_1: the same law as the
  engine's own factor).

Goal: engine <= 1.5 x numpy (medians). The sample means of both are printed side by side.

Run:  python benchmarks/bench_sme.py [--repeats 5] [--budget 120] [--baseline-budget 120]
      [--no-baseline] [--part-a-only]
"""

import argparse
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import sympy as sp

import symflow as sf

w, b = sp.symbols("w b")
c, c1, c2, e0 = sp.symbols("c c1 c2 eps0", positive=True)
DATA = [(1.0, 1), (-0.5, 1), (2.0, -1), (0.3, -1)]
LOSSES = [sp.log(1 + sp.exp(-sp.Integer(t) * (sp.nsimplify(a) * w + b))) for a, t in DATA]
REGRESSION = [(sp.nsimplify(a) * w + b - t) ** 2 / 2 for a, t in DATA]
NUM = {"c1": 25.0, "c2": 2.5, "eps0": 0.002}
H, BATCH = 0.05, 1
N_PATHS, N_STEPS, T = 10_000, 100, 1.0
X0 = np.array([0.5, -0.5, 0.0, 0.0, 0.5, 0.5])


def adam(numeric=True):
    vals = {k: sp.nsimplify(v) for k, v in NUM.items()} if numeric else \
        {"c1": c1, "c2": c2, "eps0": e0}
    return sf.Adam(beta1=1 - vals["c1"] * sf.h**2, beta2=1 - vals["c2"] * sf.h**2,
                   eps=vals["eps0"] / sf.h, bias_correction=False)


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


CASES = {
    "adam1": ("Adam order 1, numeric c_i, eps0", 5,
              lambda: sf.sme(adam(), LOSSES, [w, b], batch_size=BATCH)),
    "adam2": ("Adam order 2, numeric c_i, eps0", 60,
              lambda: sf.sme(adam(), LOSSES, [w, b], batch_size=BATCH, order=2)),
    "hb2": ("heavy ball order 2, beta = 1 - c sqrt(h), symbolic c", None,
            lambda: sf.sme(sf.HeavyBall(beta=1 - c * sp.sqrt(sf.h)), LOSSES, [w, b],
                           batch_size=BATCH, order=2, hyper=[c])),
}


def one_case(name, baseline=False):
    """Child process: derive one case, print its time (or the engine's refusal)."""
    if baseline:
        from symflow._stochastic import _increment_moments

        _increment_moments._JETS = False
    try:
        _, sec = timed(CASES[name][2])
        print(f"{sec:.2f}")
    except sf.SymflowError as err:
        print("refused by the engine (at once):\n" +
              textwrap.fill(str(err), 92, initial_indent=" " * 6, subsequent_indent=" " * 6))


def _child(name, budget, baseline):
    args = [sys.executable, __file__, "--case", name] + (["--baseline"] if baseline else [])
    try:
        out = subprocess.run(args, timeout=budget, capture_output=True, text=True,
                             check=False)
    except subprocess.TimeoutExpired:
        return None, f"> {budget:.0f} s (over budget)"
    text = out.stdout.strip() or f"failed: {out.stderr.strip()[-200:]}"
    try:
        return float(text), f"{float(text):.2f} s"
    except ValueError:
        return None, text


def part_a(budget, baseline_budget):
    print("Part A: SME derivation, 2 parameters, logistic per-sample loss (4 samples); load "
          f"{os.getloadavg()[0]:.1f} (2 cores shared: times are noisy, compare the ratio)")
    for name, (label, goal, _) in CASES.items():
        sec, text = _child(name, budget, False)
        verdict = "" if goal is None or sec is None else \
            f"  goal < {goal} s: {'met' if sec < goal else 'NOT met'}"
        print(f"  {label}\n    engine:   {text}{verdict}")
        if baseline_budget is None or sec is None:
            continue
        base, base_text = _child(name, baseline_budget, True)
        ratio = (f"{base / sec:.1f}x" if base is not None else
                 f"> {baseline_budget / sec:.0f}x" if base_text.startswith(">") else "-")
        print(f"    baseline: {base_text}   baseline / engine: {ratio}")


def engine(sde):
    import jax

    import solvers as sv

    key = jax.random.key(0)
    return lambda: sv.simulate_sde(sde, X0, T, N_PATHS, key, dt=T / N_STEPS, lr=H).final()


def numpy_loop():
    xs = np.array([a for a, _ in DATA])[:, None]
    ys = np.array([t for _, t in DATA], dtype=float)[:, None]
    n = len(DATA)
    sigma0 = H * np.sqrt(1.0 / BATCH)  # h sqrt(c_NB), with replacement
    k1, k2, eps0 = NUM["c1"], NUM["c2"], NUM["eps0"]
    dt = T / N_STEPS
    rng = np.random.default_rng(0)

    def run():
        z = np.repeat(X0[:, None], N_PATHS, axis=1)
        for _ in range(N_STEPS):
            wv, bv, m, u = z[0], z[1], z[2:4], z[4:6]
            r = xs * wv + bv - ys  # residuals (N, paths)
            per = np.stack([r * xs, r])  # (2, N, paths): per-sample gradients
            mean = per.mean(axis=1)
            dev = per - mean[:, None, :]
            var = (dev**2).mean(axis=1)
            noise = np.einsum("dnp,np->dp", dev, rng.standard_normal((n, N_PATHS))) / np.sqrt(n)
            dtheta = -m / (eps0 + sigma0 * np.sqrt(np.maximum(u, 0))) * dt
            dm = k1 * (mean - m) * dt + sigma0 * k1 * noise * np.sqrt(dt)
            du = k2 * (var - u) * dt
            z = np.concatenate([z[:2] + dtheta, m + dm, u + du])
        return z.T

    return run


def main(repeats, budget, baseline_budget):
    part_a(budget, baseline_budget)
    sde, sec = timed(lambda: sf.sme(adam(), REGRESSION, [w, b], batch_size=BATCH))
    print(f"  (Part B's SDE, Adam order 1 on the linear regression: derived in {sec:.2f} s)")
    print(f"\nPart B: Adam SDE, {N_PATHS} paths, d = 6, {N_STEPS} Euler steps, float64")
    runs = {"engine": engine(sde), "numpy": numpy_loop()}
    first, outs = {}, {}
    for name, fn in runs.items():
        outs[name], first[name] = timed(fn)
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            outs[name], sec = timed(fn)
            times[name].append(sec)
    print(f"  engine first call (SymPy -> JAX compile + run): {first['engine']:.2f} s; load "
          f"{os.getloadavg()[0]:.1f}")
    med = {k: float(np.median(v)) for k, v in times.items()}
    for name in runs:
        print(f"  {name:8s} median {med[name]:.4f} s  min {min(times[name]):.4f} s  "
              f"x engine {med[name] / med['engine']:.2f}   mean (w, b) "
              f"{np.round(outs[name][:, :2].mean(axis=0), 4)}")
    ratio = med["engine"] / med["numpy"]
    print(f"  target engine <= 1.5 x numpy: {ratio:.2f} x -> {'met' if ratio <= 1.5 else 'NOT met'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--budget", type=float, default=120.0)
    parser.add_argument("--baseline-budget", type=float, default=120.0)
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--part-a-only", action="store_true")
    parser.add_argument("--case", choices=sorted(CASES), help=argparse.SUPPRESS)
    parser.add_argument("--baseline", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        one_case(args.case, args.baseline)
    elif args.part_a_only:
        part_a(args.budget, None if args.no_baseline else args.baseline_budget)
    else:
        main(args.repeats, args.budget, None if args.no_baseline else args.baseline_budget)
