"""SGD, datasets, SDE objects and stochastic modified equations (symbolic, exact)."""

import itertools
import warnings

import numpy as np
import pytest
import sympy as sp

import symflow as sf
from symflow import SDE, SGD, Dataset, sme
from symflow._stochastic._sde import psd_factor

h = sf.h
w, b, x, y = sp.symbols("w b x y")
u, v = sp.symbols("u v")
DATA = np.array([[1.0, 2.0], [0.5, -1.0], [2.0, 0.3], [-1.5, 0.1], [0.2, 1.7]])


def zero(expr) -> bool:
    return sp.simplify(sp.expand(expr)) == 0


def mat_zero(m) -> bool:
    return all(zero(e) for e in sp.Matrix(m))


def regression_dataset():
    return Dataset(loss=(w * x + b - y) ** 2 / 2, params=[w, b], data_symbols=[x, y],
                   data=DATA)


def explicit_losses():
    rows = [[sp.Rational(repr(float(c))) for c in row] for row in DATA]
    return [(w * r[0] + b - r[1]) ** 2 / 2 for r in rows]


def direct_covariance(losses, params):
    """Sigma_1 = mean of g_i g_i^T minus gbar gbar^T, written out by hand."""
    grads = [sp.Matrix([sp.diff(l, p) for p in params]) for l in losses]
    n = len(grads)
    gbar = sum(grads, sp.zeros(len(params), 1)) / n
    second = sum((g * g.T for g in grads), sp.zeros(len(params), len(params))) / n
    return second - gbar * gbar.T, gbar


# -- SGD ------------------------------------------------------------------------------------
def test_sgd_mean_step_is_gradient_descent():
    me_sgd = sf.modified_equation(SGD(batch_size=3), (x * y - 1) ** 2 / 2, [x, y], order=2)
    me_gd = sf.modified_equation(sf.GD(), (x * y - 1) ** 2 / 2, [x, y], order=2)
    assert all(mat_zero(a - c) for a, c in zip(me_sgd.terms, me_gd.terms))
    assert SGD(4).noise_scale(100) == sp.Rational(1, 4)
    assert SGD(4, replacement=False).noise_scale(100) == sp.Rational(96, 4 * 99)
    assert SGD(5, replacement=False).noise_scale(5) == 0
    B = sp.Symbol("B", positive=True)
    assert SGD(B).noise_scale(10) == 1 / B
    assert "batch_size=4" in repr(SGD(4)) and SGD(4) == SGD(4) and SGD(4) != SGD(5)


@pytest.mark.parametrize("bad", [0, -2, 2.5, "4", True])
def test_sgd_bad_batch_size(bad):
    with pytest.raises(sf.SymflowError, match="batch_size"):
        SGD(batch_size=bad)


def test_sgd_batch_larger_than_dataset_without_replacement():
    with pytest.raises(sf.SymflowError, match="exceeds"):
        SGD(10, replacement=False).noise_scale(5)


# -- datasets -------------------------------------------------------------------------------
def test_template_moments_equal_explicit_sums():
    ds = regression_dataset()
    ex = Dataset(losses=explicit_losses(), params=[w, b])
    assert ds.method == "moments" and ex.method == "explicit"
    assert zero(ds.mean_loss - ex.mean_loss)
    assert mat_zero(ds.mean_gradient - ex.mean_gradient)
    direct, gbar = direct_covariance(explicit_losses(), [w, b])
    assert mat_zero(ds.gradient_covariance - direct)
    assert mat_zero(ex.gradient_covariance - direct)
    assert mat_zero(ds.mean_gradient - gbar)
    for d in (ds, ex):  # exact factors, no matrix square root
        g = d.noise_factor
        assert mat_zero(g * g.T - direct)
    assert ds.noise_factor.shape[1] <= 4 and ex.noise_factor.shape == (2, 5)


