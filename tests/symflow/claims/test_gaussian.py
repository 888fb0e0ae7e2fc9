"""Gaussian divergences: closed forms against quadrature, Monte Carlo and each other."""

import numpy as np
import pytest
import scipy.linalg as sla
import sympy as sp
from scipy import stats

import symflow as sf

M1, S1 = [0.3, -0.2], [[1.2, 0.4], [0.4, 0.7]]
M2, S2 = [-0.1, 0.5], [[0.8, -0.3], [-0.3, 1.5]]
# a non-commuting 3-D pair with exact entries (the RootSum route of W2)
A3 = sp.Matrix([[2, 1, 0], [1, 3, 1], [0, 1, 4]]) / 2
B3 = sp.Matrix([[1, 0, 1], [0, 2, 0], [1, 0, 3]]) / 2
MU3 = [sp.Rational(1, 2), 0, -1]


def _pdf(m, S):
    return stats.multivariate_normal(np.array(m, float), np.array(S, float)).pdf


def test_one_dimensional_closed_forms():
    m1, m2 = sp.symbols("m1 m2", real=True)
    a, b = sp.symbols("a b", positive=True)
    assert sp.simplify(sf.gaussian_kl(m1, a**2, m2, b**2)
                       - (sp.log(b / a) + (a**2 + (m1 - m2) ** 2) / (2 * b**2) - sp.S(1) / 2)) == 0
    assert sp.simplify(sf.gaussian_w2(m1, a**2, m2, b**2, squared=True)
                       - ((m1 - m2) ** 2 + (a - b) ** 2)) == 0
    assert sp.simplify(sf.gaussian_bhattacharyya(m1, a**2, m2, b**2)
                       - ((m1 - m2) ** 2 / (4 * (a**2 + b**2))
                          + sp.log((a**2 + b**2) / (2 * a * b)) / 2)) == 0


def test_divergences_vanish_between_equal_laws_and_kl_is_asymmetric():
    a, b = sp.symbols("a b", positive=True)
    S = sp.diag(a, b)
    assert sp.simplify(sf.gaussian_kl([1, 2], S, [1, 2], S)) == 0
    assert sp.simplify(sf.gaussian_bhattacharyya([1, 2], S, [1, 2], S)) == 0
    assert sp.simplify(sf.gaussian_w2([1, 2], S, [1, 2], S, squared=True)) == 0
    assert sf.gaussian_w2(MU3, A3, MU3, A3, squared=True).evalf(30) == pytest.approx(0, abs=1e-25)
    kl12, kl21 = sf.gaussian_kl(M1, S1, M2, S2), sf.gaussian_kl(M2, S2, M1, S1)
    assert abs(kl12 - kl21) > 0.05


def test_kl_and_bhattacharyya_against_quadrature_in_two_dimensions():
    p, q = _pdf(M1, S1), _pdf(M2, S2)
    g = np.linspace(-9, 9, 721)
    X, Y = np.meshgrid(g, g, indexing="ij")
    pts = np.stack([X, Y], -1)
    P, Q = p(pts), q(pts)
    kl = np.trapezoid(np.trapezoid(P * (np.log(P) - np.log(Q)), g), g)
    bc = np.trapezoid(np.trapezoid(np.sqrt(P * Q), g), g)
    assert float(sf.gaussian_kl(M1, S1, M2, S2)) == pytest.approx(kl, rel=1e-9)
    assert float(sf.gaussian_bhattacharyya(M1, S1, M2, S2)) == pytest.approx(-np.log(bc),
                                                                              rel=1e-9)


def test_w2_in_one_dimension_against_quantile_quadrature():
    # W2^2 = int_0^1 (F^-1(t) - G^-1(t))^2 dt for laws on the line
    t = np.linspace(0, 1, 200_001)[1:-1]
    gap = stats.norm(0.3, 1.1).ppf(t) - stats.norm(-0.4, 0.6).ppf(t)
    ref = np.trapezoid(gap**2, t)
    got = sf.gaussian_w2(sp.Rational(3, 10), sp.Rational(121, 100), sp.Rational(-2, 5),
                         sp.Rational(9, 25), squared=True)
    assert got == sp.Rational(49, 100) + sp.Rational(1, 4)
    assert float(got) == pytest.approx(ref, rel=1e-4)


def test_kl_and_bhattacharyya_by_monte_carlo_in_three_dimensions():
    rng = np.random.default_rng(0)
    mu1, cov1 = np.array(MU3, float), np.array(A3, float)
    mu2, cov2 = np.zeros(3), np.array(B3, float)
    x = rng.multivariate_normal(mu1, cov1, 400_000)
    logp = stats.multivariate_normal(mu1, cov1).logpdf(x)
    logq = stats.multivariate_normal(mu2, cov2).logpdf(x)
    d = logp - logq
    kl = float(sf.gaussian_kl(MU3, A3, [0, 0, 0], B3))
    assert abs(d.mean() - kl) < 4 * d.std() / np.sqrt(len(d))
    r = np.exp(-d / 2)                                  # sqrt(q/p), mean = int sqrt(pq)
    db = float(sf.gaussian_bhattacharyya(MU3, A3, [0, 0, 0], B3))
    assert abs(-np.log(r.mean()) - db) < 4 * r.std() / np.sqrt(len(r)) / r.mean()


