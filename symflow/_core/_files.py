"""Output files: check a path before the work, write through a temporary file.

Every writer of figures and results (the CLI, the demo, the ``plot(path=...)`` methods)
goes through :func:`save_figure` or :func:`atomic_write`, so that

* a bad path (a folder, a missing folder, an unknown extension) is refused with a clear
  :class:`SymflowError` *before* a long computation, by :func:`check_output_file`;
* a file is never left half written: the content goes to a temporary file in the same
  folder, which is then renamed over the target (``os.replace``, atomic on one file
  system), so an interrupted or failed write leaves the old file (or none) in place.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import secrets

from ._errors import SymflowError


def figure_formats() -> tuple:
    """The file extensions matplotlib can write (``png``, ``pdf``, ``svg``, ...)."""
    # matplotlib is a dependency, loaded only when a figure is written
    from matplotlib.backend_bases import FigureCanvasBase

    return tuple(sorted(FigureCanvasBase.get_supported_filetypes()))


def check_output_file(path, formats, what: str = "path") -> pathlib.Path:
    """``path`` as a :class:`pathlib.Path` to a file that can be written, or a clear error.

    The file's folder must exist and be writable, the path must not be a folder, and its
    extension must be one of ``formats`` (without the dot; the format is taken from it).

    Example::

        >>> check_output_file("results.png", ["png", "pdf"]).name
        'results.png'
        >>> check_output_file("results.xyz", ["png", "pdf"])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        symflow.SymflowError: got path='results.xyz', an unknown extension '.xyz'; ...
    """
    if not isinstance(path, (str, os.PathLike)) or not str(path).strip():
        raise SymflowError(f"got {what}={path!r}; give a file name such as 'figure.png'")
    path = pathlib.Path(path).expanduser()
    formats = tuple(formats)
    example = path.with_name((path.stem or "figure") + "." + formats[0]) if formats else path
    if path.is_dir():
        raise SymflowError(f"got {what}='{path}', a folder; give a file name in it, e.g. "
                           f"'{path / ('figure.' + formats[0])}'")
    folder = path.parent
    if not folder.is_dir():
        raise SymflowError(f"got {what}='{path}': the folder '{folder}' does not exist; "
                           "create it first or write elsewhere")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise SymflowError(f"got {what}='{path}': the folder '{folder}' is not writable")
    suffix = path.suffix[1:].lower()
    if suffix not in formats:
        told = f"an unknown extension '.{suffix}'" if suffix else "no extension"
        raise SymflowError(f"got {what}='{path}', {told}; the format is taken from the "
                           f"extension: use one of {', '.join('.' + f for f in formats)} "
                           f"(e.g. '{example}')")
    return path


def check_figure_path(path, what: str = "path") -> pathlib.Path:
    """:func:`check_output_file` with the formats matplotlib can write."""
    return check_output_file(path, figure_formats(), what)


@contextlib.contextmanager
def atomic_write(path):
    """Yield a temporary path next to ``path`` (same extension); on success it is renamed
    to ``path``, on any error (or Ctrl-C) it is removed and ``path`` is left untouched.

    Example::

        >>> import tempfile, pathlib
        >>> target = pathlib.Path(tempfile.mkdtemp()) / "out.txt"
        >>> with atomic_write(target) as tmp:
        ...     _ = tmp.write_text("done")
        >>> target.read_text(), sorted(p.name for p in target.parent.iterdir())
        ('done', ['out.txt'])
    """
    path = pathlib.Path(path)
    tmp = path.with_name(f".{path.stem}.{secrets.token_hex(4)}.part{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def save_figure(fig, path, dpi: int = 120, what: str = "path") -> pathlib.Path:
    """Check ``path``, then write the matplotlib figure ``fig`` there through a temporary
    file (:func:`atomic_write`); the format is the extension's. Returns the path written."""
    path = check_figure_path(path, what)
    with atomic_write(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format=path.suffix[1:].lower())
    return path


__all__ = ["atomic_write", "check_figure_path", "check_output_file", "figure_formats",
           "save_figure"]
