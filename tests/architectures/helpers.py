"""Helpers to evaluate exported models in the architecture tests."""

from pathlib import Path
from typing import Dict, List

import ase
import torch
from metatomic.torch import (
    ModelEvaluationOptions,
    ModelOutput,
    load_atomistic_model,
    systems_to_torch,
)
from metatrain.utils.neighbor_lists import get_system_with_neighbor_lists


def evaluate(
    model_path: Path, frames: List[ase.Atoms], outputs: List[str], per_atom: bool = True
) -> Dict[str, torch.Tensor]:
    """Run an exported model on ASE frames; return each output's values.

    :param model_path: exported ``model.pt``.
    :param frames: structures.
    :param outputs: names of the outputs to request (per atom for forces).
    :return: output name -> values (``[n_atoms_total, 3, 1]`` for forces).
    """
    model = load_atomistic_model(str(model_path))
    dtype = getattr(torch, model.capabilities().dtype)
    systems = [
        get_system_with_neighbor_lists(
            systems_to_torch(atoms, dtype=dtype), model.requested_neighbor_lists()
        )
        for atoms in frames
    ]
    requested = {}
    for name in outputs:
        sample_kind = "atom" if name == "non_conservative_force" else "system"
        requested[name] = ModelOutput(sample_kind=sample_kind)
    options = ModelEvaluationOptions(length_unit="angstrom", outputs=requested)
    result = model(systems, options, check_consistency=True)
    return {name: result[name].block().values.detach() for name in outputs}
