r"""One-step increment moments: of a stochastic optimizer map, and of an SDE.

**The map.** A stochastic optimizer moves its state :math:`z` by
:math:`\Delta = \Phi_\epsilon(z; g) - z`, where every gradient evaluation inside the rule is
the *same* random field :math:`g = \nabla L + \lambda\,\xi` (one minibatch per step, as in
real training; :math:`\lambda` a noise amplitude, 1 unless a scaling says otherwise). The
rule is run once on a *jet oracle*: at a point :math:`\theta + \delta` it returns the
truncated Taylor series :math:`\sum_{|\alpha|\le K}(\bar g_{i,\alpha} + \lambda\,\xi_{i,\alpha})
\,\delta^\alpha/\alpha!` with symbols for the jets of the mean gradient and of the noise.
Consistency (:math:`\delta \to 0` as :math:`\epsilon \to 0`) makes the truncation exact to
the order asked. The Taylor coefficients of :math:`\Delta` and of :math:`\Delta\Delta^\top`
in :math:`\epsilon` are polynomials in the noise jets; their expectations need

.. math::

    \mathbb E\,\xi_{i,\alpha} = 0 ,\qquad
    \mathbb E\,\xi_{i,\alpha}\,\xi_{j,\beta} = c\,(\partial^\alpha G_{i,:})\cdot
    (\partial^\beta G_{j,:}) ,

with :math:`G` the exact noise factor (:math:`GG^\top = \Sigma_1`, per-sample gradient
covariance; :meth:`Dataset.noise_factor`) and :math:`c = c_{N,B}` the minibatch factor:
:math:`\xi(\theta) = \tfrac1B\sum_{i\in\mathcal B}(\nabla\ell_i - \nabla L)(\theta)`, whose
two-point function is :math:`c_{N,B}\,\tfrac1N\sum_s u_s(x)u_s(y)^\top` with
:math:`u_s = \nabla\ell_s - \nabla L`. Products of three or more noise jets would need the
higher cumulants of the minibatch; a rule whose expansion needs them to the order asked is
refused with a message.

**The SDE.** For :math:`dX = b\,dt + \sigma\,dW`, :math:`D = \sigma\sigma^\top`, run for the
time :math:`\tau` of one step, :math:`\mathbb E\,\varphi(X_\tau) = \sum_k \tfrac{\tau^k}{k!}
\mathcal L^k\varphi(x)` (the semigroup's Taylor series; Li, Tai & E, *Stochastic modified
equations and dynamics of stochastic gradient algorithms I*, JMLR 20, 2019, Lemma 2), with
:math:`\varphi = (X - x)_a` and :math:`(X - x)_a(X - x)_b`. Li, Tai & E's Theorem 1 (after
Milstein): when these moments equal the map's to :math:`O(\epsilon^{p+1})`, the SDE is a
weak approximation of order :math:`p`.

**Symbolic jets** (``jets=True``, what :func:`symflow.sme` uses). The moments are formed
with a symbol for each jet :math:`\partial^\alpha\partial_iL` and for each pair moment
:math:`\mathbb E\,\xi_{i,\alpha}\xi_{j,\beta}` (:class:`NoiseJets`), so every
expectation is a linear map over the noise monomials of a polynomial in symbols, and the
SDE side differentiates through the jets by the chain rule
(:math:`\partial_k\,\partial^\alpha\partial_iL = \partial^{\alpha+e_k}\partial_iL`,
:math:`\partial_k\,\mathbb E\xi_{i,\alpha}\xi_{j,\beta} = \mathbb E\xi_{i,\alpha+e_k}
\xi_{j,\beta} + \mathbb E\xi_{i,\alpha}\xi_{j,\beta+e_k}`). The loss (often
non-polynomial: logistic, ...) enters once, when the matched SDE is substituted at the end:
the result is the same, exactly, and is found in a fraction of the time.
"""

from __future__ import annotations

import functools
import itertools
import math

import sympy as sp

from .._core._errors import SymflowError
from .._core._guard import as_sympy


#: Derive SMEs in symbolic jets (:class:`NoiseJets`). False runs the earlier path, which
#: puts the loss's derivatives in at every expectation; kept as the baseline of
#: ``benchmarks/bench_sme.py`` and for the equality test of the two.
_JETS = True


