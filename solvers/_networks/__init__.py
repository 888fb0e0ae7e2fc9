"""Coordinate-free flows on JAX models: MLPs, tree (elementary differential) evaluation
by nested jvp, network runs and order verification, implicit regularisation, sharpness and
the path kernel.

Imports: ``symflow`` and ``solvers._ode``; not ``_sde`` or ``_claims``.
"""
