"""Two-player games: GDA optimizers, each player's modified objective, the Dirac-GAN spectrum."""

import numpy as np
import pytest
import sympy as sp

import symflow as sf
from symflow._games._objectives import _generic_derivation, _player_potential

h = sf.h
r = sp.Symbol("r", positive=True)
p1, p2, q1 = sp.symbols("p1 p2 q1")
GAME = sp.sin(p1) * q1 + p1**2 * q1**2 / 2 + sp.exp(p2 * q1) / 3  # min: p1, p2; max: q1


def block(vec, idx):
    return sp.Matrix([vec[i] for i in idx])


def player_gradient(expr, variables):
    return sp.Matrix([sp.diff(expr, v) for v in variables])


# -- the optimizers -----------------------------------------------------------------------

@pytest.mark.parametrize("opt", [sf.SimultaneousGDA(n_first=2, lr_ratio=r),
                                 sf.AlternatingGDA(n_first=2, lr_ratio=r),
                                 sf.AlternatingGDA(n_first=2, lr_ratio=r, first_mover="max")])
def test_order_zero_is_the_game_flow_and_map_is_consistent(opt):
    """terms[0] == -S grad E: descent for the min player, ascent at rate r for the max."""
    me = sf.modified_equation(opt, GAME, [p1, p2, q1], order=1)
    expected = -opt.scaling(3) * player_gradient(GAME, [p1, p2, q1])
    assert (sp.Matrix(me.terms[0]) - expected).applyfunc(sp.simplify) == sp.zeros(3, 1)


def test_alternating_differs_from_simultaneous_at_order_one_only_through_the_move():
    """Alternating GDA's h-term is simultaneous GDA's plus d_2 of the delayed gradient:
    the max player sees phi_{n+1} = phi - h grad_phi E, adding -r (d^2E/dtheta dphi) grad_phi E."""
    sim = sf.modified_equation(sf.SimultaneousGDA(n_first=2, lr_ratio=r), GAME, [p1, p2, q1], 1)
    alt = sf.modified_equation(sf.AlternatingGDA(n_first=2, lr_ratio=r), GAME, [p1, p2, q1], 1)
    g_phi = player_gradient(GAME, [p1, p2])
    mixed = sp.Matrix([[sp.diff(GAME, q1, p) for p in (p1, p2)]])
    gap = sp.Matrix(alt.terms[1]) - sp.Matrix(sim.terms[1])
    assert sp.simplify(gap[2] - (-r * (mixed * g_phi)[0])) == 0
    assert sp.simplify(gap[0]) == 0 and sp.simplify(gap[1]) == 0


@pytest.mark.parametrize("path", ["jet", "general"])
def test_an_undefined_loss_gives_the_concrete_terms_on_every_path(path):
    """The terms derived for an undefined E(phi, theta), with E set afterwards to a concrete
    game, equal the terms derived on that game. Alternating GDA takes the max player's
    gradient at the moved phi: that is (d_theta E)(phi', theta), not d_theta[E(phi', theta)]."""
    phi, theta = sp.symbols("phi theta", real=True)
    E = sp.Function("E")(phi, theta)
    concrete = phi**2 * theta + theta**3 / 3 + phi * theta
    opt = sf.AlternatingGDA(n_first=1, lr_ratio=r)
    generic = sf.modified_equation(opt, E, [phi, theta], 2, path=path, hyper=[r])
    direct = sf.modified_equation(opt, concrete, [phi, theta], 2, hyper=[r])
    for k in (1, 2):
        gap = sp.Matrix(generic.terms[k]).subs(E, concrete).doit() - sp.Matrix(direct.terms[k])
        assert gap.applyfunc(sp.simplify) == sp.zeros(2, 1), (k, gap)


def test_players_by_symbols_and_labels():
    opt = sf.SimultaneousGDA(players=([p1, p2], [q1]))
    assert opt.n_first == 2 and "players" in repr(opt)
    me = sf.modified_equation(opt, GAME, [p1, p2, q1], order=0)
    assert len(me.terms[0]) == 3
    with pytest.raises(sf.SymflowError, match=r"params=\[p1, p2, q1\]"):
        sf.modified_equation(opt, GAME, [q1, p1, p2], order=0)
    assert sf.AlternatingGDA(n_first=1, first_mover="max").label == "alternating GDA, max first"
    assert sf.SimultaneousGDA(n_first=1, lr_ratio=2).label == "simultaneous GDA, r=2"


