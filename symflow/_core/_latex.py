"""LaTeX display shared by the result classes (Jupyter renders ``_repr_latex_``)."""


def aligned(rows) -> str:
    r"""Rows (each with its own ``&`` alignment point) in one ``aligned`` environment.

    Example::

        >>> print(aligned(["a &= 1", "b &= 2"]))
        \begin{aligned}
        a &= 1 \\
        b &= 2
        \end{aligned}
    """
    return "\\begin{aligned}\n" + " \\\\\n".join(rows) + "\n\\end{aligned}"


class LatexDisplay:
    """Mixin: a class with a ``latex()`` method renders as display math in Jupyter."""

    def _repr_latex_(self) -> str:
        return f"$\\displaystyle {self.latex()}$"
