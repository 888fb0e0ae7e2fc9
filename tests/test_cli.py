"""The command line: derive, verify, demo, and refusal of unsafe strings."""

import os
import subprocess
import sys

import pytest

import solvers as sv
from symflow.cli import main


def test_derive_prints_terms(capsys):
    assert main(["derive", "--loss", "(x*y-1)**2/2", "--params", "x,y", "--order", "2"]) == 0
    out = capsys.readouterr().out
    assert "h^2" in out and "not a gradient field" in out


def test_derive_latex_and_custom_rule(capsys):
    assert main(["derive", "--optimizer", "custom", "--update",
                 "theta - h*grad(theta) - h*lam*theta", "--hyper", "lam",
                 "--loss", "x**2/2", "--params", "x", "--order", "1", "--latex"]) == 0
    out = capsys.readouterr().out
    assert "\\frac{dx}{dt}" in out and "\\lambda" not in out and "lam" in out


def test_derive_a_game(capsys):
    """Dirac-GAN E = p t from the command line, max player's rate r = 2: f0 = (-t, 2p) and
    f1 = -(1/2) f0' f0 = (r/2)(p, t) = (p, t), pointing outward (the spiral)."""
    assert main(["derive", "--optimizer", "sim-gda", "--opt-args", "n_first=1,lr_ratio=2",
                 "--loss", "p*t", "--params", "p,t", "--order", "1"]) == 0
    assert "h^0: [-t, 2*p]\n  h^1: [p, t]" in capsys.readouterr().out
    assert main(["derive", "--optimizer", "alt-gda", "--loss", "p*t", "--params", "p,t"]) == 2
    assert "n_first" in capsys.readouterr().err


def test_options_an_optimizer_does_not_take_are_refused(capsys):
    """--opt-args and --update used to be silently ignored by gd."""
    for extra, flag in ((["--optimizer", "gd", "--opt-args", "beta=9/10"], "--opt-args"),
                        (["--optimizer", "gd", "--update", "theta"], "--update"),
                        (["--optimizer", "heavy-ball", "--update", "theta"], "--update"),
                        (["--optimizer", "custom", "--update", "theta - h*grad(theta)",
                          "--opt-args", "beta=1/2"], "--opt-args")):
        assert main(["derive", *extra, "--loss", "x**2/2", "--params", "x"]) == 2
        err = capsys.readouterr().err
        assert f"got {flag}" in err and extra[1] in err and "Traceback" not in err


def test_malicious_loss_is_refused_and_not_run(capsys, tmp_path):
    marker = tmp_path / "pwned"
    code = f"__import__('os').system('touch {marker}')"
    assert main(["derive", "--loss", code, "--params", "x"]) == 2
    err = capsys.readouterr().err
    assert "not allowed" in err and "Traceback" not in err
    assert not marker.exists()
    assert main(["derive", "--loss", "x.real", "--params", "x"]) == 2
    assert "attribute" in capsys.readouterr().err


def test_undeclared_symbol(capsys):
    assert main(["derive", "--loss", "a*x**2", "--params", "x"]) == 2
    assert "'a'" in capsys.readouterr().err


def test_verify_writes_figure(tmp_path, capsys):
    png = tmp_path / "v.png"
    rc = main(["verify", "--loss", "(x*y-1)**2/2", "--params", "x,y", "--x0", "1,0.5",
               "--orders", "0,1,2", "--out", str(png)])
    assert rc == 0 and png.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["v.png"]  # no temporary file left
    out = capsys.readouterr().out
    assert "slope" in out and f"figure written to {png}" in out


VERIFY = ["verify", "--loss", "(x*y-1)**2/2", "--params", "x,y", "--x0", "1,0.5"]


@pytest.mark.parametrize("extra, says", [
    (["--T", "nan"], "got T=nan"),
    (["--T", "inf"], "got T=inf"),
    (["--orders", "1,1"], "with repeats"),
    (["--orders", "1.5"], "got --orders '1.5'; give comma-separated whole numbers"),
    (["--orders", "-1"], "whole numbers"),
    (["--lrs", "0.02,0.02,0.01"], "distinct learning rates"),
    (["--loss", "1/0"], "not finite"),
    (["--loss", "1/0 + x**2"], "not finite"),
    (["--hyper", "lam=nan", "--loss", "lam*x**2+y**2"], "lam"),
])
def test_verify_refuses_bad_numbers_before_the_work(extra, says, capsys):
    """Each used to give a traceback, run order 1 for 1.5, fit a slope through repeated
    learning rates, or call a loss of 1/0 "trustworthy"."""
    assert main(VERIFY + extra) == 2
    captured = capsys.readouterr()
    assert says in captured.err and "Traceback" not in captured.err
    assert "trustworthy" not in captured.out and "slope" not in captured.out


def _no_verify(*args, **kwargs):
    raise AssertionError("the computation ran before the output path was checked")


@pytest.mark.parametrize("name, says", [
    (".", "a folder"),
    ("missing/v.png", "does not exist"),
    ("v.xyz", "unknown extension '.xyz'"),
    ("v", "no extension"),
])
def test_verify_checks_the_output_path_first(name, says, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sv, "verify_order", _no_verify)
    out = tmp_path / name
    assert main(VERIFY + ["--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert says in err and "--out" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_exits_with_one_line_and_code_130(monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(sv, "verify_order", interrupted)
    assert main(VERIFY) == 130
    err = capsys.readouterr().err
    assert err == "symflow verify: interrupted\n"


def test_python_dash_m_without_jax():
    code = ("import sys; import symflow.cli as c; "
            "rc = c.main(['derive', '--loss', 'x**4', '--params', 'x', '--order', '1']); "
            "print('JAX' if 'jax' in sys.modules else 'NOJAX'); sys.exit(rc)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONWARNINGS": "ignore"}, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().endswith("NOJAX")
    res = subprocess.run([sys.executable, "-m", "symflow", "derive", "--loss", "x**2",
                          "--params", "x", "--order", "1"], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0 and "h^1" in res.stdout, res.stderr
