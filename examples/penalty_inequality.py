"""The input- vs parameter-gradient penalty inequality: derived exactly, checked on random MLPs.

For an l-layer MLP h^(t+1) = g(W^(t) h^(t) + b^(t)) and any scalar f of its output
(Dherin, Munn & Barrett 2021; Su Jianlin 2021),

    |grad_x f|^2 sum_t (1 + |h^(t)|^2) / (|W^(t)|^2 |grad_x h^(t)|^2)  <=  |grad_theta f|^2 .

This script states it for any depth, derives it step by step for a 2-3-1 tanh network
with symbolic weights (which step loses what), shows the exact counterexamples for the
matrix norms that do not dominate the spectral norm, and checks it with JAX autodiff on
random networks (depths 1-5, widths 1-64, tanh/relu/sigmoid/gelu): violations per norm
and the distribution of rhs/lhs, saved as a figure.

Run:  python examples/penalty_inequality.py [--n 10000] [--out DIR]
"""

import argparse
import pathlib

import matplotlib

matplotlib.use("Agg")
import sympy as sp  # noqa: E402

import solvers as sv  # noqa: E402
import symflow as sf  # noqa: E402


def main(n, out):
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    l = sp.Symbol("l", integer=True, positive=True)
    print("statement (spectral norm):", sp.latex(sf.gradient_penalty_inequality(l)), "\n")

    d = sf.derive_penalty_inequality([2, 3, 1], "tanh")
    print(d.report(), "\n")
    pt = d.random_point(0)
    for kind in sf.HOLDING_NORMS:
        ev = d.evaluate(pt, kind)
        cs = ", ".join(f"{float(c):.3g}" for c in ev["cauchy_schwarz"])
        sub = ", ".join(f"{float(c):.3g}" for c in ev["submultiplicative"])
        print(f"{kind:9s} at a random point: rhs/lhs = {float(ev['ratio']):.4g}; loss factor "
              f"per layer of step 3 (Cauchy-Schwarz) [{cs}], of step 4 (norm inequality) "
              f"[{sub}]")
    gap = sp.N((d.rhs() - d.lhs("frobenius") - d.frobenius_certificate()).xreplace(pt), 30)
    print(f"Frobenius gap minus its sum-of-squares certificate at that point: {gap}\n")

    for norm in ("max", "l1", "linf"):
        ce = sf.penalty_counterexample(norm)
        print(f"{norm:4s} norm: counterexample with exact rhs/lhs = {ce['ratio']}")

    study = sv.penalty_study(n_networks=n, seed=0)
    print("\n" + study.table())
    study.plot(out / "penalty_inequality.png")
    print("figure:", out / "penalty_inequality.png")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="random networks (10000 in the "
                        "full study)")
    parser.add_argument("--out", default="examples-output")
    args = parser.parse_args()
    main(args.n, args.out)
