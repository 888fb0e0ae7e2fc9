"""The bottom layer: errors and warnings, the symbol ``h``, argument checks, the safe
expression parser, exact gradient tests of vector fields and the LaTeX display mixin.

Imports: nothing of symflow (SymPy and the standard library only).
"""
