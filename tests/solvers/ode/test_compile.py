"""The SymPy -> JAX conversion: agreement with SymPy, vmap, clear errors."""

import jax
import numpy as np
import pytest
import sympy as sp

import solvers as sv
import symflow as sf

x, y, a = sp.symbols("x y a")
LOSSES = [(x * y - 1) ** 2 / 2 + a * x**3 / 3, sp.log(1 + sp.exp(x * y)) + a * sp.tanh(x - y) ** 2]


@pytest.mark.parametrize("loss", LOSSES, ids=["polynomial", "softplus-tanh"])
def test_compiled_field_equals_sympy_field(loss):
    me = sf.modified_equation(sf.GD(), loss, [x, y], order=2, hyper=[a])
    flow = sv.compiled_flow(me)
    rng = np.random.default_rng(0)
    for point in rng.uniform(-1.5, 1.5, size=(5, 2)):
        got = np.asarray(flow.terms(point, np.array([0.7])))
        subs = {x: point[0], y: point[1], a: 0.7}
        want = np.array([[float(c.evalf(subs=subs)) for c in term] for term in me.terms])
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_vector_function_vmaps():
    f = sv.vector_function(sp.Matrix([x * sp.exp(y), a * y]), [x, y], [a])
    pts = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0]])
    got = jax.vmap(lambda p: f(p, np.array([3.0])))(pts)
    want = np.stack([pts[:, 0] * np.exp(pts[:, 1]), 3.0 * pts[:, 1]], axis=1)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-14)


def test_unsupported_function_is_named():
    with pytest.raises(sv.UnsupportedFunctionError, match="besselj"):
        sv.vector_function(sp.Matrix([sp.besselj(1, x)]), [x])


def test_undefined_function_is_named():
    with pytest.raises(sv.UnsupportedFunctionError, match="f"):
        sv.vector_function(sp.Matrix([sp.Function("f")(x)]), [x])


def test_missing_hyperparameter_value():
    lam = sp.Symbol("lam", positive=True)
    with pytest.raises(sf.SymflowError, match="lam"):
        sv.iterate(sf.GD(), lam * x**2 / 2, [x], x0=[1.0], lr=0.1, n_steps=3, hyper={})
