"""Deep linear networks: balancedness, the end-to-end flow, singular values, GD's regulariser."""

import pytest
import sympy as sp

import symflow as sf


@pytest.mark.parametrize("depth, shape, widths", [(2, (2, 2), None), (3, (2, 2), None),
                                                  (3, (2, 3), [4, 1])])
def test_balancedness_is_conserved_exactly(depth, shape, widths):
    net = sf.deep_linear(depth=depth, shape=shape, widths=widths)
    assert len(net.balancedness()) == depth - 1
    assert net.conserved()
    assert all(D.is_zero_matrix for D in net.balancedness_rates())


def test_factor_flow_is_minus_the_gradient_of_the_factorised_loss():
    Y = sp.Matrix([[1, 2], [0, -1]])
    net = sf.deep_linear(depth=2, shape=(2, 2), loss=lambda W: sum((W - Y).applyfunc(
        lambda c: c**2)) / 2)
    for W, dW in zip(net.factors, net.factor_flow):
        grad = W.applyfunc(lambda s: sp.diff(net.loss, s))
        assert (sp.expand(dW + grad)).is_zero_matrix


@pytest.mark.parametrize("depth", [2, 3])
def test_end_to_end_flow_from_balanced_start(depth):
    # symbolic singular values and loss gradient, exact rational orthogonal frames
    assert sf.deep_linear(depth=depth, shape=(2, 2)).check_end_to_end()


def test_end_to_end_with_symbolic_frames_depth_2():
    t = sp.symbols("t0:3", real=True)
    assert sf.deep_linear(depth=2, shape=(2, 2)).check_end_to_end(angles=t)


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_singular_value_rate(depth):
    sigma, g = sp.Symbol("sigma", positive=True), sp.Symbol("g_uv", real=True)
    rate = sf.deep_linear(depth=depth, shape=(1, 1)).singular_value_rate()
    assert sp.simplify(rate + depth * sigma**(2 - sp.Rational(2, depth)) * g) == 0


def test_gd_implicit_regulariser_grows_with_depth():
    for depth in (1, 2, 3):
        net = sf.deep_linear(depth=depth, shape=(1, 1), widths=[1] * (depth - 1),
                             loss=lambda W: (W[0, 0] - 1)**2 / 2)
        me = net.modified_equation(order=1)
        gap = me.modified_loss - net.loss - net.implicit_regularizer()   # up to a constant
        assert all(sp.expand(sp.diff(gap, q)) == 0 for q in net.params)
        # balanced scalar factors |w_j| = s, W = s^N: h/4 N |W|^(2 - 2/N) l'(W)^2
        s = sp.Symbol("s", positive=True)
        W = s**depth
        expected = sf.h / 4 * depth * W**(2 - sp.Rational(2, depth)) * (W - 1)**2
        assert sp.simplify(net.balanced_regularizer() - expected) == 0
    # the coordinate-free terms of GD (-g, -1/2 H g) give the same equation
    cf = sf.modified_equation(sf.GD(), order=1).concrete(net.loss, net.params)
    assert all(sp.expand(a - b).is_zero_matrix for a, b in zip(cf, me.terms))
    me2 = sf.deep_linear(depth=2, shape=(1, 1), widths=[1],
                         loss=lambda W: (W[0, 0] - 1)**2 / 2).modified_equation(order=2)
    assert me2.gradient_orders == (True, True, False)


def test_bad_input():
    with pytest.raises(sf.SymflowError, match="depth must be an integer"):
        sf.deep_linear(depth=0, shape=(2, 2))
    with pytest.raises(sf.SymflowError, match="shape must be"):
        sf.deep_linear(depth=2, shape=2)
    with pytest.raises(sf.SymflowError, match="strings are not executed"):
        sf.deep_linear(depth=2, shape=(1, 1), loss="(W-1)**2")
    with pytest.raises(sf.SymflowError, match="hidden widths"):
        sf.deep_linear(depth=3, shape=(2, 2), widths=[2])
    with pytest.raises(sf.SymflowError, match="needs a concrete loss"):
        sf.deep_linear(depth=2, shape=(1, 1)).modified_equation(order=1)
