"""Why BYOL / SimSiam do not collapse: mode strength with and without stop-gradient.

The linear model of Tian, Chen & Ganguli (ICML 2021): online W, predictor W_p, target
W_a. symflow derives each eigenmode's flow (sf.linear_ssl: w' = w p (1 - (1 + s) p) - eta w,
p' = w^2 (1 - (1 + s) p) - eta p with stop-gradient) and the exact collapse conditions;
GD on the matrix model (JAX gradients of the matrix loss, jax.lax.stop_gradient on the
target) is drawn over the derived flows. With a predictor and stop-gradient the modes grow
to the stable non-collapsed point w^2 = p^2; without stop-gradient, or without predictor,
they collapse. An EMA teacher (tau = 0.9) follows the same flow to leading order; its
lag (tau/(1 - tau) steps) shows at order h, drawn here.

Run:  python examples/byol_stop_gradient_modes.py [--out DIR]   (about 30 s on 2 CPUs)
"""

import argparse
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import solvers as sv  # noqa: E402
import symflow as sf  # noqa: E402
from symflow._claims._self_supervised import tau  # noqa: E402

SIGMA2, ETA, LR, T = 0.5, 0.02, 0.02, 60.0


def main(out):
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    w0, p0 = np.array([0.05, 0.05, 0.05]), np.array([0.2, 0.4, 0.6])
    cases = [("predictor + stop-gradient (SimSiam)", {}, sf.linear_ssl()),
             ("EMA teacher tau = 0.9 (BYOL), order-1 flow", {"ema": 0.9},
              sf.linear_ssl(ema=tau, order=1)),
             ("no stop-gradient", {"stop_gradient": False}, sf.linear_ssl(stop_gradient=False)),
             ("no predictor", {"predictor": False}, sf.linear_ssl(predictor=False))]
    for name, _, model in cases:
        print(f"{name}: collapse rate at (0, p) = {model.collapse_rate()}")
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.8), sharey=True)
    for ax, (name, opts, model) in zip(axes, cases):
        run = sv.ssl_run(w0, p0, sigma2=SIGMA2, eta=ETA, lr=LR, n_steps=int(T / LR),
                         flow=model, save_every=50, **opts)
        for i in range(len(w0)):
            line, = ax.plot(run.times, np.abs(run.w_flow[:, i]), lw=1.5,
                            label=f"flow, p0 = {p0[i]}")
            ax.plot(run.times[::4], np.abs(run.w[::4, i]), "o", ms=3, color=line.get_color())
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("t = n h")
        print(f"{name}: |GD - flow| <= {run.flow_gap():.2e}, final |w| = {np.abs(run.w[-1])}")
    axes[0].set_ylabel("mode strength |w|  (lines: derived flow, dots: GD)")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Linear BYOL / SimSiam modes, sigma^2 = {SIGMA2}, eta = {ETA}, h = {LR}")
    fig.tight_layout()
    path = out / "byol_stop_gradient_modes.png"
    fig.savefig(path, dpi=120)
    print("wrote", path)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="figures")
    main(parser.parse_args().out)