def symbolic_jets() -> bool:
    """Whether :func:`symflow.sme` derives in symbolic jets (see ``_JETS``)."""
    return _JETS


def multi_indices(dim: int, max_degree: int) -> list:
    """Exponent tuples of total degree ``<= max_degree`` (degree 0 first)."""
    out = []
    for k in range(max_degree + 1):
        for combo in itertools.combinations_with_replacement(range(dim), k):
            out.append(tuple(combo.count(i) for i in range(dim)))
    return out


def _derivative(expr, params, alpha):
    for p, e in zip(params, alpha):
        if e:
            expr = sp.diff(expr, p, e)
    return expr


class GradientNoise:
    r"""The law of the minibatch gradient field at :math:`\theta`, through its jets.

    ``mean_gradient`` is :math:`\nabla L` (a column), ``factor`` a ``d x r`` matrix
    :math:`G(\theta)` with :math:`GG^\top = \Sigma_1`, ``scale`` the factor :math:`c`
    (:math:`c_{N,B}`, or 1 for a user noise model).
    """

    def __init__(self, params, mean_gradient, factor, scale):
        self.params = tuple(params)
        self.mean_gradient = sp.Matrix(mean_gradient)
        self.factor = sp.Matrix(factor)
        self.scale = as_sympy(scale)
        self._mean, self._factor, self._pair = {}, {}, {}

    def mean_jet(self, i, alpha):
        r""":math:`\partial^\alpha \partial_i L`."""
        if (i, alpha) not in self._mean:
            self._mean[(i, alpha)] = sp.expand(_derivative(self.mean_gradient[i], self.params,
                                                           alpha))
        return self._mean[(i, alpha)]

    def factor_jet(self, i, alpha):
        r""":math:`\partial^\alpha G_{i,:}` (a column)."""
        if (i, alpha) not in self._factor:
            self._factor[(i, alpha)] = sp.Matrix([_derivative(e, self.params, alpha)
                                                  for e in self.factor.row(i)])
        return self._factor[(i, alpha)]

    def pair(self, i, alpha, j, beta):
        r""":math:`\mathbb E\,\xi_{i,\alpha}\xi_{j,\beta}` (cached)."""
        key = min((i, alpha, j, beta), (j, beta, i, alpha))
        if key not in self._pair:
            a, b = self.factor_jet(i, alpha), self.factor_jet(j, beta)
            self._pair[key] = sp.expand(self.scale * (a.T * b)[0, 0])
        return self._pair[key]


class NoiseJets:
    r"""Symbols standing for the jets of the gradient law, and their total derivatives.

    ``mean(i, alpha)`` stands for :math:`\partial^\alpha\partial_iL`, ``pair(i, alpha, j,
    beta)`` for :math:`\mathbb E\,\xi_{i,\alpha}\xi_{j,\beta}` (symmetric in its two
    slots). :meth:`diff` differentiates an expression in these symbols and the state by the
    chain rule; :meth:`substitute` puts in the values of ``noise`` (a
    :class:`GradientNoise`), which are computed only there.

    Example::

        >>> import sympy as sp
        >>> w = sp.Symbol("w")
        >>> jets = NoiseJets(GradientNoise([w], [sp.exp(w)], [[w]], 2))
        >>> g, p = jets.mean(0, (0,)), jets.pair(0, (0,), 0, (0,))
        >>> jets.substitute(jets.diff(g * p, w))
        2*w**2*exp(w) + 4*w*exp(w)
    """

    def __init__(self, noise: GradientNoise):
        self.noise = noise
        self.index = {p: k for k, p in enumerate(noise.params)}
        self._mean, self._pair, self._key = {}, {}, {}

    def mean(self, i, alpha):
        r"""The symbol of :math:`\partial^\alpha\partial_iL`."""
        key = (i, tuple(alpha))
        if key not in self._mean:
            sym = sp.Dummy(f"g{i}_{''.join(map(str, alpha))}")
            self._mean[key], self._key[sym] = sym, ("mean",) + key
        return self._mean[key]

    def pair(self, i, alpha, j, beta):
        r"""The symbol of :math:`\mathbb E\,\xi_{i,\alpha}\xi_{j,\beta}`."""
        key = min((i, tuple(alpha), j, tuple(beta)), (j, tuple(beta), i, tuple(alpha)))
        if key not in self._pair:
            sym = sp.Dummy(f"P{key[0]}_{''.join(map(str, key[1]))}_{key[2]}_"
                           f"{''.join(map(str, key[3]))}")
            self._pair[key], self._key[sym] = sym, ("pair",) + key
        return self._pair[key]

    def _derivative(self, sym, k):
        kind, *key = self._key[sym]

        def up(alpha):
            return tuple(e + (n == k) for n, e in enumerate(alpha))

        if kind == "mean":
            i, alpha = key
            return self.mean(i, up(alpha))
        i, alpha, j, beta = key
        return self.pair(i, up(alpha), j, beta) + self.pair(i, alpha, j, up(beta))

    def diff(self, expr, coord):
        """Total derivative of ``expr`` (in the state and the jet symbols) along ``coord``."""
        out = sp.diff(expr, coord)
        k = self.index.get(coord)
        if k is None:
            return out
        for sym in sorted(expr.free_symbols & self._key.keys(), key=str):
            out += sp.diff(expr, sym) * self._derivative(sym, k)
        return out

    def values(self, symbols=None) -> dict:
        """``{symbol: value}`` for ``symbols`` (default: every jet symbol made so far); the
        values (derivatives of the loss) are computed here, once each."""
        out = {}
        for sym in (self._key if symbols is None else symbols):
            kind, *key = self._key[sym]
            out[sym] = self.noise.mean_jet(*key) if kind == "mean" else self.noise.pair(*key)
        return out

    def substitute(self, expr):
        """``expr`` (an expression or a Matrix) with the values of the jets it holds put in."""
        return expr.xreplace(self.values(expr.free_symbols & self._key.keys()))


