"""The stability edge and series radius each optimizer states, derived from its own step.

On the quadratic :math:`L = \\theta^2/2` one step on the whole state is linear with matrix
:math:`J(z)`, :math:`z = h\\lambda`. The iteration loses stability where a root of
:math:`\\det(rI - J)` crosses :math:`r = -1`; the reduced series stops converging where the
two roots collide (the discriminant vanishes).
"""

import numpy as np
import pytest
import sympy as sp

import symflow as sf

beta = sp.Symbol("beta", positive=True)
z, r = sp.symbols("z r")


def one_step_matrix(opt):
    """J(z) of ``opt`` on L = theta^2/2 at step z, from its own step_memory."""
    n = 1 + opt.memory_size(1)
    state = sp.Matrix(sp.symbols(f"s0:{n}"))
    theta, memory = state[:1, :], state[1:, :]
    new_theta, new_memory = opt.step_memory(theta, memory, lambda th: th, z)
    return sp.Matrix.vstack(new_theta, new_memory).jacobian(state)


@pytest.mark.parametrize("opt", [sf.GD(), sf.HeavyBall(beta=beta), sf.Nesterov(beta=beta)],
                         ids=["gd", "heavy ball", "nesterov"])
def test_edge_is_where_a_root_reaches_minus_one(opt):
    J = one_step_matrix(opt)
    edge, _ = opt.linear_limits()
    assert sp.simplify(J.charpoly(r).as_expr().subs({r: -1, z: edge})) == 0
    b = {beta: sp.Rational(1, 2)}
    radius = [max(abs(np.linalg.eigvals(np.array(J.subs(b).subs(z, f * edge.subs(b)),
                                                  dtype=float))))
              for f in (0.99, 1.01)]
    assert radius[0] < 1 < radius[1]


@pytest.mark.parametrize("opt", [sf.HeavyBall(beta=beta), sf.Nesterov(beta=beta)],
                         ids=["heavy ball", "nesterov"])
def test_series_radius_is_where_the_roots_collide(opt):
    _, radius = opt.linear_limits()
    disc = sp.discriminant(one_step_matrix(opt).charpoly(r).as_expr(), r)
    assert sp.simplify(disc.subs(z, radius)) == 0
    collisions = [s for s in sp.solve(disc, z) if s != 0]
    assert min(collisions, key=lambda s: float(s.subs(beta, sp.Rational(1, 2)))) \
        .equals(radius)


def test_adam_limits_are_those_of_its_frozen_preconditioner():
    """Linearise Adam's own step about the minimum with v = 0: with eps_root > 0 the root is
    smooth there, so P = sqrt(eps_root) + eps is frozen to first order and (theta, m) step
    linearly; in z = h lambda / P its roots reach -1 at the edge and collide at the radius."""
    b1 = sp.Symbol("beta1", positive=True)
    q, e = sp.symbols("q e", positive=True)
    opt = sf.Adam(beta1=b1, beta2=sp.Rational(999, 1000), eps=e, eps_root=q,
                  bias_correction=False)
    th, m, v = state = sp.symbols("theta m v")
    new_theta, new_memory = opt.step_memory(sp.Matrix([th]), sp.Matrix([m, v]),
                                            lambda t: t, z * (sp.sqrt(q) + e))
    J = sp.Matrix([new_theta[0], new_memory[0]]).jacobian([th, m]).subs(dict.fromkeys(state, 0))
    poly = J.charpoly(r).as_expr()
    edge, radius = opt.linear_limits()
    assert sp.simplify(poly.subs({r: -1, z: edge})) == 0
    momentum_radius = next(a for a in radius.args if a.has(b1))
    assert sp.simplify(sp.discriminant(poly, r).subs(z, momentum_radius)) == 0


@pytest.mark.parametrize("opt", [
    sf.GD(), sf.HeavyBall(beta=sp.Symbol("beta")), sf.Nesterov(beta=sp.Symbol("beta")),
    sf.RMSprop(*sp.symbols("rho eps")), sf.Adam(*sp.symbols("beta1 beta2 eps")),
    sf.AdaGrad(eps=sp.Symbol("eps")),
], ids=lambda opt: opt.name)
def test_limits_text_is_linear_limits_in_the_hyperparameter_names(opt):
    """The formulas the warnings print are the limits the checks use."""
    names = {**{str(s): s for s in opt.hyper_symbols}, "min": sp.Min}
    for text, expr in zip(opt.limits_text, opt.linear_limits()):
        assert (text is None) == (expr is None)
        if expr is not None:
            assert sp.simplify(sp.sympify(text, locals=names) - expr) == 0, (text, expr)
