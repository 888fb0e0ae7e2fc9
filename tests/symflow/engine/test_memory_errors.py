"""Bad hyperparameters of the memory optimizers, and each method's own stability limits."""

import math
import warnings

import pytest
import sympy as sp

import symflow as sf

x, y = sp.symbols("x y")
R = sp.Rational
QUAD = 5 * x**2 / 2 + y**2 / 2          # Hessian eigenvalues 5 and 1


@pytest.mark.parametrize("make, name", [
    (lambda b: sf.HeavyBall(beta=b), "beta"),
    (lambda b: sf.Nesterov(beta=b), "beta"),
    (lambda b: sf.RMSprop(rho=b, eps=1e-8), "rho"),
    (lambda b: sf.Adam(beta1=b, beta2=0.999, eps=1e-8), "beta1"),
    (lambda b: sf.Adam(beta1=0.9, beta2=b, eps=1e-8), "beta2"),
])
@pytest.mark.parametrize("bad", [-0.1, 1, 1.5, math.nan, math.inf, sp.I])
def test_decay_outside_unit_interval(make, name, bad):
    with pytest.raises(sf.SymflowError, match=rf"got {name}=.*{name} must .*\[0, 1\)"):
        make(bad)


@pytest.mark.parametrize("make", [
    lambda e: sf.RMSprop(rho=0.9, eps=e),
    lambda e: sf.RMSprop(rho=0.9, eps=e, eps_in_sqrt=True),
    lambda e: sf.Adam(beta1=0.9, beta2=0.999, eps=e),
])
@pytest.mark.parametrize("bad, match", [
    (0, "got eps=0 and eps_root=0.*eps_root > 0"),   # eps-free needs a root term (issue 19)
    (-1e-8, "got eps=.*eps must be a non-negative number"),
])
def test_eps_must_be_nonnegative_with_a_root_term(make, bad, match):
    with pytest.raises(sf.SymflowError, match=match):
        make(bad)


@pytest.mark.parametrize("bad", [0, -1e-8])
def test_adagrad_eps_must_be_positive(bad):
    with pytest.raises(sf.SymflowError, match="got eps=.*eps must be a positive number"):
        sf.AdaGrad(eps=bad)


@pytest.mark.parametrize("build, name", [
    (lambda: sf.RMSprop(0.9, 1e-8, initial_scale=-1), "initial_scale"),
    (lambda: sf.Adam(0.9, 0.999, 1e-8, eps_root=-1e-3), "eps_root"),
    (lambda: sf.AdaGrad(1e-7, initial_accumulator_value=-0.1), "initial_accumulator_value"),
])
def test_negative_starts_and_roots(build, name):
    with pytest.raises(sf.SymflowError, match=f"got {name}=.*non-negative"):
        build()


@pytest.mark.parametrize("bad", ["0.9", True, None, [0.9]])
def test_hyperparameters_are_numbers_or_expressions(bad):
    with pytest.raises(sf.SymflowError, match="got beta=.*number or a SymPy"):
        sf.HeavyBall(beta=bad)


def test_symbols_and_slow_schedules_pass_validation():
    b, c = sp.symbols("b c", positive=True)
    assert sf.HeavyBall(beta=b).beta == b
    assert sf.RMSprop(rho=1 - c * sf.h, eps=sp.Symbol("eps")).rho == 1 - c * sf.h
    assert sf.HeavyBall(beta=0.9).beta == R(9, 10)  # floats read as written


# -- stability edges and series radii, each method its own ---------------------------------

CASES = {  # optimizer, its stability edge and series radius for h*lambda
    "gd": (sf.GD(), 2, 1),
    "heavy ball": (sf.HeavyBall(beta=0.81), 2 * 1.81, (1 - 0.9) ** 2),
    "nesterov": (sf.Nesterov(beta=0.5), 2 * 1.5 / 2, (0.5 / 1.5) ** 2),
}