class JetOracle:
    """A gradient oracle returning truncated Taylor series of ``mean + amplitude * noise``."""

    def __init__(self, params, step, degree, amplitude=1, jets: NoiseJets | None = None):
        self.params, self.step, self.degree = tuple(params), step, degree
        self.amplitude = as_sympy(amplitude)
        dim = len(params)
        self.alphas = multi_indices(dim, degree)
        self.gbar = {(i, a): (jets.mean(i, a) if jets is not None else
                              sp.Dummy(f"g{i}_{''.join(map(str, a))}"))
                     for i in range(dim) for a in self.alphas}
        self.xi = {(i, a): sp.Dummy(f"xi{i}_{''.join(map(str, a))}")
                   for i in range(dim) for a in self.alphas}
        self.xi_key = {s: k for k, s in self.xi.items()}

    def __call__(self, point):
        point = sp.Matrix(point) if isinstance(point, (list, tuple)) else point
        dim = len(self.params)
        if not isinstance(point, sp.MatrixBase) or len(point) != dim:
            raise SymflowError(f"grad() was called with {point!r}; it takes a column Matrix "
                               f"of {dim} entries (one per parameter)")
        delta = [sp.expand(point[k] - self.params[k]) for k in range(dim)]
        if any(sp.expand(dk.xreplace({self.step: 0})) != 0 for dk in delta):
            raise SymflowError(
                f"the rule evaluates the gradient at {list(point)}, which does not tend to "
                f"theta as the step {self.step} -> 0; the stochastic modified equation needs a "
                "consistent rule (every gradient evaluation at theta + O(step))")
        out = []
        for i in range(dim):
            total = sp.S.Zero
            for a in self.alphas:
                mono = sp.Mul(*[dk**e for dk, e in zip(delta, a)])
                if mono == 0:
                    continue
                coeff = self.gbar[(i, a)] + self.amplitude * self.xi[(i, a)]
                total += coeff * mono / sp.Mul(*[math.factorial(e) for e in a])
            out.append(total)
        return sp.Matrix(out)

    def values(self, noise: GradientNoise) -> dict:
        """``{gbar symbol: its value}`` for the mean-gradient jets."""
        return {s: noise.mean_jet(i, a) for (i, a), s in self.gbar.items()}


def _regular_coefficients(expr, step, order):
    out, deriv = [], expr
    for k in range(order + 1):
        value = deriv.xreplace({step: 0})
        if value.has(sp.nan, sp.zoo, sp.oo, -sp.oo):
            return None
        out.append(sp.expand(value / math.factorial(k)))
        if k < order:
            deriv = sp.diff(deriv, step)
    return out


