"""``import symflow`` in a Jupyter kernel prints nothing (tqdm's "IProgress not found" warning
used to appear when ipywidgets is missing)."""

import pytest

nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")
pytest.importorskip("ipykernel")


def test_import_in_a_kernel_prints_nothing():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import sys\n"
        "sys.modules.pop('tqdm.autonotebook', None); sys.modules.pop('tqdm.auto', None)\n"
        "import symflow\n"
        "from symflow._core._progress import progress_bar\n"
        "print(sum(progress_bar(range(3), desc='demo', unit='item', progress=False)))")])
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    outputs = nb.cells[0].outputs
    assert [o.get("name") for o in outputs] == ["stdout"], outputs
    assert outputs[0]["text"] == "3\n"
