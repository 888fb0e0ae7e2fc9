"""Heavy ball and Adam with fixed hyperparameters follow reduced flows on theta alone.

Regime 1 of symflow's optimizers with memory: for fixed betas the momentum buffer (and
Adam's moment estimates) relax in a few steps onto an invariant manifold m = M_h(theta);
on it the optimizer is a one-step map whose modified equation is derived exactly. This
script prints heavy ball's time scale 1/(1 - beta) and implicit regularizer (Kovachki &
Stuart, JMLR 2021) for symbolic beta, then draws both optimizers' iterates over the
contours of a 2-D loss with the order-0, 1 and 2 reduced flows through them (top), and
the distance from the iterates to each flow (bottom): each order gains a factor of h.
Open circles / dashed: a start from zero memory, shifted by its transient.

Run:  python examples/memory_reduced_flows.py [--out DIR]
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
LOSS = sp.log(1 + sp.exp(x * y)) + (x - 2 * y) ** 2 / 8 + x / 2
X0 = [2.0, 1.5]
R = sp.Rational


def distances(me, lr, n_steps, ax):
    """|theta_n - flow_p(t_n)| for p = 0, 1, 2, from the manifold and from zero memory."""
    opt = me.optimizer
    on = np.asarray(sv.iterate(opt, LOSS, [x, y], X0, lr, n_steps,
                               memory0=sv.manifold_memory(me, X0, lr)))
    zero = np.asarray(sv.iterate(opt, LOSS, [x, y], X0, lr, n_steps))
    for p in range(me.order + 1):
        ts, ys = sv.solve_flow(me, X0, lr, n_steps, order=p)
        line, = ax.semilogy(ts[1:], np.linalg.norm(on - ys, axis=1)[1:], label=f"order {p}")
        if p == me.order:
            ax.semilogy(ts[1:], np.linalg.norm(zero - ys, axis=1)[1:], "--",
                        color=line.get_color(), label=f"order {p}, zero memory start")
    ax.set_xlabel("t = n h")
    ax.set_ylabel("|theta_n - flow(t_n)|")
    ax.legend(fontsize=8)


def main(out):
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    beta = sp.Symbol("beta")
    hb = sf.modified_equation(sf.HeavyBall(beta=beta), LOSS, [x, y], order=1)
    print("heavy ball, symbolic beta: time scale", hb.time_scale)
    grad2 = sum(sp.diff(LOSS, p) ** 2 for p in (x, y))
    igr = hb.modified_loss - (LOSS / (1 - beta) + sf.h * (1 + beta) / (4 * (1 - beta) ** 3) * grad2)
    print("modified loss - (L/(1-beta) + h(1+beta)/(4(1-beta)^3) |grad L|^2) =", sp.simplify(igr))

    runs = [("heavy ball, beta = 1/2", sf.HeavyBall(beta=R(1, 2)), 0.02, 90),
            ("Adam, beta1 = 4/5, beta2 = 9/10", sf.Adam(R(4, 5), R(9, 10), R(1, 10**8)),
             0.01, 100)]
    fig, axes = plt.subplots(2, 2, figsize=(11, 9), constrained_layout=True)
    for col, (name, opt, lr, n_steps) in enumerate(runs):
        me = sf.modified_equation(opt, LOSS, [x, y], order=2)
        print(f"{name}: {me.gradient_summary()}; {me.check_validity(X0, lr, warn=False)}")
        sv.plot_trajectories(me, x0=X0, lr=lr, n_steps=n_steps, ax=axes[0, col], margin=0.25,
                             title=f"{name}, h = {lr:g}")
        distances(me, lr, n_steps, axes[1, col])
        axes[1, col].set_title(f"{name}: distance to the flows", fontsize=10)
    path = out / "memory_reduced_flows.png"
    fig.savefig(path, dpi=110)
    print("figure:", path)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="examples-output")
    main(parser.parse_args().out)
