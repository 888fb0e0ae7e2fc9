"""Scaled (slow) memory: limits and first corrections of flows on the whole state.

With :math:`1 - \\beta = c\\,h` (RMSprop, Adam) or :math:`1 - \\beta = c\\sqrt h` (heavy ball,
Nesterov) the memory becomes an ODE variable; AdaGrad's accumulator never relaxes and has
only a flow on the whole state. Each expected flow is computed here from the update rule
written out by hand in the scaled variables: :math:`f_0 = d_1` and
:math:`f_1 = d_2 - \\tfrac12 (\\partial f_0) f_0` for a map
:math:`z \\mapsto z + \\sum_k s^k d_k(z)` (Hairer, Lubich & Wanner, *Geometric Numerical
Integration*, IX.1), with plain SymPy expressions, and compared with the engine at random
points to 30 digits.
"""

import random
import warnings

import pytest
import sympy as sp

import symflow as sf

x, y = sp.symbols("x y")
c, c1, c2 = sp.symbols("c c1 c2", positive=True)
R = sp.Rational
LOSS = sp.exp(x) + sp.exp(y) / 2 + x * y / 4
GRAD = sp.Matrix([sp.diff(LOSS, p) for p in (x, y)])


def at(point):
    return GRAD.xreplace(dict(zip((x, y), point)))


def first_two_terms(state, step_map, step):
    """``f_0, f_1`` of the map ``state -> step_map(step)`` (a column Matrix in ``step``)."""
    d1 = sp.diff(step_map, step).subs(step, 0)
    d2 = sp.diff(step_map, step, 2).subs(step, 0) / 2
    f0 = d1
    return f0, d2 - f0.jacobian(state) * f0 / 2


def assert_same(engine, expected, state, extra=None):
    rng = random.Random(3)
    for _ in range(2):
        point = {s: R(rng.randint(20, 80), 100) for s in state}
        point.update(extra or {})
        for a, b in zip(engine, expected):
            diff = sp.N((sp.sympify(a) - b).xreplace(point), 30)
            assert abs(diff) < 1e-25, (a, b)


def test_rmsprop_ode_of_the_seed_article_and_its_first_correction():
    r"""Seed article 002 (RMSprop, :math:`\epsilon` inside the root) with
    :math:`\rho = 1 - ch`: :math:`\dot v = c(g^2 - v)`, :math:`\dot\theta = -g/\sqrt{v + \epsilon}`."""
    eps = R(1, 10)
    me = sf.modified_equation(sf.RMSprop(rho=1 - c * sf.h, eps=eps, eps_in_sqrt=True),
                              LOSS, [x, y], 1, hyper=[c], reduce=False)
    assert isinstance(me, sf.StateModifiedEquation) and me.note is None
    v = sp.Matrix(me.memory)
    state = sp.Matrix(me.params)
    g = GRAD
    v_next = v + c * sf.h * (g.applyfunc(lambda e: e**2) - v)   # G <- lam G + (1-lam) g^2
    theta_next = sp.Matrix([x, y]) - sf.h * sp.Matrix([gi / sp.sqrt(vi + eps)
                                                       for gi, vi in zip(g, v_next)])
    f0, f1 = first_two_terms(state, sp.Matrix.vstack(theta_next, v_next), sf.h)
    assert_same(me.terms[0], f0, state, {c: R(3, 2)})
    assert_same(me.terms[1], f1, state, {c: R(3, 2)})
    assert me.time == "t = n*h"


