"""Fokker–Planck equations: stationary densities, free energy, continuity equations."""

import numpy as np
import pytest
import sympy as sp
from scipy.integrate import dblquad

import symflow as sf
from symflow import SDE, SGD, FreeEnergy, continuity_equation, fokker_planck, sme
from symflow._stochastic._fokker_planck import t as time_symbol

h = sf.h
x, y = sp.symbols("x y", real=True)
s = sp.Symbol("s", positive=True)
DOUBLE_WELL = x**4 / 4 - x**2 / 2


def zero(expr) -> bool:
    return sp.simplify(sp.expand(expr)) == 0


def test_equation_operator_and_current_agree():
    sde = SDE(drift=[-x**3 + y, -y], diffusion=sp.Matrix([[1, 0], [x, 1]]), params=[x, y])
    fp = fokker_planck(sde)
    q = sp.exp(-x**2 - y**2 / 2 + x * y / 3)
    cur = fp.current(q)
    assert zero(fp.operator(q) + sp.diff(cur[0], x) + sp.diff(cur[1], y))
    eq = fp.equation
    assert eq.lhs == sp.Derivative(fp.density, time_symbol)
    assert zero(eq.rhs.subs(fp.density, q).doit() - fp.operator(q))
    assert "Fokker-Planck" in str(fp) and "partial" in fp.latex()


def test_gibbs_density_of_the_double_well_sme():
    sde = sme(sf.GD(), losses=DOUBLE_WELL, params=[x], noise=s**2)
    fp = fokker_planck(sde)
    sd = fp.stationary_density()
    assert sd.kind == "gibbs" and zero(sd.temperature - h * s**2 / 2)
    assert zero(sd.potential - 2 * DOUBLE_WELL / (h * s**2))
    assert zero(fp.operator(sd.unnormalized))            # FP annihilates it
    assert zero(fp.current(sd.unnormalized)[0])          # with zero current
    assert isinstance(sd.normalization, sp.Integral)     # no closed form: kept as integral
    vals = {"h": sp.Rational(1, 10), "s": 1}
    z = sd.normalization_value(vals)
    grid = np.linspace(-4, 4, 4001)
    dens = np.exp(-20 * (grid**4 / 4 - grid**2 / 2))
    assert abs(z - np.trapezoid(dens, grid)) < 1e-8 * z
    assert abs(sd([0.3], vals) - np.exp(-20 * (0.3**4 / 4 - 0.3**2 / 2)) / z) < 1e-10


def test_gaussian_stationary_density_is_normalized():
    a = sp.Matrix([[2, sp.Rational(1, 2)], [sp.Rational(1, 2), 1]])
    theta = sp.Matrix([x, y])
    loss = (theta.T * a * theta)[0] / 2 + x
    sde = sme(sf.GD(), losses=loss, params=[x, y], noise=s**2)
    sd = fokker_planck(sde).stationary_density()
    assert not isinstance(sd.normalization, sp.Integral)
    dens = sp.lambdify((x, y), sd.expr.subs({h: sp.Rational(1, 2), s: 1}))
    total = dblquad(lambda b, a: dens(a, b), -12, 12, -12, 12, epsabs=1e-12)[0]
    assert abs(total - 1) < 1e-8
    assert zero(fokker_planck(sde).operator(sd.expr))


def test_order_two_sme_density_carries_the_modified_loss():
    sde = sme(sf.GD(), losses=DOUBLE_WELL, params=[x], order=2, noise=s**2)
    sd = fokker_planck(sde).stationary_density()
    mod = DOUBLE_WELL + h / 4 * sp.diff(DOUBLE_WELL, x) ** 2
    assert zero(sp.diff(sd.potential - 2 * mod / (h * s**2), x))
    assert zero(fokker_planck(sde).operator(sd.unnormalized))


def test_potential_form_densities():
    # anisotropic constant noise: D^{-1} b is a gradient field
    aniso = SDE(drift=[-x, -2 * y], covariance=sp.diag(1, 2), params=[x, y])
    sd = fokker_planck(aniso).stationary_density()
    assert zero(sd.potential - (x**2 + y**2)) and zero(sd.normalization - sp.pi)
    assert zero(fokker_planck(aniso).operator(sd.expr))
    # 1-D state-dependent noise: p ~ exp(int 2b/D) / D
    mult = SDE(drift=[-x], diffusion=sp.sqrt(1 + x**2) / 2, params=[x])
    sd = fokker_planck(mult).stationary_density()
    assert zero(sp.simplify(sd.unnormalized * (1 + x**2) ** 5) - 1)
    assert zero(fokker_planck(mult).operator(sd.unnormalized))
    # minibatch noise of SGD on a dataset whose gradient noise is constant
    losses = [(x - c) ** 2 / 2 + (y + c) ** 2 for c in (-1, 0, 2)]
    sde = sme(SGD(batch_size=1), losses=losses, params=[x, y])
    with pytest.raises(sf.SymflowError, match="singular"):
        fokker_planck(sde).stationary_density()   # noise spans one direction only


