"""Two-player games: modified objectives of simultaneous and alternating gradient
descent-ascent, the Dirac-GAN, and the spectra of equilibria.

Imports: ``_core``, ``optimizers``, ``_trees`` and ``_engine``; not ``_stochastic`` or ``_claims``.
"""