def test_explicit_polynomial_losses_use_coefficient_features():
    """N = 12 explicit losses, 6 coefficient features: an exact factor with <= 6 columns."""
    rows = [(sp.Rational(k, 3) - 1, sp.Rational(k * k, 7) - 2) for k in range(12)]
    losses = [(w * r0 + b - r1) ** 2 / 2 for r0, r1 in rows]
    ds = Dataset(losses=losses, params=[w, b])
    direct, gbar = direct_covariance(losses, [w, b])
    assert ds.method == "features" and ds.noise_factor.shape[1] <= 6
    assert mat_zero(ds.gradient_covariance - direct) and mat_zero(ds.mean_gradient - gbar)
    assert mat_zero(ds.noise_factor * ds.noise_factor.T - direct)
    coeffs, feats = ds.gradient_factors()  # grad l_i = C(theta) F_i
    for i in (0, 5, 11):
        g = coeffs * sp.Matrix([sp.nsimplify(f) for f in feats[i]])
        assert mat_zero(g - sp.Matrix([sp.diff(losses[i], p) for p in (w, b)]))
    sde = sme(SGD(3), ds, order=1)  # a Dataset is accepted in the losses slot
    assert sde.noise_dim <= 6 and mat_zero(sde.covariance - h / 3 * direct)
    coeffs, feats = regression_dataset().gradient_factors()
    g = coeffs * sp.Matrix([sp.nsimplify(f) for f in feats[2]])
    assert mat_zero(g - sp.Matrix([sp.diff(explicit_losses()[2], p) for p in (w, b)]))


def test_minibatch_covariance_by_enumeration():
    """Enumerate every minibatch: the exact covariance of the batch gradient is c_{N,B} Sigma_1."""
    losses = explicit_losses()[:4]
    ds = Dataset(losses=losses, params=[w, b])
    grads = [sp.Matrix([sp.diff(l, p) for p in (w, b)]) for l in losses]
    n, bsz = 4, 2
    for replacement, batches in ((True, list(itertools.product(range(n), repeat=bsz))),
                                 (False, list(itertools.combinations(range(n), bsz)))):
        means = [sum((grads[i] for i in batch), sp.zeros(2, 1)) / bsz for batch in batches]
        avg = sum(means, sp.zeros(2, 1)) / len(means)
        cov = sum(((m - avg) * (m - avg).T for m in means), sp.zeros(2, 2)) / len(means)
        sde = sme(SGD(batch_size=bsz, replacement=replacement), dataset=ds)
        assert mat_zero(sde.covariance - h * cov), replacement
        assert mat_zero(sde.diffusion * sde.diffusion.T - sde.covariance)
        assert mat_zero(avg - ds.mean_gradient)


def test_large_dataset_uses_exact_moments():
    """10^4 samples through exact data moments, against floating-point sums."""
    rng = np.random.default_rng(0)
    xs = rng.normal(size=10_000)
    data = np.column_stack([xs, 2 * xs - 1 + 0.1 * rng.normal(size=xs.size)])
    ds = Dataset(loss=(w * x + b - y) ** 2 / 2, params=[w, b], data_symbols=[x, y], data=data)
    cov = ds.gradient_covariance
    g = ds.noise_factor
    # compare with floating-point sums at a point
    pt = {w: sp.Rational(3, 2), b: sp.Rational(-1, 3)}
    r = 1.5 * data[:, 0] - 1 / 3 - data[:, 1]
    per = np.stack([r * data[:, 0], r])
    expect = np.cov(per, bias=True)
    got = np.array(cov.xreplace(pt).evalf(30).tolist(), dtype=float)
    assert np.allclose(got, expect, rtol=1e-10, atol=1e-12)
    gg = np.array((g * g.T).xreplace(pt).evalf(30).tolist(), dtype=float)
    assert np.allclose(gg, expect, rtol=1e-10, atol=1e-12)