def _power_buckets(expr, step):
    """``{k: [terms]}`` of an expanded polynomial in ``step`` (None if it is not one)."""
    out = {}
    for term in sp.Add.make_args(expr):
        coeff, power = term.as_coeff_exponent(step)
        if not (power.is_Integer and power >= 0) or coeff.has(step):
            return None
        out.setdefault(int(power), []).append(coeff)
    return out


class _Laurent:
    r"""Truncated Laurent series :math:`\sum_{k<P} c_k\,\epsilon^{v+k}` (relative precision P)."""

    def __init__(self, val, coeffs):
        self.val, self.coeffs = val, list(coeffs)

    def shifted(self, size):
        out = self.coeffs[:size]
        return out + [sp.S.Zero] * (size - len(out))


def _mul(a, b, size):
    ca, cb = a.shifted(size), b.shifted(size)
    return _Laurent(a.val + b.val, [sp.expand(sum((ca[i] * cb[k - i] for i in range(k + 1)),
                                                  sp.S.Zero)) for k in range(size)])


def _normalised(series, size):
    coeffs = series.shifted(size)
    k = 0
    while k < size and coeffs[k] == 0:
        k += 1
    return _Laurent(series.val + k, coeffs[k:]) if k < size else None


def _laurent(expr, step, size):
    """``expr`` as a :class:`_Laurent` in ``step`` with ``size`` terms, or None."""
    if not expr.has(step):
        return _Laurent(0, [expr])
    if expr == step:
        return _Laurent(1, [sp.S.One])
    if expr.is_Add:
        parts = [_laurent(a, step, size) for a in expr.args]
        if any(p is None for p in parts):
            return None
        low = min(p.val for p in parts)
        coeffs = [sp.S.Zero] * size
        for p in parts:
            for k, c in enumerate(p.shifted(size)):
                if p.val - low + k < size:
                    coeffs[p.val - low + k] += c
        return _Laurent(low, [sp.expand(c) for c in coeffs])
    if expr.is_Mul:
        out = _Laurent(0, [sp.S.One])
        for a in expr.args:
            part = _laurent(a, step, size)
            if part is None:
                return None
            out = _mul(out, part, size)
        return out
    if expr.is_Pow and expr.exp.is_Rational and not expr.exp.has(step):
        extra = 1   # leading zeros of the base cost relative precision: ask for more
        while True:
            raw = _laurent(expr.base, step, size + extra)
            if raw is None:
                return None
            base = _normalised(raw, size + extra)
            if base is not None and base.val - raw.val <= extra:
                break
            if extra > size + 8:
                return None
            extra = base.val - raw.val if base is not None else 2 * extra + 1
        alpha = expr.exp
        if (base.val * alpha).q != 1:
            return None
        c0 = base.coeffs[0]
        rest = [c / c0 for c in base.shifted(size)[1:]]
        t = _Laurent(1, rest) if rest else _Laurent(1, [sp.S.Zero])
        total = [sp.S.Zero] * size
        power = _Laurent(0, [sp.S.One])
        for j in range(size):
            coeff = sp.binomial(alpha, j)
            for k, c in enumerate(power.shifted(size)):
                if power.val + k < size:
                    total[power.val + k] += coeff * c
            power = _mul(power, t, size)
        lead = sp.Pow(c0, alpha)
        return _Laurent(base.val * alpha, [sp.expand(lead * c) for c in total])
    return None


def taylor_coefficients(expr, step, order: int) -> list:
    """Coefficients of ``step**0 .. step**order`` in the Taylor series of ``expr``.

    Polynomials directly; otherwise as a truncated Laurent series built through the
    expression tree (sums, products, rational powers: ``h/(sigma/h + eps/h)`` has a
    removable pole), or by derivatives at 0 for other functions.
    """
    if expr.is_polynomial(step):
        buckets = _power_buckets(sp.expand(expr), step)
        if buckets is not None:
            return [sp.Add(*buckets.get(k, ())) for k in range(order + 1)]
    # relative precision: from 1 term, grown until the series reaches step**order (the
    # earlier path, _JETS = False, always asked for order + 3 terms)
    size = 1 if _JETS else order + 3
    series = _laurent(expr, step, size)
    for _ in range(3):
        if series is None or series.val + size > order:
            break
        size = order + 1 - series.val
        series = _laurent(expr, step, size)
    if series is not None and series.val + size <= order:
        size = order + 3 - series.val
        series = _laurent(expr, step, size)
    if series is not None:
        coeffs = series.shifted(size)
        if any(sp.expand(c) != 0 for k, c in enumerate(coeffs) if series.val + k < 0):
            raise SymflowError(f"{expr} has a pole at {step} = 0; the increment must vanish "
                               "with the step")
        return [sp.expand(coeffs[k - series.val]) if 0 <= k - series.val < size else
                sp.S.Zero for k in range(order + 1)]
    direct = _regular_coefficients(expr, step, order)
    if direct is not None:
        return direct
    raise SymflowError(f"cannot expand {expr} in powers of {step}")


