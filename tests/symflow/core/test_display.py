"""Printing never computes (issue 19): str, repr and _repr_latex_ show what is computed.

``print(flow)`` of an EpochFlow with softplus batch losses used to integrate symbolically
for over an hour. Here every display runs with ``sp.integrate`` and ``sp.simplify``
refusing to be called, on results whose modified loss would need them.
"""

import pytest
import sympy as sp

import symflow as sf
from symflow._core._display import NOT_COMPUTED, PENDING_LOSS, computed
from symflow._core._readable import readable, readable_constant

x, y, w, b = sp.symbols("x y w b")
beta = sp.Symbol("beta")


def softplus(z):
    return sp.log(1 + sp.exp(z))


@pytest.fixture(scope="module")
def results():
    # its modified loss is the hour-long symbolic integration of issue 19
    flow = sf.epoch_mean_flow(batches=[softplus(-(w + b)), softplus(2 * w + b)],
                              params=[w, b], order=1)
    me = sf.modified_equation(sf.HeavyBall(beta=beta), x**2 + y * sp.tanh(x), [x, y], 1,
                              path="general")   # its potential needs integration
    well = sf.sme(sf.GD(), losses=(w**2 - 1) ** 2 / 4, params=[w], noise=sp.Rational(1, 4))
    c = sp.Symbol("c", positive=True)
    return {
        "epoch flow": flow,
        "modified equation": me,
        "state flow": sf.modified_equation(sf.HeavyBall(beta=1 - c * sp.sqrt(sf.h)),
                                           (x * y - 1) ** 2 / 2, [x, y], 1, hyper=[c],
                                           reduce=False),
        "coordinate-free": sf.modified_equation(sf.HeavyBall(beta=beta), order=1),
        "sde": well,
        "fokker-planck": sf.fokker_planck(well),
        "moments": sf.sde_moments(sf.SDE(drift=[-x], diffusion=1, params=[x]), degree=2),
        "objectives": sf.modified_objectives(sf.SimultaneousGDA(n_first=1), 1),
        "spectrum": sf.equilibrium_eigenvalues(sf.SimultaneousGDA(n_first=1), x * y, [x, y],
                                               [0, 0], 1),
    }


@pytest.fixture
def no_heavy_algebra(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("printing called sp.integrate or sp.simplify")

    monkeypatch.setattr(sp, "integrate", refuse)
    monkeypatch.setattr(sp, "simplify", refuse)


@pytest.mark.parametrize("name", ["epoch flow", "modified equation", "state flow",
                                  "coordinate-free", "sde", "fokker-planck", "moments",
                                  "objectives", "spectrum"])
def test_printing_computes_nothing(results, name, no_heavy_algebra):
    obj = results[name]
    texts = [str(obj), repr(obj), obj._repr_latex_()]
    assert all(t for t in texts)
    if name in ("epoch flow", "modified equation"):
        assert PENDING_LOSS in texts[0] and PENDING_LOSS in texts[1]
        assert "call .modified_loss" in texts[2]
        assert computed(obj, "modified_loss" if name == "epoch flow" else "potentials") \
            is NOT_COMPUTED
    if name == "spectrum":
        assert "call .eigenvalues" in texts[0] and computed(obj, "eigenvalues") is NOT_COMPUTED


def test_repr_in_a_plain_repl_shows_the_terms(results):
    me = sf.modified_equation(sf.GD(), (x * y - 1) ** 2 / 2, [x, y], order=1)
    text = repr(me)
    assert "h^0: [-x*y**2 + y, -x**2*y + x]" in text and "h^1:" in text
    big = sf.modified_equation(sf.GD(), (x * y - 1) ** 4, [x, y], order=4)
    assert "print() shows all" in repr(big) and len(repr(big)) < len(str(big))
    assert "1/(1 - beta) g" in repr(results["coordinate-free"])


def test_modified_loss_is_shown_once_asked_for():
    flow = sf.epoch_mean_flow(batches=[(2 * w - 1) ** 2 / 2, (w + b) ** 2 / 2],
                              params=[w, b], order=1)
    assert PENDING_LOSS in str(flow)
    assert flow.modified_loss is not None
    assert "modified loss: " in str(flow) and "\\tilde{L}" in flow.latex()


def test_readable_forms():
    hb = sf.modified_equation(sf.HeavyBall(beta=beta), (x * y - 1) ** 2 / 2, [x, y], 1)
    assert str(hb.time_scale) == "1/(1 - beta)"
    assert str(readable_constant((beta / 2 + sp.S.Half) / (beta - 1) ** 3)) == \
        "-(beta + 1)/(2*(1 - beta)**3)"
    assert str(readable(sp.exp(2 * b) * sp.exp(4 * w))) == "exp(2*b + 4*w)"
    assert str(readable(sp.exp(x * y) / (sp.exp(x * y) + 1))) == "sigmoid(x*y)"
    # .simplify() gives the same field, simplified
    s = hb.simplify()
    assert all(sp.simplify(a - c) == 0 for t, u in zip(s.terms, hb.terms) for a, c in zip(t, u))


def test_sde_time_and_rounded_view():
    ou = sf.SDE(drift=[-x], diffusion=sp.sqrt(2), params=[x])
    assert "time t" in str(ou) and "n*h" not in str(ou)
    sme = sf.sme(sf.GD(), losses=w**2 / 2, params=[w], noise=sp.Rational(1, 4))
    assert "t = n*h" in str(sme)
    long = sf.SDE(drift=[-sp.Rational(123456789123, 987654321987) * x], diffusion=1,
                  params=[x])
    assert ".rounded()" in str(long) and "0.125" in str(long.rounded())
    assert "41152263041" not in str(long.rounded())
