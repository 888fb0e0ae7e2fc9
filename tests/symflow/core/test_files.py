"""Output files: paths checked before the work, writes through a temporary file."""

import os

import matplotlib.pyplot as plt
import pytest

import symflow as sf
from symflow._core._files import atomic_write, check_figure_path, check_output_file, save_figure


@pytest.mark.parametrize("name, says", [
    (".", "a folder"),
    ("no/such/folder/f.png", "the folder"),
    ("f.xyz", "unknown extension '.xyz'"),
    ("f", "no extension"),
    ("", "give a file name"),
])
def test_bad_paths_are_refused_with_the_path(name, says, tmp_path):
    path = str(tmp_path / name) if name else name
    with pytest.raises(sf.SymflowError, match=says) as err:
        check_figure_path(path, "--out")
    assert "--out" in str(err.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_a_read_only_folder_is_refused(tmp_path):
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(sf.SymflowError, match="not writable"):
            check_output_file(tmp_path / "f.png", ["png"])
    finally:
        tmp_path.chmod(0o700)


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "result.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_write(target) as tmp:
        tmp.write_text("half writ")
        raise RuntimeError("the writer failed half way")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["result.txt"]
    with atomic_write(target) as tmp:
        assert tmp.parent == target.parent and tmp.suffix == ".txt" and tmp != target
        tmp.write_text("new")
        assert target.read_text() == "old"  # replaced only when the write is complete
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["result.txt"]


def test_save_figure_writes_the_format_of_the_extension(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    for name, magic in (("f.png", b"\x89PNG"), ("f.pdf", b"%PDF"), ("F.SVG", b"<?xml")):
        written = save_figure(fig, tmp_path / name)
        assert written == tmp_path / name and written.read_bytes().startswith(magic)

    class Failing:
        def savefig(self, path, **kwargs):
            path.write_bytes(b"partial")
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        save_figure(Failing(), tmp_path / "f.png")
    assert (tmp_path / "f.png").read_bytes().startswith(b"\x89PNG")  # the old figure
    assert sorted(p.name for p in tmp_path.iterdir()) == ["F.SVG", "f.pdf", "f.png"]
    plt.close(fig)
