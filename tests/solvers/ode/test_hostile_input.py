"""Code-running strings at the solvers entry points named in issue 13: refused up front.

Each call fails in the guard, before any JAX compilation (the symbolic half and the
other classes of hostile input are in ``tests/symflow/core/test_hostile_input.py``).
"""

import pytest
import sympy as sp

import solvers as sv
import symflow as sf

x, y = sp.symbols("x y")
LOSS = (x * y - 1) ** 2 / 2


@pytest.fixture
def payload(tmp_path):
    marker = tmp_path / "MARKER"
    yield f"__import__('pathlib').Path({str(marker)!r}).touch()"
    assert not marker.exists(), "a string was executed"


@pytest.fixture(scope="module")
def me():
    return sf.modified_equation(sf.GD(), LOSS, [x, y], 1)


CALLS = {
    "verify_order(loss=)": lambda s, me: sv.verify_order(sf.GD(), s, [x, y], [1.0, 0.5],
                                                         [0.1, 0.05], 0.1),
    "verify_order(loss=, me=)": lambda s, me: sv.verify_order(sf.GD(), s, [x, y], [1.0, 0.5],
                                                              [0.1, 0.05], 0.1, me=me),
    "verify_order(x0=)": lambda s, me: sv.verify_order(sf.GD(), LOSS, [x, y], [s, 0.5],
                                                       [0.1, 0.05], 0.1),
    "iterate(loss=)": lambda s, me: sv.iterate(sf.GD(), s, [x, y], [1.0, 0.5], 0.1, 2),
    "iterate(hyper=)": lambda s, me: sv.iterate(sf.GD(), LOSS, [x, y], [1.0, 0.5], 0.1, 2,
                                                hyper={"c": s}),
    "vector_function(matrix)": lambda s, me: sv.vector_function([s], [x]),
    "vector_function(extra=)": lambda s, me: sv.vector_function([x], [x], extra=[s]),
}


@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
def test_a_string_is_refused_before_any_work(call, payload, me):
    with pytest.raises(sf.SymflowError, match="a string"):
        call(payload, me)
