"""Malladi et al.'s square-root scaling rule for Adam, from its SDE, against real minibatch runs.

Malladi, Lyu, Panigrahi & Arora (*On the SDEs and scaling rules for adaptive gradient
algorithms*, NeurIPS 2022) model Adam with 1 - beta_i = c_i h^2, eps = eps0/h by an SDE in
t = n h^2 on (theta, m, u) whose noise enters through sigma_0 = h sqrt(c_NB). symflow derives
that SDE from Adam's map (sf.sme) and *solves* for the batch-size scaling rule
(sf.scaling_rule): h -> sqrt(kappa) h, 1 - beta -> kappa (1 - beta), eps -> eps/sqrt(kappa).
In Malladi et al.'s variables the rule keeps c_1, c_2 and eps0 and changes only h, so the
runs below are one symbolic optimizer at three learning rates.

Adam (no bias correction) runs on a small linear regression (N = 64, d = 2) at batch sizes
B, 4B and 16B, with minibatches drawn with replacement:
* square-root rule: h = sqrt(kappa) h0, the same number of samples (kappa times fewer steps);
* linear rule (naive): h = kappa h0 with the betas and eps kept.
E[L] and Var[theta] against t = n h0^2 (samples seen, over B/h0^2) are drawn for the real
runs (solvers.run_sgd, the compiled symbolic map) and for the SDE (solvers.simulate_sde).
The square-root runs collapse onto the SDE; the linear-rule runs do not.

Run:  python examples/adam_square_root_rule.py [--out DIR]   (about a minute on 2 CPUs)
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
c1, c2, e0 = sp.symbols("c1 c2 eps0", positive=True)
H0, BATCH, KAPPAS, T, PATHS, SAVES = 0.02, 1, (1, 4, 16), 2.0, 4000, 40
HYPER = {"c1": 25.0, "c2": 2.5, "eps0": 2e-3}  # base: beta1 = 0.99, beta2 = 0.999, eps = 0.1


def dataset():
    rng = np.random.default_rng(0)
    xs = rng.normal(size=64)
    ys = 0.8 * xs - 0.3 + 0.5 * rng.normal(size=64)
    return sf.Dataset(loss=(w * x + b - y) ** 2 / 2, params=[w, b], data_symbols=[x, y],
                      data=np.round(np.column_stack([xs, ys]), 3))


ADAM = sf.Adam(beta1=1 - c1 * sf.h**2, beta2=1 - c2 * sf.h**2, eps=e0 / sf.h,
               bias_correction=False)
START = np.array([1.5, 1.0])


def real_runs(ds, lr, hyper, batch, n_steps, key):
    """Adam at ``lr``; E[L] and Var[w], Var[b] at SAVES times."""
    save = np.linspace(0, n_steps, SAVES + 1).round().astype(int)
    loss = ds.mean_loss
    run = sv.run_sgd(ADAM, dataset=ds, x0=START, lr=lr, n_steps=n_steps, n_paths=PATHS,
                     key=key, batch_size=batch, hyper=hyper, save_steps=save,
                     phi=[loss], stats=["second_moment"], on_divergence="flag")
    cov = run.covariance()
    return save / n_steps * T, run.stats["phi"][:, 0], cov[:, 0, 0] + cov[:, 1, 1]


def main(out):
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ds = dataset()
    rule = sf.scaling_rule(ADAM, dataset=ds, hyper=[c1, c2, e0])
    print(rule)
    sde = sf.sme(ADAM, dataset=ds, batch_size=BATCH, hyper=[c1, c2, e0])
    print(sde.name)
    loss_sde = ds.mean_loss
    times = np.linspace(0, T, SAVES + 1)
    sol = sv.simulate_sde(sde, np.concatenate([START, [0, 0, 0, 0]]), T, PATHS, key=9,
                          dt=T / 2000, solver="heun", lr=H0, hyper=HYPER, save_at=times,
                          phi=[loss_sde], stats=["second_moment"])
    cov = sol.covariance()
    sde_curves = (sol.stats["phi"][:, 0], cov[:, 0, 0] + cov[:, 1, 1])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, k in zip(axes, (0, 1)):
        ax.plot(times, sde_curves[k], "k-", lw=2.5, alpha=0.5, label="SDE (batch B)")
    gaps = {}
    for i, kappa in enumerate(KAPPAS):
        n_steps = int(round(T / H0**2 / kappa))
        rules = {"square-root rule": (np.sqrt(kappa) * H0, HYPER),
                 "linear rule": (kappa * H0, {"c1": HYPER["c1"] / kappa**2,
                                               "c2": HYPER["c2"] / kappa**2,
                                               "eps0": HYPER["eps0"] * kappa})}
        for j, (name, (lr, hyper)) in enumerate(rules.items()):
            if kappa == 1 and j == 1:
                continue
            ts, loss, var = real_runs(ds, lr, hyper, BATCH * kappa, n_steps, key=10 * i + j)
            late = ts >= T / 4  # after the first descent: the noise-driven regime
            gaps[(name, kappa)] = tuple(float(np.mean(np.abs(r[late] / s[late] - 1)))
                                        for r, s in zip((loss, var), sde_curves))
            style = dict(marker="o" if j == 0 else "x", ms=4, ls="-" if j == 0 else "--",
                         color=f"C{i}", lw=1)
            label = f"B = {BATCH * kappa}, {name}" if kappa > 1 else f"B = {BATCH}"
            axes[0].plot(ts, loss, label=label, **style)
            axes[1].plot(ts, var, label=label, **style)
    axes[0].set(xlabel="t = (samples seen) h0^2 / B", ylabel="E[L]", yscale="log",
                title="mean loss")
    axes[1].set(xlabel="t = (samples seen) h0^2 / B", ylabel="Var[w] + Var[b]",
                yscale="log", title="spread of the parameters")
    axes[0].legend(fontsize=7)
    fig.suptitle("Adam: the square-root rule keeps the SDE (Malladi et al. 2022)")
    fig.tight_layout()
    fig.savefig(out / "adam_square_root_rule.png", dpi=120)
    print("mean relative gap to the SDE for t >= T/4 (E[L], Var[theta]):")
    for (name, kappa), (gl, gv) in gaps.items():
        print(f"  B = {BATCH * kappa:3d}  {name:17s}  {gl:8.3f}  {gv:8.3f}")
    return gaps


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="figures")
    main(parser.parse_args().out)