_NOT_POLYNOMIAL = (
    "the step of {where} is not polynomial in the minibatch gradient at the order asked (e.g. "
    "a gradient inside a square root or a denominator), so its moments need every moment of "
    "the minibatch, not only its covariance; the SME is derived for rules polynomial in the "
    "gradient, and for memory that averages the gradient slowly (1 - beta = c*sf.h)")
_CUMULANTS = (
    "the step of {where} holds a product of {degree} minibatch-noise terms at the order "
    "asked; its expectation needs the third (or higher) cumulants of the minibatch gradient, "
    "which this engine does not form. Ask for a lower order")


def noise_terms(expr, xis, where="the rule") -> dict:
    """``{noise monomial: coefficient}`` of ``expr`` (expanded here), the monomial a sorted
    tuple of noise symbols (``()`` for the noise-free part); a SymflowError when ``expr`` is
    not polynomial in ``xis``. One pass over the terms: no polynomial ring is built."""
    xis = set(xis)
    out = {}
    for term in sp.Add.make_args(sp.expand(expr)):
        if not term.free_symbols & xis:
            out[()] = out.get((), sp.S.Zero) + term
            continue
        coeff, rest = term.as_independent(*xis, as_Add=False)
        mono = []
        for base, exp in rest.as_powers_dict().items():
            if base not in xis or not (exp.is_Integer and exp > 0):
                raise SymflowError(_NOT_POLYNOMIAL.format(where=where))
            mono += [base] * int(exp)
        key = tuple(sorted(mono, key=str))
        out[key] = out.get(key, sp.S.Zero) + coeff
    return out


class _Expectation:
    """Expectation of polynomials in the noise jets, with pair moments from ``noise`` (or,
    with ``jets``, the symbols of :class:`NoiseJets`: a linear map over the noise monomials,
    nothing substituted)."""

    def __init__(self, oracle: JetOracle, noise: GradientNoise, where: str,
                 jets: NoiseJets | None = None):
        self.oracle, self.noise, self.where, self.jets = oracle, noise, where, jets
        self.values = oracle.values(noise) if jets is None else None

    def __call__(self, expr):
        if self.jets is not None:
            return self._symbolic(expr)
        expr = sp.expand(expr)
        xis = sorted(expr.free_symbols & set(self.oracle.xi_key), key=str)
        if not xis:
            return sp.expand(expr.xreplace(self.values))
        if not expr.is_polynomial(*xis):
            raise SymflowError(_NOT_POLYNOMIAL.format(where=self.where))
        total = sp.S.Zero
        for mono, coeff in sp.Poly(expr, *xis).terms():
            degree = sum(mono)
            if degree == 1:
                continue
            if degree > 2:
                raise SymflowError(_CUMULANTS.format(where=self.where, degree=degree))
            if degree == 0:
                total += coeff
                continue
            keys = [self.oracle.xi_key[x] for x, e in zip(xis, mono) for _ in range(e)]
            (i, a), (j, b) = keys
            total += coeff * self.noise.pair(i, a, j, b)
        return sp.expand(as_sympy(total).xreplace(self.values))

    def _symbolic(self, expr):
        terms = noise_terms(expr, self.oracle.xi_key, self.where)
        total = []
        for mono, coeff in terms.items():
            if len(mono) > 2:
                raise SymflowError(_CUMULANTS.format(where=self.where, degree=len(mono)))
            if len(mono) == 1:
                continue
            if len(mono) == 2:
                (i, a), (j, b) = (self.oracle.xi_key[x] for x in mono)
                coeff = coeff * self.jets.pair(i, a, j, b)
            total.append(coeff)
        return sp.expand(sp.Add(*total))


