"""Approximation error of convolution smoothing against the width: log-log slopes."""

import numpy as np
import pytest
import sympy as sp

import solvers as sv
import symflow as sf

x = sp.Symbol("x", real=True)


@pytest.mark.parametrize("f, kernel", [(sp.Max(0, x), "logistic"), (sp.Abs(x - 0.5), "uniform"),
                                       (sp.Max(x, 1 - x), "gaussian")])
def test_kinks_give_first_order_sup_and_second_order_l1_error(f, kernel):
    rep = sv.smoothing_error(f, x, kernel, n=2001)
    assert 0.97 < rep.slope_sup < 1.03
    assert 1.9 < rep.slope_l1 < 2.1


def test_jumps_do_not_converge_uniformly_but_do_in_l1():
    rep = sv.smoothing_error(sp.Heaviside(x), x, "gaussian", n=2001)
    assert abs(rep.slope_sup) < 0.05 and np.all(rep.sup > 0.45)
    assert 0.95 < rep.slope_l1 < 1.05
    # the L1 constant over the whole line is s E|U| (here s sqrt(2/pi)), up to the window
    assert rep.l1 == pytest.approx(rep.widths * np.sqrt(2 / np.pi), rel=1e-3)


def test_report_table_and_figure(tmp_path):
    rep = sv.smoothing_error(sp.Max(0, x), x, "gaussian", widths=(0.2, 0.1), n=401)
    assert "slope" in rep.table()
    rep.plot(path=tmp_path / "smooth.png")
    assert (tmp_path / "smooth.png").stat().st_size > 10_000


def test_bad_inputs_get_clear_errors():
    with pytest.raises(sf.SymflowError, match="two positive widths"):
        sv.smoothing_error(sp.Abs(x), x, widths=(0.1,))
    with pytest.raises(sf.SymflowError, match="window"):
        sv.smoothing_error(sp.Abs(x), x, window=(1, -1))
    with pytest.raises(sf.SymflowError, match="window"):
        sv.smoothing_error(sp.Abs(x), x, window=(-1, float("inf")))
    with pytest.raises(sf.SymflowError, match="two positive widths"):
        sv.smoothing_error(sp.Abs(x), x, widths=(0.1, float("nan")))
