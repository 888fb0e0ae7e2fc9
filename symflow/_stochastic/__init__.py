"""The stochastic half: SDEs, minibatch datasets, stochastic modified equations of
optimizers, exact moment systems and the Fokker-Planck / Wasserstein view.

Imports: ``_core``, ``optimizers``, ``_trees`` and ``_engine``; not ``_games`` or ``_claims``.
"""