@pytest.mark.parametrize("sde, match", [
    (SDE(drift=[-x - x**3 + y / 2, -y - x / 2], diffusion=sp.Rational(1, 2), params=[x, y]),
     "not a gradient field"),
    (SDE(drift=[-x, -y], covariance=sp.Matrix([[1, 0], [0, 1 + x**2]]), params=[x, y]),
     "not a gradient field"),
    (SDE(drift=[-x, -y], covariance=sp.Matrix([[1, 1], [1, 1]]), params=[x, y]),
     "singular"),
    (SDE(drift=[-x], params=[x]), "deterministic"),
])
def test_no_closed_form_is_reported(sde, match):
    with pytest.raises(sf.SymflowError, match=match):
        fokker_planck(sde).stationary_density()


@pytest.mark.parametrize("drift, noise", [([x], 1), ([x**3], 1), ([-x, y], 1),
                                          ([-y, -x], 1), ([sp.Integer(1)], s)])
def test_a_density_that_cannot_be_normalized_is_refused(drift, noise):
    """exp(-Phi) not integrable (unstable or flat directions): no stationary density."""
    params = [x, y][: len(drift)]
    sde = SDE(drift=drift, diffusion=noise, params=params)
    with pytest.raises(sf.SymflowError, match="not integrable"):
        fokker_planck(sde).stationary_density()


def test_free_energy_identity():
    """The Fokker–Planck operator equals div(p grad dF/dp) for every density p."""
    loss = (x * y - 1) ** 2 / 2 + sp.log(1 + sp.exp(x))
    sde = sme(sf.GD(), losses=loss, params=[x, y], noise=s**2)
    fp = fokker_planck(sde)
    assert fp.wasserstein_residual() == 0
    assert fp.wasserstein_residual(sp.exp(-x**2 - y**4)) == 0
    fe = fp.free_energy()
    assert zero(fe.temperature - h * s**2 / 2)
    # the Gibbs density is where the first variation is constant
    gibbs = fe.minimizer()
    assert zero(sp.diff(fe.first_variation(gibbs), x)) and zero(sp.diff(fe.first_variation(gibbs), y))
    # a wrong temperature breaks the identity
    bad = FreeEnergy(loss, [x, y], h * s**2)
    p = sp.Function("p")(x, y)
    assert sp.simplify(fp.operator(p) - bad.wasserstein_flow(p)) != 0
    assert isinstance(fe.functional(p), sp.Integral)
    with pytest.raises(sf.SymflowError, match="isotropic"):
        fokker_planck(SDE(drift=[-x], diffusion=[[x]], params=[x])).free_energy()


def test_continuity_equation_of_a_modified_flow():
    me = sf.modified_equation(sf.GD(), (x * y - 1) ** 2 / 2, [x, y], order=1)
    ce = continuity_equation(me)
    p = sp.exp(-x**2 - y**2)
    f = me.field
    assert zero(ce.operator(p) + sp.diff(f[0] * p, x) + sp.diff(f[1] * p, y))
    assert "continuity" in str(ce)
    assert zero(ce.current(p)[0] - f[0] * p)
    with pytest.raises(sf.SymflowError, match="SDE"):
        fokker_planck(me)


def test_gibbs_density_of_a_direct_polynomial_sde():
    """No potential given: the engine finds L from a polynomial gradient drift (Euler's
    identity), with symbolic coefficients, and the FP operator annihilates e^{-L/T}."""
    a = sp.Symbol("a", positive=True)
    loss = a * x**4 / 4 + x * y / 2 + y**2 - h * x
    drift = [-sp.diff(loss, x), -sp.diff(loss, y)]
    fp = fokker_planck(SDE(drift=drift, diffusion=s, params=[x, y]))
    sd = fp.stationary_density()
    assert sd.kind == "gibbs" and zero(sd.temperature - s**2 / 2)
    assert zero(sp.diff(sd.potential - 2 * loss / s**2, x))
    assert zero(sp.diff(sd.potential - 2 * loss / s**2, y))
    assert zero(fp.operator(sd.unnormalized))
    assert "int" in fp.free_energy().latex()