@pytest.mark.parametrize("kwargs, match", [
    ({}, "no split"),
    ({"n_first": 0}, "positive integer"),
    ({"n_first": 1.5}, "positive integer"),
    ({"n_first": 1, "lr_ratio": -1}, "lr_ratio=-1"),
    ({"n_first": 1, "players": ([p1], [q1])}, "give one of them"),
    ({"players": [p1]}, "two lists"),
    ({"players": ([p1, p2], [])}, "at least one parameter"),
    ({"players": ([p1], [p1])}, "exactly one player"),
    ({"players": (["p1"], [q1])}, "SymPy symbols"),
])
def test_bad_game_optimizers(kwargs, match):
    with pytest.raises(sf.SymflowError, match=match):
        sf.SimultaneousGDA(**kwargs)


def test_a_game_without_two_players_is_refused():
    with pytest.raises(sf.SymflowError, match="needs two players"):
        sf.modified_equation(sf.SimultaneousGDA(n_first=3), GAME, [p1, p2, q1], order=1)
    with pytest.raises(sf.SymflowError, match="needs two players"):
        sf.modified_equation(sf.AlternatingGDA(n_first=1), p1**2, [p1], order=1)
    with pytest.raises(sf.SymflowError, match="first_mover"):
        sf.AlternatingGDA(n_first=1, first_mover="both")
    with pytest.raises(sf.SymflowError, match="game optimizer"):
        sf.modified_objectives(sf.GD())


# -- modified objectives ------------------------------------------------------------------

def _rosca(obj, sign_phi, sign_theta):
    """E + h/4 (sign_phi |grad_phi E|^2 + sign_theta r |grad_theta E|^2) for obj's generic E."""
    E = obj.E
    n_phi = sum(E.diff(v) ** 2 for v in obj.phi)
    n_theta = sum(E.diff(v) ** 2 for v in obj.theta)
    return E + h / 4 * (sign_phi * n_phi + sign_theta * obj.optimizer.lr_ratio * n_theta)


def test_simultaneous_objectives_rosca_zero_sum():
    """Rosca et al. 2021: simultaneous GDA is the zero-sum game E + h/4|g_phi|^2 - rh/4|g_theta|^2."""
    obj = sf.modified_objectives(sf.SimultaneousGDA(n_first=2, lr_ratio=r), 1, n_second=2)
    assert sp.expand(obj.objective(1) - _rosca(obj, 1, -1)) == 0
    assert sp.expand(obj.objective(2) - _rosca(obj, 1, -1)) == 0
    assert obj.zero_sum


def test_alternating_objectives_rosca_not_zero_sum():
    obj = sf.modified_objectives(sf.AlternatingGDA(n_first=1, lr_ratio=r), 1)
    assert sp.expand(obj.objective(1) - _rosca(obj, 1, -1)) == 0
    assert sp.expand(obj.objective(2) - _rosca(obj, -1, -1)) == 0
    assert not obj.zero_sum


@pytest.mark.parametrize("opt", [sf.SimultaneousGDA(n_first=2, lr_ratio=r),
                                 sf.AlternatingGDA(n_first=2, lr_ratio=r),
                                 sf.AlternatingGDA(n_first=2, lr_ratio=r, first_mover="max")])
def test_objectives_reproduce_the_engine_field_on_a_concrete_game(opt):
    """-grad_phi E~1 and r grad_theta E~2, with the concrete game put in for E, are the two
    blocks of the engine's modified field for that game (substitution, order 1)."""
    obj = sf.modified_objectives(opt, 1, n_second=1)
    params = [p1, p2, q1]
    me = sf.modified_equation(opt, GAME, params, order=1)
    e1, e2 = obj.objective(1, GAME, params), obj.objective(2, GAME, params)
    residual_phi = block(me.field, [0, 1]) + player_gradient(e1, [p1, p2])
    residual_theta = block(me.field, [2]) - r * player_gradient(e2, [q1])
    assert residual_phi.applyfunc(sp.simplify) == sp.zeros(2, 1)
    assert residual_theta.applyfunc(sp.simplify) == sp.zeros(1, 1)


