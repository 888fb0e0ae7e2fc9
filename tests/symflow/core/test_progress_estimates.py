"""Loops over orders estimate the rest geometrically and warn before a long run.

No wall-time assertion: the clock of the progress module is replaced by a fake one, or the
thresholds are forced to zero so that any run counts as long.
"""

import warnings

import pytest
import sympy as sp

import symflow as sf
from symflow._core import _progress

x, y = sp.symbols("x y")
b1, b2, eps = sp.symbols("beta1 beta2 epsilon", positive=True)
POLY = (x * y - 1) ** 2 / 2


class FakeClock:
    """``perf_counter`` that advances by the scripted cost of each order."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        return self.now


def test_predict_rest_is_geometric_in_the_measured_growth():
    rest, g = _progress.predict_rest([0.5, 1.0, 4.0], 3)   # ratios 2 and 4: g = sqrt(8)
    assert g == pytest.approx(8**0.5)
    assert rest == pytest.approx(4.0 * (g + g**2 + g**3))
    low, g = _progress.predict_rest([0.5, 1.0, 4.0], 1, cautious=True)   # the smaller ratio
    assert (low, g) == (8.0, 2.0)
    low, g = _progress.predict_rest([0.2, 6.0], 1, cautious=True)   # one jump: the prior
    assert (low, g) == (18.0, _progress.GROWTH)
    rest, g = _progress.predict_rest([0.001, 0.002], 2)      # too short to measure: prior
    assert g == _progress.GROWTH
    assert rest == pytest.approx(0.002 * (3 + 9))
    rest, g = _progress.predict_rest([0.2, 0.1, 0.05], 1)    # never a shrinking cost
    assert g == 1.0 and rest == pytest.approx(0.05)


def test_warns_once_with_the_estimate_before_the_long_orders(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(_progress, "time", clock)
    monkeypatch.setattr(_progress, "LONG_RUN", 100.0)
    costs = [0.1, 0.5, 2.5, 12.5, 62.5, 312.5]   # x5 per order
    done = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for k in _progress.progress_bar(range(len(costs)), desc="demo", unit="order",
                                        progress=False):
            clock.now += costs[k]
            done.append((k, len(caught)))
    msgs = [w for w in caught if issubclass(w.category, sf.CostWarning)]
    assert len(msgs) == 1
    # after orders 0..2 (two ratios, both 5) the rest is 12.5 + 62.5 + 312.5 = 387.5 s
    first = next(k for k, n in done if n)
    assert first == 3                       # raised when order 2 ended, before order 3 ran
    text = str(msgs[0].message)
    assert "about 6.5 min" in text and "orders 0 to 2 took 3.1 s" in text
    assert "5.0x" in text and "cheaper" in text


def test_no_warning_under_the_threshold(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(_progress, "time", clock)
    with warnings.catch_warnings():
        warnings.simplefilter("error", sf.CostWarning)
        for k in _progress.progress_bar(range(4), desc="demo", unit="order", progress=False):
            clock.now += 0.1 * 3**k


def test_a_derivation_that_will_be_long_warns_with_advice(monkeypatch):
    """Forced threshold: the memory reduction of Adam warns once, naming the estimate and
    the cheaper options (numeric hyperparameters), and the result is still returned."""
    monkeypatch.setattr(_progress, "LONG_RUN", 0.0)
    monkeypatch.setattr(_progress, "MIN_TIMED", 0.0)
    with pytest.warns(sf.CostWarning) as record:
        me = sf.modified_equation(sf.Adam(b1, b2, eps), POLY, [x, y], 2, progress=False)
    costly = [w for w in record if issubclass(w.category, sf.CostWarning)]
    assert len(costly) == 1
    text = str(costly[0].message)
    assert "sf.modified_equation(Adam" in text and "estimated at about" in text
    assert "numeric values" in text and "lower order" in text
    assert len(me.terms) == 3


def test_every_stage_shows_a_bar_once_it_lasts(monkeypatch, capsys):
    """With the delay at 0 (a long run), the manifold, the backward error analysis, the
    conversion and the gradient test each show a bar without progress=True."""
    monkeypatch.setattr(_progress, "DELAY", 0.0)
    me = sf.modified_equation(sf.Adam(b1, b2, eps), POLY, [x, y], 1)
    me.gradient_orders
    err = capsys.readouterr().err
    for stage in ("memory manifold", "modified equation", "converting terms",
                  "gradient test"):
        assert stage in err, stage