@pytest.mark.parametrize("name", CASES)
def test_limits_of_each_method(name):
    opt, edge, radius = CASES[name]
    small = 0.2 * radius / 5      # h*lambda_max = 0.2 radius: trusted, silent
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = sf.check_validity(QUAD, [x, y], [1.0, 1.0], small, optimizer=opt)
    assert report.trusted and report.edge == pytest.approx(edge)
    assert report.radius == pytest.approx(radius)
    with pytest.warns(sf.ValidityWarning, match="series diverges") as caught:
        sf.check_validity(QUAD, [x, y], [1.0, 1.0], 1.2 * radius / 5, optimizer=opt)
    assert "stable for h*lambda <" in str(caught[0].message)
    with pytest.warns(sf.ValidityWarning, match="itself is unstable here"):
        sf.check_validity(QUAD, [x, y], [1.0, 1.0], 1.01 * edge / 5, optimizer=opt)


def test_heavy_ball_warning_names_its_own_edge():
    with pytest.warns(sf.ValidityWarning, match=r"h\*lambda < 2\*\(1 \+ beta\) = 3\.8"):
        sf.check_validity(QUAD, [x, y], [1.0, 1.0], 0.8, optimizer=sf.HeavyBall(beta=0.9))


def test_symbolic_beta_needs_a_value():
    beta = sp.Symbol("beta")
    with pytest.raises(sf.SymflowError, match="beta.*hyper_values"):
        sf.check_validity(QUAD, [x, y], [1.0, 1.0], 0.01, optimizer=sf.HeavyBall(beta=beta))
    rep = sf.check_validity(QUAD, [x, y], [1.0, 1.0], 0.01, optimizer=sf.HeavyBall(beta=beta),
                            hyper_values={"beta": 0.81}, warn=False)
    assert rep.edge == pytest.approx(3.62)


def test_adaptive_methods_use_the_preconditioned_hessian():
    """At g = (5, 1) and eps -> 0 the RMSprop preconditioner is |g|: P^-1 H = diag(1, 1)."""
    opt = sf.RMSprop(rho=0.5, eps=1e-12)
    rep = sf.check_validity(QUAD, [x, y], [1.0, 1.0], 0.1, optimizer=opt, warn=False)
    assert rep.h_lambda_max == pytest.approx(0.1)
    assert rep.radius == pytest.approx(0.5)  # min(1, 1 - rho)
    with pytest.warns(sf.ValidityWarning, match=r"unstable.*h\*lambda < 2"):
        sf.check_validity(QUAD, [x, y], [1.0, 1.0], 2.5, optimizer=opt)
    adam = sf.Adam(beta1=0.9, beta2=0.999, eps=1e-12)
    with pytest.warns(sf.ValidityWarning,
                      match=r"unstable.*2\*\(1 \+ beta1\)/\(1 - beta1\) = 38"):
        sf.check_validity(QUAD, [x, y], [1.0, 1.0], 40.0, optimizer=adam)
    assert sf.check_validity(QUAD, [x, y], [1.0, 1.0], 1e-4, optimizer=adam).trusted


def test_modified_equation_checks_with_its_own_optimizer():
    me = sf.modified_equation(sf.HeavyBall(beta=R(81, 100)), QUAD, [x, y], 1)
    with pytest.warns(sf.ValidityWarning, match="series diverges"):
        me.check_validity(point=[1.0, 1.0], lr=0.01)   # GD would trust 0.05


# -- the command line ------------------------------------------------------------------------

def test_cli_derives_a_memory_optimizer(capsys):
    from symflow.cli import main

    assert main(["derive", "--optimizer", "heavy-ball", "--opt-args", "beta=1/2",
                 "--loss", "x**2/2", "--params", "x", "--order", "1"]) == 0
    assert "h^1: [-6*x]" in capsys.readouterr().out


@pytest.mark.parametrize("opt_args, message", [
    ("beta1=2,beta2=0.999,eps=1e-8", "beta1 must be in [0, 1)"),
    ("beta1=0.9,beta2=0.999,eps=0", "eps=0 and eps_root=0"),
    ("beta1=0.9", "beta2"),
])
def test_cli_bad_hyperparameters(capsys, opt_args, message):
    from symflow.cli import main

    assert main(["derive", "--optimizer", "adam", "--opt-args", opt_args,
                 "--loss", "x**2/2", "--params", "x", "--order", "0"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
