r"""Gaussian divergences in JAX, and an ensemble of samples compared with a normal law.

:func:`gaussian_divergences` evaluates the closed forms of :mod:`symflow._claims._gaussian`
(KL, Bhattacharyya, :math:`W_2`) in float64 JAX, jit-compiled and vmap-able; the matrix
square root goes through symmetric eigen-decompositions
(:math:`\operatorname{tr}(\Sigma_1^{1/2}\Sigma_2\Sigma_1^{1/2})^{1/2} = \sum_i
\sqrt{\lambda_i}`).

:func:`compare_to_gaussian` fits a normal law to an ensemble (sample mean and unbiased
sample covariance) and measures its distance to a target law, e.g. an SDE ensemble at a
late time against the Gaussian stationary law of its Fokker–Planck equation. Sampling
noise alone makes the fitted law differ from the target: for :math:`n` exact samples in
:math:`d` dimensions, :math:`2n\,\mathrm{KL}(\hat p\Vert p)` is asymptotically
:math:`\chi^2` with :math:`d + d(d+1)/2` degrees of freedom (Wilks' theorem), so

.. math::

    \mathbb E\,\mathrm{KL}(\hat p\Vert p) \approx \frac{d(d+3)}{4n},

which the report gives as ``kl_noise`` to read ``kl`` against.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp

from symflow import SymflowError
from symflow._core._table import Table, TableDisplay


def _sqrt_psd(S):
    w, Q = jnp.linalg.eigh(S)
    return (Q * jnp.sqrt(jnp.clip(w, 0.0))) @ Q.T


def _divergences(mu1, S1, mu2, S2):
    d = mu1.shape[-1]
    dm = mu2 - mu1
    _, logdet1 = jnp.linalg.slogdet(S1)
    _, logdet2 = jnp.linalg.slogdet(S2)
    kl = 0.5 * (jnp.trace(jnp.linalg.solve(S2, S1)) + dm @ jnp.linalg.solve(S2, dm) - d
                + logdet2 - logdet1)
    Sb = (S1 + S2) / 2
    _, logdetb = jnp.linalg.slogdet(Sb)
    bh = dm @ jnp.linalg.solve(Sb, dm) / 8 + 0.5 * (logdetb - 0.5 * (logdet1 + logdet2))
    R = _sqrt_psd(S1)
    lam = jnp.linalg.eigvalsh(R @ S2 @ R)
    w2sq = dm @ dm + jnp.trace(S1) + jnp.trace(S2) - 2 * jnp.sum(jnp.sqrt(jnp.clip(lam, 0.0)))
    return {"kl": kl, "bhattacharyya": bh, "w2": jnp.sqrt(jnp.clip(w2sq, 0.0))}


_divergences_jit = jax.jit(_divergences)


def _as_law(mu, Sigma, what):
    """Float64 arrays ``(d,)`` and ``(d, d)`` from numbers, lists, numpy or SymPy objects."""
    try:
        mu = np.atleast_1d(np.asarray(sp.Matrix(mu).evalf() if isinstance(mu, sp.MatrixBase)
                                      else mu, dtype=float)).ravel()
        S = np.atleast_2d(np.asarray(sp.Matrix(Sigma).evalf()
                                     if isinstance(Sigma, sp.MatrixBase) else Sigma,
                                     dtype=float))
    except (TypeError, ValueError) as exc:
        raise SymflowError(f"the {what} law has non-numeric entries ({exc}); substitute "
                           "numbers for its symbols first (expr.subs({...}))") from exc
    if not (np.all(np.isfinite(mu)) and np.all(np.isfinite(S))):
        raise SymflowError(f"the {what} law has non-finite entries (nan or inf); give finite "
                           "numbers")
    d = mu.shape[0]
    if S.shape != (d, d):
        raise SymflowError(f"got a {what} covariance of shape {S.shape} for a mean of length "
                           f"{d}; it must be {d}x{d}")
    if not np.allclose(S, S.T, rtol=1e-10, atol=1e-12 * np.abs(S).max()):
        raise SymflowError(f"the {what} covariance is not symmetric; a covariance matrix must "
                           "equal its transpose")
    lo = np.linalg.eigvalsh(S).min()
    if lo <= 0:
        raise SymflowError(f"the {what} covariance is not positive definite (smallest "
                           f"eigenvalue {lo:.3g}); a normal law needs a positive-definite one")
    return jnp.asarray(mu), jnp.asarray(S)


def gaussian_divergences(mu1, Sigma1, mu2, Sigma2) -> dict:
    r"""``{"kl": KL(p||q), "bhattacharyya": D_B(p, q), "w2": W_2(p, q)}`` as floats.

    ``p = N(mu1, Sigma1)``, ``q = N(mu2, Sigma2)``; the same closed forms as
    :func:`symflow.gaussian_kl`, :func:`symflow.gaussian_bhattacharyya` and
    :func:`symflow.gaussian_w2`, in float64 JAX (one compiled function per dimension).

    Example::

        >>> out = gaussian_divergences([0.0], [[1.0]], [1.0], [[4.0]])
        >>> round(out["w2"] ** 2, 12)   # (0 - 1)^2 + (1 - 2)^2
        2.0
    """
    mu1, S1 = _as_law(mu1, Sigma1, "first")
    mu2, S2 = _as_law(mu2, Sigma2, "second")
    if mu1.shape != mu2.shape:
        raise SymflowError(f"the laws live in different dimensions ({mu1.shape[0]} and "
                           f"{mu2.shape[0]})")
    return {k: float(v) for k, v in _divergences_jit(mu1, S1, mu2, S2).items()}


@dataclasses.dataclass(frozen=True, repr=False)
class GaussianComparison(TableDisplay):
    """An ensemble of ``n`` samples in ``d`` dimensions against the law ``N(mean, cov)``.

    ``kl`` is :math:`\\mathrm{KL}(\\hat p\\Vert p)` of the fitted law :math:`\\hat p`,
    ``kl_noise`` its expected value from sampling noise alone (:math:`d(d+3)/(4n)`),
    ``bhattacharyya`` and ``w2`` the other two divergences; ``sample_mean`` and
    ``sample_cov`` the fitted law.
    """

    n: int
    d: int
    kl: float
    kl_noise: float
    bhattacharyya: float
    w2: float
    sample_mean: np.ndarray
    sample_cov: np.ndarray

    @property
    def kl_excess(self) -> float:
        """``kl / kl_noise``: about 1 when the samples come from the law, large otherwise."""
        return self.kl / self.kl_noise

    def _table(self) -> Table:
        rows = [["KL(fit || law)", f"{self.kl:.4g}"],
                ["KL from sampling noise alone, d(d+3)/(4n)", f"{self.kl_noise:.3g}"],
                ["ratio", f"{self.kl_excess:.3g}"],
                ["Bhattacharyya", f"{self.bhattacharyya:.4g}"], ["W2", f"{self.w2:.4g}"]]
        return Table(["divergence", "value"], rows,
                     f"{self.n} samples in {self.d} dimensions vs the Gaussian law")

    def __str__(self) -> str:
        return (f"{self.n} samples in {self.d} dimensions vs the Gaussian law: "
                f"KL(fit||law) = {self.kl:.4g} (sampling noise alone: ~{self.kl_noise:.3g}, "
                f"ratio {self.kl_excess:.3g}), Bhattacharyya = {self.bhattacharyya:.4g}, "
                f"W2 = {self.w2:.4g}")


@jax.jit
def _fit(x):
    mean = jnp.mean(x, axis=0)
    xc = x - mean
    return mean, xc.T @ xc / (x.shape[0] - 1)


def compare_to_gaussian(samples, mean, cov, sample_axis=0) -> GaussianComparison:
    r"""Compare an ensemble of samples with the normal law ``N(mean, cov)``.

    ``samples`` has shape ``(n, d)`` (``sample_axis=1`` for ``(d, n)``, the layout of
    path ensembles), or ``(n,)`` in one dimension; ``mean`` and ``cov`` may be numbers,
    arrays or SymPy matrices without free symbols (e.g. a stationary law from
    :mod:`symflow`). Returns a :class:`GaussianComparison`.

    Example::

        >>> import numpy as np
        >>> x = np.random.default_rng(0).normal(size=(4000, 2)) * [1.0, 2.0]
        >>> rep = compare_to_gaussian(x, [0, 0], [[1, 0], [0, 4]])
        >>> rep.kl_excess < 5
        True
    """
    x = np.asarray(samples, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or sample_axis not in (0, 1):
        raise SymflowError(f"got samples of shape {x.shape} with sample_axis={sample_axis}; "
                           "give an (n, d) array (sample_axis=0) or a (d, n) one "
                           "(sample_axis=1)")
    if sample_axis == 1:
        x = x.T
    if not np.all(np.isfinite(x)):
        bad = int(np.sum(~np.all(np.isfinite(x), axis=1)))
        raise SymflowError(f"got {bad} sample(s) with nan or inf entries (a diverged path?); "
                           "drop them or fix the run before comparing with a law")
    n, d = x.shape
    mu, S = _as_law(mean, cov, "target")
    if mu.shape[0] != d:
        raise SymflowError(f"the samples have dimension {d} but the law has dimension "
                           f"{mu.shape[0]}; check sample_axis")
    if n < d + 2:
        raise SymflowError(f"got {n} samples in dimension {d}; the sample covariance needs "
                           f"at least {d + 2} samples (many more for a useful comparison)")
    m_hat, S_hat = _fit(jnp.asarray(x))
    out = _divergences_jit(m_hat, S_hat, mu, S)
    return GaussianComparison(n=n, d=d, kl=float(out["kl"]), kl_noise=d * (d + 3) / (4 * n),
                              bhattacharyya=float(out["bhattacharyya"]), w2=float(out["w2"]),
                              sample_mean=np.asarray(m_hat), sample_cov=np.asarray(S_hat))
