"""The input- vs parameter-gradient inequality: statement, derivation, norms, counterexamples."""

import random

import mpmath
import pytest
import sympy as sp

import symflow as sf
from symflow._claims._penalty import NORMS, _mp_norm, penalty_symbols


@pytest.fixture(scope="module")
def tanh_net():
    return sf.derive_penalty_inequality([2, 3, 1], "tanh")


def test_statement_any_depth_is_the_sum_of_layer_terms():
    s = penalty_symbols()
    l = sp.Symbol("l", integer=True, positive=True)
    general = sf.gradient_penalty_inequality(l)
    for depth in (1, 3):
        explicit = sf.gradient_penalty_inequality(depth)
        terms = sum((1 + s["h"][t] ** 2) / (s["W"][t] ** 2 * s["J"][t] ** 2)
                    for t in range(1, depth + 1))
        assert sp.simplify(explicit.lhs - s["grad_x"] ** 2 * terms) == 0
        assert sp.simplify(general.lhs.subs(l, depth).doit() - explicit.lhs) == 0
        assert explicit.rhs == s["grad_theta"] ** 2


@pytest.mark.parametrize("norm", ["max", "l1", "linf"])
def test_failing_norms_are_refused_with_an_exact_counterexample(norm):
    ce = sf.penalty_counterexample(norm)
    assert ce["ratio"] == sp.Rational(1, 2)
    assert all(step.verified for step in ce["derivation"].steps)
    # the holding norms keep the same network on the right side (spectral: equality)
    d = ce["derivation"]
    for kind in sf.HOLDING_NORMS:
        ratio = sp.nsimplify(d.rhs().xreplace(ce["point"]) / d.lhs(kind).xreplace(ce["point"]))
        assert ratio >= 1
    assert sp.nsimplify(d.rhs().xreplace(ce["point"])
                        / d.lhs("spectral").xreplace(ce["point"])) == 1
    with pytest.raises(sf.SymflowError, match="false for the"):
        sf.gradient_penalty_inequality(2, norm=norm)


def test_every_step_of_the_derivation_is_verified(tanh_net):
    assert [s.verified for s in tanh_net.steps] == [True] * 5
    assert "Cauchy-Schwarz" in tanh_net.report()


def test_generic_activation_derivation_holds_for_every_activation():
    d = sf.derive_penalty_inequality([2, 2, 1], "generic")
    assert all(s.verified for s in d.steps)
    assert d.f.has(sp.Function("g1")) and d.f.has(sp.Function("g2"))


def test_one_layer_scalar_output_is_an_equality_for_the_spectral_norm():
    d = sf.derive_penalty_inequality([3, 1], "sigmoid")
    assert sp.simplify(d.rhs() - d.lhs("spectral")) == 0
    # Frobenius: the identity Jacobian of the input costs exactly the input dimension
    assert sp.simplify(d.rhs() / d.lhs("frobenius") - 3) == 0


def test_frobenius_gap_is_an_explicit_sum_of_squares(tanh_net):
    gap = tanh_net.rhs() - tanh_net.lhs("frobenius") - tanh_net.frobenius_certificate()
    pt = tanh_net.random_point(1)
    assert abs(sp.N(gap.xreplace(pt), 40)) < 1e-30
    # and it is not trivially zero: the gap itself is positive there
    assert sp.N(tanh_net.frobenius_certificate().xreplace(pt), 40) > 1e-3


def test_evaluate_splits_the_ratio_into_the_two_lossy_steps(tanh_net):
    pt = tanh_net.random_point(7)
    rhs_t = [sp.N(((d.T * d)[0] * (1 + (hh.T * hh)[0])).xreplace(pt), 40)
             for d, hh in zip(tanh_net.delta, tanh_net.hidden)]
    for kind in sf.HOLDING_NORMS:
        ev = tanh_net.evaluate(pt, kind)
        with mpmath.workdps(30):
            assert ev["ratio"] >= 1
            assert all(c >= 1 - 1e-25 for c in ev["cauchy_schwarz"] + ev["submultiplicative"])
            # per layer, rhs_t / lhs_t is exactly the product of the two factors
            lhs_t = [mpmath.mpf(r) / (c * m) for r, c, m in
                     zip(rhs_t, ev["cauchy_schwarz"], ev["submultiplicative"])]
            assert abs(sum(lhs_t) - ev["lhs"]) < 1e-20 * ev["lhs"]
    # evaluate agrees with the symbolic expressions at the same point
    ev = tanh_net.evaluate(pt, "frobenius")
    assert abs(ev["lhs"] - sp.N(tanh_net.lhs("frobenius").xreplace(pt), 30)) < 1e-14
    assert abs(ev["rhs"] - sp.N(tanh_net.rhs().xreplace(pt), 30)) < 1e-14


def test_check_finds_no_violation_for_holding_norms_and_some_for_max():
    d = sf.derive_penalty_inequality([2, 2, 2], "relu")
    ratios = d.check(points=4)
    for kind in sf.HOLDING_NORMS:
        assert min(ratios[kind]) >= 1
    assert set(ratios) == set(NORMS)
    assert min(ratios["max"]) < 1


@pytest.mark.parametrize("kind", NORMS)
def test_matrix_norm_closed_forms_match_numeric_svd(kind):
    rng = random.Random(3)
    A = sp.Matrix(2, 2, lambda i, j: sp.Rational(rng.randint(-9, 9), 7))
    exact = sp.N(sf.matrix_norm(A, kind), 30)
    with mpmath.workdps(30):
        ref = _mp_norm(mpmath.matrix(A.evalf(35).tolist()), kind)
        assert abs(exact - ref) < 1e-25


def test_bad_inputs_get_clear_errors():
    with pytest.raises(sf.SymflowError, match="positive integer"):
        sf.gradient_penalty_inequality(0)
    with pytest.raises(sf.SymflowError, match="at least two"):
        sf.derive_penalty_inequality([2])
    with pytest.raises(sf.SymflowError, match="do not chain"):
        sf.derive_penalty_inequality(weights=[sp.ones(3, 2), sp.ones(1, 2)])
    with pytest.raises(sf.SymflowError, match="choose one of"):
        sf.derive_penalty_inequality([2, 1], "swish")
    with pytest.raises(sf.SymflowError, match="norm"):
        sf.matrix_norm(sp.eye(2), "operator")
    d = sf.derive_penalty_inequality([2, 1], "generic", verify=False)
    with pytest.raises(sf.SymflowError, match="generic"):
        d.evaluate(d.random_point(0))