def test_non_polynomial_template_is_summed_explicitly_with_limits():
    lg = sp.log(1 + sp.exp(-y * w * x))
    data = np.column_stack([np.linspace(-1, 1, 30), np.sign(np.linspace(-1, 1, 30)) + 0.5])
    with pytest.warns(UserWarning, match="not polynomial"):
        ds = Dataset(loss=lg, params=[w], data_symbols=[x, y], data=data, warn_explicit=20)
    assert ds.method == "explicit" and len(ds) == 30
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        small = Dataset(loss=lg, params=[w], data_symbols=[x, y], data=data[:5])
    assert zero(small.mean_loss - sum(lg.xreplace({x: sp.Rational(repr(float(r[0]))),
                                                   y: sp.Rational(repr(float(r[1])))})
                                      for r in data[:5]) / 5)
    with pytest.raises(sf.SymflowError, match="max_explicit"):
        Dataset(loss=lg, params=[w], data_symbols=[x, y], data=data, max_explicit=10)


@pytest.mark.parametrize("kwargs, match", [
    (dict(loss=(w * x) ** 2, params=[w], data_symbols=[x], data=[[1.0, 2.0]]), "shape"),
    (dict(loss=(w * x) ** 2, params=[w], data_symbols=[x], data=[1.0, np.nan]), "NaN"),
    (dict(loss=(w * x) ** 2, params=[w], data_symbols=[x]), "data"),
    (dict(losses=[], params=[w]), "at least one"),
    (dict(losses=[w**2], loss=w, params=[w]), "either"),
    (dict(loss=(w * x - y) ** 2, params=[w], data_symbols=[x], data=[1.0]), "neither"),
])
def test_dataset_bad_input(kwargs, match):
    with pytest.raises(sf.SymflowError, match=match):
        Dataset(**kwargs)


# -- SDE objects ----------------------------------------------------------------------------
def test_sde_basic_structure_and_display():
    s = sp.Symbol("s", positive=True)
    sde = SDE(drift=[-x, -y], diffusion=sp.Matrix([[s, 0], [0, s * x]]), params=[x, y])
    assert sde.dim == 2 and sde.noise_dim == 2 and sde.is_diagonal and not sde.is_additive
    assert mat_zero(sde.covariance - sp.diag(s**2, s**2 * x**2))
    # Ito -> Stratonovich: b - 1/2 sum_jk sigma_jk d_j sigma_ik
    assert mat_zero(sde.stratonovich_drift() - sp.Matrix([-x, -y]))
    sde2 = SDE(drift=[-x], diffusion=[[x]], params=[x])
    assert mat_zero(sde2.stratonovich_drift() - sp.Matrix([-x - x / 2]))
    assert "dW" in sde.latex() and "$" in sde._repr_latex_()
    assert "Ito SDE" in str(sde) and "d=2" in repr(sde)
    assert sde.generator(x**2) == -2 * x**2 + s**2
    num = sde.subs({"s": 2})
    assert num.constants == () and num.covariance[0, 0] == 4


def test_covariance_is_factored_exactly():
    cov = sp.Matrix([[4, 2, 0], [2, 2, 0], [0, 0, 0]])  # singular PSD
    sde = SDE(drift=[-x, -y, -u], covariance=cov, params=[x, y, u])
    assert sde.diffusion.shape == (3, 2)
    assert mat_zero(sde.diffusion * sde.diffusion.T - cov)
    a = sp.Symbol("a", positive=True)
    g = psd_factor(sp.Matrix([[a, 1], [1, a]]))
    assert mat_zero(g * g.T - sp.Matrix([[a, 1], [1, a]]))


