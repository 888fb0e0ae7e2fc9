"""The eps-free regime of Adam and RMSprop: eps = 0 with eps_root > 0 (issue 19)."""

import pytest
import sympy as sp

import symflow as sf
from symflow._core._gradient import is_zero_expr

x, y = sp.symbols("x y")
delta = sp.Symbol("delta", positive=True)
LOSS = (x * y - 1) ** 2 / 2 + x**2 / 4
GRAD = [sp.diff(LOSS, p) for p in (x, y)]


@pytest.mark.parametrize("opt", [
    sf.Adam(beta1=sp.Rational(1, 2), beta2=sp.Rational(3, 4), eps=0, eps_root=delta),
    sf.RMSprop(rho=sp.Rational(1, 2), eps=0, eps_root=delta),
])
def test_leading_flow_is_smoothed_sign_descent(opt):
    """theta' = -g / sqrt(g^2 + delta): smooth through g = 0, no eps outside the root."""
    me = sf.modified_equation(opt, LOSS, [x, y], 0)
    assert all(is_zero_expr(t + g / sp.sqrt(g**2 + delta)) for t, g in zip(me.terms[0], GRAD))
    assert opt.smooth_at_zero_gradient and "eps_root=delta" in repr(opt)


def test_rmsprop_eps_root_is_optaxs_eps_in_the_root():
    """RMSprop(eps=0, eps_root=r) and RMSprop(eps=r, eps_in_sqrt=True) are one map."""
    r = sp.Rational(1, 10)
    a = sf.modified_equation(sf.RMSprop(rho=sp.Rational(1, 2), eps=0, eps_root=r), LOSS,
                             [x, y], 1)
    b = sf.modified_equation(sf.RMSprop(rho=sp.Rational(1, 2), eps=r, eps_in_sqrt=True),
                             LOSS, [x, y], 1)
    assert all(is_zero_expr(u - w) for s, t in zip(a.terms, b.terms) for u, w in zip(s, t))


@pytest.mark.parametrize("make", [
    lambda: sf.Adam(beta1=0.9, beta2=0.999, eps=0),
    lambda: sf.RMSprop(rho=0.9, eps=0),
    lambda: sf.RMSprop(rho=0.9, eps=0, eps_in_sqrt=True),
])
def test_no_epsilon_at_all_is_refused_with_the_fix(make):
    with pytest.raises(sf.SymflowError, match="eps=0 and eps_root=0.*eps_root > 0"):
        make()


def test_negative_eps_is_refused():
    with pytest.raises(sf.SymflowError, match="eps=-1"):
        sf.Adam(beta1=0.9, beta2=0.999, eps=-1, eps_root=0.1)
