"""Numerical checks of the SGD-noise machinery, with figures.

1. **Weak error** |E phi(SGD_n) - E phi(X_nh)| against h at fixed T = nh: slope 1 for the
   order-1 SME and 2 for the order-2 SME. Linear regression with a quadratic phi, where
   both sides have closed moment systems (exact, no Monte Carlo); and a double well by
   Monte Carlo over real SGD and SME paths.
2. **Fokker–Planck without a closed form.** 1-D: a double well with state-dependent noise
   whose potential SymPy cannot integrate (the symbolic density is an unevaluated
   integral); 2-D: a rotating double well (non-gradient drift). The numerical
   Fokker–Planck solution is checked against long SDE ensembles by Kolmogorov–Smirnov
   and total-variation distances.

Run:  python examples/sgd_noise_checks.py [--out DIR] [--paths N] [--no-monte-carlo]
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

w, b, x, y = sp.symbols("w b x y")


def weak_errors(axes, monte_carlo):
    data = [(1, 1), (2, 3), (-1, 0), (3, 2), (sp.Rational(1, 2), -1)]
    losses = [(w * a + b - t) ** 2 / 2 for a, t in data]
    rep = sv.weak_error(sf.SGD(batch_size=1), losses, [w, b], phi=w**2 + b**2,
                        x0=[0.5, -0.5], lrs=[0.04, 0.02, 0.01, 0.005], T=1.0)
    print(rep)
    rep.plot(ax=axes[0])
    if monte_carlo:
        s = sp.Rational(1, 2)
        well = [(w**2 - 1) ** 2 / 4 + a * w for a in (-s, s)]
        rep = sv.weak_error(sf.SGD(batch_size=1), well, [w], phi=w, x0=[1.6],
                            lrs=[0.1, 0.05, 0.025], T=0.5, method="monte_carlo",
                            n_paths=200_000, sde_substeps=8)
        print(rep)
        rep.plot(ax=axes[1])
    else:
        axes[1].set_visible(False)


def one_dimensional(ax, n_paths):
    sde = sf.SDE(drift=[x - x**3], diffusion=sp.sqrt(2 + sp.cos(3 * x)) / 2, params=[x])
    density = sf.fokker_planck(sde).stationary_density()
    print("1-D:", density)
    box = [(-2.5, 2.5)]
    grid = sv.solve_fokker_planck(sde, box, 500)
    quad = sv.density_on_grid(density, box, 500)
    print("L1(grid solve, quadrature of the symbolic density) =",
          float(np.abs(grid.masses - quad.masses).sum()))
    start = np.where(np.arange(n_paths) % 2, 1.0, -1.0)[:, None]
    ens = sv.simulate_sde(sde, start, 10.0, n_paths, key=4, dt=0.01, solver="heun")
    rep = sv.compare_stationary(grid, {"SDE paths (Heun)": ens.final()})
    print(rep)
    rep.plot(axes=[ax], bins=80)
    ax.set_title("1-D, sigma = sqrt(2 + cos 3x)/2: no closed-form density", fontsize=9)


def two_dimensional(axes, n_paths):
    sde = sf.SDE(drift=[x - x**3 - y, x - y], diffusion=sp.Rational(3, 5), params=[x, y])
    try:
        sf.fokker_planck(sde).stationary_density()
    except sf.SymflowError as err:
        print("2-D:", err)
    grid = sv.solve_fokker_planck(sde, [(-2.5, 2.5), (-2.5, 2.5)], 120)
    ens = sv.simulate_sde(sde, np.zeros(2), 15.0, n_paths, key=8, dt=0.01, solver="heun")
    rep = sv.compare_stationary(grid, {"SDE paths (Heun)": ens.final()}, coarsen=6)
    print(rep)
    grid.plot(axes[0])
    pts = ens.final()[:3000]
    axes[0].plot(pts[:, 0], pts[:, 1], ".", ms=1, alpha=0.3, color="C1",
                 label="SDE paths at t = 15")
    axes[0].set_xlabel("x")
    axes[0].set_ylabel("y")
    axes[0].legend(fontsize=7, markerscale=6)
    axes[0].set_title("2-D rotating double well: FP density (grid, contours) and paths",
                      fontsize=9)
    rep.plot(axes=axes[1:], bins=60)
    for ax, name in zip(axes[1:], "xy"):
        ax.set_title(f"rotating double well: marginal of {name}", fontsize=9)


def main(out, n_paths, monte_carlo):
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    weak_errors(axes, monte_carlo)
    fig.savefig(out / "sgd_noise_weak_error.png", dpi=120)
    fig, axes = plt.subplots(2, 2, figsize=(10, 8), constrained_layout=True)
    one_dimensional(axes[0, 0], n_paths)
    two_dimensional([axes[0, 1], axes[1, 0], axes[1, 1]], n_paths)
    fig.savefig(out / "sgd_noise_fokker_planck.png", dpi=120)
    print("figures:", out / "sgd_noise_weak_error.png", out / "sgd_noise_fokker_planck.png")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="examples-output")
    parser.add_argument("--paths", type=int, default=20_000)
    parser.add_argument("--no-monte-carlo", action="store_true")
    args = parser.parse_args()
    main(args.out, args.paths, not args.no_monte_carlo)