@pytest.mark.parametrize("cov, match", [
    (sp.Matrix([[1, 2], [2, 1]]), "not positive semidefinite"),
    (sp.Matrix([[-1, 0], [0, 1]]), "not positive semidefinite"),
    (sp.Matrix([[0, 1], [1, 1]]), "not positive semidefinite"),
    (sp.Matrix([[1, 1], [0, 1]]), "not symmetric"),
    (sp.Matrix([[1, 0, 0], [0, 1, 0], [0, 0, 1]]), "3x3"),
    (sp.Matrix([[1, 0], [0, 1 - x**2]]), "not positive semidefinite"),
])
def test_bad_covariance(cov, match):
    with pytest.raises(sf.SymflowError, match=match):
        SDE(drift=[-x, -y], covariance=cov, params=[x, y])


def test_bad_sde_shapes():
    with pytest.raises(sf.SymflowError, match="2 parameters"):
        SDE(drift=[-x], params=[x, y])
    with pytest.raises(sf.SymflowError, match="diffusion"):
        SDE(drift=[-x, -y], diffusion=sp.ones(3, 1), params=[x, y])
    with pytest.raises(sf.SymflowError, match="does not equal"):
        SDE(drift=[-x], diffusion=[[1]], covariance=[[2]], params=[x])
    with pytest.raises(sf.SymflowError, match="params"):
        SDE(drift=[-x])
    with pytest.raises(sf.SymflowError, match="not -grad"):
        SDE(drift=[-x], params=[x], potential=x**3)
    with pytest.raises(sf.SymflowError, match="noise"):
        sme(sf.GD(), losses=x**2, params=[x], noise=sp.Matrix([[1, 3], [3, 1]]))
    with pytest.raises(sf.SymflowError, match="no gradient noise"):
        sme(sf.GD(), losses=[x**2, x**4], params=[x])
    with pytest.raises(sf.SymflowError, match="order 1 or 2"):
        sme(SGD(1), losses=[x**2, x**4], params=[x], order=3)
    with pytest.raises(sf.SymflowError, match="variance"):
        sme(sf.GD(), losses=x**2, params=[x], noise=-1)


@pytest.mark.parametrize("build", [
    lambda: SDE(drift=["x**2"], diffusion=1, params=[x]),
    lambda: SDE(drift=[-x], diffusion=[["__import__('os').getpid()"]], params=[x]),
    lambda: SDE(drift=[-x], params=[x], potential="x**2/2"),
    lambda: sme(sf.GD(), losses=x**2, params=[x], noise="1"),
    lambda: sme(sf.GD(), losses=x**2, params=[x], noise_factor=[["x"]]),
], ids=["drift", "diffusion", "potential", "noise", "noise_factor"])
def test_expression_strings_are_refused_not_evaluated(build):
    with pytest.raises(sf.SymflowError, match="parse_expression"):
        build()


def test_non_finite_noise_and_non_numeric_data():
    with pytest.raises(sf.SymflowError, match="non-finite"):
        sme(sf.GD(), losses=x**2, params=[x], noise=float("nan"))
    with pytest.raises(sf.SymflowError, match="non-finite"):
        sme(sf.GD(), losses=x**2 + y**2, params=[x, y], noise=[[1, 0], [0, sp.oo]])
    with pytest.raises(sf.SymflowError, match="numeric array"):
        Dataset(loss=(w * x - y) ** 2, params=[w], data_symbols=[x, y], data=[["a", "b"]])


# -- SME ------------------------------------------------------------------------------------
def test_sme_order_two_drift_is_the_implicit_regularizer():
    ds = regression_dataset()
    s1 = sme(SGD(batch_size=2), dataset=ds, order=1)
    s2 = sme(SGD(batch_size=2), dataset=ds, order=2)
    L = ds.mean_loss
    grad = sp.Matrix([sp.diff(L, p) for p in (w, b)])
    reg = L + h / 4 * (grad.T * grad)[0]
    assert mat_zero(s1.drift + grad)
    assert mat_zero(s2.drift + sp.Matrix([sp.diff(reg, p) for p in (w, b)]))
    assert mat_zero(s1.covariance - s2.covariance)
    assert mat_zero(s1.covariance - h / 2 * ds.gradient_covariance)
    assert s2.potential is not None
    assert mat_zero(sp.Matrix([sp.diff(s2.potential - reg, p) for p in (w, b)]))


