"""Depth drives matrix completion to low rank (Arora, Cohen, Hu & Luo, NeurIPS 2019).

A rank-2 30 x 30 matrix is observed on K entries. Linear networks of depth 1, 2 and 3 are
trained by gradient descent from a small balanced start; the minimum nuclear norm
completion (fixed-point continuation / singular value thresholding) is the convex
baseline. Prints the reconstruction error and the effective rank against depth and K, and
draws the singular values of the end-to-end matrix along training, one panel per depth:
with depth the top singular values rise one after another (sigma' = -N sigma^(2-2/N) <grad
l, u v^T>, derived in symflow.deep_linear) while the rest stay at the start's scale.

Run:  python examples/deep_matrix_completion.py [--out DIR]   (about a minute on 2 CPUs)
"""

import argparse
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import solvers as sv  # noqa: E402
import symflow as sf  # noqa: E402


def main(out):
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    net = sf.deep_linear(depth=3, shape=(2, 2))
    print("balancedness conserved:", net.conserved(), "| end-to-end flow (2x2, N=3):",
          net.check_end_to_end(), "| sigma' =", net.singular_value_rate())
    study = sv.completion_study(n=30, rank=2, observed=(150, 250, 400), depths=(1, 2, 3))
    print(study.table())
    K = 250
    problem = sv.completion_problem(30, 2, K, 0)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), sharey=True)
    for ax, depth in zip(axes, (1, 2, 3)):
        every = {1: 2, 2: 20, 3: 50}[depth]   # record often enough to see each run
        run = sv.deep_completion(problem, depth, chunk=every)
        for r in range(8):
            ax.loglog(run.times[1:], run.singular_values[1:, r], lw=1.4 if r < 2 else 0.8)
        er = sv.effective_rank(run.W)
        ax.set_title(f"depth {depth}: error {problem.error(run.W):.2g}, eff. rank {er:.2f}")
        ax.set_xlabel("GD step")
    axes[0].set_ylabel("top 8 singular values of W")
    fig.suptitle(f"Matrix completion, n = 30, rank 2, K = {K} observed entries")
    fig.tight_layout()
    path = out / "deep_matrix_completion.png"
    fig.savefig(path, dpi=120)
    print("wrote", path)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="figures")
    main(parser.parse_args().out)
