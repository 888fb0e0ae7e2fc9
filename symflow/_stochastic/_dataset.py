r"""A finite training set: per-sample losses, their mean, and the gradient-noise covariance.

A :class:`Dataset` holds :math:`N` per-sample losses :math:`\ell_i(\theta)`, either as a
*template* :math:`\ell(\theta; x)` in the parameters and data symbols plus a numeric array of
:math:`N` data rows, or as an explicit list. It gives, exactly,

.. math::

    L = \frac1N\sum_i \ell_i ,\qquad
    \Sigma_1(\theta) = \frac1N\sum_i (\nabla\ell_i - \nabla L)(\nabla\ell_i - \nabla L)^\top ,

the loss SGD minimises on average and the covariance of one sampled gradient
(Li, Tai & E, JMLR 20, 2019, section 2; Smith et al., ICLR 2021).

**No N symbolic expressions for large N.** When the gradient of the template is a
polynomial in the data symbols, :math:`\nabla\ell(\theta;x) = \sum_j C_j(\theta)\,m_j(x)` with
data monomials :math:`m_j`, the sums over samples become numeric moments of the data:
:math:`\nabla L = \sum_j C_j\,\mathbb E[m_j]` and :math:`\Sigma_1 = C M C^\top` with
:math:`M = \operatorname{Cov}(m)`. The moments are computed *exactly*: each data value is
read as the rational it was written as (``repr``: ``0.1 -> 1/10``) and the power sums are
accumulated in integer arithmetic. A factor :math:`G = C R` with :math:`RR^\top = M` (exact,
rank-revealing Cholesky) gives :math:`GG^\top = \Sigma_1` with no symbolic matrix square
root. Explicit per-sample losses whose gradients are polynomials in the parameters with
rational coefficients get the same treatment, with the coefficient vectors as features
(``method="features"``: :math:`r \le` the number of distinct monomials, not :math:`N`).
Templates that are not polynomial in the data are summed explicitly, with a warning above
``warn_explicit`` samples and an error above ``max_explicit``.
"""

from __future__ import annotations

import functools
import math
import warnings
from fractions import Fraction

import numpy as np
import sympy as sp

from .._core import _validate as v
from .._core._errors import SymflowError
from .._core._gradient import expr_potential
from ._sde import psd_factor


def _exact(value) -> Fraction:
    """A data value as the rational it was written as (integers stay integers)."""
    if isinstance(value, (int, np.integer)):
        return Fraction(int(value))
    return Fraction(repr(float(value)))


