"""Tables for the reports: one description, rendered as HTML and Markdown in Jupyter.

A report builds a :class:`Table` from its numbers (``_table()``); the :class:`TableDisplay`
mixin turns it into ``_repr_html_`` and ``_repr_markdown_`` (Jupyter shows the table instead
of the dataclass fields) and makes ``repr`` the report's text (a plain REPL shows the
same table as ``print``).

Example:
    >>> t = Table(["h", "error"], [["0.1", "2.0e-03"], ["0.05", "5.1e-04"]], title="GD")
    >>> print(t.markdown())
    **GD**
    <BLANKLINE>
    | h | error |
    |---|---|
    | 0.1 | 2.0e-03 |
    | 0.05 | 5.1e-04 |
    >>> "<td>5.1e-04</td>" in t.html()
    True
    >>> print(t)
    GD
      h     error
      0.1   2.0e-03
      0.05  5.1e-04
"""

from __future__ import annotations

import dataclasses
import html


@dataclasses.dataclass(frozen=True)
class Table:
    """A header, rows of already formatted cells, an optional title and notes below."""

    header: list
    rows: list
    title: str = ""
    notes: list = dataclasses.field(default_factory=list)

    def html(self) -> str:
        """An HTML ``<table>`` (title as its caption, notes in a paragraph below)."""
        esc = html.escape
        out = ["<table>"]
        if self.title:
            out.append(f"<caption style=\"text-align:left\">{esc(self.title)}</caption>")
        out.append("<thead><tr>" + "".join(f"<th>{esc(str(c))}</th>" for c in self.header)
                   + "</tr></thead>")
        out.append("<tbody>")
        for row in self.rows:
            out.append("<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in row) + "</tr>")
        out.append("</tbody></table>")
        if self.notes:
            out.append("<p>" + "<br>".join(esc(n) for n in self.notes) + "</p>")
        return "\n".join(out)

    def text(self) -> str:
        """Plain text: the title, then columns padded to their widest cell, then the notes."""
        cells = [[str(c) for c in self.header]] + [[str(c) for c in row] for row in self.rows]
        widths = [max(len(r[j]) for r in cells) for j in range(len(self.header))]
        lines = [self.title] if self.title else []
        lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
        return "\n".join(lines + list(self.notes))

    def __str__(self) -> str:
        return self.text()

    def _repr_html_(self) -> str:
        return self.html()

    def _repr_markdown_(self) -> str:
        return self.markdown()

    def markdown(self) -> str:
        """A Markdown pipe table (title in bold above it, notes below)."""
        def cell(c):
            return str(c).replace("|", "\\|")

        out = [f"**{self.title}**", ""] if self.title else []
        out.append("| " + " | ".join(cell(c) for c in self.header) + " |")
        out.append("|" + "---|" * len(self.header))
        out += ["| " + " | ".join(cell(c) for c in row) + " |" for row in self.rows]
        if self.notes:
            out += [""] + list(self.notes)
        return "\n".join(out)


class TableDisplay:
    """Mixin for reports with a ``_table()`` method returning a :class:`Table`.

    Gives ``_repr_html_`` and ``_repr_markdown_`` (Jupyter) and a ``repr`` equal to
    ``str`` (a dataclass using it is declared with ``repr=False``).
    """

    def _repr_html_(self) -> str:
        return self._table().html()

    def _repr_markdown_(self) -> str:
        return self._table().markdown()

    def __repr__(self) -> str:
        return str(self)
