"""Smooth approximations of non-smooth functions by convolution with approximate identities.

SAU (Biswas et al. 2021; Su Jianlin 2021): f_s = f * delta_s with delta_s(t) = K(t/s)/s.
The engine derives closed forms (relu * Gaussian = x Phi(x/s) + s phi(x/s), relu *
logistic = softplus, step * Cauchy = 1/2 + atan(x/s)/pi, ...) and the error study shows the
rates: at a kink the sup error is O(s) and the L1 error O(s^2); at a jump the sup error
stays at 1/2 while the L1 error is O(s).

Run:  python examples/smoothing_by_convolution.py [--out DIR]
"""

import argparse
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import sympy as sp  # noqa: E402

import solvers as sv  # noqa: E402
import symflow as sf  # noqa: E402

x = sp.Symbol("x", real=True)
s = sp.Symbol("s", positive=True)
CASES = [
    (sp.Max(0, x), "gaussian"),
    (sp.Max(0, x), "logistic"),
    (sp.Min(sp.Max(x, 0), 1), "uniform"),
    (sp.Heaviside(x), "cauchy"),
]


def main(out):
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for f, kernel in CASES:
        print(f"{f} * {kernel}_s =\n    {sf.smooth(f, x, kernel, s)}")
    print("relu_s(0) - relu(0) with the Gaussian kernel:",
          sf.smoothing_gap_at(sp.Max(0, x), x, "gaussian", s))
    fig, axes = plt.subplots(len(CASES), 2, figsize=(10, 3.2 * len(CASES)),
                             constrained_layout=True)
    for row, (f, kernel) in zip(axes, CASES):
        rep = sv.smoothing_error(f, x, kernel)
        print(rep.table())
        rep.plot(axes=row)
    fig.savefig(out / "smoothing_by_convolution.png", dpi=110)
    print("figure:", out / "smoothing_by_convolution.png")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="examples-output")
    main(parser.parse_args().out)
