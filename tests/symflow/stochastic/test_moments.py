"""Closed moment systems: generators of SDEs and transition operators of SGD (exact)."""

import pytest
import sympy as sp

import symflow as sf

h = sf.h
u, v, x = sp.symbols("u v x")


def quadratic_dataset():
    a = sp.Matrix([[2, sp.Rational(1, 2)], [sp.Rational(1, 2), 1]])
    theta = sp.Matrix([u, v])
    pts = [sp.Matrix(r) for r in ([1, 0], [0, 1], [-1, -1], [2, 1])]
    return a, [((theta - p).T * a * (theta - p))[0] / 2 for p in pts]


def stationary_covariance(system):
    mom = system.stationary_moments()
    mean = sp.Matrix([mom[u], mom[v]])
    second = sp.Matrix([[mom[u**2], mom[u * v]], [mom[u * v], mom[v**2]]])
    return (second - mean * mean.T).applyfunc(sp.factor), mean


@pytest.mark.parametrize("batch, replacement", [(2, True), (3, False)])
def test_sgd_stationary_covariance_solves_the_discrete_lyapunov_equation(batch, replacement):
    a, losses = quadratic_dataset()
    opt = sf.SGD(batch, replacement=replacement)
    cov, mean = stationary_covariance(sf.sgd_moments(opt, losses, [u, v]))
    sigma = sf.Dataset(losses=losses, params=[u, v]).gradient_covariance
    step = sp.eye(2) - h * a
    residual = cov - step * cov * step.T - h**2 * opt.noise_scale(4) * sigma
    assert all(sp.cancel(e) == 0 for e in residual)
    loss = sum(losses) / len(losses)
    minimizer = sp.solve([sp.diff(loss, p) for p in (u, v)], [u, v], dict=True)
    assert [mean] == [sp.Matrix([m[u], m[v]]) for m in minimizer]  # the mean minimizer
    # the order-1 SME solves the continuous one: J C + C J^T + D = 0
    sme = sf.sme(opt, losses, [u, v], order=1)
    cont, _ = stationary_covariance(sf.sde_moments(sme))
    jac = sme.drift.jacobian([u, v])
    assert all(sp.cancel(e) == 0 for e in jac * cont + cont * jac.T + sme.covariance)
    # and the two differ at relative O(h)
    gap = sp.series(sp.cancel((cov[0, 0] - cont[0, 0]) / cont[0, 0]), h, 0, 2).removeO()
    assert gap.coeff(h, 1) != 0


def test_generator_of_the_linear_regression_sme_closes():
    w, b = sp.symbols("w b")
    losses = [(w * a + b - t) ** 2 / 2 for a, t in [(1, 1), (2, 3), (-1, 0)]]
    phi = 3 * w**2 - w * b + 2 * b - 1
    for order in (1, 2):
        sme = sf.sme(sf.SGD(1), losses, [w, b], order=order)
        gen = sf.sde_moments(sme)
        assert gen.kind == "generator" and len(gen.basis) == 6 and gen.constants == (h,)
        coeffs = gen.matrix * gen.coefficients(phi)  # the matrix acts as the generator
        assert sp.expand(sum(c * m for c, m in zip(coeffs, gen.basis))
                         - sme.generator(phi)) == 0
    assert "generator" in repr(gen) and "mathcal" in gen.latex()


def test_closure_and_input_errors():
    cubic = sf.SDE(drift=[-x**3], diffusion=1, params=[x])
    with pytest.raises(sf.SymflowError, match="does not close at degree 2"):
        sf.sde_moments(cubic)
    with pytest.raises(sf.SymflowError, match="degree <= 2"):
        sf.sgd_moments(sf.SGD(1), [x**2, (x - 1) ** 2], [x], degree=3)
    with pytest.raises(sf.SymflowError, match="degree >= 1"):
        sf.sde_moments(sf.SDE(drift=[-x], diffusion=1, params=[x]), degree=0)
    ou = sf.sde_moments(sf.SDE(drift=[-x], diffusion=1, params=[x]), degree=2)
    with pytest.raises(sf.SymflowError, match="polynomial"):
        ou.coefficients(sp.exp(x))
    with pytest.raises(sf.SymflowError, match="degree 3"):
        ou.coefficients(x**3)
    with pytest.raises(sf.SymflowError, match="not unique"):
        sf.sde_moments(sf.SDE(drift=[0], diffusion=0, params=[x])).stationary_moments()
