"""Numerical Fokker–Planck solves and stationary histograms, measured by distances."""

import numpy as np
import pytest
import sympy as sp
from scipy.linalg import solve_continuous_lyapunov
from scipy.stats import multivariate_normal

import solvers as sv
import symflow as sf

x, y, w = sp.symbols("x y w")


def l1(a, b):
    return float(np.sum(np.abs(a.masses - b.masses)))


def test_grid_solver_against_closed_forms():
    well = sf.SDE(drift=[x - x**3], diffusion=sp.Rational(7, 10), params=[x])
    exact = sv.density_on_grid(sf.fokker_planck(well).stationary_density(), [(-3, 3)], 400)
    assert l1(sv.solve_fokker_planck(well, [(-3, 3)], 400), exact) < 1e-4
    # 2-D, correlated noise (cross-diffusion terms): the Gaussian of A C + C A^T = S S^T
    a = sp.Matrix([[1, sp.Rational(1, 2)], [-sp.Rational(1, 2), 2]])
    s = sp.Matrix([[1, 0], [sp.Rational(3, 5), sp.Rational(4, 5)]])
    ou2 = sf.SDE(drift=-a * sp.Matrix([x, y]), diffusion=s, params=[x, y])
    grid = sv.solve_fokker_planck(ou2, [(-4, 4), (-4, 4)], 100)
    cov = solve_continuous_lyapunov(-np.array(a, float), -np.array(s * s.T, float))
    gx, gy = np.meshgrid(*grid.centers, indexing="ij")
    gauss = multivariate_normal(np.zeros(2), cov).pdf(np.stack([gx, gy], -1)) * grid.volumes
    assert np.sum(np.abs(grid.masses - gauss)) < 0.01
    # a transient: OU from N(1, 0.1^2) to t = 1/2
    ou = sf.SDE(drift=[-x], diffusion=sp.sqrt(2), params=[x])
    p = sv.solve_fokker_planck(ou, [(-6, 6)], 600, T=0.5, p0=lambda c: np.exp(-(c - 1) ** 2 / 0.02),
                               time_steps=200)
    m, v = np.exp(-0.5), 0.01 * np.exp(-1) + 1 - np.exp(-1)
    c = p.centers[0]
    exact = np.exp(-(c - m) ** 2 / (2 * v)) / np.sqrt(2 * np.pi * v) * p.volumes
    assert np.sum(np.abs(p.masses - exact)) < 1e-3


def test_one_dimensional_density_with_no_closed_form():
    """State-dependent noise whose potential SymPy cannot integrate: the symbolic density
    is kept as an integral; quadrature, the grid solve and a long ensemble agree."""
    sde = sf.SDE(drift=[x - x**3], diffusion=sp.sqrt(2 + sp.cos(3 * x)) / 2, params=[x])
    sd = sf.fokker_planck(sde).stationary_density()
    assert not sd.closed_form and sd.potential.has(sp.Integral)
    with pytest.raises(sf.SymflowError, match="density_on_grid"):
        sd([0.0])
    box = [(-2.5, 2.5)]
    quad = sv.density_on_grid(sd, box, 500)
    grid = sv.solve_fokker_planck(sde, box, 500)
    assert l1(quad, grid) < 2e-3
    n = 10_000
    start = np.where(np.arange(n) % 2, 1.0, -1.0)[:, None]
    ens = sv.simulate_sde(sde, start, 10.0, n, key=4, dt=0.01, solver="heun")
    rep = sv.compare_stationary(grid, {"SDE paths": ens.final()})
    ks, pval = rep.ks["SDE paths"]
    assert pval > 1e-3, rep
    tv, floor = rep.tv["SDE paths"]
    assert tv < 1.3 * floor + 0.01, rep