class _Moments:
    """Exact power sums of the data columns, :math:`\\frac1N\\sum_i x_i^\\beta`, cached."""

    def __init__(self, data: np.ndarray):
        self.n = data.shape[0]
        self.cols, self.dens = [], []
        for c in range(data.shape[1]):
            fr = [_exact(x) for x in data[:, c].tolist()]
            den = 1
            for f in fr:
                den = den * f.denominator // math.gcd(den, f.denominator)
            self.cols.append(np.array([f.numerator * (den // f.denominator) for f in fr],
                                      dtype=object))
            self.dens.append(den)

    @functools.lru_cache(maxsize=None)
    def mean(self, beta: tuple) -> sp.Rational:
        prod = np.ones(self.n, dtype=object)
        den = self.n
        for c, e in enumerate(beta):
            if e:
                prod = prod * self.cols[c] ** e
                den *= self.dens[c] ** e
        return sp.Rational(int(prod.sum()), den)


def _poly_terms(expr, data_symbols):
    """``{exponent tuple: coefficient}`` of ``expr`` as a polynomial in the data, or None."""
    expr = sp.expand(expr)
    if not expr.is_polynomial(*data_symbols):
        return None
    return dict(sp.Poly(expr, *data_symbols).terms())


class Dataset:
    r"""The per-sample losses of a finite training set.

    Two forms::

        Dataset(loss=template, params=[w, b], data_symbols=[x, y], data=array_N_by_2)
        Dataset(losses=[l_1, ..., l_N], params=[w, b])

    Parameters
    ----------
    loss : sympy.Expr
        The per-sample loss :math:`\ell(\theta; x)` in ``params`` and ``data_symbols``.
    data : array of shape (N, len(data_symbols))
        The samples (finite numbers). A 1-D array is read as one data symbol.
    losses : list of sympy.Expr
        Explicit per-sample losses (small N).
    hyper : sequence of Symbol
        Constant symbols allowed in the losses.
    warn_explicit, max_explicit : int
        For templates that are not polynomial in the data (so summed sample by sample):
        warn above ``warn_explicit`` samples, refuse above ``max_explicit``.

    Attributes
    ----------
    mean_loss, mean_gradient, gradient_covariance, noise_factor
        Exact SymPy results (see the module docstring). ``method`` says how the sums were
        formed: ``"moments"`` (exact data moments of a template), ``"features"`` (explicit
        losses with polynomial gradients: exact coefficient statistics) or ``"explicit"``
        (sample by sample).

    Examples
    --------
    ::

        >>> import sympy as sp
        >>> w, x, y = sp.symbols("w x y")
        >>> ds = Dataset(loss=(w * x - y)**2 / 2, params=[w], data_symbols=[x, y],
        ...              data=[[1, 1], [2, 3], [0.5, 0.1]])
        >>> ds.method, ds.mean_loss
        ('moments', 7*w**2/8 - 47*w/20 + 1001/600)
        >>> sp.factor(ds.gradient_covariance[0, 0])
        (1575*w**2 - 5070*w + 4087)/600
    """

    def __init__(self, loss=None, params=None, data_symbols=None, data=None, *, losses=None,
                 hyper=(), warn_explicit: int = 200, max_explicit: int = 2000):
        if params is None:
            raise SymflowError("give params=[...], the parameter symbols of the losses")
        self.params = v.check_params(params)
        self.hyper = v.check_symbols(hyper, "hyper", self.params)
        self.data_symbols = ()
        self.data = None
        self.template = None
        if (loss is None) == (losses is None):
            raise SymflowError(
                "give either loss=<per-sample template> with data_symbols and data, or "
                "losses=[l_1, ..., l_N] (explicit per-sample losses), not both")
        if losses is not None:
            if isinstance(losses, (sp.Expr, str)) or not hasattr(losses, "__len__"):
                raise SymflowError(
                    f"got losses={v._describe(losses)}; give a list of per-sample losses")
            if len(losses) == 0:
                raise SymflowError("got losses=[]; a dataset needs at least one sample")
            self.losses = tuple(v.check_loss(l, self.params, self.hyper) for l in losses)
            self.n_samples = len(self.losses)
            self.method = "explicit"
            self._coeffs = None
            self._features_from_coefficients()
        else:
            self._init_template(loss, data_symbols, data, warn_explicit, max_explicit)

    def _init_template(self, loss, data_symbols, data, warn_explicit, max_explicit):
        if data_symbols is None or data is None:
            raise SymflowError("a loss template needs data_symbols=[...] and data=<array "
                               "N x len(data_symbols)>")
        syms = v.check_symbols(data_symbols, "data_symbols", self.params)
        self.data_symbols = tuple(data_symbols if not isinstance(data_symbols, sp.Symbol)
                                  else (data_symbols,))
        if len(syms) != len(self.data_symbols):
            raise SymflowError(f"got data_symbols={list(self.data_symbols)}; they must be "
                               "distinct")
        try:
            arr = np.asarray(data, dtype=float)
        except (TypeError, ValueError):
            raise SymflowError(f"got data={v._describe(data)}; give a numeric array of shape "
                               f"(N, {len(self.data_symbols)})") from None
        if arr.ndim == 1 and len(self.data_symbols) == 1:
            arr = arr[:, None]
        if arr.ndim != 2 or arr.shape[1] != len(self.data_symbols) or arr.shape[0] < 1:
            raise SymflowError(
                f"got data of shape {arr.shape}; give an array of shape (N, "
                f"{len(self.data_symbols)}), one column per data symbol "
                f"{list(self.data_symbols)}")
        if not np.all(np.isfinite(arr)):
            raise SymflowError("the data contain NaN or infinite values; remove those rows")
        self.data = arr
        self.n_samples = arr.shape[0]
        self.template = v.check_loss(loss, self.params, self.hyper | syms)
        grad = [sp.diff(self.template, p) for p in self.params]
        terms = [_poly_terms(g, self.data_symbols) for g in grad]
        if all(t is not None for t in terms):
            self.method = "moments"
            monos = sorted({m for t in terms for m in t})
            self._monos = monos
            self._coeffs = sp.Matrix([[t.get(m, 0) for m in monos] for t in terms])
            self._moments = _Moments(arr)
            self._feature_mean = sp.Matrix([self._moments.mean(m) for m in monos])
            self.losses = None
            return
        n = self.n_samples
        if n > max_explicit:
            raise SymflowError(
                f"the loss template is not polynomial in the data symbols "
                f"{list(self.data_symbols)}, so its mean needs one symbolic expression per "
                f"sample, and N={n} > max_explicit={max_explicit}; use a template polynomial "
                "in the data, a subsample, or raise max_explicit")
        if n > warn_explicit:
            warnings.warn(f"the loss template is not polynomial in the data: summing {n} "
                          "symbolic per-sample losses explicitly (slow for large N)",
                          stacklevel=3)
        self.method = "explicit"
        self._coeffs = None
        rows = [[sp.Rational(_exact(x)) for x in row] for row in arr.tolist()]
        self.losses = tuple(self.template.xreplace(dict(zip(self.data_symbols, r)))
                            for r in rows)

    def _features_from_coefficients(self):
        """Explicit losses with polynomial gradients: grad l_i = C(theta) a_i, a_i rational."""
        rows = [dict() for _ in self.losses]
        for i, loss in enumerate(self.losses):
            for r, p in enumerate(self.params):
                g = sp.expand(sp.diff(loss, p))
                if not g.is_polynomial(*self.params):
                    return
                for mono, c in (sp.Poly(g, *self.params).terms() if g != 0 else ()):
                    if not c.is_Rational:
                        return
                    rows[i][(r, mono)] = c
        columns = sorted({key for row in rows for key in row})
        if not columns or len(columns) >= self.n_samples:
            return  # the centered gradients are the smaller exact factor
        d = len(self.params)
        self._coeffs = sp.Matrix(d, len(columns), lambda r, j: sp.Mul(*[
            q**e for q, e in zip(self.params, columns[j][1])]) if columns[j][0] == r else 0)
        self._rows = [[row.get(key, sp.S.Zero) for key in columns] for row in rows]
        n = self.n_samples
        self._feature_mean = sp.Matrix([sum(col) / n for col in zip(*self._rows)])
        self.method = "features"

    def gradient_factors(self):
        r"""``(C, F)`` with :math:`\nabla\ell_i(\theta) = C(\theta)\,F_i` (None for the
        explicit method).

        ``C`` is a ``d x K`` SymPy matrix in the parameters (and constants); ``F`` an
        ``N x K`` float array of per-sample features: data monomials for a template, or
        coefficient vectors for explicit polynomial losses. The numerics use it to form a
        minibatch gradient as :math:`C(\theta)\,\mathrm{mean}_{i\in\mathcal B}F_i`.
        """
        if self._coeffs is None:
            return None
        if self.method == "moments":
            powers = np.array(self._monos, dtype=float)  # K x k
            feats = np.prod(self.data[:, None, :] ** powers[None], axis=2)
        else:
            feats = np.array([[float(c) for c in row] for row in self._rows])
        return sp.ImmutableMatrix(self._coeffs), feats

    # -- exact sums ----------------------------------------------------------------------
    @functools.cached_property
    def mean_loss(self) -> sp.Expr:
        r""":math:`L = \frac1N\sum_i\ell_i` (exact)."""
        if self.losses is not None:
            return sp.expand(sp.Add(*self.losses) / self.n_samples)
        terms = _poly_terms(self.template, self.data_symbols)
        if terms is None:
            # gradient polynomial in the data but the loss is not: only a theta-free part
            # differs; integrate the mean gradient instead.
            pot = expr_potential(list(-self.mean_gradient), self.params)
            if pot is None:
                raise SymflowError("cannot form the mean loss of this template exactly")
            return sp.expand(pot)
        return sp.expand(sum((c * self._moments.mean(m) for m, c in terms.items()),
                             sp.S.Zero))

    @functools.cached_property
    def sample_gradients(self) -> sp.ImmutableMatrix:
        """The ``d x N`` matrix of per-sample gradients (explicit datasets only)."""
        if self.losses is None:
            raise SymflowError(
                f"this dataset sums its {self.n_samples} samples through data moments; "
                "per-sample gradients are not formed (use gradient_template and data)")
        return sp.ImmutableMatrix([[sp.diff(l, p) for l in self.losses] for p in self.params])

    @property
    def gradient_template(self) -> sp.ImmutableMatrix:
        r""":math:`\nabla_\theta\ell(\theta; x)` as a column in params and data symbols."""
        if self.template is None:
            raise SymflowError("an explicit dataset has no template; use sample_gradients")
        return sp.ImmutableMatrix([sp.diff(self.template, p) for p in self.params])

    @functools.cached_property
    def mean_gradient(self) -> sp.ImmutableMatrix:
        r""":math:`\nabla L` (exact)."""
        if self._coeffs is not None:
            return sp.ImmutableMatrix((self._coeffs * self._feature_mean).applyfunc(sp.expand))
        g = self.sample_gradients
        return sp.ImmutableMatrix([sp.expand(sum(g.row(i)) / self.n_samples)
                                   for i in range(g.shape[0])])

    @functools.cached_property
    def feature_covariance(self) -> sp.ImmutableMatrix:
        r""":math:`M = \operatorname{Cov}(f)` of the features :math:`f_i` with
        :math:`\nabla\ell_i = C(\theta) f_i`: data monomials (``"moments"``) or
        coefficient vectors (``"features"``)."""
        if self._coeffs is None:
            raise SymflowError(f"this dataset sums its samples explicitly (method="
                               f"{self.method!r}); it has no feature covariance")
        mean = list(self._feature_mean)
        k = len(mean)
        out = sp.zeros(k, k)
        for a in range(k):
            for b in range(a, k):
                out[a, b] = out[b, a] = self._feature_second_moment(a, b) - mean[a] * mean[b]
        return sp.ImmutableMatrix(out)

    def _feature_second_moment(self, a, b):
        if self.method == "moments":
            both = tuple(x + y for x, y in zip(self._monos[a], self._monos[b]))
            return self._moments.mean(both)
        return sum((row[a] * row[b] for row in self._rows), sp.S.Zero) / self.n_samples

    @functools.cached_property
    def gradient_covariance(self) -> sp.ImmutableMatrix:
        r""":math:`\Sigma_1(\theta) = \frac1N\sum_i(\nabla\ell_i-\nabla L)(\nabla\ell_i-\nabla L)^\top`."""
        if self._coeffs is not None:
            c = self._coeffs
            return sp.ImmutableMatrix((c * self.feature_covariance * c.T).applyfunc(sp.expand))
        g, gbar = self.sample_gradients, self.mean_gradient
        d, n = g.shape
        out = sp.zeros(d, d)
        for i in range(d):
            for j in range(i, d):
                s = sum((g[i, k] * g[j, k] for k in range(n)), sp.S.Zero) / n
                out[i, j] = out[j, i] = sp.expand(s - gbar[i] * gbar[j])
        return sp.ImmutableMatrix(out)

    @functools.cached_property
    def noise_factor(self) -> sp.ImmutableMatrix:
        r"""An exact :math:`G` (``d x r``) with :math:`GG^\top = \Sigma_1`, no matrix square root.

        Moments and features methods: :math:`G = C R` with :math:`RR^\top = M`
        (rank-revealing Cholesky of the exact rational feature covariance). Explicit: the
        centered per-sample gradients
        :math:`G = N^{-1/2}[\nabla\ell_1-\nabla L, \dots, \nabla\ell_N-\nabla L]`.
        """
        if self._coeffs is not None:
            r = psd_factor(self.feature_covariance, "feature covariance")
            return sp.ImmutableMatrix((self._coeffs * r).applyfunc(sp.expand))
        g, gbar = self.sample_gradients, self.mean_gradient
        d, n = g.shape
        return sp.ImmutableMatrix(d, n, lambda i, k: sp.expand(g[i, k] - gbar[i]) / sp.sqrt(n))

    # -- pieces --------------------------------------------------------------------------
    def subset(self, indices) -> "Dataset":
        """The dataset of the samples ``indices`` (same template, or the listed losses)."""
        idx = [int(i) for i in indices]
        if not idx or min(idx) < 0 or max(idx) >= self.n_samples:
            raise SymflowError(f"got indices {idx}; give sample indices in [0, "
                               f"{self.n_samples})")
        if self.template is not None:
            return Dataset(loss=self.template, params=self.params,
                           data_symbols=self.data_symbols, data=self.data[idx],
                           hyper=self.hyper)
        return Dataset(losses=[self.losses[i] for i in idx], params=self.params,
                       hyper=self.hyper)

    def __len__(self) -> int:
        return self.n_samples

    def __repr__(self) -> str:
        what = (f"template {self.template}" if self.template is not None
                else "explicit losses")
        return (f"<Dataset N={self.n_samples} params={list(self.params)} {what} "
                f"method={self.method}>")


def as_dataset(dataset=None, losses=None, params=None, hyper=()) -> Dataset:
    """Normalise the ``dataset=`` / ``losses=`` arguments of the public functions."""
    if dataset is not None and losses is not None:
        raise SymflowError("give dataset=... or losses=[...], not both")
    if dataset is None and isinstance(losses, Dataset):
        dataset, losses = losses, None
    if isinstance(dataset, Dataset):
        if params is not None and tuple(params) != dataset.params:
            raise SymflowError(f"got params={list(params)} but the dataset has "
                               f"params={list(dataset.params)}")
        return dataset
    if dataset is not None:
        raise SymflowError(f"got dataset={v._describe(dataset)}; pass an sf.Dataset")
    if losses is None:
        raise SymflowError("give the training set: losses=[l_1, ..., l_N] or "
                           "dataset=sf.Dataset(loss=template, params=..., data_symbols=..., "
                           "data=...)")
    if all(isinstance(a, (list, tuple)) for a in (losses, params, hyper)):
        try:  # an equal list gives the same Dataset: its derivations and compiled forms are reused
            return _losses_dataset(tuple(losses), tuple(params), tuple(hyper))
        except TypeError:  # unhashable entries: Dataset says what is wrong with them
            pass
    return Dataset(losses=losses, params=params, hyper=hyper)


@functools.lru_cache(maxsize=32)
def _losses_dataset(losses: tuple, params: tuple, hyper: tuple) -> Dataset:
    return Dataset(losses=list(losses), params=params, hyper=hyper)
