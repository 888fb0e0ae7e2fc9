"""SGD is approximately a kernel machine: the path kernel of a small network, end to end.

Domingos (2020; Su, "SGD ≈ SVM?", 2020): a model trained by gradient flow on data
(x_i, y_i) is exactly the kernel machine f(x) = b + sum_i a_i(x) K^p(x, x_i) with the path
kernel K^p(x, x') = int_0^T grad_theta f(x) . grad_theta f(x') dt. This script

1. states the identity for a one-neuron model with symflow and checks it by substitution;
2. trains a tanh network by gradient flow (Diffrax), integrating K^p alongside the
   parameters, and checks f(x; theta_T) = b + sum_i a_i(x) K^p(x, x_i) to solver tolerance;
3. shows what is only approximate: the frozen (initial) kernel misses, the coefficients
   a_i(x) depend on x, and gradient descent with step h obeys the identity up to O(h).

Run:  python examples/sgd_kernel_machine.py [--out DIR]
"""

import argparse
import pathlib

import matplotlib

matplotlib.use("Agg")
import jax.numpy as jnp  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import sympy as sp  # noqa: E402

import solvers as sv  # noqa: E402
import symflow as sf  # noqa: E402

WIDTH, T = 16, 12.0
XS = np.linspace(-2.5, 2.5, 8)
YS = np.sin(1.3 * XS) + 0.3 * XS
XQ = np.linspace(-3.5, 3.5, 141)


def mlp(theta, x):
    """One hidden tanh layer of WIDTH units, scalar input (shape (1,)), mean-field scaling."""
    w1, b1, w2, b2 = (theta[:WIDTH, None], theta[WIDTH:2 * WIDTH],
                      theta[2 * WIDTH:3 * WIDTH], theta[-1])
    return w2 @ jnp.tanh(w1 @ x + b1) / np.sqrt(WIDTH) + b2


def main(out):
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    x, w, b = sp.symbols("x w b")
    km = sf.kernel_machine(w * sp.tanh(b * x), [w, b], [x], [-1, 1, 2], [1, 0, 1])
    print(km, "\n")

    theta0 = np.random.default_rng(1).normal(size=3 * WIDTH + 1)
    pk = sv.path_kernel(mlp, theta0, XQ, T, x_train=XS, y_train=YS,
                        ts=np.linspace(0.0, T, 31))
    print(pk, "\n")
    lrs = np.array([0.02, 0.01, 0.005, 0.0025])
    gaps = np.array([sv.path_kernel(mlp, theta0, XQ, T, x_train=XS, y_train=YS, lr=lr).residual
                     for lr in lrs])
    slope = np.polyfit(np.log(lrs), np.log(gaps), 1)[0]
    print("gradient descent: |f - kernel machine| =", ", ".join(f"{g:.2e}" for g in gaps),
          f"at h = {', '.join(f'{lr:g}' for lr in lrs)}: slope {slope:.2f} (the identity "
          "holds to O(h))")

    fig, axes = plt.subplots(2, 2, figsize=(12, 9), constrained_layout=True)
    ax = axes[0, 0]
    ax.plot(XQ, pk.bias, color="0.6", label="f(x; theta_0) = b")
    ax.plot(XQ, pk.prediction[-1], "k-", lw=2, label="trained network f(x; theta_T)")
    ax.plot(XQ[::5], pk.kernel_machine[-1, ::5], "o", color="C1", ms=5,
            label=f"b + sum_i a_i(x) K^p(x, x_i)  (gap {pk.residual:.1e})")
    ax.plot(XQ, pk.frozen[-1], "--", color="C2",
            label=f"frozen initial kernel (gap {pk.frozen_gap:.2f})")
    ax.plot(XS, YS, "s", color="C3", ms=7, label="training data")
    ax.set_title("the trained network is a kernel machine with the path kernel")
    ax.set_xlabel("x")
    ax.legend(fontsize=8)

    ax = axes[0, 1]
    for i, xi in enumerate(XS):
        ax.plot(XQ, pk.kernel[-1, :, i], label=f"x_i = {xi:.2f}")
    ax.set_title(f"path kernel K^p(x, x_i) after T = {T:g}")
    ax.set_xlabel("x")
    ax.legend(fontsize=7, ncol=2)

    ax = axes[1, 0]
    coeffs = pk.coefficients
    solid = np.abs(pk.kernel[-1]) > 1e-3 * np.abs(pk.kernel[-1]).max()
    for i, xi in enumerate(XS):
        ax.plot(XQ, np.where(solid[:, i], coeffs[:, i], np.nan), label=f"a_{i}(x)")
        ax.plot(xi, coeffs[np.argmin(abs(XQ - xi)), i], "k.", ms=4)
    ax.set_title("coefficients a_i(x): nearly constant (exactly so if K never moved)")
    ax.set_xlabel("x")
    ax.legend(fontsize=7, ncol=2)

    ax = axes[1, 1]
    ax.loglog(lrs, gaps, "o-", label=f"gradient descent: slope {slope:.2f}")
    ax.loglog(lrs, gaps[-1] * lrs / lrs[-1], ":", color="0.5", label="slope 1")
    ax.axhline(pk.residual, color="C1", ls="--", label="gradient flow (Diffrax, rtol 1e-10)")
    ax.set_xticks(lrs, [f"{lr:g}" for lr in lrs])
    ax.xaxis.set_minor_formatter(plt.NullFormatter())
    ax.set_xlabel("learning rate h")
    ax.set_ylabel("max |f(x; theta_T) - kernel machine|")
    ax.set_title("exact for the flow, O(h) for gradient descent")
    ax.legend(fontsize=8)
    fig.savefig(out / "sgd_kernel_machine.png", dpi=110)
    print("figure:", out / "sgd_kernel_machine.png")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="examples-output")
    main(parser.parse_args().out)
