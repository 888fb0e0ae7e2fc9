r"""Matrix completion with deep linear networks against the minimum nuclear norm.

A rank-:math:`r` matrix :math:`M \in \mathbb{R}^{n\times n}` is observed on :math:`K` entries
:math:`\Omega`. A depth-:math:`N` linear network :math:`W = W_N\cdots W_1` is trained by
gradient descent on :math:`\ell(W) = \tfrac12\sum_{(i,j)\in\Omega}(W_{ij} - M_{ij})^2` from a
small start; the unobserved entries are whatever the dynamics leave there. Arora, Cohen, Hu
& Luo (*Implicit regularization in deep matrix factorization*, NeurIPS 2019) find that depth
drives to lower effective rank than the minimum nuclear norm completion when observations
are few: the singular values move as :math:`\dot\sigma = -N\sigma^{2-2/N}\langle\nabla\ell,
uv^\top\rangle` (:class:`symflow.DeepLinear`), so large ones grow fast and small ones stay small.

The convex baseline :math:`\min\lVert X\rVert_*` s.t. :math:`X_\Omega = M_\Omega` is solved by
fixed-point continuation, a proximal gradient method whose proximal step is singular value
thresholding (Ma, Goldfarb & Chen, *Fixed point and Bregman iterative methods for matrix rank
minimization*, Math. Program. 128, 2011; Cai, Candès & Shen, SIAM J. Optim. 20, 2010): no
solver dependency, a 30 x 30 SVD per step, and the equality residual is reported. The
effective rank is :math:`\exp H(\sigma/\lVert\sigma\rVert_1)` (Roy & Vetterli 2007).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from symflow import SymflowError

from .._ode._iterate import check_lr, check_steps


def effective_rank(X) -> float:
    """:math:`\\exp(-\\sum_i p_i\\log p_i)`, :math:`p = \\sigma / \\sum\\sigma`
    (Roy & Vetterli 2007).

    Example::

        >>> import numpy as np, solvers as sv
        >>> round(sv.effective_rank(np.diag([1.0, 1.0, 0.0])), 6)
        2.0
    """
    s = np.linalg.svd(np.asarray(X), compute_uv=False)
    q = s / s.sum()
    q = q[q > 0]
    return float(np.exp(-(q * np.log(q)).sum()))


@dataclasses.dataclass(frozen=True)
class CompletionProblem:
    """Ground truth ``M`` (rank ``rank``, ``|M|_F = n``), the 0/1 ``mask`` of ``K`` entries."""

    M: np.ndarray
    mask: np.ndarray
    rank: int

    @property
    def n_observed(self) -> int:
        return int(self.mask.sum())

    def error(self, X) -> float:
        """Relative reconstruction error :math:`\\lVert X - M\\rVert_F / \\lVert M\\rVert_F`
        over all entries."""
        return float(np.linalg.norm(np.asarray(X) - self.M) / np.linalg.norm(self.M))


def completion_problem(n=30, rank=2, n_observed=200, seed=0) -> CompletionProblem:
    """A random rank-``rank`` ``n x n`` matrix (Gaussian factors, Frobenius norm ``n``) and
    ``n_observed`` entries chosen uniformly without replacement.

    Example::

        >>> import solvers as sv
        >>> pb = sv.completion_problem(n=10, rank=1, n_observed=40)
        >>> pb.n_observed, round(sv.effective_rank(pb.M), 6)
        (40, 1.0)
    """
    n, rank = check_steps(n, "n", 2), check_steps(rank, "rank", 1)
    if rank >= n or not 0 < n_observed <= n * n:
        raise SymflowError(f"got n={n}, rank={rank}, n_observed={n_observed}; need rank < n "
                           f"and 0 < n_observed <= n*n = {n * n}")
    rng = np.random.default_rng(seed)
    M = rng.normal(size=(n, rank)) @ rng.normal(size=(rank, n))
    M *= n / np.linalg.norm(M)
    mask = np.zeros(n * n)
    mask[rng.choice(n * n, size=n_observed, replace=False)] = 1.0
    return CompletionProblem(M, mask.reshape(n, n), rank)


def _product(Ws):
    out = Ws[0]
    for W in Ws[1:]:
        out = W @ out
    return out


@functools.lru_cache(maxsize=16)
def _gd_runner(depth: int, chunk: int):
    """Jitted ``chunk`` GD steps on the factors (one compilation per depth and chunk)."""
    def loss(Ws, M, mask):
        return 0.5 * jnp.sum(mask * (_product(Ws) - M) ** 2)

    grad = jax.grad(loss)

    @jax.jit
    def run(Ws, M, mask, lr):
        def step(Ws, _):
            g = grad(Ws, M, mask)
            return tuple(W - lr * gW for W, gW in zip(Ws, g)), None
        Ws, _ = jax.lax.scan(step, Ws, None, length=chunk)
        return Ws, loss(Ws, M, mask)

    return run


@dataclasses.dataclass
class DeepCompletion:
    """One GD run: the final product ``W``, ``steps`` taken, the final observed ``loss``, the
    recorded ``times`` (step counts) and ``singular_values`` (one row per record)."""

    depth: int
    W: np.ndarray
    steps: int
    loss: float
    times: np.ndarray
    singular_values: np.ndarray


def deep_completion(problem: CompletionProblem, depth: int, init_scale=1e-2, lr=None,
                    max_steps=60_000, tol=1e-7, chunk=500, seed=1) -> DeepCompletion:
    r"""Gradient descent on the factors of a depth-``depth`` network, :math:`n\times n` each.

    Each factor starts as ``init_scale`` times a random orthogonal matrix (a balanced start:
    :math:`W_j W_j^\top = W_{j+1}^\top W_{j+1}`), so :math:`W(0) = ` ``init_scale**depth``
    times an orthogonal matrix. ``lr`` defaults to :math:`1/(2N)\cdot` (the observed loss has
    curvature 1 in W, the factors multiply it by about :math:`N\sigma_{\max}^{2-2/N}` near the
    solution, :math:`\sigma` scaled to ``|M|_2``). Stops when the observed loss is below
    ``tol`` times its start or after ``max_steps``; singular values are recorded every
    ``chunk`` steps.
    """
    depth = check_steps(depth, "depth", 1)
    n = problem.M.shape[0]
    smax = np.linalg.norm(problem.M, 2)
    if lr is None:
        lr = 1.0 / (2 * depth * smax ** (2 - 2 / depth))
    lr = check_lr(lr)
    if not init_scale > 0:
        raise SymflowError(f"got init_scale={init_scale!r}; it must be a positive number")
    rng = np.random.default_rng(seed)
    Ws = tuple(jnp.asarray(init_scale * np.linalg.qr(rng.normal(size=(n, n)))[0])
               for _ in range(depth))
    M, mask = jnp.asarray(problem.M), jnp.asarray(problem.mask)
    run = _gd_runner(depth, chunk)
    start = 0.5 * float(np.sum(problem.mask * problem.M**2))
    times, svals = [0], [np.linalg.svd(np.asarray(_product(Ws)), compute_uv=False)]
    steps, loss = 0, start
    while steps < max_steps and loss > tol * start:
        Ws, loss = run(Ws, M, mask, lr)
        loss = float(loss)
        steps += chunk
        if not np.isfinite(loss):
            raise SymflowError(f"GD diverged at depth {depth} with lr={lr}; lower lr")
        times.append(steps)
        svals.append(np.linalg.svd(np.asarray(_product(Ws)), compute_uv=False))
    return DeepCompletion(depth, np.asarray(_product(Ws)), steps, loss, np.array(times),
                          np.array(svals))


def nuclear_norm_completion(problem: CompletionProblem, tol=1e-6, max_iter=20_000):
    r"""Minimum nuclear norm completion by fixed-point continuation (singular value thresholding).

    Iterates :math:`X \leftarrow \mathcal{D}_{\lambda}\bigl(X - P_\Omega(X - M)\bigr)`
    (:math:`\mathcal{D}_\lambda` shrinks the singular values by :math:`\lambda`), with
    :math:`\lambda` decreasing geometrically to :math:`10^{-8}\lVert P_\Omega M\rVert_2`
    (Ma, Goldfarb & Chen 2011). Returns ``(X, residual)``, the relative equality residual
    :math:`\lVert P_\Omega(X - M)\rVert_F / \lVert P_\Omega M\rVert_F`.
    """
    M, mask = problem.M, problem.mask
    b = mask * M
    lam = 0.25 * np.linalg.norm(b, 2)
    final = 1e-8 * np.linalg.norm(b, 2)
    X = np.zeros_like(M)
    for _ in range(max_iter):
        Y = X - mask * (X - M)
        U, s, Vt = np.linalg.svd(Y, full_matrices=False)
        X_new = (U * np.maximum(s - lam, 0.0)) @ Vt
        change = np.linalg.norm(X_new - X) / max(np.linalg.norm(X), 1.0)
        X = X_new
        if change < tol:
            if lam <= final:
                break
            lam = max(lam * 0.25, final)
    residual = np.linalg.norm(mask * (X - M)) / np.linalg.norm(b)
    return X, float(residual)


@dataclasses.dataclass
class CompletionStudy:
    """Rows ``(method, K, error, effective_rank)`` and the runs by ``(depth, K)``."""

    rows: list
    runs: dict

    def table(self) -> str:
        lines = [f"{'method':>14} {'K':>5} {'rel. error':>11} {'eff. rank':>10}"]
        for method, K, err, er in self.rows:
            lines.append(f"{method:>14} {K:>5d} {err:>11.3e} {er:>10.3f}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def completion_study(n=30, rank=2, observed=(200, 400), depths=(1, 2, 3), seed=0,
                     **gd_kwargs) -> CompletionStudy:
    """Reconstruction error and effective rank against depth and the number of observations,
    with the minimum nuclear norm completion as baseline (see the module)."""
    rows, runs = [], {}
    for K in observed:
        problem = completion_problem(n, rank, K, seed)
        X, _ = nuclear_norm_completion(problem)
        rows.append(("nuclear norm", K, problem.error(X), effective_rank(X)))
        for N in depths:
            run = deep_completion(problem, N, **gd_kwargs)
            runs[(N, K)] = run
            rows.append((f"depth {N}", K, problem.error(run.W), effective_rank(run.W)))
    return CompletionStudy(rows, runs)
