"""GDA numerics on the Dirac-GAN: order slopes of both schemes, and the outward spiral."""

import numpy as np
import pytest
import sympy as sp

import solvers as sv
import symflow as sf

E, PARAMS = sf.dirac_gan()
LRS = [0.1, 0.05, 0.025, 0.0125]
r = sp.Symbol("r", positive=True)


@pytest.mark.parametrize("opt, hyper", [
    (sf.SimultaneousGDA(n_first=1), None),
    (sf.AlternatingGDA(n_first=1), None),
    (sf.AlternatingGDA(n_first=1, lr_ratio=r, first_mover="max"), {"r": 2}),
])
def test_verify_order_slopes_for_both_schemes(opt, hyper):
    rep = sv.verify_order(opt, E, PARAMS, x0=[1.0, 0.5], lrs=LRS, T=1.0, orders=[0, 1, 2],
                          hyper=hyper)
    for p in (0, 1, 2):
        assert abs(rep.slopes[p] - (p + 1)) <= 0.2, rep.table()
    assert np.all(rep.errors[2] < rep.errors[1]) and np.all(rep.errors[1] < rep.errors[0])


def _radii(opt, lr, n_steps, x0=(0.05, 0.0)):
    its = np.asarray(sv.iterate(opt, E, PARAMS, x0=list(x0), lr=lr, n_steps=n_steps))
    return np.linalg.norm(its, axis=1)


def test_simultaneous_iterates_spiral_out_at_the_predicted_rate():
    """Near the equilibrium the radius of simultaneous GDA grows like exp(Re(lambda) t), with
    Re(lambda) = Re log(mu)/h of the step, which the order-1 flow gives up to O(h^3)."""
    opt, lr, n = sf.SimultaneousGDA(n_first=1), 0.1, 400
    spec = sf.equilibrium_eigenvalues(opt, E, PARAMS, [0, 0], 1)
    flows, rates = spec.at(lr)
    radii = _radii(opt, lr, n)
    growth = np.log(radii[-1] / radii[0]) / (n * lr)
    assert growth > 0 and abs(growth / rates[0].real - 1) < 1e-3
    assert abs(flows[1][0].real / rates[0].real - 1) < lr**2  # order-1 flow: h/8 + O(h^3)
    assert flows[0][0].real == 0  # the exact flow is a centre


def test_alternating_iterates_stay_on_a_closed_curve():
    opt, lr, n = sf.AlternatingGDA(n_first=1), 0.1, 400
    radii = _radii(opt, lr, n)
    period = int(round(2 * np.pi / 0.5 / lr))  # the centre's angular speed is 1/2
    first, last = radii[:period].max(), radii[-period:].max()
    assert abs(last / first - 1) < 1e-3
    assert radii.max() / radii[0] < 1.1


@pytest.mark.parametrize("opt", [sf.SimultaneousGDA(n_first=1), sf.AlternatingGDA(n_first=1)])
def test_compiled_step_has_the_symbolic_map_jacobian(opt):
    lr, eps = 0.1, 1e-6
    spec = sf.equilibrium_eigenvalues(opt, E, PARAMS, [0, 0], 0)
    J = np.array(spec.map_jacobian.subs(sf.h, sp.Rational(1, 10)).evalf(), dtype=float)
    numeric = np.stack([np.asarray(sv.iterate(opt, E, PARAMS, x0=list(eps * e), lr=lr,
                                              n_steps=1))[1] / eps for e in np.eye(2)], axis=1)
    assert np.abs(numeric - J).max() < 1e-8
