"""Antisymmetry evaluator: how non-conservative are a model's forces?

Python API (ASE ``Atoms`` in, numbers out):

- :func:`antisymmetry_ratio`: lambda for one structure (exact or stochastic);
- :func:`force_jacobian`: the exact force Jacobian, (3N, 3N), eV/A^2;
- :func:`evaluate`: lambda, per-atom lambda_i, per-pair block norms and closed-loop
  work for many structures, returned as an :class:`AntisymmetryReport` whose
  ``write(outdir)`` produces the same files as ``mtt-nc antisymmetry``;
- lower level: :func:`load_model`, :class:`ForceModel`, :func:`exact_jacobian`,
  :func:`stochastic_lambda`, :func:`finite_difference_jacobian`,
  :func:`rotation_loop_work`, :func:`square_loop_work`, :func:`per_atom_lambda`,
  :func:`pair_table`, :func:`bin_pairs`.

The names are loaded on first access, so that importing the command-line module
(``mtt-nc --help``) does not import torch.
"""

from ..lazy_exports import lazy_exports

_EXPORTS = {
    "AntisymmetryReport": "api",
    "StructureResult": "api",
    "antisymmetry_ratio": "api",
    "evaluate": "api",
    "force_jacobian": "api",
    "bin_pairs": "decompose",
    "pair_table": "decompose",
    "per_atom_lambda": "decompose",
    "exact_jacobian": "jacobian",
    "finite_difference_jacobian": "jacobian",
    "lambda_from_jacobian": "jacobian",
    "stochastic_lambda": "jacobian",
    "molecule_of": "loops",
    "rotation_loop_work": "loops",
    "square_loop_work": "loops",
    "CONSERVATIVE": "model",
    "DIRECT": "model",
    "ForceModel": "model",
    "LoadedModel": "model",
    "load_model": "model",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
