"""Coordinate-free results: rooted trees (elementary differentials of a loss), B-series
arithmetic, linear update rules with memory, and the coordinate-free modified equation
(:func:`symflow.coordinate_free_equation`).

Imports: ``_core`` and ``optimizers``.
"""
