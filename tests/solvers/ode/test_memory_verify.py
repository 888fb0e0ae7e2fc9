"""verify_order for optimizers with memory: slopes p + 1, and what a zero start leaves.

The memory starts on the invariant manifold computed by the engine; flows on the whole
state (slow memory, AdaGrad) are checked in their own step. The losses keep the gradient
away from zero along the path, where the adaptive expansions are uniform.
"""

import numpy as np
import pytest
import sympy as sp

import solvers as sv
import symflow as sf

x, y = sp.symbols("x y")
beta, c = sp.symbols("beta c", positive=True)
R = sp.Rational
QUARTIC = (x * y - 1) ** 2 / 2
TILTED = sp.exp(x) + sp.exp(y) / 2 + x * y / 4   # gradient components stay positive
X0 = [1.0, 0.5]
LRS = [0.04, 0.02, 0.01, 0.005]
ADAPTIVE_LRS = [0.02, 0.01, 0.005, 0.0025]

REDUCED = {  # optimizer, loss, ladder, T, hyper
    "heavy ball (symbolic beta)": (sf.HeavyBall(beta=beta), QUARTIC, LRS, 1.0, {"beta": 0.5}),
    "nesterov": (sf.Nesterov(beta=R(1, 2)), QUARTIC, LRS, 1.0, None),
    "rmsprop": (sf.RMSprop(rho=R(1, 2), eps=R(1, 10**8)), TILTED, ADAPTIVE_LRS, 0.5, None),
    "rmsprop, eps in the root": (sf.RMSprop(rho=R(1, 2), eps=R(1, 10), eps_in_sqrt=True),
                                 TILTED, ADAPTIVE_LRS, 0.5, None),
    "adam": (sf.Adam(beta1=R(1, 2), beta2=R(3, 4), eps=R(1, 10**8)), TILTED, ADAPTIVE_LRS,
             0.5, None),
}


def assert_slopes(rep):
    for p in rep.orders:
        assert abs(rep.slopes[p] - (p + 1)) <= 0.3, (p, rep.table())
    assert np.all(rep.errors[2] < rep.errors[1]) and np.all(rep.errors[1] < rep.errors[0])


@pytest.fixture(scope="module")
def reports():
    return {}


@pytest.mark.parametrize("name", REDUCED)
def test_reduced_flows_on_the_manifold_have_slopes_p_plus_one(name, reports):
    opt, loss, lrs, T, hyper = REDUCED[name]
    rep = sv.verify_order(opt, loss, [x, y], x0=X0, lrs=lrs, T=T, orders=[0, 1, 2],
                          hyper=hyper)
    assert_slopes(rep)
    # a start from zero memory leaves an offset that shrinks with h, after a transient in
    # which the memory approaches its manifold
    assert rep.offsets is not None and np.all(np.diff(rep.offsets) < 0)
    assert rep.offset_slope > 0.8
    for tr, offset in zip(rep.transients, rep.offsets):
        assert tr.theta_gap[0] == 0 and tr.theta_gap[-1] == pytest.approx(offset)
    smallest = rep.transients[-1]  # where the truncated manifold is most accurate
    assert smallest.memory_gap[-1] < 1e-3 * smallest.memory_gap[0]
    reports[name] = rep


def test_heavy_ball_offset_is_first_order(reports):
    """Heavy ball's zero start skips the displacement of the missing velocity: O(h)."""
    rep = reports.get("heavy ball (symbolic beta)")
    if rep is None:
        pytest.skip("needs the heavy-ball run of this module")
    assert abs(np.polyfit(np.log(rep.lrs[-2:]), np.log(rep.offsets[-2:]), 1)[0] - 1) < 0.3


def test_report_and_figure_with_transients(reports, tmp_path):
    rep = reports.get("adam")
    if rep is None:
        pytest.skip("needs the Adam run of this module")
    text = str(rep)
    assert "invariant manifold" in text and "offsets" in text
    fig = rep.plot(tmp_path / "adam.png")
    assert len(fig.axes) == 2
    assert (tmp_path / "adam.png").stat().st_size > 20_000


def test_trajectory_figures(tmp_path):
    """Reduced flow: iterates from the manifold and from zero memory; state flow: theta."""
    me = sf.modified_equation(sf.Nesterov(beta=R(1, 2)), QUARTIC, [x, y], 2)
    fig = sv.plot_trajectories(me, x0=X0, lr=0.04, n_steps=20, path=tmp_path / "n.png")
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any("manifold" in t for t in labels) and any("zero memory" in t for t in labels)
    slow = sf.modified_equation(sf.HeavyBall(beta=1 - c * sp.sqrt(sf.h)), QUARTIC, [x, y], 1,
                                hyper=[c], reduce=False)
    sv.plot_trajectories(slow, x0=X0, lr=0.04, n_steps=10, hyper={"c": 2.0},
                         path=tmp_path / "s.png")
    assert (tmp_path / "n.png").stat().st_size > 10_000
    assert (tmp_path / "s.png").stat().st_size > 10_000