@pytest.mark.parametrize("cls", [sf.HeavyBall, sf.Nesterov])
def test_momentum_with_c_sqrt_h_is_a_damped_oscillator(cls):
    r""":math:`\dot\theta = u`, :math:`\dot u = -cu - \nabla L` in :math:`s = n\sqrt h`, i.e.
    :math:`\ddot\theta + c\dot\theta = -\nabla L`; and the :math:`O(\sqrt h)` correction."""
    me = sf.modified_equation(cls(beta=1 - c * sp.sqrt(sf.h)), LOSS, [x, y], 1, hyper=[c],
                              reduce=False)
    delta = me.step
    assert me.h_value == delta**2 and me.time == "s = n*sqrt(h)"
    assert sp.simplify(me.memory_scale - 1 / delta) == 0
    theta, u = sp.Matrix([x, y]), sp.Matrix(me.memory)
    state = sp.Matrix(me.params)
    # the leading flow, eliminated: theta'' = u' = -c theta' - grad L
    assert sp.simplify(me.terms[0][:2, 0] - u) == sp.zeros(2, 1)
    assert sp.simplify(me.terms[0][2:, 0] + c * u + GRAD) == sp.zeros(2, 1)
    # the update rule in (theta, u = v/delta), beta = 1 - c delta, h = delta^2
    beta = 1 - c * delta
    if cls is sf.HeavyBall:
        u_next = beta * u - delta * GRAD
        theta_next = theta + delta * u_next
    else:
        look = theta + beta * delta * u
        theta_next = look - delta**2 * at(look)
        u_next = beta * u - delta * at(look)   # (theta_next - theta) / delta
    f0, f1 = first_two_terms(state, sp.Matrix.vstack(theta_next, u_next), delta)
    assert_same(me.terms[1], f1, state, {c: R(3, 2)})


def test_adam_with_slow_moments():
    r""":math:`1-\beta_i = c_i h`: :math:`\dot m = c_1(g - m)`, :math:`\dot v = c_2(g^2 - v)`,
    :math:`\dot\theta = -m/(\sqrt v + \epsilon)`, and the first correction."""
    eps = R(1, 10)
    adam = sf.Adam(1 - c1 * sf.h, 1 - c2 * sf.h, eps, bias_correction=False)
    me = sf.modified_equation(adam, LOSS, [x, y], 1, hyper=[c1, c2], reduce=False)
    state = sp.Matrix(me.params)
    m, v = sp.Matrix(me.memory[:2]), sp.Matrix(me.memory[2:])
    m_next = m + c1 * sf.h * (GRAD - m)
    v_next = v + c2 * sf.h * (GRAD.applyfunc(lambda e: e**2) - v)
    theta_next = sp.Matrix([x, y]) - sf.h * sp.Matrix(
        [mi / (sp.sqrt(vi) + eps) for mi, vi in zip(m_next, v_next)])
    f0, f1 = first_two_terms(state, sp.Matrix.vstack(theta_next, m_next, v_next), sf.h)
    extra = {c1: R(2), c2: R(1, 2)}
    assert_same(me.terms[0], f0, state, extra)
    assert_same(me.terms[1], f1, state, extra)


def test_adagrad_says_its_memory_does_not_relax_and_returns_the_state_flow():
    eps = R(1, 10)
    with pytest.warns(sf.MemoryWarning, match="does not relax.*reduce=False"):
        me = sf.modified_equation(sf.AdaGrad(eps=eps), LOSS, [x, y], 1)
    assert isinstance(me, sf.StateModifiedEquation)
    assert "does not relax" in me.note and "note:" in str(me)
    assert me.time == "tau = n*h**2" and me.memory_scale == me.step
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # asked for directly: no warning
        quiet = sf.modified_equation(sf.AdaGrad(eps=eps), LOSS, [x, y], 1, reduce=False)
    assert quiet.note == me.note
    # w = h^2 s, kappa = h^2: s_{n+1} = s_n + g^2, theta -= h g / sqrt(s_{n+1} + eps)
    kappa, state = me.step, sp.Matrix(me.params)
    w_next = sp.Matrix(me.memory) + kappa * GRAD.applyfunc(lambda e: e**2)
    theta_next = sp.Matrix([x, y]) - kappa * sp.Matrix(
        [gi / sp.sqrt(wi + kappa * eps) for gi, wi in zip(GRAD, w_next)])
    f0, f1 = first_two_terms(state, sp.Matrix.vstack(theta_next, w_next), kappa)
    assert_same(me.terms[0], f0, state)
    assert_same(me.terms[1], f1, state)
    assert me.truncate(0).order == 0 and me.truncate(0).note == me.note
