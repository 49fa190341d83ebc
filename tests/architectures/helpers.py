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


#: checkpoints written by metatrain-nc 0.1.0.dev0 (commit a9c2ce5, metatrain
#: 2026.4.1; model format v1, trainer v2) with ``mtt train`` and
#: :data:`STORED_OPTIONS`: tiny PET on 4 frames of periodic water with energy, forces
#: and stress, so both direct heads are routed. They must keep loading.
STORED_CHECKPOINTS = {
    name: Path(__file__).parent / "checkpoints" / f"{name}-model-v1_trainer-v2.ckpt.gz"
    for name in ("pet_nc", "pet_m")
}

#: what the stored checkpoints were trained with (``tests.conftest.write_options``
#: keywords; data: the first 4 frames of ``recipes/data/water_64h2o_40frames.xyz``)
STORED_OPTIONS = {
    "epochs": 1,
    "stress": True,
    "training": {"batch_size": 2},
    "model": {"d_pet": 4, "d_head": 4, "d_node": 4, "d_feedforward": 4},
}


def stored_checkpoint(architecture: str, folder: Path) -> Path:
    """The stored checkpoint of ``architecture``, decompressed into ``folder``."""
    import gzip
    import shutil

    destination = folder / f"stored_{architecture}.ckpt"
    with gzip.open(STORED_CHECKPOINTS[architecture], "rb") as source:
        with open(destination, "wb") as target:
            shutil.copyfileobj(source, target)
    return destination