@pytest.mark.parametrize("opt", [sf.SimultaneousGDA(n_first=1), sf.AlternatingGDA(n_first=1)])
def test_no_local_objective_from_order_two(opt):
    obj = sf.modified_objectives(opt, 2)
    assert obj.first[2] is None and obj.second[2] is None
    assert obj.objective(1) is None and not obj.zero_sum
    assert "no local objective" in str(obj) and "no local objective" in obj.latex()


def test_potential_search_finds_planted_potentials_and_refutes_gd_in_1d():
    """Positive control: a planted 3-factor potential is recovered exactly from its phi- and
    theta-gradients. Negative control: gradient descent in one dimension, whose h^2 term
    -(E''^2 E')/3 - E''' E'^2/12 is no total derivative of a polynomial in E', E'', ..."""
    phi, theta = sp.symbols("phi theta", real=True)
    E = sp.Function("E")(phi, theta)
    alg, _, _ = _generic_derivation(sf.SimultaneousGDA(n_first=1, lr_ratio=r), E,
                                    (phi, theta), 2)
    to_jets = {alg.derivative(a): s for s, a in zip(alg.jets, alg.alphas)}
    planted = (E.diff(phi) ** 2 * E.diff(theta, 2) - 3 * E.diff(phi) * E.diff(theta)
               * E.diff(phi, theta) + E.diff(theta) ** 2 * E.diff(phi, 2) / 5)
    for i, scale in ((0, -1), (1, r)):
        vec = [alg.zero, alg.zero]
        vec[i] = alg.ring(sp.expand(scale * sp.diff(planted, (phi, theta)[i]).xreplace(to_jets)))
        assert sp.expand(_player_potential(alg, vec, [i], scale) - planted) == 0
    x = sp.Symbol("x", real=True)
    F = sp.Function("E")(x)
    alg, raw, _ = _generic_derivation(sf.GD(), F, (x,), 2)
    assert sp.expand(_player_potential(alg, raw[1], [0], -1) - F.diff(x) ** 2 / 4) == 0
    assert _player_potential(alg, raw[2], [0], -1) is None


def test_objectives_display_and_errors():
    obj = sf.modified_objectives(sf.SimultaneousGDA(n_first=1), 1)
    assert obj.latex().startswith("\\begin{aligned}") and "\\tilde{E}_1" in obj.latex()
    assert obj._repr_latex_().startswith("$")
    assert "zero-sum modified game: True" in str(obj)
    with pytest.raises(sf.SymflowError, match="player=3"):
        obj.objective(3)
    with pytest.raises(sf.SymflowError, match="derived for 1 \\+ 1"):
        obj.objective(1, GAME, [p1, p2, q1])
    with pytest.raises(sf.SymflowError, match="n_second"):
        sf.modified_objectives(sf.SimultaneousGDA(n_first=1), 1, n_second=0)
    with pytest.raises(sf.SymflowError, match="order"):
        sf.modified_objectives(sf.SimultaneousGDA(n_first=1), -1)


# -- the Dirac-GAN ------------------------------------------------------------------------

def gan_f(t):
    return -sp.log(1 + sp.exp(-t))


SCHEMES = [sf.SimultaneousGDA(n_first=1, lr_ratio=r), sf.AlternatingGDA(n_first=1, lr_ratio=r),
           sf.AlternatingGDA(n_first=1, lr_ratio=r, first_mover="max")]


@pytest.fixture(scope="module")
def spectra():
    E, params = sf.dirac_gan(gan_f)
    return {opt: sf.equilibrium_eigenvalues(opt, E, params, [0, 0], 3) for opt in SCHEMES}


@pytest.mark.parametrize("opt", SCHEMES)
def test_flow_jacobians_are_the_truncated_log_of_the_step(spectra, opt):
    """sum_k h^k Df_k(z*) = log(DPhi_h(z*))/h, order by order: the engine's derivation
    against the step's Jacobian, computed independently."""
    spec = spectra[opt]
    for p in range(4):
        diff = (spec.jacobians[p] - spec.log_map_jacobian(p)).applyfunc(sp.simplify)
        assert diff == sp.zeros(2, 2), (opt, p)