def test_two_dimensional_non_gradient_drift():
    """A rotating double well: no closed-form density (reported), grid vs ensemble."""
    b = sp.Matrix([x - x**3 - y, x - y])
    sde = sf.SDE(drift=b, diffusion=sp.Rational(3, 5), params=[x, y])
    with pytest.raises(sf.SymflowError, match="not a gradient field"):
        sf.fokker_planck(sde).stationary_density()
    grid = sv.solve_fokker_planck(sde, [(-2.5, 2.5), (-2.5, 2.5)], 100)
    n = 20_000
    ens = sv.simulate_sde(sde, np.zeros(2), 15.0, n, key=8, dt=0.01, solver="heun")
    rep = sv.compare_stationary(grid, {"SDE paths": ens.final()}, coarsen=5)
    assert all(p > 1e-3 for _, p in rep.ks["SDE paths"]), rep
    tv, floor = rep.tv["SDE paths"]
    assert tv < 1.3 * floor + 0.02, rep
    # the Gibbs density of the gradient part is *not* the answer (the distance sees it)
    gibbs = sf.SDE(drift=[x - x**3, -y], diffusion=sp.Rational(3, 5), params=[x, y])
    wrong = sv.solve_fokker_planck(gibbs, [(-2.5, 2.5), (-2.5, 2.5)], 100)
    assert sv.compare_stationary(wrong, {"SDE": ens.final()}, 5).tv["SDE"][0] > 3 * tv


def test_stationary_histograms_of_sgd_and_sme_against_the_gibbs_density(tmp_path):
    """SGD on a double-well dataset: the order-1 SME's long-run histogram matches its Gibbs
    density; real SGD at h = 0.2 is measurably off (the O(h) gap), by the same distance."""
    s = 1
    losses = [(w**2 - 1) ** 2 / 4 + a * w for a in (-s, s)]
    opt, lr, n = sf.SGD(batch_size=1), 0.2, 10_000
    sme = sf.sme(opt, losses, [w], order=1)
    sd = sf.fokker_planck(sme).stationary_density()
    assert sd.kind == "gibbs" and sp.simplify(sd.temperature - sf.h / 2) == 0
    gibbs = sv.density_on_grid(sd, [(-2.5, 2.5)], 500, lr=lr)
    start = np.where(np.arange(n) % 2, 1.0, -1.0)[:, None]
    sgd = sv.run_sgd(opt, losses, [w], x0=start, lr=lr, n_steps=250, n_paths=n, key=5)
    paths = sv.simulate_sde(sme, start, 250 * lr, n, key=6, dt=lr / 2, solver="sra1", lr=lr)
    rep = sv.compare_stationary(gibbs, {"SME order 1": paths.final(), "SGD": sgd.final()})
    assert rep.ks["SME order 1"][1] > 1e-3, rep
    assert rep.ks["SGD"][1] < 1e-6 and rep.ks["SGD"][0] > 3 * rep.ks["SME order 1"][0], rep
    fig = rep.plot(tmp_path / "stationary.png")
    assert (tmp_path / "stationary.png").stat().st_size > 0 and "KS" in str(rep)
    assert fig.axes


@pytest.mark.parametrize("kwargs, match", [
    (dict(bounds=[(1, -1)]), "lo < hi"), (dict(bounds=[(0, 1), (0, 1)]), "pair"),
    (dict(cells=2), "cells"), (dict(T=-1.0, p0=lambda c: c * 0 + 1), "T="),
    (dict(T=1.0), "p0"), (dict(p0=lambda c: c), "transient"),
])
def test_bad_input(kwargs, match):
    args = dict(sde=sf.SDE(drift=[-x], diffusion=1, params=[x]), bounds=[(-3, 3)], cells=50)
    args.update(kwargs)
    with pytest.raises(sf.SymflowError, match=match):
        sv.solve_fokker_planck(**args)
    degenerate = sf.SDE(drift=[-x, -y], diffusion=sp.Matrix([[1], [0]]), params=[x, y])
    with pytest.raises(sf.SymflowError, match="noise along every axis"):
        sv.solve_fokker_planck(degenerate, [(-1, 1), (-1, 1)], 10)
