"""Extragradient's implicit regularizer has the opposite sign to gradient descent's.

For GD the first-order modified loss is L + (h/4)|grad L|^2; for extragradient,
theta - h grad L(theta - h grad L(theta)) (Korpelevich 1976), the engine derives
L - (h/4)|grad L|^2: extragradient is pushed *towards* sharp regions at first order.
This script derives both to order 3, reports where each stops being a gradient flow,
checks extragradient's orders numerically, and plots both optimizers with their order-1
flows at a large learning rate.

Run:  python examples/extragradient_anti_regularization.py [--out DIR]
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
    loss = (x * y - 1) ** 2 / 2 + (x - y) ** 2 / 10
    eg = sf.Custom(update=lambda th, g, h: th - h * g(th - h * g(th)), name="extragradient")
    eqs = {"GD": sf.modified_equation(sf.GD(), loss, [x, y], order=3),
           "extragradient": sf.modified_equation(eg, loss, [x, y], order=3)}
    for name, me in eqs.items():
        print(f"{name}: first-order modified loss {sp.factor(me.truncate(1).modified_loss - loss)}"
              f" + L; {me.gradient_summary()}")
    rep = sv.verify_order(eg, loss, [x, y], x0=[1.5, 0.3], lrs=[0.04, 0.02, 0.01, 0.005],
                          T=1.0, orders=[0, 1, 2, 3], me=eqs["extragradient"])
    print(rep)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5), constrained_layout=True)
    for ax, (name, me) in zip(axes, eqs.items()):
        sv.plot_trajectories(me.truncate(1), x0=[1.8, 0.1], lr=0.1, n_steps=40, ax=ax)
        ax.set_title(f"{name}, h = 0.1 (h*lambda_max = "
                     f"{sf.check_validity(loss, [x, y], [1.8, 0.1], 0.1).h_lambda_max:.2f})")
    rep.plot(ax=axes[2])
    fig.savefig(out / "extragradient.png", dpi=120)
    print("figure:", out / "extragradient.png")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="examples-output")
    main(parser.parse_args().out)
