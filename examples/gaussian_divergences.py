"""Gaussian divergences: exact formulas, and a Langevin ensemble against its stationary law.

The closed forms of KL, Bhattacharyya and W2 between normal laws (Su Jianlin 2021) are
derived symbolically. Then an ensemble of overdamped Langevin paths
d theta = -H theta dt + sqrt(2T) dW, discretized by Euler-Maruyama with step h, is compared
with the Gaussian stationary law N(0, T H^-1) of its Fokker-Planck equation. The ensemble
does not converge to that law but to the stationary law of the discrete chain,
N(0, Sigma_h) with Sigma_h = (I - hH) Sigma_h (I - hH) + 2ThI; the engine solves for Sigma_h
exactly and gives the O(h^2) KL gap between the two, which the ensemble reaches above the
sampling-noise floor d(d+3)/(4n).

Run:  python examples/gaussian_divergences.py [--out DIR]
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

H = sp.Matrix([[2, 1], [1, 1]])
TEMP = sp.Rational(1, 2)


def discrete_stationary_covariance(h):
    """Sigma_h solving the Euler-Maruyama Lyapunov equation exactly (symbolic h)."""
    a, b, c = sp.symbols("a b c")
    S = sp.Matrix([[a, b], [b, c]])
    A = sp.eye(2) - h * H
    sol = sp.solve(list(A * S * A.T + 2 * TEMP * h * sp.eye(2) - S), [a, b, c], dict=True)[0]
    return S.subs(sol).applyfunc(sp.factor)


def simulate(h, n, t_end, x0, seed):
    """The Langevin ensemble by the engine's Euler-Maruyama, saved at about 40 times."""
    th = sp.symbols("theta1 theta2")
    langevin = sf.SDE(drift=-H * sp.Matrix(th), diffusion=sp.sqrt(2 * TEMP), params=th,
                      name="Langevin")
    steps = int(round(t_end / h))
    times = h * np.arange(0, steps + 1, max(1, steps // 40))
    sol = sv.simulate_sde(langevin, x0, T=float(times[-1]), n_paths=n, key=seed, dt=h,
                          save_at=times)
    return sol.ts, [sol.ys[:, i] for i in range(len(sol.ts))]


def main(out, n=40_000):
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    m1, m2 = sp.symbols("mu1 mu2", real=True)
    s1, s2 = sp.symbols("sigma1 sigma2", positive=True)
    print("KL(N(mu1, s1^2) || N(mu2, s2^2)) =", sf.gaussian_kl(m1, s1**2, m2, s2**2))
    print("Bhattacharyya =", sf.gaussian_bhattacharyya(m1, s1**2, m2, s2**2))
    print("W2^2 =", sf.gaussian_w2(m1, s1**2, m2, s2**2, squared=True))

    h = sp.Symbol("h", positive=True)
    law = TEMP * H.inv()
    Sh = discrete_stationary_covariance(h)
    kl_h = sf.gaussian_kl([0, 0], Sh, [0, 0], law)
    lead = sp.simplify(sp.series(kl_h, h, 0, 3).removeO())
    print("Euler-Maruyama stationary covariance Sigma_h =", Sh)
    print("KL(N(0, Sigma_h) || N(0, T H^-1)) =", lead, "+ O(h^3)")

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    for step, color in ((0.2, "tab:red"), (0.05, "tab:blue")):
        times, states = simulate(step, n, 30.0, np.array([2.0, -1.0]), seed=1)
        reps = [sv.compare_to_gaussian(x, [0, 0], law) for x in states]
        bias_kl = float(kl_h.subs(h, step))
        bias_w2 = float(sf.gaussian_w2([0, 0], Sh.subs(h, step), [0, 0], law))
        print(f"h = {step}: final {reps[-1]}; exact discretization gap KL = {bias_kl:.3g}, "
              f"W2 = {bias_w2:.3g}")
        axes[0].semilogy(times, [r.kl for r in reps], "o-", ms=3, color=color,
                         label=f"ensemble, h = {step}")
        axes[0].axhline(bias_kl, color=color, ls="--", lw=1,
                        label=f"exact KL(N(0, Sigma_h) || law), h = {step}")
        axes[1].semilogy(times, [r.w2 for r in reps], "o-", ms=3, color=color,
                         label=f"ensemble, h = {step}")
        axes[1].axhline(bias_w2, color=color, ls="--", lw=1, label=f"exact W2 gap, h = {step}")
    axes[0].axhline(reps[-1].kl_noise, color="k", ls=":",
                    label=f"sampling noise d(d+3)/(4n), n = {n}")
    axes[0].set_title("KL(fitted ensemble || N(0, T H^-1))", fontsize=10)
    axes[1].set_title("W2(fitted ensemble, N(0, T H^-1))", fontsize=10)
    for ax in axes:
        ax.set_xlabel("time t")
        ax.legend(fontsize=7)
    fig.savefig(out / "gaussian_divergences.png", dpi=120)
    print("figure:", out / "gaussian_divergences.png")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="examples-output")
    main(parser.parse_args().out)
