"""The data and options of each run: the frames of a seed's split
(:func:`write_split`, the test frames the same for every seed) and the ``mtt train``
options of a run (:func:`run_options`)."""

import copy
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import yaml

from .plan import (
    DATA,
    NUM_EPOCHS,
    RECIPE_OF,
    RECIPES,
    TEST_SPLIT_SEED,
    WARMUP_EPOCHS,
    Dataset,
)


def xyz_blocks(path: Path) -> List[str]:
    """The frames of an (ext)xyz file as text blocks, kept verbatim."""
    lines = path.read_text().splitlines(keepends=True)
    blocks, index = [], 0
    while index < len(lines):
        if not lines[index].strip():
            index += 1
            continue
        count = int(lines[index].split()[0])
        blocks.append("".join(lines[index : index + count + 2]))
        index += count + 2
    return blocks


def split_indices(
    n_frames: int, n_test: int, n_val: int, seed: int
) -> Dict[str, List[int]]:
    """Test frames fixed for all seeds; train/validation drawn per seed."""
    order = np.random.default_rng(TEST_SPLIT_SEED).permutation(n_frames)
    test = sorted(int(i) for i in order[:n_test])
    rest = order[n_test:]
    rest = rest[np.random.default_rng(seed).permutation(len(rest))]
    return {
        "train": sorted(int(i) for i in rest[n_val:]),
        "validation": sorted(int(i) for i in rest[:n_val]),
        "test": test,
    }


def write_split(dataset: Dataset, seed: int, folder: Path) -> Dict[str, Path]:
    """Write train.xyz, validation.xyz and test.xyz of a seed into ``folder``."""
    blocks = xyz_blocks(DATA / dataset.data)
    indices = split_indices(len(blocks), dataset.n_test, dataset.n_val, seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for part, chosen in indices.items():
        paths[part] = folder / f"{part}.xyz"
        if not paths[part].exists():
            tmp = paths[part].with_suffix(".tmp")
            tmp.write_text("".join(blocks[i] for i in chosen))
            tmp.replace(paths[part])
    return paths


def run_options(
    dataset: Dataset,
    arch: str,
    seed: int,
    split: Dict[str, Path],
    settings: dict,
    read_from: Optional[Path] = None,
) -> dict:
    """The options file of one run: the small recipe, with the benchmark's split,
    epochs, learning rate and checkpointing."""
    recipe = yaml.safe_load(
        (RECIPES / f"{dataset.recipe}_{RECIPE_OF[arch]}.yaml").read_text()
    )
    targets = recipe["training_set"]["targets"]
    training = recipe["architecture"]["training"]
    training.update(
        num_epochs=NUM_EPOCHS,
        warmup_fraction=WARMUP_EPOCHS / NUM_EPOCHS,
        checkpoint_interval=1,
        num_workers=0,
        learning_rate=settings["learning_rate"],
    )
    if read_from is not None:
        training["learning_rate"] = settings["finetune_learning_rate"]
        training["finetune"] = {"method": "full", "read_from": str(read_from)}
        if arch == "pet_m":
            training["direct_forces_weight"] = settings["direct_forces_weight"]
            if "stress" in training["loss"]["energy"]:
                training["direct_stress_weight"] = settings["direct_forces_weight"]
    # the pre-trained pet_nc and the fine-tuned model share the backbone's hypers
    if arch != "pet_nc":
        nc = yaml.safe_load((RECIPES / f"{dataset.recipe}_pet_nc.yaml").read_text())
        if nc["architecture"]["model"] != recipe["architecture"]["model"]:
            raise RuntimeError(
                f"recipes/small/{dataset.recipe}_{RECIPE_OF[arch]}.yaml and "
                f"{dataset.recipe}_pet_nc.yaml have different model hypers"
            )

    def section(path: Path) -> dict:
        return {
            "systems": {"read_from": str(path), "length_unit": "angstrom"},
            "targets": copy.deepcopy(targets),
        }

    return {
        "seed": int(seed),
        "architecture": recipe["architecture"],
        "training_set": section(split["train"]),
        "validation_set": section(split["validation"]),
        "test_set": 0.0,
    }
