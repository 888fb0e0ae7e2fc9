"""Scaled memory: RMSprop becomes an ODE, heavy ball a damped oscillator.

Regime 2 of symflow's optimizers with memory: when the memory forgets slowly, it becomes
an ODE variable. RMSprop with rho = 1 - c*h (epsilon inside the root, as in the seed
article "optimization algorithms from the dynamics point of view (2)") follows

    v' = c (g^2 - v),   theta' = -g / sqrt(v + eps)          (t = n h),

and heavy ball with 1 - beta = c*sqrt(h) follows theta'' + c theta' = -grad L in the time
s = n sqrt(h) ("from SGD to momentum"). The engine derives both limits and their first
corrections; this script prints them and draws the iterates against the order-0 limit
and its order-1 correction over the loss contours.

Run:  python examples/memory_slow_limits.py [--out DIR]
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

x, y = sp.symbols("x y")
c = sp.Symbol("c", positive=True)
R = sp.Rational


def show(title, me):
    print(title)
    for name, rate in zip(me.params, me.terms[0]):
        print(f"  d{name}/d{me.time.split(' ')[0]} = {sp.simplify(rate)}")
    print(f"  first correction ({me.step}^1): {[sp.simplify(t) for t in me.terms[1]]}")


def main(out):
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8), constrained_layout=True)

    # RMSprop, rho = 1 - c h: the second moment v is an ODE variable
    loss = (x**2 + 10 * y**2) / 2
    rms = sf.RMSprop(rho=1 - c * sf.h, eps=R(1, 100), eps_in_sqrt=True)
    me = sf.modified_equation(rms, loss, [x, y], 1, hyper=[c], reduce=False)
    show("RMSprop with rho = 1 - c h (the RMSprop ODE):", me)
    hyper, lr = {"c": 1.0}, 0.05
    sv.plot_trajectories(me, x0=[2.0, 1.0], lr=lr, n_steps=60, hyper=hyper, ax=axes[0],
                         memory0=[1.0, 1.0], margin=0.3,
                         title=f"RMSprop, rho = 1 - c h, c = 1, h = {lr:g}, v0 = 1")

    # heavy ball, 1 - beta = c sqrt(h): theta'' + c theta' = -grad L
    loss = (x**2 + 4 * y**2) / 2 + x * y / 2
    hb = sf.HeavyBall(beta=1 - c * sp.sqrt(sf.h))
    me = sf.modified_equation(hb, loss, [x, y], 1, hyper=[c], reduce=False)
    show("heavy ball with 1 - beta = c sqrt(h) (the damped oscillator):", me)
    hyper, lr = {"c": 0.5}, 0.04
    steps = int(round(12 / np.sqrt(lr)))  # to s = 12
    sv.plot_trajectories(me, x0=[2.0, 1.0], lr=lr, n_steps=steps, hyper=hyper, ax=axes[1],
                         margin=0.3, title=f"heavy ball, 1 - beta = c sqrt(h), c = 0.5, "
                                           f"h = {lr:g}")
    path = out / "memory_slow_limits.png"
    fig.savefig(path, dpi=110)
    print("figure:", path)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="examples-output")
    main(parser.parse_args().out)
