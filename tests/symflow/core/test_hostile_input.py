"""Hostile and malformed input: each gets a clear SymflowError (or a warning) before any work.

Classes (issue 13): code-running strings at the entry points named in the issue; parser
limits; orders; losses that are not finite or real; ``abs`` of parameters; rules that are
not power series in h; decimals; hyperparameters that depend on the parameters. The
generic walk over every public callable is ``tests/test_no_string_runs.py``; the solvers
entry points are in ``tests/solvers/ode/test_hostile_input.py``.
"""

import re

import pytest
import sympy as sp

import symflow as sf
from symflow._core._guard import as_sympy, read_decimal, to_sympy
from symflow._core._validate import MAX_ORDER, check_order

x, y, c = sp.symbols("x y c")
xr = sp.Symbol("x", real=True)


@pytest.fixture
def payload(tmp_path):
    marker = tmp_path / "MARKER"
    yield f"__import__('pathlib').Path({str(marker)!r}).touch()"
    assert not marker.exists(), "a string was executed"


# -- code-running strings at the entry points the issue names -------------------------------

def _sde():
    return sf.SDE(drift=[-c * x], diffusion=[[1]], params=[x])


STRING_CALLS = {
    "check_validity(loss=)": lambda s: sf.check_validity(s, [x], [1.0], 0.1),
    "check_validity(hyper_values=)": lambda s: sf.check_validity(c * x**2, [x], [1.0], 0.1,
                                                                 hyper_values={c: s}),
    "equilibrium_eigenvalues(loss=)": lambda s: sf.equilibrium_eigenvalues(
        sf.GD(), s, [x], [0], 1),
    "equilibrium_eigenvalues(point=)": lambda s: sf.equilibrium_eigenvalues(
        sf.GD(), x**2, [x], [s], 1),
    "FreeEnergy(loss)": lambda s: sf.FreeEnergy(s, [x], 1),
    "FreeEnergy(temperature)": lambda s: sf.FreeEnergy(x**2, [x], s),
    "SDE.subs": lambda s: _sde().subs({c: s}),
    "SDE.generator": lambda s: _sde().generator(s),
    "FokkerPlanck.operator": lambda s: sf.fokker_planck(_sde()).operator(s),
    "FokkerPlanck.current": lambda s: sf.fokker_planck(_sde()).current(s),
    "FokkerPlanck.wasserstein_residual": lambda s: sf.fokker_planck(
        _sde().subs({c: 1})).wasserstein_residual(s),
    "MomentSystem.coefficients": lambda s: sf.sde_moments(_sde().subs({c: 1})).coefficients(s),
    "CoordinateFreeEquation.concrete(loss)": lambda s: sf.coordinate_free_equation(
        sf.GD(), 1).concrete(s, [x]),
    "CoordinateFreeEquation.concrete(at=)": lambda s: sf.coordinate_free_equation(
        sf.GD(), 1).concrete(x**3, [x], at=[s]),
    "GameObjectives.concrete": lambda s: sf.modified_objectives(
        sf.SimultaneousGDA(n_first=1), 1).objective(1, s, [x, y]),
    "kernel_machine(x_train=)": lambda s: sf.kernel_machine(c * x, [c], [x], [[s]], [1]),
    "kernel_machine(y_train=)": lambda s: sf.kernel_machine(c * x, [c], [x], [[1]], [s]),
    "smoothing_gap_at(at=)": lambda s: sf.smoothing_gap_at(sp.Max(0, xr), xr, at=s),
    "dirac_gan(f)": lambda s: sf.dirac_gan(lambda t: s),
    "modified_equation(loss=)": lambda s: sf.modified_equation(sf.GD(), s, [x], 1),
    "HeavyBall(beta=)": lambda s: sf.HeavyBall(beta=s),
}


@pytest.mark.parametrize("call", STRING_CALLS.values(), ids=STRING_CALLS.keys())
def test_a_string_is_refused_and_never_run(call, payload):
    with pytest.raises(sf.SymflowError, match="string|strings"):
        call(payload)
    with pytest.raises(sf.SymflowError):  # inside a list as well
        call([payload])


RETURNS_TEXT = {
    "Custom(update) -> str": lambda s: sf.modified_equation(
        sf.Custom(update=lambda th, g, h: s), x**2, [x], 1),
    "Custom(update) -> [str]": lambda s: sf.modified_equation(
        sf.Custom(update=lambda th, g, h: [s]), x**2, [x], 1),
    "Custom(update) -> [str] coordinate-free": lambda s: sf.coordinate_free_equation(
        sf.Custom(update=lambda th, g, h: [s]), 1),
    "Custom(memory rule) -> ([str], [str])": lambda s: sf.modified_equation(
        sf.Custom(update=lambda th, m, g, h: ([s], [s]), memory0=[0]), x**2, [x], 1),
    "Custom(memory0=[str])": lambda s: sf.Custom(update=lambda th, m, g, h: (th, m),
                                                 memory0=[s]),
    "Custom(memory0=f) -> [str]": lambda s: sf.modified_equation(
        sf.Custom(update=lambda th, m, g, h: (th, m), memory0=lambda th: [s]), x**2, [x], 1),
    "kernel_machine(loss=f) -> str": lambda s: sf.kernel_machine(c * x, [c], [x], [[1]], [1],
                                                                 loss=lambda yy, pp: s),
    "dirac_gan(f) -> [str]": lambda s: sf.dirac_gan(lambda t: [s]),
}


