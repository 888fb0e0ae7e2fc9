"""The modified loss with symbolic hyperparameters and non-polynomial losses (issue 19).

Heavy ball and Nesterov with a symbolic beta on exp/log/tanh losses used to report
``is_gradient`` True but ``modified_loss`` None (``sp.integrate`` returned a Piecewise on
beta != 1). Each case is checked by its residual ``-grad(modified_loss) == field``.
"""

import pytest
import sympy as sp

import symflow as sf
from symflow._core._gradient import expr_potential, is_zero_expr

x, y = sp.symbols("x y")
beta, lam = sp.symbols("beta lam")

LOSSES = {
    "exp": sp.exp(x / 2) + y**2,
    "log": sp.log(1 + x**2) + x * y,
    "tanh": sp.tanh(x) * y + x**2,
}
OPTIMIZERS = {
    "heavy-ball": (sf.HeavyBall(beta=beta), [beta]),
    "nesterov": (sf.Nesterov(beta=beta), [beta]),
    "gd+decay": (sf.Custom(update=lambda th, grad, h: th - h * grad(th) - h * lam * th,
                           hyper=[lam]), [lam]),
    "gd": (sf.GD(), []),
}


def residual_zero(loss, field):
    return all(is_zero_expr(sp.diff(loss, p) + f) for p, f in zip((x, y), field))


@pytest.fixture
def no_integration(monkeypatch):
    """The structural potential must not fall back to symbolic integration."""
    def refuse(*args, **kwargs):
        raise AssertionError("sp.integrate was called")

    monkeypatch.setattr(sp, "integrate", refuse)


@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
@pytest.mark.parametrize("loss_name", list(LOSSES))
def test_modified_loss_found_by_structure(opt_name, loss_name, no_integration):
    opt, hyper = OPTIMIZERS[opt_name]
    me = sf.modified_equation(opt, LOSSES[loss_name], [x, y], order=1, hyper=hyper)
    assert me.is_gradient
    ml = me.modified_loss
    assert ml is not None and not ml.has(sp.Piecewise, sp.Integral)
    assert residual_zero(ml, me.field)
    if opt_name == "gd+decay":  # V_0 = L + lam |theta|^2 / 2
        assert is_zero_expr(me.potentials[0] - LOSSES[loss_name] - lam * (x**2 + y**2) / 2)
    else:  # V_0 is a constant multiple of the loss: L/(1 - beta) for memory
        scale = me.time_scale
        assert scale is not None and is_zero_expr(me.potentials[0] - scale * LOSSES[loss_name])


def test_heavy_ball_second_order_exp_loss_and_time_scale_reads_one_over_one_minus_beta():
    me = sf.modified_equation(sf.HeavyBall(beta=beta), LOSSES["exp"], [x, y], order=2)
    if me.is_gradient:
        assert residual_zero(me.modified_loss, me.field)
    else:  # still the first orders' loss
        assert residual_zero(me.truncate(1).modified_loss, me.truncate(1).field)
    assert str(me.time_scale) == "1/(1 - beta)"
    assert is_zero_expr(me.time_scale - 1 / (1 - beta))


def test_expression_potential_takes_the_generic_branch_and_checks_it():
    # integrate(exp(beta*x), x) is a Piecewise on beta != 0; the generic branch is kept
    pot = expr_potential([-sp.exp(beta * x), -2 * y], [x, y])
    assert pot is not None and not pot.has(sp.Piecewise)
    assert is_zero_expr(sp.diff(pot, x) - sp.exp(beta * x))
    # a field that is not a gradient gets no potential
    assert expr_potential([-y, x], [x, y]) is None


def test_expression_path_finds_the_potential_without_integrating(no_integration):
    """The general (expression) path: atoms tanh(x), exp(x/2) closed under d/dx, then an exact
    linear solve (symflow._core._gradient.atom_potential); it used to integrate for 27 s and
    return None."""
    loss = sp.tanh(x) * y + x**2
    me = sf.modified_equation(sf.HeavyBall(beta=beta), loss, [x, y], 1, path="general")
    assert me.path == "general" and residual_zero(me.modified_loss, me.field)
    flow = sf.epoch_mean_flow(batches=[sp.exp(x / 2) + y**2, loss], params=[x, y], order=1)
    assert residual_zero(flow.modified_loss, flow.field)
