"""Checkpoint upgrades of ``pet_nc`` / ``pet_m``.

A checkpoint holds two version pairs: the plugin's own (``model_ckpt_version``,
``trainer_ckpt_version``) and the versions of PET's checkpoint format the PET part of
the state was written with (``pet_model_ckpt_version``, ``pet_trainer_ckpt_version``).
Both chains are walked with :func:`upgrade`; the plugin's own update functions live
in this module as ``model_update_vN_vN+1`` / ``trainer_update_vN_vN+1``, PET's in
``metatrain.pet.checkpoints``.

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


def trainer_update_v1_v2(checkpoint: Dict) -> None:
    """Version 2 adds the ``lambda_estimate`` trainer hyper (with its defaults)."""
    from .documentation import LAMBDA_ESTIMATE_DEFAULTS

    hypers = checkpoint.get("train_hypers")
    if isinstance(hypers, dict):
        hypers.setdefault("lambda_estimate", dict(LAMBDA_ESTIMATE_DEFAULTS))
