"""The layer rules of the README's "Layout", checked with import-linter.

The contracts live in ``pyproject.toml`` (``[tool.importlinter]``): symflow never imports
jax or solvers, each subpackage imports only the ones below it, and no package has an
import cycle between its modules (function-local imports count). The second test breaks
each rule on a copy of the tree and checks that the linter reports it, so the first test
cannot pass by checking nothing.
"""

import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
LINT = "from importlinter.cli import lint_imports; raise SystemExit(lint_imports(no_cache=True))"


def _lint(root):
    env = {"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-c", LINT], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120)


def test_the_tree_keeps_every_import_contract():
    out = _lint(ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout


@pytest.mark.parametrize("module, line, contract", [
    ("symflow/_core/_errors.py", "from .._engine import _modified",
     "symflow: each subpackage imports only the ones below it"),
    ("symflow/_claims/_smooth.py", "import jax", "symflow is pure SymPy"),
    ("symflow/_stochastic/_sde.py", "from .._games import _objectives",
     "symflow: each subpackage imports only the ones below it"),
    ("symflow/_engine/_series.py", "from . import _modified",
     "no import cycles between the modules of any package"),
    ("solvers/_ode/_compile.py", "from .._sde import _ensemble",
     "solvers: each subpackage imports only the ones below it"),
])
def test_a_wrong_import_breaks_a_contract(tmp_path, module, line, contract):
    for name in ("symflow", "solvers"):
        shutil.copytree(ROOT / name, tmp_path / name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    path = tmp_path / module
    path.write_text(path.read_text() + f"\n\ndef _wrong():\n    {line}\n")
    out = _lint(tmp_path)
    assert out.returncode != 0, out.stdout
    assert "Broken contracts" in out.stdout, out.stdout + out.stderr
    assert contract in out.stdout.split("Broken contracts", 1)[1], out.stdout