def test_exact_flow_is_a_centre(spectra):
    """Mescheder et al. 2018: eigenvalues +-i f'(0) sqrt(r) of the exact game flow."""
    t = sp.Symbol("t")
    fp0 = sp.diff(gan_f(t), t).subs(t, 0)
    for spec in spectra.values():
        expected = {sp.I * fp0 * sp.sqrt(r), -sp.I * fp0 * sp.sqrt(r)}
        assert {sp.simplify(e) for e in spec.eigenvalues[0]} == expected


def test_simultaneous_spirals_out_alternating_keeps_the_centre(spectra):
    sim, *alts = (spectra[o] for o in SCHEMES)
    for p in (1, 2, 3):
        re = sim.real_parts(p, n_terms=2)  # leading order in h
        assert len(set(re)) == 1 and sp.simplify(re[0] / h).is_positive
        # matches |mu| of the step: Re log(mu)/h to the same order
        rate = sp.series(sp.log(sim.map_jacobian.det()) / (2 * h), h, 0, 2).removeO()
        assert sp.simplify(re[0] - rate) == 0
        for alt in alts:  # trace zero and det > 0: purely imaginary at small h
            J = alt.jacobians[p]
            assert sp.simplify(J.trace()) == 0
            assert sp.limit(J.det(), h, 0) > 0
    assert sp.simplify(alts[0].map_jacobian.det() - 1) == 0


def test_spectrum_numbers_and_display(spectra):
    spec = spectra[SCHEMES[0]]
    flows, rates = spec.at(0.1, {"r": 1})
    assert abs(flows[1][0].real - 0.1 / 8) < 1e-12  # h/8 at r = 1
    assert abs(flows[3] - rates).max() < 1e-5 < abs(flows[1] - rates).max()
    table = spec.table(0.1, {"r": 1})
    assert "map log(mu)/h" in str(table) and "<td>map log(mu)/h</td>" in table._repr_html_()
    assert "order-3 flow" in str(spec)
    assert spec.latex().startswith("\\begin{aligned}")
    with pytest.raises(sf.SymflowError, match="r"):
        spec.at(0.1)


def test_equilibrium_errors():
    E, params = sf.dirac_gan()
    opt = sf.SimultaneousGDA(n_first=1)
    with pytest.raises(sf.SymflowError, match="fixed point"):
        sf.equilibrium_eigenvalues(opt, E, params, [1, 0], 1)
    with pytest.raises(sf.SymflowError, match="one coordinate per parameter"):
        sf.equilibrium_eigenvalues(opt, E, params, [0], 1)
    with pytest.raises(sf.SymflowError, match="memory"):
        sf.equilibrium_eigenvalues(sf.HeavyBall(beta=sp.Rational(1, 2)), E, params, [0, 0], 1)
    with pytest.raises(sf.SymflowError, match="function of one SymPy argument"):
        sf.dirac_gan(f=2)


def test_validity_of_a_game_uses_its_jacobian_not_the_hessian():
    """Dirac-GAN E = phi theta: H has eigenvalues +-1, the game Jacobian S H = [[0, 1], [-r, 0]]
    has +-i sqrt(r); the moduli set h*|mu|."""
    p, t = sp.symbols("p t")
    gda = sf.SimultaneousGDA(players=([p], [t]), lr_ratio=4)
    rep = sf.check_validity(p * t, [p, t], [0.5, 0.5], 0.05, optimizer=gda, warn=False)
    assert np.allclose(sorted(np.imag(rep.eigenvalues)), [-2, 2])
    assert np.allclose(np.real(rep.eigenvalues), 0) and rep.h_lambda_max == pytest.approx(0.1)
    with pytest.warns(sf.ValidityWarning, match=r"h\*\|mu\| \(mu: the eigenvalues of the game"):
        sf.check_validity(p * t, [p, t], [0.5, 0.5], 0.4, optimizer=gda)
    symbolic = sf.SimultaneousGDA(players=([p], [t]), lr_ratio=sp.Symbol("r", positive=True))
    with pytest.raises(sf.SymflowError, match=r"depends on \{r\}; give their numbers"):
        sf.check_validity(p * t, [p, t], [0.5, 0.5], 0.05, optimizer=symbolic)
    assert sf.check_validity(p * t, [p, t], [0.5, 0.5], 0.05, {"r": 4}, optimizer=symbolic,
                             warn=False).h_lambda_max == pytest.approx(0.1)