class IncrementMoments:
    r"""Taylor coefficients of :math:`\mathbb E\Delta` and :math:`\mathbb E\Delta\Delta^\top`.

    ``mean[k]`` is the column coefficient of ``step**k`` of :math:`\mathbb E\Delta`,
    ``second[k]`` the matrix coefficient of ``step**k`` of :math:`\mathbb E\Delta\Delta^\top`
    (``k = 0 .. order``); ``noise_linear[k]`` the part of the coefficient of ``step**k`` of
    :math:`\Delta` linear in the noise at :math:`\theta`, as a matrix ``R_k`` with
    :math:`\Delta_k \ni R_k\,\xi(\theta)` (None where the noise enters otherwise).
    """

    def __init__(self, coords, step, mean, second, noise_linear, jets=None):
        self.coords, self.step = tuple(coords), step
        self.mean, self.second, self.noise_linear = mean, second, noise_linear
        #: The :class:`NoiseJets` the moments are written in (None: actual values).
        self.jets = jets

    def substituted(self) -> IncrementMoments:
        """The same moments with the jets' values put in (``self`` when there are none)."""
        if self.jets is None:
            return self
        sub = self.jets.substitute

        def put(mats):
            return [None if m is None else sub(m).applyfunc(sp.expand) for m in mats]

        return IncrementMoments(self.coords, self.step, put(self.mean), put(self.second),
                                put(self.noise_linear))

    @property
    def order(self) -> int:
        return len(self.mean) - 1


def map_increment_moments(rule, coords, params, step, noise: GradientNoise, order: int,
                          amplitude=1, second_order=None, where="the rule",
                          jets: bool = False) -> IncrementMoments:
    r"""Moments of the increment of ``rule(coords, oracle) -> next coords``, to ``step**order``.

    ``coords`` is the state (the parameters first, then any memory); the oracle is a
    :class:`JetOracle` in ``params``. ``second_order`` (default ``order``) bounds the
    second moments. With ``jets=True`` the moments are written in the symbols of a
    :class:`NoiseJets` (``moments.jets``; :meth:`IncrementMoments.substituted` puts the
    values in).

    Example (SGD: the mean step is :math:`-h\nabla L`, the second moment
    :math:`h^2(\nabla L\nabla L^\top + c\Sigma_1)`)::

        >>> import sympy as sp
        >>> from symflow._core._symbols import h
        >>> w = sp.Symbol("w")
        >>> noise = GradientNoise([w], [w], [[1]], sp.Rational(1, 2))
        >>> mom = map_increment_moments(lambda z, g: z - h * g(z), [w], [w], h, noise, 2)
        >>> mom.mean[1], mom.second[2]
        (Matrix([[-w]]), Matrix([[w**2 + 1/2]]))
    """
    second_order = order if second_order is None else second_order
    top = max(order, second_order)
    symbols = NoiseJets(noise) if jets else None
    oracle = JetOracle(params, step, top, amplitude, symbols)
    z = sp.Matrix(coords)
    out = rule(z, oracle)
    delta = list(sp.Matrix(out) - z)
    coeffs = [taylor_coefficients(e, step, top) for e in delta]
    if any(c[0] != 0 for c in coeffs):
        moving = [str(s) for s, c in zip(coords, coeffs) if c[0] != 0]
        raise SymflowError(f"{where} moves {moving} by O(1) per step as {step} -> 0; the SDE "
                           "needs increments that vanish with the step")
    expect = _Expectation(oracle, noise, where, symbols)
    n = len(coords)
    mean = [sp.Matrix([expect(coeffs[a][k]) for a in range(n)]) for k in range(order + 1)]
    second = []
    for k in range(second_order + 1):
        mat = sp.zeros(n, n)
        for a in range(n):
            for b in range(a, n):
                prod = sum((coeffs[a][i] * coeffs[b][k - i] for i in range(k + 1)), sp.S.Zero)
                mat[a, b] = mat[b, a] = expect(prod)
        second.append(mat)
    base = [oracle.xi[(i, (0,) * len(params))] for i in range(len(params))]
    others = set(oracle.xi.values()) - set(base)
    noise_linear = []
    for k in range(top + 1):
        if symbols is not None:
            noise_linear.append(_linear_rows([coeffs[a][k] for a in range(n)], base,
                                             oracle.xi_key))
            continue
        rows = []
        for a in range(n):
            c = coeffs[a][k]
            if c.free_symbols & others or not c.is_polynomial(*base) or \
                    any(sp.Poly(c, *base).degree(x) > 1 for x in base) or \
                    sp.Poly(c, *base).total_degree() > 1:
                rows = None
                break
            rows.append([sp.expand(sp.diff(c, x).xreplace(oracle.values(noise))) for x in base])
        noise_linear.append(None if rows is None else sp.Matrix(rows))
    return IncrementMoments(coords, step, mean, second, noise_linear, symbols)


