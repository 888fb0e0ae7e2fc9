"""The kernel-machine identity (Domingos 2020) as a symbolic statement, checked by substitution."""

import pytest
import sympy as sp

import symflow as sf

x, x2, w, b, c = sp.symbols("x x2 w b c")


def test_rate_identity_holds_for_a_neuron_and_both_losses():
    model = w * sp.tanh(b * x) + c
    for loss in ("squared", "logistic"):
        km = sf.kernel_machine(model, [w, b, c], [x], [1, 2, -1], [0, 1, 1], loss=loss)
        assert km.residual() == 0 and km.holds


def test_rate_identity_holds_for_every_model_and_symbolic_data():
    """An undefined f(x1, x2; w, b), symbolic data and a user loss: still exact."""
    f = sp.Function("f")(x, x2, w, b)
    xi, yi = sp.symbols("xi yi")
    km = sf.kernel_machine(f, [w, b], [x, x2], [(xi, 1), (0, 2)], [yi, 3],
                           loss=lambda y, p: sp.cosh(p - y))
    assert km.residual() == 0


def test_pieces_by_substitution_for_a_linear_model():
    """f = theta . phi(x): the tangent kernel is phi(x) . phi(x') (no theta), the flow of the
    squared loss is -sum_i (f(x_i) - y_i) phi(x_i)."""
    t0, t1, t2 = sp.symbols("t0 t1 t2")
    phi = sp.Matrix([1, x, x**2])
    km = sf.kernel_machine((sp.Matrix([[t0, t1, t2]]) * phi)[0], [t0, t1, t2], [x],
                           [-1, 0, 2], [1, 0, 3])
    xp = km.primed_inputs[0]
    assert sp.expand(km.tangent_kernel() - (phi.T * phi.subs(x, xp))[0]) == 0
    expected = -sum(((km.at((xi,)) - yi) * phi.subs(x, xi) for (xi,), yi in
                     zip(km.x_train, km.y_train)), sp.zeros(3, 1))
    assert (km.flow - expected).applyfunc(sp.expand) == sp.zeros(3, 1)
    # the gradient flow is the order-0 modified equation of gradient descent on L
    me = sf.modified_equation(sf.GD(), km.training_loss, km.params, order=0)
    assert (sp.Matrix(me.terms[0]) - km.flow).applyfunc(sp.expand) == sp.zeros(3, 1)


def test_kernel_rate_differs_from_the_frozen_and_unweighted_forms():
    """The identity is not trivially true: dropping the loss weighting breaks it."""
    km = sf.kernel_machine(w * sp.tanh(b * x), [w, b], [x], [1, 2], [0, 1])
    unweighted = -sum(km.tangent_kernel((x,), p) for p in km.x_train)
    assert km.residual() == 0
    gap = (km.kernel_rate() - unweighted).subs({x: sp.Rational(7, 10), w: 1, b: 2})
    assert abs(sp.N(gap)) > 0.1


def test_display():
    km = sf.kernel_machine(w * sp.tanh(b * x), [w, b], [x], [1, 2], [0, 1])
    tex = km.latex()
    assert "\\int_0^T" in tex and "K_\\theta" in tex and km._repr_latex_().startswith("$")
    assert ".residual() checks it" in str(km) and km.residual() == 0  # str computes nothing


@pytest.mark.parametrize("args, match", [
    (("w*x", [w], [x], [1], [0]), "string"),
    ((w * x, [w], [w], [1], [0]), "both as inputs and as parameters"),
    ((w * x + c, [w], [x], [1], [0]), "neither parameters"),
    ((x**2, [w], [x], [1], [0]), "does not depend on the parameters"),
    ((w * x, [w], [x], [1, 2], [0]), "2 training inputs and 1 targets"),
    ((w * x, [w], [x], [], []), "at least one example"),
    ((w * x, [w], [x], [(1, 2)], [0]), "1 coordinate"),
    ((w * x, [w], [x], [w], [0]), "data value"),
    ((w * x, [w], [x], [float("nan")], [0]), "finite numbers"),
    ((w * x, [w], [x], 3, [0]), "two lists"),
    ((w * x, [w], ["x"], [1], [0]), "input"),
])
def test_bad_input(args, match):
    with pytest.raises(sf.SymflowError, match=match):
        sf.kernel_machine(*args)


def test_bad_loss():
    with pytest.raises(sf.SymflowError, match="choose one of"):
        sf.kernel_machine(w * x, [w], [x], [1], [0], loss="hinge")
    with pytest.raises(sf.SymflowError, match="prediction p"):
        sf.kernel_machine(w * x, [w], [x], [1], [0], loss=lambda y, p: y**2)
    with pytest.raises(sf.SymflowError, match="function loss"):
        sf.kernel_machine(w * x, [w], [x], [1], [0], loss=3)
