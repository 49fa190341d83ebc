"""Shared helpers of the antisymmetry benchmarks.

The benchmarks need a default-size PET with a direct force head. Weights do not change
the cost of a Jacobian, so an *untrained* stock ``pet`` with an ``energy`` target and a
``non_conservative_force`` target (the hand-written hybrid of notes/metatrain.md),
exported with metatrain's own ``export()``, stands in for a trained ``pet_nc``.
"""

import os
import sys
from pathlib import Path

import ase
import ase.io
import torch

ROOT = Path(__file__).resolve().parents[1]
WATER = ROOT / "recipes" / "data" / "water_64h2o_40frames.xyz"


def untrained_pet(path: str, dtype: torch.dtype = torch.float32, **hypers) -> str:
    """Export an untrained default-size stock PET with energy + direct forces."""
    from metatrain.pet import PET
    from metatrain.utils.architectures import get_default_hypers
    from metatrain.utils.data import DatasetInfo
    from metatrain.utils.data.target_info import (
        get_energy_target_info,
        get_generic_target_info,
    )

    model_hypers = get_default_hypers("pet")["model"]
    model_hypers.update(hypers)
    targets = {
        "energy": get_energy_target_info(
            "energy", {"quantity": "energy", "unit": "eV"}
        ),
        "non_conservative_force": get_generic_target_info(
            "non_conservative_force",
            {
                "quantity": "force",
                "unit": "eV/A",
                "type": {"cartesian": {"rank": 1}},
                "num_subtargets": 1,
                "sample_kind": "atom",
            },
        ),
    }
    info = DatasetInfo(length_unit="angstrom", atomic_types=[1, 8], targets=targets)
    torch.manual_seed(0)
    model = PET(model_hypers, info).to(dtype)
    exported = model.export()
    exported.save(path)
    return path


def water_box(replicate=(1, 1, 1)) -> ase.Atoms:
    """The first 192-atom water box of the bundled data, optionally replicated."""
    atoms = ase.io.read(WATER, 0)
    return atoms.repeat(replicate)


def setup_threads() -> None:
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    sys.stdout.reconfigure(line_buffering=True)