def test_sme_user_noise_models():
    L = (x * y - 1) ** 2 / 2
    s = sp.Symbol("s", positive=True)
    iso = sme(sf.GD(), losses=L, params=[x, y], noise=s**2)
    assert mat_zero(iso.covariance - h * s**2 * sp.eye(2))
    const = sme(sf.GD(), losses=L, params=[x, y], noise=sp.Matrix([[2, 1], [1, 1]]))
    assert mat_zero(const.covariance - h * sp.Matrix([[2, 1], [1, 1]]))
    state = sme(sf.GD(), losses=L, params=[x, y], noise_factor=sp.Matrix([[x, 0], [y, 1]]))
    assert mat_zero(state.covariance - h * sp.Matrix([[x**2, x * y], [x * y, y**2 + 1]]))
    diag = sme(sf.GD(), losses=L, params=[x, y], noise=sp.diag(1 + x**2, 1 + y**2))
    assert mat_zero(diag.covariance - h * sp.diag(1 + x**2, 1 + y**2))


def _stationary_covariances(order, correction=False):
    """Exact stationary covariances (rational in h) of SGD and of its SME on a quadratic."""
    a_mat = sp.Matrix([[2, sp.Rational(1, 2)], [sp.Rational(1, 2), 1]])
    pts = [sp.Matrix(r) for r in ([1, 0], [0, 1], [-1, -1], [2, 1])]
    theta = sp.Matrix([u, v])
    losses = [((theta - p).T * a_mat * (theta - p))[0] / 2 for p in pts]
    opt = SGD(batch_size=2)
    sde = sme(opt, losses=losses, params=[u, v], order=order, noise_correction=correction)
    ds = Dataset(losses=losses, params=[u, v])
    sigma = ds.gradient_covariance / 2
    assert not (sigma.free_symbols | sde.covariance.free_symbols) & {u, v}
    c = sp.Matrix(2, 2, sp.symbols("c0:4"))
    c = sp.Matrix([[c[0, 0], c[0, 1]], [c[0, 1], c[1, 1]]])
    step = sp.eye(2) - h * a_mat
    sgd_eq = c - step * c * step.T - h**2 * sigma
    sgd = c.xreplace(sp.solve(list(sgd_eq), list(c.free_symbols), dict=True)[0])
    jac = sde.drift.jacobian([u, v])
    sde_eq = jac * c + c * jac.T + sde.covariance
    cont = c.xreplace(sp.solve(list(sde_eq), list(c.free_symbols), dict=True)[0])
    return sgd, cont


@pytest.mark.parametrize("order, correction, gap_order", [(1, False, 1), (2, False, 1),
                                                         (2, True, 2)])
def test_stationary_covariance_gap_on_a_quadratic(order, correction, gap_order):
    """Relative gap of the stationary covariance, SME vs exact discrete SGD: O(h) for the
    order-1 and the order-2 (drift only) SME; O(h^2) with the noise correction."""
    sgd, cont = _stationary_covariances(order, correction)
    gap = sp.simplify((sgd[0, 0] - cont[0, 0]) / cont[0, 0])
    series = sp.series(gap, h, 0, 3).removeO()
    lead = [sp.simplify(series.coeff(h, k)) for k in range(3)]
    assert lead[0] == 0
    assert (lead[1] != 0) == (gap_order == 1)
    if gap_order == 2:
        assert lead[2] != 0
    if order == 2 and not correction:  # the drift-only order-2 gap is twice the order-1 gap
        sgd1, cont1 = _stationary_covariances(1)
        gap1 = sp.series(sp.simplify((sgd1[0, 0] - cont1[0, 0]) / cont1[0, 0]), h, 0, 2)
        assert abs(lead[1] / gap1.removeO().coeff(h, 1)) > 1.5