def test_w2_is_attained_by_the_optimal_map_and_certified_by_duality():
    """Upper bound: the cost of the coupling (X, T X), T the Brenier map. Lower bound:
    Fenchel-Young with phi(x) = x'Ax/2. Both meet the closed form (RootSum route)."""
    w2sq = sf.gaussian_w2(MU3, A3, [0, 0, 0], B3, squared=True)
    assert w2sq.has(sp.RootSum)
    w2sq = float(w2sq.evalf(30))
    m1, c1, c2 = np.array(MU3, float), np.array(A3, float), np.array(B3, float)
    r1 = sla.sqrtm(c1).real
    r1i = np.linalg.inv(r1)
    A = r1i @ sla.sqrtm(r1 @ c2 @ r1).real @ r1i        # T(x) = A (x - m1)
    np.testing.assert_allclose(A @ c1 @ A, c2, atol=1e-12)   # T pushes N1 forward to N2
    upper = m1 @ m1 + np.trace(c1) + np.trace(c2) - 2 * np.trace(A @ c1)
    lower = m1 @ m1 + np.trace(c1) + np.trace(c2) - np.trace(A @ c1) - np.trace(
        np.linalg.inv(A) @ c2)
    assert w2sq == pytest.approx(upper, rel=1e-10) and w2sq == pytest.approx(lower, rel=1e-10)
    rng = np.random.default_rng(1)
    x = rng.multivariate_normal(m1, c1, 200_000)
    cost = np.sum((x - (x - m1) @ A.T) ** 2, axis=1)
    assert abs(cost.mean() - w2sq) < 4 * cost.std() / np.sqrt(len(cost))
    indep = rng.multivariate_normal(np.zeros(3), c2, 200_000)      # a worse coupling
    assert np.mean(np.sum((x - indep) ** 2, axis=1)) > w2sq + 1


def test_each_route_of_the_matrix_square_root_trace():
    a, b, c = sp.symbols("a b c", positive=True)
    # diagonal
    assert sf.trace_sqrt_product(sp.diag(a, b), sp.diag(4, 9)) == 2 * sp.sqrt(a) + 3 * sp.sqrt(b)
    # 2x2 closed form, symbolic: equals the numeric trace at a point
    S = sp.Matrix([[a, c], [c, b]])
    T = sp.Matrix([[2, 1], [1, 3]])
    val = {a: 2, b: 3, c: sp.Rational(1, 2)}
    r = sla.sqrtm(np.array(S.subs(val), float)).real
    ref = np.trace(sla.sqrtm(r @ np.array(T, float) @ r).real)
    assert float(sf.trace_sqrt_product(S, T).subs(val)) == pytest.approx(ref, rel=1e-12)
    # commuting 3x3 (block) pair: tr(S1^(1/2) S2^(1/2)), exact
    C1 = sp.Matrix([[3, 1, 0], [1, 3, 0], [0, 0, 2]])
    C2 = sp.Matrix([[2, 1, 0], [1, 2, 0], [0, 0, 5]])
    got = sf.trace_sqrt_product(C1, C2)
    assert sp.simplify(got - (sf.matrix_sqrt(C1) * sf.matrix_sqrt(C2)).trace()) == 0
    # floats: the mpmath route agrees with the exact RootSum route
    exact = sf.trace_sqrt_product(A3, B3)
    assert abs(sf.trace_sqrt_product(A3.evalf(), B3) - exact.evalf(30)) < 1e-25


def test_matrix_sqrt_closed_forms_square_back():
    a, b, c = sp.symbols("a b c", positive=True)
    S = sp.Matrix([[a, c], [c, b]])
    R = sf.matrix_sqrt(S)
    assert (R * R - S).applyfunc(sp.simplify) == sp.zeros(2)
    R3 = sf.matrix_sqrt(sp.Matrix([[3, 1, 0], [1, 3, 0], [0, 0, 2]]))
    assert (R3 * R3 - sp.Matrix([[3, 1, 0], [1, 3, 0], [0, 0, 2]])).applyfunc(
        sp.simplify) == sp.zeros(3)
    with pytest.raises(sf.SymflowError, match="no closed form"):
        sf.matrix_sqrt(sp.Matrix([[a, 1, 0], [1, b, 1], [0, 1, c]]))


def test_float_inputs_give_floats_that_match_the_exact_results():
    exact = sf.gaussian_kl(MU3, A3, [0, 0, 0], B3)
    num = sf.gaussian_kl([float(v) for v in MU3], np.array(A3, float), [0.0, 0.0, 0.0],
                         np.array(B3, float))
    assert isinstance(num, sp.Float) and abs(num - exact.evalf(30)) < 1e-14


def test_bad_covariances_get_clear_errors():
    with pytest.raises(sf.SymflowError, match="smallest eigenvalue"):
        sf.gaussian_kl([0, 0], [[1, 2], [2, 1]], [0, 0], [[1, 0], [0, 1]])
    with pytest.raises(sf.SymflowError, match="non-symmetric"):
        sf.gaussian_w2([0, 0], [[1, 1], [0, 1]], [0, 0], [[1, 0], [0, 1]])
    with pytest.raises(sf.SymflowError, match="must be 2x2"):
        sf.gaussian_bhattacharyya([0, 0], [[1]], [0, 0], [[1, 0], [0, 1]])
    with pytest.raises(sf.SymflowError, match="different dimensions"):
        sf.gaussian_kl([0], [[1]], [0, 0], [[1, 0], [0, 1]])
    a, b = sp.symbols("a b", positive=True)
    with pytest.raises(sf.SymflowError, match="SymPy proves"):
        sf.gaussian_kl([0, 0], sp.diag(a, -b), [0, 0], sp.eye(2))
    with pytest.raises(sf.SymflowError, match="non-finite"):
        sf.gaussian_kl([float("nan")], [[1.0]], [0], [[1.0]])
    with pytest.raises(sf.SymflowError, match="non-finite"):
        sf.gaussian_w2([0], [[float("inf")]], [0], [[1.0]])
