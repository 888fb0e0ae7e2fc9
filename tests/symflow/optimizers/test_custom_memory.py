"""sf.Custom with memory: a user-written heavy ball equals sf.HeavyBall, exactly."""

import pytest
import sympy as sp

import symflow as sf

x, y, beta = sp.symbols("x y beta")
LOSS = sp.log(1 + x**2) + (y - x / 2) ** 2 / 2


def heavy_ball_rule(theta, v, grad, h):
    velocity = beta * v - h * grad(theta)
    return theta + velocity, velocity


def test_custom_heavy_ball_matches_builtin():
    custom = sf.Custom(update=heavy_ball_rule, hyper=[beta],
                       memory0=lambda th: sp.zeros(len(th), 1))
    got = sf.modified_equation(custom, LOSS, [x, y], 2)
    want = sf.modified_equation(sf.HeavyBall(beta=beta), LOSS, [x, y], 2)
    for a, b in zip(got.terms, want.terms):
        assert sp.simplify(a - b) == sp.zeros(2, 1)
    assert sp.simplify(got.manifold - want.manifold) == sp.zeros(2, 1)


def test_custom_memory_errors():
    bad = sf.Custom(update=lambda th, v, g, h: th - h * g(th), memory0=[0, 0])
    with pytest.raises(sf.SymflowError, match="pair"):
        sf.modified_equation(bad, LOSS, [x, y], 1)
    wrong = sf.Custom(update=lambda th, v, g, h: (th, sp.zeros(3, 1)), memory0=[0, 0])
    with pytest.raises(sf.SymflowError, match="memory_next has shape"):
        sf.modified_equation(wrong, LOSS, [x, y], 1)
    with pytest.raises(sf.SymflowError, match="memory0"):
        sf.Custom(update=heavy_ball_rule, memory0=3)
