"""Gradient descent follows the gradient flow of L + (h/4)|grad L|^2 (to first order).

Reproduces the implicit-gradient-regularization result of Barrett & Dherin (ICLR 2021)
on a non-polynomial loss, end to end: derive the modified equation exactly, read off the
modified loss, check the orders numerically, and draw GD's iterates with the order-0,
1 and 2 flows through them (as in the BSeries.jl tutorial).

Run:  python examples/gd_implicit_regularization.py [--out DIR]
"""

import argparse
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import sympy as sp  # noqa: E402

import solvers as sv  # noqa: E402
import symflow as sf  # noqa: E402


def main(out):
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    x, y = sp.symbols("x y")
    loss = sp.log(1 + sp.exp(2 - x * y)) + (x - y) ** 2 / 8
    me = sf.modified_equation(sf.GD(), loss, [x, y], order=2)
    grad = sp.Matrix([loss.diff(x), loss.diff(y)])
    igr = me.truncate(1).modified_loss - (loss + sf.h / 4 * (grad.T * grad)[0])
    print(me)
    print("modified loss to first order minus (L + h/4 |grad L|^2):", sp.simplify(igr))
    rep = sv.verify_order(sf.GD(), loss, [x, y], x0=[0.2, 0.4],
                          lrs=[0.08, 0.04, 0.02, 0.01], T=2.0, orders=[0, 1, 2], me=me)
    print(rep)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5), constrained_layout=True)
    sv.plot_trajectories(me, x0=[0.2, 0.4], lr=0.4, n_steps=15, ax=axes[0])
    axes[0].set_title("GD iterates and truncated modified flows")
    rep.plot(ax=axes[1])
    fig.savefig(out / "gd_implicit_regularization.png", dpi=120)
    print("figure:", out / "gd_implicit_regularization.png")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="examples-output")
    main(parser.parse_args().out)