@pytest.mark.parametrize("call", RETURNS_TEXT.values(), ids=RETURNS_TEXT.keys())
def test_text_returned_by_a_user_function_is_refused(call, payload):
    with pytest.raises(sf.SymflowError):
        call(payload)


def test_an_object_read_through_its_text_is_refused(payload):
    """SymPy's sympify reads an unknown object through str(): refused, not run."""
    class Trojan:
        def __str__(self):
            return payload

    with pytest.raises(sf.SymflowError, match="Trojan"):
        _sde().generator(Trojan())
    with pytest.raises(sf.SymflowError, match="Trojan"):
        sf.FreeEnergy(x**2, [x], Trojan())


def test_a_dict_key_must_be_a_plain_name(payload):
    with pytest.raises(sf.SymflowError, match="plain symbol name"):
        _sde().subs({payload: 1})
    assert _sde().subs({"c": 2}).drift[0] == -2 * x  # a plain name still works


# -- parser limits ---------------------------------------------------------------------------

PARSER_REFUSALS = {
    "(10**9999)**(10**9999)": "too large to hold exactly",
    "0.5**10**6": "too large to hold exactly",
    "(1/3)**(10**8)": "too large to hold exactly",
    "2**(10**9999)": "too large to hold exactly",
    "1e99999*x": "decimal exponent",
    "9" * 5000: "digit",
    "**".join(["x"] * 2000): "nested more than",
    "-" * 5000 + "x": "nested more than",
    "exp(" * 150 + "x" + ")" * 150: "nested|parentheses",
    "x + \ud800": "not valid Unicode",
    "(x+y)**3000": "too large to expand",
    "x**(10**9999)": "too large to expand",
}


@pytest.mark.parametrize("text, why", PARSER_REFUSALS.items(),
                         ids=[t[:20] for t in PARSER_REFUSALS])
def test_parser_limits(text, why):
    with pytest.raises(sf.UnsafeExpressionError, match=why) as err:
        sf.parse_expression(text, [x, y])
    assert len(str(err.value)) < 400  # the message quotes the text shortened


@pytest.mark.parametrize("value", ["__import__('os').getcwd()", b"x + 1",
                                   ["x", 1], ("y",), {"a": "b"}, {sp.Symbol("a"): ("1 + 1",)},
                                   __import__("numpy").array(["x"])])
def test_the_one_sympify_never_parses_text(value, monkeypatch):
    """as_sympy (the only sympify call in the packages) refuses text, also inside containers,
    and never reaches SymPy's parser."""
    import sympy.parsing.sympy_parser as parser
    monkeypatch.setattr(parser, "parse_expr", lambda *a, **k: pytest.fail("text was parsed"))
    with pytest.raises(sp.SympifyError):
        as_sympy(value)


def test_a_huge_power_given_as_sympy_is_refused_too():
    with pytest.raises(sf.SymflowError, match=r"\*\*3000, too large to expand"):
        sf.modified_equation(sf.GD(), (x + y)**3000, [x, y], 1)


def test_long_flat_sums_and_products_parse():
    """3000-term sums (a 3000-deep tree in Python's ast) are flat, not nested."""
    assert sf.parse_expression("+".join(["x"] * 3000), [x]) == 3000 * x
    assert sf.parse_expression("*".join(["x"] * 300), [x]) == x**300
    assert sf.parse_expression("-".join(["x"] * 11), [x]) == -9 * x


def test_full_width_names_are_read_as_python_reads_them():
    """Python NFKC-normalises identifiers in the text; the declared names are too."""
    wide = sp.Symbol("ｘ")
    assert sf.parse_expression("ｘ**2 + x", [wide]) == wide**2 + wide  # both spellings
    assert sf.parse_symbols("ｘ, y", "params") == (x, y)
    with pytest.raises(sf.SymflowError, match="normalised"):
        sf.parse_expression("x", [x, wide])


# -- orders ---------------------------------------------------------------------------------

@pytest.mark.parametrize("order", [10**6, MAX_ORDER + 1])
def test_orders_that_cannot_finish_are_refused(order):
    with pytest.raises(sf.SymflowError, match=f"order={order}.*cannot finish"):
        sf.modified_equation(sf.GD(), x**2, [x], order)


def test_a_high_order_warns_with_an_estimate():
    with pytest.warns(sf.CostWarning, match=r"order=20 may take long.*about [\d.e+]+ s"):
        assert check_order(20) == 20


# -- losses that are not finite and real ----------------------------------------------------

NOT_FINITE = {"1/0": "complex infinity", "0/0": "nan", "log(0)": "complex infinity",
              "zoo + x**2": "complex infinity", "x*(1/0)": "complex infinity"}


