"""SGD noise as an SDE: SGD, the stochastic modified equation, and its Fokker–Planck density.

Two problems, end to end (Li, Tai & E, JMLR 20, 2019; the Wasserstein/Fokker–Planck view
of the project's seed article):

1. **1-D double well.** A dataset of per-sample losses ``(w^2-1)^2/4 + a_i w`` (template +
   100 data values with mean 0): the gradient noise is additive, so the order-1 SME has a
   Gibbs stationary density ``exp(-L/T)``, ``T = h Var(a)/2``, derived in closed form.
2. **2-D linear regression** on 10,000 samples (exact data moments, no 10,000 symbolic
   expressions): the minibatch noise depends on the parameters and is anisotropic, so
   there is no closed-form stationary density (the engine says so); the Fokker–Planck
   equation is solved numerically on a grid.

In both, the long-run histograms of real SGD and of SME paths are drawn over the
Fokker–Planck density, and their Kolmogorov–Smirnov / total-variation distances from it
are printed (SGD is off by O(h), the SME paths by sampling noise only).

Run:  python examples/sgd_noise_double_well_regression.py [--out DIR] [--paths N]
"""

import argparse
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import sympy as sp  # noqa: E402

import solvers as sv  # noqa: E402
import symflow as sf  # noqa: E402


def double_well(ax, n_paths, lr=0.1):
    w, a = sp.symbols("w a")
    rng = np.random.default_rng(0)
    half = np.round(rng.uniform(0.2, 1.2, size=50), 2)
    data = np.concatenate([half, -half])  # mean exactly 0
    ds = sf.Dataset(loss=(w**2 - 1) ** 2 / 4 + a * w, params=[w], data_symbols=[a], data=data)
    opt = sf.SGD(batch_size=1)
    sme = sf.sme(opt, dataset=ds, order=1)
    fp = sf.fokker_planck(sme)
    density = fp.stationary_density()
    print(sme, "\n", density, sep="")
    print("FP operator on the density:", sp.simplify(fp.operator(density.unnormalized)))
    box = [(-2.2, 2.2)]
    gibbs = sv.density_on_grid(density, box, 600, lr=lr)
    start = np.where(np.arange(n_paths) % 2, 1.0, -1.0)[:, None]
    steps = 600
    sgd = sv.run_sgd(opt, dataset=ds, x0=start, lr=lr, n_steps=steps, n_paths=n_paths, key=1)
    paths = sv.simulate_sde(sme, start, steps * lr, n_paths, key=2, dt=lr / 4, solver="sra1",
                            lr=lr)
    rep = sv.compare_stationary(gibbs, {"SGD": sgd.final(), "SME paths": paths.final()})
    print(rep)
    rep.plot(axes=[ax], bins=80)
    ax.set_title(f"double well, h = {lr}, B = 1: Gibbs density exp(-L/T)", fontsize=9)


def regression(axes, n_paths, lr=0.1):
    w, b, x, y = sp.symbols("w b x y")
    rng = np.random.default_rng(1)
    xs = np.round(rng.normal(size=10_000), 2)  # 2 decimals: readable exact moments
    ys = np.round(2 * xs - 1 + 0.5 * rng.normal(size=xs.size), 2)
    ds = sf.Dataset(loss=(w * x + b - y) ** 2 / 2, params=[w, b], data_symbols=[x, y],
                    data=np.column_stack([xs, ys]))
    opt = sf.SGD(batch_size=2)
    sme = sf.sme(opt, dataset=ds, order=1)
    print(ds, "\n", sme, sep="")
    try:
        sf.fokker_planck(sme).stationary_density()
    except sf.SymflowError as err:
        print("closed form?", err)
    center = np.linalg.lstsq(np.column_stack([xs, np.ones_like(xs)]), ys, rcond=None)[0]
    box = [(center[0] - 0.45, center[0] + 0.45), (center[1] - 0.45, center[1] + 0.45)]
    grid = sv.solve_fokker_planck(sme, box, 120, lr=lr)
    steps = 400
    sgd = sv.run_sgd(opt, dataset=ds, x0=center, lr=lr, n_steps=steps, n_paths=n_paths, key=3)
    paths = sv.simulate_sde(sme, center, steps * lr, n_paths, key=4, dt=lr / 4,
                            solver="heun", lr=lr)
    rep = sv.compare_stationary(grid, {"SGD": sgd.final(), "SME paths": paths.final()},
                                coarsen=6)
    print(rep)
    rep.plot(axes=axes[1:], bins=60)
    grid.plot(axes[0])
    pts = sgd.final()[:3000]
    axes[0].plot(pts[:, 0], pts[:, 1], ".", ms=1, alpha=0.3, color="C0",
                 label=f"SGD iterates after {steps} steps")
    axes[0].set_xlabel("w")
    axes[0].set_ylabel("b")
    axes[0].legend(fontsize=7, markerscale=6)
    axes[0].set_title("linear regression (N = 10^4): FP density (grid, contours) and SGD",
                      fontsize=9)
    for ax, name in zip(axes[1:], "wb"):
        ax.set_title(f"marginal of {name}, h = {lr}, B = 2", fontsize=9)


def main(out, n_paths):
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(2, 2, figsize=(11, 8.5), constrained_layout=True)
    double_well(axes[0, 0], n_paths)
    regression([axes[0, 1], axes[1, 0], axes[1, 1]], n_paths)
    fig.suptitle("SGD, its stochastic modified equation, and the Fokker–Planck density")
    fig.savefig(out / "sgd_noise_double_well_regression.png", dpi=120)
    print("figure:", out / "sgd_noise_double_well_regression.png")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="examples-output")
    parser.add_argument("--paths", type=int, default=20_000)
    args = parser.parse_args()
    main(args.out, args.paths)
