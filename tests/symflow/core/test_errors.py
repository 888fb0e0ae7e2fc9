"""Bad input gives a SymflowError whose message names what was received."""

import re

import pytest
import sympy as sp

import symflow as sf

x, y, a = sp.symbols("x y a")
LOSS = (x * y - 1) ** 2 / 2


def derive(optimizer=None, loss=LOSS, params=(x, y), order=1, **kw):
    optimizer = sf.GD() if optimizer is None else optimizer
    return sf.modified_equation(optimizer, loss, params, order, **kw)


def test_symflow_error_is_a_value_error():
    assert issubclass(sf.SymflowError, ValueError)
    assert issubclass(sf.UnsafeExpressionError, sf.SymflowError)


def test_params_as_a_string():
    with pytest.raises(sf.SymflowError, match=re.escape("params='x y'")):
        derive(params="x y")


def test_params_as_strings_in_a_list():
    with pytest.raises(sf.SymflowError, match=re.escape("'x' (str)")):
        derive(params=["x", "y"])


def test_params_empty():
    with pytest.raises(sf.SymflowError, match=re.escape("params=[]")):
        derive(params=[])


def test_params_duplicated():
    with pytest.raises(sf.SymflowError, match=re.escape("[x, x]")):
        derive(loss=x**2, params=[x, x])


def test_loss_is_a_column_matrix():
    with pytest.raises(sf.SymflowError, match="2x1 Matrix"):
        derive(loss=sp.Matrix([x, y]))


def test_loss_is_a_string():
    with pytest.raises(sf.SymflowError, match=re.escape("loss='x*y' (a string)")):
        derive(loss="x*y")


def test_loss_with_undeclared_symbol_names_it():
    with pytest.raises(sf.SymflowError, match=r"\{a\}.*hyper=\[a\]"):
        derive(loss=a * x**2 + y**2)
    # declared, the same loss is fine
    assert derive(loss=a * x**2 + y**2, hyper=[a]).terms[0][0] == -2 * a * x


@pytest.mark.parametrize("order, shown", [(-1, "order=-1"), (1.5, "order=1.5"),
                                          (True, "order=True")])
def test_bad_order(order, shown):
    with pytest.raises(sf.SymflowError, match=re.escape(shown)):
        derive(order=order)


def test_optimizer_class_instead_of_instance():
    with pytest.raises(sf.SymflowError, match=re.escape("sf.GD()")):
        derive(optimizer=sf.GD)


def test_optimizer_of_wrong_type():
    with pytest.raises(sf.SymflowError, match="'gd'"):
        derive(optimizer="gd")


def test_learning_rate_symbol_inside_loss():
    with pytest.raises(sf.SymflowError, match=re.escape("sf.h")):
        derive(loss=sf.h * x**2 + y**2)


def test_learning_rate_symbol_as_parameter():
    with pytest.raises(sf.SymflowError, match=re.escape("sf.h")):
        derive(loss=x**2, params=[x, sf.h])


def test_unknown_path():
    with pytest.raises(sf.SymflowError, match="path='fast'"):
        derive(path="fast")


def test_polynomial_path_refused_for_non_polynomial_loss():
    with pytest.raises(sf.SymflowError, match="polynomial"):
        derive(loss=sp.exp(x * y), path="polynomial")


def test_parameter_declared_as_hyperparameter():
    with pytest.raises(sf.SymflowError, match="x"):
        derive(loss=x**2, params=[x], hyper=[x])


def test_learning_rate_symbol_declared_as_hyperparameter():
    with pytest.raises(sf.SymflowError, match=re.escape("sf.h")):
        derive(loss=x**2 + sf.h * x, params=[x], hyper=[sf.h])
