"""User-written update rules through sf.Custom."""

import pytest
import sympy as sp

import symflow as sf

x, y = sp.symbols("x y")
PARAMS = [x, y]

POLY_LOSS = (x * y - 1) ** 2 / 2 + x**3 / 3
NONPOLY_LOSS = sp.log(1 + sp.exp(x * y)) + (x - y) ** 2 / 4


def grad(loss):
    return sp.Matrix([sp.diff(loss, p) for p in PARAMS])


def assert_zero(expr):
    entries = list(expr) if isinstance(expr, sp.MatrixBase) else [expr]
    for e in entries:
        assert sp.expand(e) == 0 or sp.simplify(e) == 0, f"non-zero residual: {e}"


@pytest.mark.parametrize("loss", [POLY_LOSS, NONPOLY_LOSS], ids=["polynomial", "log-exp"])
def test_custom_gradient_descent_equals_builtin_gd(loss):
    custom = sf.Custom(update=lambda th, g, h: th - h * g(th))
    a = sf.modified_equation(custom, loss, PARAMS, order=4)
    b = sf.modified_equation(sf.GD(), loss, PARAMS, order=4)
    assert a.path == b.path
    assert len(a.terms) == len(b.terms) == 5
    for k in range(5):
        assert_zero(a.terms[k] - b.terms[k])
    assert a.gradient_orders == b.gradient_orders


@pytest.mark.parametrize("loss", [POLY_LOSS, NONPOLY_LOSS], ids=["polynomial", "log-exp"])
def test_extragradient_order_one_term_is_plus_half_hessian_times_gradient(loss):
    eg = sf.Custom(update=lambda th, g, h: th - h * g(th - h * g(th)))
    me = sf.modified_equation(eg, loss, PARAMS, order=1)
    g = grad(loss)
    assert_zero(me.terms[0] + g)
    assert_zero(me.terms[1] - sp.hessian(loss, PARAMS) * g / 2)


def test_rule_with_declared_hyperparameter():
    lam = sp.Symbol("lam", positive=True)
    loss = (x * y - 1) ** 2 / 2
    wd = sf.Custom(update=lambda th, g, h: th - h * (g(th) + lam * th), hyper=[lam])
    me = sf.modified_equation(wd, loss, PARAMS, order=2)
    assert_zero(me.terms[0] + (grad(loss) + lam * sp.Matrix(PARAMS)))
    assert lam in me.terms[1].free_symbols


def test_rule_with_undeclared_hyperparameter_is_refused():
    lam = sp.Symbol("lam")
    wd = sf.Custom(update=lambda th, g, h: th - h * (g(th) + lam * th))
    with pytest.raises(sf.SymflowError, match="lam"):
        sf.modified_equation(wd, (x * y - 1) ** 2 / 2, PARAMS, order=1)


def test_inconsistent_rule_is_refused():
    bad = sf.Custom(update=lambda th, g, h: 2 * th - h * g(th))
    with pytest.raises(sf.SymflowError, match="identity"):
        sf.modified_equation(bad, POLY_LOSS, PARAMS, order=1)


@pytest.mark.parametrize("update", [
    lambda th, g, h: th[0] - h * g(th)[0],                  # a scalar
    lambda th, g, h: sp.Matrix([th[0] - h * g(th)[0]]),     # a 1x1 Matrix
    lambda th, g, h: (th - h * g(th)).T,                    # a row
], ids=["scalar", "too-short", "row"])
def test_rule_returning_wrong_shape_is_refused(update):
    with pytest.raises(sf.SymflowError, match="shape"):
        sf.modified_equation(sf.Custom(update=update), POLY_LOSS, PARAMS, order=1)


def test_rule_that_crashes_is_reported():
    with pytest.raises(sf.SymflowError, match="update rule raised"):
        sf.modified_equation(sf.Custom(update=lambda th, g, h: th.nonexistent),
                             POLY_LOSS, PARAMS, order=1)


def test_update_must_be_callable():
    with pytest.raises(sf.SymflowError, match="update"):
        sf.Custom(update="th - h*g(th)")
