"""check_validity, and how a ModifiedEquation shows itself."""

import math
import warnings

import pytest
import sympy as sp

import symflow as sf

x, y = sp.symbols("x y")
lam = sp.Symbol("lam", positive=True)
QUADRATIC = lam * x**2 / 2


# -- check_validity ----------------------------------------------------------------------

def test_small_learning_rate_is_trusted_without_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = sf.check_validity(QUADRATIC, [x], point=[1.0], lr=0.05,
                                   hyper_values={lam: 4})
    assert report.h_lambda_max == pytest.approx(0.2)
    assert report.trusted
    assert report.eigenvalues == pytest.approx((4.0,))
    assert "trustworthy" in report.message


def test_numeric_loss_gives_the_same_report():
    report = sf.check_validity(2 * x**2, [x], point=[3.0], lr=0.05)
    assert report.h_lambda_max == pytest.approx(0.2)
    assert report.trusted


def test_hyper_values_by_name_for_plain_symbol():
    mu = sp.Symbol("mu")
    report = sf.check_validity(mu * x**2 / 2, [x], point=[1.0], lr=0.05,
                               hyper_values={"mu": 4}, warn=False)
    assert report.h_lambda_max == pytest.approx(0.2)


def test_hyper_values_by_name_for_symbol_with_assumptions():
    report = sf.check_validity(QUADRATIC, [x], point=[1.0], lr=0.05,
                               hyper_values={"lam": 4}, warn=False)
    assert report.h_lambda_max == pytest.approx(0.2)


def test_large_learning_rate_warns_and_is_not_trusted():
    with pytest.warns(sf.ValidityWarning, match="diverges"):
        report = sf.check_validity(QUADRATIC, [x], point=[1.0], lr=0.3,
                                   hyper_values={lam: 4})
    assert report.h_lambda_max == pytest.approx(1.2)
    assert not report.trusted


def test_warn_false_is_silent():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = sf.check_validity(QUADRATIC, [x], point=[1.0], lr=0.3,
                                   hyper_values={lam: 4}, warn=False)
    assert not report.trusted


def test_method_on_modified_equation():
    me = sf.modified_equation(sf.GD(), QUADRATIC, [x], order=1, hyper=[lam])
    report = me.check_validity(point=[1.0], lr=0.05, hyper_values={lam: 4})
    assert report.h_lambda_max == pytest.approx(0.2)


@pytest.mark.parametrize("point", [[1.0, 2.0], [math.nan], []])
def test_bad_point_raises(point):
    with pytest.raises(sf.SymflowError, match="point="):
        sf.check_validity(QUADRATIC, [x], point=point, lr=0.05, hyper_values={lam: 4})


@pytest.mark.parametrize("lr", [0, -0.1, "0.1"])
def test_bad_learning_rate_raises(lr):
    with pytest.raises(sf.SymflowError, match="lr="):
        sf.check_validity(QUADRATIC, [x], point=[1.0], lr=lr, hyper_values={lam: 4})


def test_missing_hyper_value_raises():
    with pytest.raises(sf.SymflowError, match="lam"):
        sf.check_validity(QUADRATIC, [x], point=[1.0], lr=0.05)


def test_missing_hyper_value_message_points_to_hyper_values():
    with pytest.raises(sf.SymflowError, match="hyper_values"):
        sf.check_validity(QUADRATIC, [x], point=[1.0], lr=0.05)


# -- display -----------------------------------------------------------------------------

GRADIENT_ME = sf.modified_equation(sf.GD(), (x * y - 1) ** 2 / 2, [x, y], order=1)
NON_GRADIENT_ME = sf.modified_equation(sf.GD(), (x * y - 1) ** 2 / 2, [x, y], order=2)


def test_latex_of_gradient_case_shows_equation_and_modified_loss_once_computed():
    me = sf.modified_equation(sf.GD(), (x * y - 1) ** 2 / 2, [x, y], order=1)
    text = me.latex()
    assert "\\frac{dx}{dt}" in text and "\\frac{dy}{dt}" in text
    assert "\\tilde{L}" not in text and "call .modified_loss" in text  # printing computes nothing
    me.modified_loss
    assert "\\tilde{L}" in me.latex() and "call .modified_loss" not in me.latex()


def test_latex_of_non_gradient_case_has_no_modified_loss():
    NON_GRADIENT_ME.is_gradient
    text = NON_GRADIENT_ME.latex()
    assert "\\frac{dx}{dt}" in text
    assert "\\tilde{L}" not in text


def test_repr_latex_is_math_mode():
    text = GRADIENT_ME._repr_latex_()
    assert text.startswith("$") and text.endswith("$")


def test_str_mentions_order_and_gradient_status():
    me = sf.modified_equation(sf.GD(), (x * y - 1) ** 2 / 2, [x, y], order=1)
    assert "order" in str(me) and "(modified loss: call .modified_loss)" in str(me)
    me.modified_loss
    assert "modified loss: " in str(me) and "gradient field at every kept order" in str(me)
    NON_GRADIENT_ME.is_gradient
    assert "not a gradient field" in str(NON_GRADIENT_ME)


def test_truncate_keeps_leading_terms():
    me = sf.modified_equation(sf.GD(), (x * y - 1) ** 2 / 2, [x, y], order=3)
    low = me.truncate(1)
    assert low.order == 1
    assert len(low.terms) == 2
    for k in range(2):
        assert sp.expand(low.terms[k] - me.terms[k]) == sp.zeros(2, 1)
    assert sp.expand(low.field - (me.terms[0] + sf.h * me.terms[1])) == sp.zeros(2, 1)


def test_truncate_beyond_derived_order_raises():
    me = sf.modified_equation(sf.GD(), (x * y - 1) ** 2 / 2, [x, y], order=3)
    with pytest.raises(sf.SymflowError, match="order=5"):
        me.truncate(5)
