"""Progress bars appear only for work that lasts (tqdm's delay), or when asked for."""

import sympy as sp

import symflow as sf
from symflow._core import _progress


def test_a_short_derivation_prints_no_bar(capsys):
    x, y = sp.symbols("x y")
    sf.modified_equation(sf.GD(), order=4)
    sf.modified_equation(sf.HeavyBall(beta=sp.Rational(1, 2)), (x*y - 1)**2 / 2, [x, y], 2)
    assert capsys.readouterr().err == ""


def test_a_bar_shows_when_asked_or_after_the_delay(capsys, monkeypatch):
    sf.modified_equation(sf.GD(), order=2, progress=True)
    assert "coordinate-free terms" in capsys.readouterr().err
    monkeypatch.setattr(_progress, "DELAY", 0.0)
    list(_progress.progress_bar(range(3), desc="quick loop", unit="it"))
    assert "quick loop" in capsys.readouterr().err
    sf.modified_equation(sf.GD(), order=2, progress=False)
    assert capsys.readouterr().err == ""
