"""Gradient descent: the modified-equation terms against textbook formulas.

Every expected value is built from derivatives of the loss (or of the field) with SymPy
and compared by residual; nothing the engine should derive is typed in.
"""

import pytest
import sympy as sp

import symflow as sf

x, y = sp.symbols("x y")
PARAMS = [x, y]
h = sf.h

POLY_LOSS = (x * y - 1) ** 2 / 2 + x**3 / 3
NONPOLY_LOSS = sp.log(1 + sp.exp(x * y)) + (x - y) ** 2 / 4


def grad(loss, params=PARAMS):
    return sp.Matrix([sp.diff(loss, p) for p in params])


def hessian(loss, params=PARAMS):
    return sp.hessian(loss, params)


def assert_zero(expr):
    """Residual test: ``expr`` (a scalar or a Matrix) vanishes identically."""
    entries = list(expr) if isinstance(expr, sp.MatrixBase) else [expr]
    for e in entries:
        assert sp.expand(e) == 0 or sp.simplify(e) == 0, f"non-zero residual: {e}"


# -- order 1: implicit gradient regularisation (Barrett & Dherin 2021) ----------------------

@pytest.mark.parametrize("loss, path", [(POLY_LOSS, "polynomial"), (NONPOLY_LOSS, "jet")])
def test_order_one_term_is_minus_half_hessian_times_gradient(loss, path):
    me = sf.modified_equation(sf.GD(), loss, PARAMS, order=1)
    assert me.path == path
    g, H = grad(loss), hessian(loss)
    assert_zero(me.terms[0] + g)
    assert_zero(me.terms[1] + H * g / 2)


@pytest.mark.parametrize("loss", [POLY_LOSS, NONPOLY_LOSS])
def test_order_one_modified_loss_is_loss_plus_quarter_gradient_norm(loss):
    me = sf.modified_equation(sf.GD(), loss, PARAMS, order=1)
    g = grad(loss)
    expected = loss + h / 4 * (g.T * g)[0, 0]
    assert me.is_gradient
    assert me.modified_loss is not None
    assert_zero(me.modified_loss - expected)


# -- explicit Euler on a non-gradient field (Hairer, Lubich & Wanner, GNI, IX.1) -----------

F = sp.Matrix([y**2 - x, x * y + x**3])


def explicit_euler_on_F():
    """Explicit Euler for y' = F(y), written as a Custom rule that ignores the gradient."""
    return sf.Custom(
        update=lambda th, grad_, step: th + step * F.subs(dict(zip(PARAMS, th)),
                                                          simultaneous=True))


def test_explicit_euler_modified_field_matches_hairer_lubich_wanner():
    me = sf.modified_equation(explicit_euler_on_F(), (x**2 + y**2) / 2, PARAMS, order=2)
    J = F.jacobian(PARAMS)  # f'
    # f''(f, f)_i = sum_jk d^2 f_i / dx_j dx_k f_j f_k
    second = sp.Matrix([
        sum(sp.diff(F[i], PARAMS[j], PARAMS[k]) * F[j] * F[k]
            for j in range(2) for k in range(2))
        for i in range(2)
    ])
    assert_zero(me.terms[0] - F)
    assert_zero(me.terms[1] + J * F / 2)
    assert_zero(me.terms[2] - (second / 12 + J * J * F / 3))


def test_explicit_euler_on_non_gradient_field_is_not_gradient_at_order_zero():
    me = sf.modified_equation(explicit_euler_on_F(), (x**2 + y**2) / 2, PARAMS, order=1)
    assert me.first_non_gradient_order == 0
    assert not me.is_gradient
    assert me.modified_loss is None


# -- quadratic: the exact modified field log(1 - h*lam)/h * x ---------------------------

def test_quadratic_terms_match_series_of_log():
    lam = sp.Symbol("lam", positive=True)
    order = 6
    me = sf.modified_equation(sf.GD(), lam * x**2 / 2, [x], order=order, hyper=[lam],
                              progress=False)
    assert len(me.terms) == order + 1
    exact = sp.series(sp.log(1 - h * lam) / h * x, h, 0, order + 1).removeO()
    for k in range(order + 1):
        assert_zero(me.terms[k][0] - exact.coeff(h, k))


# -- order 2: the first non-gradient term ------------------------------------------------

def test_order_two_gd_term_is_not_a_gradient_field():
    loss = (x * y - 1) ** 2 / 2
    me = sf.modified_equation(sf.GD(), loss, PARAMS, order=2)
    assert me.gradient_orders == (True, True, False)
    assert me.first_non_gradient_order == 2
    assert me.modified_loss is None
    assert me.truncate(1).modified_loss is not None
    assert sf.modified_equation(sf.GD(), loss, PARAMS, order=1).modified_loss is not None


def test_order_two_gd_term_matches_euler_formula_for_minus_gradient():
    # explicit Euler with f = -g: f2 = f''(f,f)/12 + f'f'f/3 = -T[g,g]/12 - H^2 g/3
    loss = (x * y - 1) ** 2 / 2
    me = sf.modified_equation(sf.GD(), loss, PARAMS, order=2)
    g, H = grad(loss), hessian(loss)
    Tgg = sp.Matrix([
        sum(sp.diff(loss, PARAMS[i], PARAMS[j], PARAMS[k]) * g[j] * g[k]
            for j in range(2) for k in range(2))
        for i in range(2)
    ])
    assert_zero(me.terms[2] - (-H * H * g / 3 - Tgg / 12))


# -- the three arithmetics agree ---------------------------------------------------------

def test_polynomial_jet_and_general_paths_agree():
    results = {path: sf.modified_equation(sf.GD(), POLY_LOSS, PARAMS, order=3, path=path)
               for path in ("polynomial", "jet", "general")}
    for path, me in results.items():
        assert me.path == path
        assert len(me.terms) == 4
    ref = results["polynomial"].terms
    for path in ("jet", "general"):
        for k in range(4):
            assert_zero(results[path].terms[k] - ref[k])
