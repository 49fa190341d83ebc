"""Antisymmetry evaluator: how non-conservative are a model's forces?

Python API (ASE ``Atoms`` in, numbers out); ``model`` is anything
:func:`~metatrain_nc.force_models.load_force_model` takes: an exported ``.pt``, a
metatrain ``.ckpt``, a model object, ``"module:callable"`` or an ASE ``Calculator``
(its Jacobian by central finite differences):

- :func:`antisymmetry_ratio`: lambda for one structure (exact or stochastic);
- :func:`force_jacobian`: the force Jacobian, (3N, 3N), eV/A^2;
- :func:`evaluate`: lambda, per-atom lambda_i, per-pair block norms and closed-loop
  work for many structures, with an :class:`AntisymmetrySettings`, returned as an
  :class:`AntisymmetryReport` whose ``write(outdir)`` produces the same files as
  ``mtt-nc antisymmetry``;
- lower level: :func:`load_force_model` (and the layer's :class:`ForceModel`,
  :class:`StructureForces`: ``model.structure_forces(atoms, output)``),
  :func:`exact_jacobian`, :func:`stochastic_lambda` (and :func:`exact_jacobians`,
  :func:`stochastic_lambdas` for many structures, packed into few evaluations),
  :func:`finite_difference_jacobian`, :func:`finite_difference_noise`,
  :func:`rotation_loop_work`, :func:`square_loop_work`, :func:`per_atom_lambda`,
  :func:`pair_table`, :func:`bin_pairs`.

The names are loaded on first access, so that importing the command-line module
(``mtt-nc --help``) does not import torch.
"""

from ..lazy_exports import lazy_exports

_EXPORTS = {
    "AntisymmetryReport": "results",
    "StructureResult": "results",
    "antisymmetry_ratio": "api",
    "evaluate": "api",
    "force_jacobian": "api",
    "resolve_output": "api",
    "AntisymmetrySettings": "settings",
    "MAX_EXACT_ROWS": "settings",
    "bin_pairs": "decompose",
    "pair_table": "decompose",
    "per_atom_lambda": "decompose",
    "default_fd_step": "jacobian",
    "exact_jacobian": "jacobian",
    "exact_jacobians": "jacobian",
    "stochastic_lambdas": "jacobian",
    "finite_difference_jacobian": "jacobian",
    "finite_difference_noise": "jacobian",
    "lambda_from_jacobian": "jacobian",
    "stochastic_lambda": "jacobian",
    "molecule_of": "loops",
    "rotation_loop_work": "loops",
    "square_loop_work": "loops",
    "CONSERVATIVE": ".force_models.names",
    "DIRECT_FORCE": ".force_models.names",
    "ForceModel": ".force_models.base",
    "StructureForces": ".force_models.base",
    "load_force_model": ".force_models.loading",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
