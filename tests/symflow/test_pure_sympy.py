"""symflow is pure SymPy: importing it must not pull in jax."""

import subprocess
import sys


def test_import_symflow_does_not_import_jax():
    out = subprocess.run(
        [sys.executable, "-c", "import sys, symflow; print('jax' in sys.modules)"],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
