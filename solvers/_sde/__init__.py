"""The stochastic numerics: Gaussian normals, ensembles of SDE paths (sharded over
devices, streaming statistics), SDE simulation, minibatch SGD runs, the weak-error study, the
numeric Fokker-Planck solve and densities on grids.

Imports: ``symflow`` and ``solvers._ode``; not ``_networks`` or ``_claims``.
"""
