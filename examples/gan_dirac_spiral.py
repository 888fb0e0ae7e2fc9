"""Dirac-GAN: discretization turns the rotation of the game flow into an outward spiral.

Mescheder et al. (ICML 2018) showed that on the Dirac-GAN, E(theta, psi) = f(psi*theta) +
f(0), the equilibrium is a centre of the gradient descent-ascent flow: simultaneous GDA
spirals away from it, alternating GDA circles it. This script derives why, end to end:

1. each player's modified objective (Rosca et al., ICML 2021), for any zero-sum game;
2. the eigenvalues at the equilibrium of the exact flow and of the order-1..3 modified
   flows of both schemes, against the step's own rates log(mu)/h;
3. verify_order slopes for both schemes;
4. a figure: the iterates of both schemes with the modified flows drawn through them, the
   radius against time, the slopes, and the real part of the eigenvalues against h.

Run:  python examples/gan_dirac_spiral.py [--out DIR]
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

X0, LR, N_STEPS = [1.0, 0.0], 0.2, 150


def main(out):
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    E, params = sf.dirac_gan()
    schemes = {"simultaneous": sf.SimultaneousGDA(n_first=1),
               "alternating": sf.AlternatingGDA(n_first=1)}
    fig, axes = plt.subplots(2, 3, figsize=(15, 9), constrained_layout=True)
    for col, (name, opt) in enumerate(schemes.items()):
        print(sf.modified_objectives(opt, order=2), "\n")
        spec = sf.equilibrium_eigenvalues(opt, E, params, [0, 0], order=3)
        print(spec, "\n" + spec.table(LR), "\n")
        me = sf.modified_equation(opt, E, params, order=2)
        rep = sv.verify_order(opt, E, params, x0=[1.0, 0.5], lrs=[0.1, 0.05, 0.025, 0.0125],
                              T=1.0, orders=[0, 1, 2], me=me)
        print(rep, "\n")
        sv.plot_trajectories(me, X0, LR, N_STEPS, ax=axes[0, col], margin=0.5)
        axes[0, col].set_title(f"{name} GDA, h = {LR}: iterates and modified flows")
        axes[0, col].set_aspect("equal")
        rep.plot(ax=axes[1, col])
        axes[1, col].set_xticks(rep.steps, [f"{lr:g}" for lr in rep.steps])
        axes[1, col].xaxis.set_minor_formatter(plt.NullFormatter())

        ts = LR * np.arange(N_STEPS + 1)
        radius = np.linalg.norm(np.asarray(sv.iterate(opt, E, params, X0, LR, N_STEPS)), axis=1)
        line, = axes[0, 2].plot(ts, radius, ".", ms=4, label=f"{name} GDA iterates")
        for p, style in ((0, ":"), (2, "-")):
            _, ys = sv.solve_flow(me, X0, LR, N_STEPS, order=p)
            axes[0, 2].plot(ts, np.linalg.norm(ys, axis=1), style, color=line.get_color(),
                            label=f"{name}: order-{p} flow")
        if name == "simultaneous":
            outward = sp.expand(spec.real_parts(3, n_terms=4)[0])  # derived by the engine
            hs = np.linspace(0.01, 0.6, 40)
            flows, rates = zip(*(spec.at(lr) for lr in hs))
            axes[1, 2].plot(hs, [r[0].real for r in rates], "k-", lw=3, alpha=0.4,
                            label="step: Re log(mu)/h")
            for p in (1, 3):
                axes[1, 2].plot(hs, [f[p][0].real for f in flows], "--",
                                label=f"order-{p} flow")
    axes[0, 2].set_xlabel("t = n h")
    axes[0, 2].set_ylabel("distance to the equilibrium")
    axes[0, 2].set_title("the spiral: radius against time")
    axes[0, 2].legend(fontsize=8)
    axes[1, 2].set_xlabel("learning rate h")
    axes[1, 2].set_ylabel("real part of the eigenvalue at (0, 0)")
    axes[1, 2].set_title(f"simultaneous GDA: outward rate ${sp.latex(outward)} + \\dots$")
    axes[1, 2].legend(fontsize=8)
    fig.savefig(out / "gan_dirac_spiral.png", dpi=110)
    print("figure:", out / "gan_dirac_spiral.png")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="examples-output")
    main(parser.parse_args().out)
