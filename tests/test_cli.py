"""The command line: derive, verify, demo, and refusal of unsafe strings."""

import os
import subprocess
import sys

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
    assert "slope" in capsys.readouterr().out


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
