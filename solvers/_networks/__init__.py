"""Coordinate-free flows on JAX models: MLPs, tree (elementary differential) evaluation
by nested jvp, network runs and order verification, implicit regularisation, sharpness and
the path kernel; SGD noise on networks: the network SME, its simulation, ensembles of real
minibatch training and SVAG.

Imports: ``symflow``, ``solvers._ode`` and ``solvers._sde`` (the ensemble runner, normals and
minibatch draws); not ``_claims``.
"""