def _linear_rows(entries, base, xis):
    """The matrix ``R`` with ``entries`` = (noise-free part) + ``R`` times the noise at theta
    (``base``), or None when the noise enters otherwise."""
    rows = []
    for entry in entries:
        try:
            terms = noise_terms(entry, xis)
        except SymflowError:
            return None
        if any(len(m) > 1 or (m and m[0] not in base) for m in terms):
            return None
        rows.append([sp.expand(terms.get((x,), sp.S.Zero)) for x in base])
    return sp.Matrix(rows)


def sde_increment_moments(drift, covariance, coords, step, time_step, order: int,
                          second_order=None, jets: NoiseJets | None = None) -> IncrementMoments:
    r"""Moments of :math:`X_\tau - x` of an SDE started at :math:`x`, to ``step**order``.

    ``time_step`` is :math:`\tau` as a power of ``step`` (``sf.h`` for :math:`t = nh`).
    Uses :math:`\mathbb E\varphi(X_\tau) = \sum_k\tau^k\mathcal L^k\varphi/k!` for
    :math:`\varphi` the increment and its outer square. With ``jets`` the drift and the
    covariance may hold its symbols; derivatives then go through :meth:`NoiseJets.diff`.
    """
    second_order = order if second_order is None else second_order
    coords = tuple(coords)
    n = len(coords)
    drift, cov = sp.Matrix(drift), sp.Matrix(covariance)
    q = max(sp.Poly(time_step, step).degree(), 1)
    top = max(order, second_order)
    kmax = top // q

    def truncate(expr, upto):
        if upto < 0:
            return sp.S.Zero
        expr = sp.expand(expr)
        if not expr.has(step):
            return expr
        return sp.Add(*[c * step**j for j, c in enumerate(taylor_coefficients(expr, step, upto))])

    diff = sp.diff if jets is None else jets.diff

    def gen(phi):
        grad = [diff(phi, c) for c in coords]
        out = sum((drift[a] * grad[a] for a in range(n)), sp.S.Zero)
        for a in range(n):
            for b in range(n):
                if cov[a, b] != 0:
                    out += cov[a, b] * diff(grad[a], coords[b]) / 2
        return out

    @functools.cache
    def expectation(phi, upto):
        total, term = sp.S.Zero, phi
        for k in range(kmax + 1):
            total += time_step**k / math.factorial(k) * term
            if k < kmax:
                term = truncate(gen(term), upto - q * (k + 1))
        return taylor_coefficients(total, step, upto)

    mean_series = []
    for a in range(n):
        phi = coords[a]
        ser = list(expectation(phi, order))
        ser[0] = ser[0] - coords[a]
        mean_series.append(ser)
    mean = [sp.Matrix([sp.expand(mean_series[a][k]) for a in range(n)])
            for k in range(order + 1)]
    second = [sp.zeros(n, n) for _ in range(second_order + 1)]
    for a in range(n):
        for b in range(a, n):
            # E (X_a - x_a)(X_b - x_b) = E X_a X_b - x_a E X_b - x_b E X_a + x_a x_b
            eab = expectation(coords[a] * coords[b], second_order)
            ea = expectation(coords[a], second_order)
            eb = expectation(coords[b], second_order)
            for k in range(second_order + 1):
                val = eab[k] - coords[a] * eb[k] - coords[b] * ea[k]
                if k == 0:
                    val += coords[a] * coords[b]
                second[k][a, b] = second[k][b, a] = sp.expand(val)
    return IncrementMoments(coords, step, mean, second, [None] * (second_order + 1), jets)


__all__ = ["GradientNoise", "IncrementMoments", "JetOracle", "NoiseJets", "map_increment_moments",
           "noise_terms", "sde_increment_moments", "symbolic_jets", "taylor_coefficients"]
