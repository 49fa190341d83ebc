"""Checkpoint upgrades of ``pet_nc`` / ``pet_m``.

A checkpoint holds two version pairs: the plugin's own (``model_ckpt_version``,
``trainer_ckpt_version``) and the versions of PET's checkpoint format the PET part of
the state was written with (``pet_model_ckpt_version``, ``pet_trainer_ckpt_version``).
Both chains are walked with :func:`upgrade`; the plugin's own update functions live
in this module as ``model_update_vN_vN+1`` / ``trainer_update_vN_vN+1``, PET's in
``metatrain.pet.checkpoints``.

Model versions: 1 (first); 2 marks the routed targets with an explicit field,
``model_data["routed_targets"]``, instead of recognising them by their description.
Trainer versions: 1 (first); 2 adds the ``lambda_estimate`` trainer hyper.
"""

import sys
from types import ModuleType
from typing import Dict

PET_MODEL_VERSION_KEY = "pet_model_ckpt_version"
PET_TRAINER_VERSION_KEY = "pet_trainer_ckpt_version"


def upgrade(
    checkpoint: Dict,
    key: str,
    current: int,
    functions: ModuleType,
    kind: str,
    default: int,
) -> None:
    """Apply ``functions.<kind>_update_vN_vN+1`` until ``checkpoint[key] == current``.

    :param checkpoint: the checkpoint dictionary, updated in place.
    :param key: where the version is stored (a missing key counts as ``default``).
    :param current: the version the code reads.
    :param functions: module holding the update functions.
    :param kind: ``"model"`` or ``"trainer"``.
    :param default: version assumed when ``key`` is missing.
    :raises RuntimeError: (metatrain's wording) for a newer or unreachable version.
    """
    version = checkpoint.get(key, default)
    while version < current:
        update = getattr(functions, f"{kind}_update_v{version}_v{version + 1}", None)
        if update is None:
            break
        update(checkpoint)
        version += 1
    checkpoint[key] = version
    if version != current:
        raise RuntimeError(
            f"Unable to upgrade the checkpoint: the checkpoint is using {kind} "
            f"version {version}, while the current {kind} version is {current}."
        )


def this_module() -> ModuleType:
    """This module, the home of the plugin's own update functions."""
    return sys.modules[__name__]


#: how model version 1 told routed targets from the user's: by these exact
#: descriptions (frozen here; the live code marks them explicitly)
V1_ROUTED_DESCRIPTIONS = {
    "non_conservative_force": (
        "direct forces, learned from the energy's force labels",
        "positions",
    ),
    "non_conservative_stress": (
        "direct stress, learned from the energy's stress labels",
        "strain",
    ),
}


def model_update_v1_v2(checkpoint: Dict) -> None:
    """Version 2 marks routed targets explicitly: ``model_data["routed_targets"]``
    (direct target -> energy gradient), found in version 1 by their descriptions."""
    from .routing import ROUTED_TARGETS_KEY

    model_data = checkpoint["model_data"]
    targets = model_data["dataset_info"].targets
    model_data[ROUTED_TARGETS_KEY] = {
        name: gradient
        for name, (description, gradient) in V1_ROUTED_DESCRIPTIONS.items()
        if name in targets and targets[name].description == description
    }


def trainer_update_v1_v2(checkpoint: Dict) -> None:
    """Version 2 adds the ``lambda_estimate`` trainer hyper (with its defaults)."""
    from .documentation import LAMBDA_ESTIMATE_DEFAULTS

    hypers = checkpoint.get("train_hypers")
    if isinstance(hypers, dict):
        hypers.setdefault("lambda_estimate", dict(LAMBDA_ESTIMATE_DEFAULTS))