@pytest.mark.parametrize("text, why", NOT_FINITE.items(), ids=NOT_FINITE.keys())
def test_a_loss_that_is_not_finite_is_refused(text, why):
    loss = sf.parse_expression(text.replace("zoo", "1/0"), [x])
    with pytest.raises(sf.SymflowError, match=f"not finite: it holds {why}"):
        sf.modified_equation(sf.GD(), loss, [x], 1)
    with pytest.raises(sf.SymflowError, match="not finite"):
        sf.check_validity(loss, [x], [1.0], 0.1)


@pytest.mark.parametrize("loss", [sp.nan * x, sp.zoo + x**2, sp.oo * x**2],
                         ids=["nan*x", "zoo+x**2", "oo*x**2"])
def test_non_finite_sympy_losses_are_refused(loss):
    with pytest.raises(sf.SymflowError, match="not finite"):
        sf.modified_equation(sf.GD(), loss, [x], 1)


@pytest.mark.parametrize("loss", [sp.I * x**2, (1 + 2j) * x**2,
                                  sf.parse_expression("sqrt(-1)*x**2", [x]),
                                  sf.parse_expression("log(-1)*x**2", [x])],
                         ids=["I", "complex", "sqrt(-1)", "log(-1)"])
def test_a_complex_loss_is_refused(loss):
    with pytest.raises(sf.SymflowError, match="not real"):
        sf.modified_equation(sf.GD(), loss, [x], 1)


# -- abs of parameters not declared real -----------------------------------------------------

def test_abs_of_a_plain_symbol_is_read_for_real_parameters():
    """|x|^3 + y^2 with x, y plain symbols gives the same field as with x declared real."""
    yr = sp.Symbol("y", real=True)
    plain = sf.modified_equation(sf.GD(), sp.Abs(x)**3 + y**2, [x, y], 2)
    real = sf.modified_equation(sf.GD(), sp.Abs(xr)**3 + yr**2, [xr, yr], 2)
    for k in range(3):
        for a, b in zip(plain.terms[k], real.terms[k]):
            for point in (2, -3, sp.Rational(1, 2)):
                assert sp.simplify(a.subs({x: point, y: 1}) - b.subs({xr: point, yr: 1})) == 0
    assert not plain.terms[1].has(sp.re, sp.im, sp.Derivative)


def test_sign_of_a_plain_symbol_is_refused():
    with pytest.raises(sf.SymflowError, match="not declared real"):
        sf.modified_equation(sf.GD(), sp.sign(x) * x**2, [x], 1)


# -- rules that are not power series in h ----------------------------------------------------

@pytest.mark.parametrize("update", [lambda th, g, h: th - h**(1 / 2) * g(th),
                                    lambda th, g, h: th - sp.sqrt(h) * g(th),
                                    lambda th, g, h: th - h * sp.log(h) * g(th)],
                         ids=["h**(1/2)", "sqrt(h)", "h*log(h)"])
def test_a_rule_with_a_root_of_h_is_refused(update):
    with pytest.raises(sf.SymflowError, match="not a power series in h.*slow-memory"):
        sf.modified_equation(sf.Custom(update=update), x**2 / 2, [x], 1)


# -- decimals -------------------------------------------------------------------------------

@pytest.mark.parametrize("value", [0.1, 1 / 3, 1e-300, 2.5e10, 1.1, 5e-324, 1.7976931348623157e308])
def test_a_float_reads_as_the_string_of_its_repr(value):
    """The float-reading rule, the same in the parser and for Python floats."""
    assert to_sympy(value) == sf.parse_expression(repr(value), [])
    assert to_sympy(value) == sp.Rational(repr(value))
    loss = sf.modified_equation(sf.GD(), value * x**2, [x], 0).terms[0][0]
    assert loss == -2 * sp.Rational(repr(value)) * x


def test_decimals_keep_their_digits():
    assert sf.parse_expression("1e-400*x", [x]) == x / 10**400
    assert sf.parse_expression("1.00000000000000001*x", [x]) == \
        (1 + sp.Rational(1, 10**17)) * x
    assert sf.parse_expression("1e400", []) == 10**400
    assert to_sympy(1e-300) == sp.Rational(1, 10**300)  # not a 300-digit binary fraction
    assert read_decimal("1_0.5".replace("_", "")) == sp.Rational(21, 2)
    assert to_sympy(float("nan")) is sp.nan and to_sympy(float("-inf")) == -sp.oo
    with pytest.raises(sf.SymflowError, match="not finite"):
        sf.modified_equation(sf.GD(), float("inf") * x**2, [x], 1)


# -- hyperparameters that depend on the parameters ------------------------------------------

@pytest.mark.parametrize("make", [lambda: sf.HeavyBall(beta=x / 10),
                                  lambda: sf.Adam(x / 10, sp.Rational(9, 10), c)],
                         ids=["HeavyBall(beta=x/10)", "Adam(beta1=x/10)"])
def test_a_hyperparameter_depending_on_the_parameters_is_refused(make):
    with pytest.raises(sf.SymflowError, match=re.escape("depend on the parameters {x}")):
        sf.modified_equation(make(), x**2 * y**2, [x, y], 1, hyper=[c])
