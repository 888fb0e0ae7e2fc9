"""The safe expression parser: exact numbers, and nothing executed."""

import os
import subprocess
import sys
import textwrap

import pytest
import sympy as sp

import symflow as sf

x, y = sp.symbols("x y")
NAMES = {"x": x, "y": y}


def test_normal_loss_parses_to_the_expected_expression():
    got = sf.parse_expression("log(1 + exp(x*y)) + (x - y)**2/4", NAMES)
    expected = sp.log(1 + sp.exp(x * y)) + (x - y) ** 2 / 4
    assert sp.simplify(got - expected) == 0


def test_decimal_literal_becomes_exact_rational():
    got = sf.parse_expression("0.1*x", NAMES)
    assert not got.atoms(sp.Float)
    assert sp.expand(got - sp.Rational(1, 10) * x) == 0


def test_caret_is_a_power():
    got = sf.parse_expression("x^2", NAMES)
    assert isinstance(got, sp.Pow)
    assert sp.expand(got - x**2) == 0


def test_caret_has_power_precedence():
    """'^' binds like '**', not like Python's low-precedence XOR: (a)^2/2 == a**2/2."""
    got = sf.parse_expression("(x*y - 0.5)^2/2 + 2^3^2", NAMES)
    assert sp.expand(got - ((x * y - sp.Rational(1, 2)) ** 2 / 2 + 2**9)) == 0


def test_parsed_loss_feeds_modified_equation():
    loss = sf.parse_expression("(x*y - 0.5)^2/2", NAMES)
    me = sf.modified_equation(sf.GD(), loss, [x, y], order=0)
    assert sp.expand(me.terms[0][0] + sp.diff(loss, x)) == 0


def test_the_string_loss_message_shows_a_call_that_works():
    """check_loss refuses a string and names sf.parse_expression(text, params): that call form
    (a list of the parameters) parses, and anything else is refused clearly."""
    with pytest.raises(sf.SymflowError, match=r"sf.parse_expression\(text, params\)"):
        sf.modified_equation(sf.GD(), "x**2/2", [x], order=0)
    assert sf.parse_expression("x^2/2 + y", [x, y]) == x**2 / 2 + y
    with pytest.raises(sf.SymflowError, match="got names='x'"):
        sf.parse_expression("x", "x")


def test_parse_symbols():
    assert sf.parse_symbols("x, y", "params") == (x, y)
    with pytest.raises(sf.UnsafeExpressionError, match="'exp'"):
        sf.parse_symbols("x,exp", "params")
    with pytest.raises(sf.UnsafeExpressionError, match="'__x'"):
        sf.parse_symbols("__x", "params")


def test_import_system_is_refused_and_not_executed():
    marker = "/tmp/pwned"
    if os.path.exists(marker):
        os.remove(marker)
    with pytest.raises(sf.UnsafeExpressionError):
        sf.parse_expression(f"__import__('os').system('touch {marker}')", NAMES)
    assert not os.path.exists(marker)


@pytest.mark.parametrize("text, fragment", [
    ("x.__class__", "attribute"),
    ("(lambda: 1)()", "plain function names"),
    ("[x for x in ()]", "ListComp"),
    ("x[0]", "Subscript"),
    ("open('f')", "'open'"),
    ("__builtins__", "'__builtins__'"),
    ("exp(x, y)", "one positional argument"),
    ("'abc'", "not a number"),
])
def test_unsafe_syntax_is_refused(text, fragment):
    with pytest.raises(sf.UnsafeExpressionError, match=fragment):
        sf.parse_expression(text, NAMES)


def test_unknown_name_is_named():
    with pytest.raises(sf.UnsafeExpressionError, match="unknown name 'z'"):
        sf.parse_expression("x + z", NAMES)


def test_syntax_error():
    with pytest.raises(sf.UnsafeExpressionError, match="invalid syntax"):
        sf.parse_expression("x +* (", NAMES)


def test_huge_power_tower_is_refused_quickly():
    # In a subprocess with a timeout, so that a regression cannot hang the suite.
    code = textwrap.dedent("""
        import sympy as sp, symflow as sf
        try:
            sf.parse_expression("9**9**9**9", {"x": sp.Symbol("x")})
        except sf.UnsafeExpressionError as err:
            print("refused:", err)
        else:
            print("accepted")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("refused:") and "too large" in out.stdout
