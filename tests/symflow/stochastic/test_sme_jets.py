"""The SME derived in symbolic jets (the fast path) equals the earlier path, which put the
loss's derivatives in at every expectation; the jets' chain rule and the adaptive Laurent
precision, each against an independent computation."""

import pytest
import sympy as sp

import symflow as sf
from symflow._stochastic import _increment_moments as im
from symflow._stochastic._increment_moments import GradientNoise, NoiseJets, taylor_coefficients

h = sf.h
w, x, y = sp.symbols("w x y")
c, c1, c2, e0 = sp.symbols("c c1 c2 eps0", positive=True)
W_LOSSES = [w**2, 3 * w**2 + w, w**4]
XY_LOSSES = [(x * y - 1) ** 2 / 2, (x - y) ** 2 / 2 + x**4 / 4, (x + 2 * y) ** 2 / 2]


def _extragradient():
    return sf.Custom(update=lambda th, g, hh: th - hh * g(th - hh * g(th)), name="eg")


CASES = {
    "adam": lambda: sf.sme(sf.Adam(beta1=1 - c1 * h**2, beta2=1 - c2 * h**2, eps=e0 / h,
                                   bias_correction=False), losses=W_LOSSES, params=[w],
                           batch_size=1, hyper=[c1, c2, e0]),
    "rmsprop": lambda: sf.sme(sf.RMSprop(rho=1 - c * h**2, eps=e0 / h), losses=W_LOSSES,
                              params=[w], batch_size=2, hyper=[c, e0]),
    "slow_heavy_ball_order2": lambda: sf.sme(sf.HeavyBall(beta=1 - c * sp.sqrt(h)),
                                             losses=W_LOSSES, params=[w], batch_size=1,
                                             order=2, hyper=[c]),
    "extragradient_order2": lambda: sf.sme(_extragradient(), losses=XY_LOSSES, params=[x, y],
                                           batch_size=2, order=2),
    "extragradient_exp": lambda: sf.sme(_extragradient(), losses=[sp.exp(w) / 2,
                                                                  sp.exp(-w) + w**2],
                                        params=[w], batch_size=1, order=2),
}


def _same(a, b):
    diff = (sp.Matrix(a) - sp.Matrix(b)).applyfunc(sp.expand)
    return all(e == 0 or sp.simplify(e) == 0 for e in diff)


@pytest.mark.parametrize("name", sorted(CASES))
def test_jets_path_equals_earlier_path(name, monkeypatch):
    """Drift, diffusion matrix and sigma sigma^T agree exactly between the two paths."""
    fast = CASES[name]()
    monkeypatch.setattr(im, "_JETS", False)
    slow = CASES[name]()
    assert fast.params == slow.params
    assert _same(fast.drift, slow.drift)
    assert _same(fast.covariance, slow.covariance)
    assert _same(fast.diffusion * fast.diffusion.T, slow.covariance)


def test_noise_jets_chain_rule():
    """d^2/dw^2 of an expression in the jet symbols equals that of its values."""
    losses = [sp.exp(w), w**3, sp.exp(-w) / 2]
    ds = sf.Dataset(losses=losses, params=[w])
    noise = GradientNoise([w], ds.mean_gradient, ds.noise_factor, sp.Rational(1, 2))
    jets = NoiseJets(noise)
    g0, g1 = jets.mean(0, (0,)), jets.mean(0, (1,))
    p00, p01 = jets.pair(0, (0,), 0, (0,)), jets.pair(0, (1,), 0, (0,))
    expr = g0**2 * p00 + w * g1 * p01
    twice = jets.diff(jets.diff(expr, w), w)
    direct = sp.diff(jets.substitute(expr), w, 2)
    assert sp.expand(jets.substitute(twice) - direct) == 0
    assert jets.pair(0, (1,), 0, (0,)) is jets.pair(0, (0,), 0, (1,))    # symmetric


@pytest.mark.parametrize("expr, order", [
    ((1 + h) ** 2 - 1 - 2 * h + h**3 + h**4, 4),                      # leading cancellation
    (sp.sqrt((1 + h) ** 2 - 1 - 2 * h + h**3 + h**4), 4),              # ... under a root
    (h / (sp.sqrt(x**2 / h**2 + y) + 1 / h), 3),                      # removable pole
    (-h * (x + h * y) / (sp.sqrt(x**2 / h**2 + h**2 * y**2) + 2 / h), 4),
])
def test_taylor_coefficients_against_series(expr, order):
    """The adaptive-precision Laurent expansion against SymPy's series."""
    got = taylor_coefficients(expr, h, order)
    ref = sp.series(expr, h, 0, order + 1).removeO()
    want = [ref.coeff(h, k) for k in range(order + 1)]
    assert all(sp.simplify(a - b) == 0 for a, b in zip(got, want)), (got, want)
