"""The map -> field engine on a concrete loss. A one-step map is expanded in powers of
``h`` in one of three exact arithmetics (polynomial ring, jets, rational jets; expressions as
the fallback), memory is eliminated on its invariant manifold, and backward error analysis
turns the map into the modified field. Holds :func:`symflow.modified_equation` (which hands
the loss-free call to ``_trees``), the state flow and the validity check.

Modules, bottom up: ``_series`` and ``_rings`` (arithmetic helpers), ``_jets`` and
``_ratjets``, ``_algebra``, ``_bea``, ``_memory``, ``_validity``, ``_result``
(:class:`ModifiedEquation`), ``_state``, ``_field_result`` and ``_field`` (a vector field or
a stop-gradient loss in place of -grad L), ``_modified``.

Imports: ``_core``, ``optimizers`` and ``_trees``.
"""
