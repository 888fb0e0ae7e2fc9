"""Sphinx configuration of the symflow documentation (MyST-NB).

Build from the repository root, warnings as errors (the tutorials in examples/notebooks/
are executed during the build)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html
"""

import pathlib
import shutil
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # document this checkout's symflow and solvers

# The tutorials live in examples/notebooks/ (their one home); the build reads copies.
_tutorials = pathlib.Path(__file__).parent / "tutorials"
_tutorials.mkdir(exist_ok=True)
for _nb in sorted((ROOT / "examples" / "notebooks").glob("*.ipynb")):
    if not (_tutorials / _nb.name).exists() or \
            (_tutorials / _nb.name).read_bytes() != _nb.read_bytes():
        shutil.copyfile(_nb, _tutorials / _nb.name)

project = "symflow"
author = "the symflow authors"
copyright = "the symflow authors, MIT licence"
release = version = "0.1.0"

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]

# MyST: $...$ and $$...$$ math in pages and notebooks.
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

# Notebooks: executed at every build, an error or stray stderr output fails it.
nb_execution_mode = "cache"
nb_execution_cache_path = str(pathlib.Path(__file__).parent / "_build" / ".jupyter_cache")
nb_execution_timeout = 300
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_output_stderr = "warn"
nb_merge_streams = True

autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": False}
autodoc_typehints = "none"
autodoc_inherit_docstrings = False
napoleon_google_docstring = True
napoleon_numpy_docstring = True
napoleon_use_ivar = True  # "Attributes" as a field list: no duplicate of a documented property

exclude_patterns = ["_build", "**.ipynb_checkpoints", "Thumbs.db", ".DS_Store"]
html_theme = "furo"
html_title = "symflow"