def test_custom_rule_with_memory():
    hb = sf.Custom(update=lambda th, v, g, h: (th + v / 2 - h * g(th), v / 2 - h * g(th)),
                   memory0=[0, 0], name="hand-written heavy ball")
    rep = sv.verify_order(hb, QUARTIC, [x, y], x0=X0, lrs=LRS, T=1.0, orders=[0, 1, 2])
    assert_slopes(rep)


def test_a_wrong_memory_coefficient_is_caught():
    """Scaling the h^1 term by 1.3 destroys the order-1 slope."""
    opt, loss, lrs, T, hyper = REDUCED["nesterov"]
    me = sf.modified_equation(opt, loss, [x, y], 1)
    bad = sf.ModifiedEquation(me.optimizer, me.loss, me.params, 1, me.hyper, me._alg,
                              [me._raw[0], tuple(c * me._alg.const(R(13, 10))
                                                 for c in me._raw[1])], me._raw_manifold)
    rep = sv.verify_order(opt, loss, [x, y], x0=X0, lrs=lrs, T=T, orders=[1], me=bad)
    assert abs(rep.slopes[1] - 2) > 0.5, rep.table()


# -- flows on the whole state --------------------------------------------------------------

def test_slow_heavy_ball_in_its_own_step():
    """1 - beta = c sqrt(h): errors are O(delta^(p+1)) with delta = sqrt(h)."""
    opt = sf.HeavyBall(beta=1 - c * sp.sqrt(sf.h))
    me = sf.modified_equation(opt, QUARTIC, [x, y], 2, hyper=[c], reduce=False)
    rep = sv.verify_order(opt, QUARTIC, [x, y], x0=X0, lrs=[0.04, 0.01, 0.0025, 0.000625],
                          T=1.0, hyper={"c": 2.0}, me=me)
    assert rep.step_name == "delta" and np.allclose(rep.steps, np.sqrt(rep.lrs))
    assert_slopes(rep)
    assert rep.offsets is None and "delta" in rep.table()


def test_slow_rmsprop_ode():
    opt = sf.RMSprop(rho=1 - c * sf.h, eps=R(1, 10), eps_in_sqrt=True)
    me = sf.modified_equation(opt, TILTED, [x, y], 2, hyper=[c], reduce=False)
    rep = sv.verify_order(opt, TILTED, [x, y], x0=X0, lrs=ADAPTIVE_LRS, T=0.5,
                          hyper={"c": 2.0}, me=me, memory0=[1.0, 1.0])
    assert_slopes(rep)


def test_adagrad_state_flow_with_a_warm_accumulator():
    """tau = n h^2, w = h^2 s held fixed: slopes p + 1 in kappa = h^2."""
    opt = sf.AdaGrad(eps=R(1, 10))
    rep = sv.verify_order(opt, TILTED, [x, y], x0=X0, lrs=[0.2, 0.1, 0.05, 0.025], T=0.2,
                          memory0=[1.0, 1.0])
    assert rep.step_name == "kappa"
    assert_slopes(rep)


def test_memory0_is_for_state_flows_only():
    with pytest.raises(sf.SymflowError, match="memory0 applies to flows on the whole state"):
        sv.verify_order(sf.HeavyBall(beta=R(1, 2)), QUARTIC, [x, y], x0=X0, lrs=LRS, T=1.0,
                        memory0=[0.0, 0.0])


def test_divergence_beyond_the_edge_is_reported():
    with pytest.raises(sf.SymflowError, match="diverged"), \
            pytest.warns(sf.ValidityWarning, match=r"2\*\(1 \+ beta\)"):
        sv.verify_order(sf.HeavyBall(beta=R(1, 2)), 5 * x**2 + y**2, [x, y], x0=[1.0, 1.0],
                        lrs=[1.0, 0.5], T=200.0, orders=[0])


def test_a_flow_singular_at_its_start_says_which_term():
    """Slow RMSprop with eps outside the root: 1/sqrt(v) at v = 0 enters at order 1, not 0."""
    opt = sf.RMSprop(rho=1 - c * sf.h, eps=R(1, 10))
    me = sf.modified_equation(opt, TILTED, [x, y], 1, hyper=[c], reduce=False)
    start = X0 + [0.0, 0.0]
    ts, ys = sv.solve_flow(me, start, 0.01, 10, order=0, hyper={"c": 2.0})
    assert np.all(np.isfinite(ys))
    with pytest.raises(sf.SymflowError, match=r"not finite at its start .*v_x = 0.*memory0"):
        sv.solve_flow(me, start, 0.01, 10, order=1, hyper={"c": 2.0})


def test_eps_outside_the_root_near_a_zero_gradient_gets_a_hint():
    opt = sf.RMSprop(rho=R(9, 10), eps=R(1, 10**8))
    with pytest.warns(sf.ValidityWarning), \
            pytest.raises(sf.SymflowError, match="eps outside the root.*eps_in_sqrt=True"):
        sv.verify_order(opt, (x**2 + y**2) / 2, [x, y], x0=[0.3, 0.0], lrs=[0.02, 0.01],
                        T=0.2)
