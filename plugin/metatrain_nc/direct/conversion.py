"""Turn a ``pet_nc`` / ``pet_m`` model into a stock-``pet`` model.

Pre-training with direct forces, then fine-tuning conservative (the paper's
Appendix H) works with stock ``pet`` as with ``pet_m``: ``architecture: {name: pet,
training: {finetune: {method: full, read_from: pet_nc.ckpt}}}``. metatrain builds a
fine-tuned model with the *checkpoint's* architecture, so the start-up hook's patch
of ``mtt train`` (``metatrain_nc.train_patches``) hands a ``pet_nc`` / ``pet_m``
checkpoint fine-tuned as ``pet`` to :func:`model_for_architecture`, which loads it
and converts it with :func:`to_stock_pet`; PET's own ``restart``, trainer and
fine-tuning strategy then run unchanged.

The conversion is exact for what it keeps: a :class:`~.model.DirectPET` is PET plus
direct heads, so the stock PET built with the same backbone hypers has the same
state-dict layout minus those heads. Kept: the backbone, the energy head (and the
heads of any other target), the composition baseline and the scaler. Dropped: the
direct force and stress heads (``non_conservative_force`` /
``non_conservative_stress``, routed or declared explicitly) and the model's
metadata (it names the plugin architecture and a lambda of the direct head). The
energy target gets back the ``positions`` / ``strain`` gradients whose labels fed
the direct heads, so stock PET trains conservative forces (and stress) on them.
"""

import logging
from typing import Any, Callable, Dict, List, Tuple

from metatrain.pet import PET
from metatrain.pet.modules.finetuning import apply_finetuning_strategy
from metatrain.utils.architectures import get_default_hypers
from metatrain.utils.data import DatasetInfo

from .model import DirectPET
from .routing import FORCE_OUTPUT, STRESS_OUTPUT, with_energy_gradients

#: the architecture a plugin checkpoint can be converted to
STOCK_PET = "pet"

#: targets of the direct heads, dropped by the conversion
DIRECT_TARGETS = (FORCE_OUTPUT, STRESS_OUTPUT)


def to_stock_pet(model: DirectPET) -> Tuple[PET, Dict[str, List[str]]]:
    """A stock :class:`metatrain.pet.PET` with ``model``'s backbone and energy head.

    :param model: a ``pet_nc`` or ``pet_m`` model (left unchanged).
    :return: the new PET model (same dtype and weights for everything it has) and
        what was done: ``{"kept": [...], "dropped": [...]}``, state-dict entries.
    :raises TypeError: if ``model`` is not a :class:`~.model.DirectPET`.
    """
    if not isinstance(model, DirectPET):
        raise TypeError(
            f"only pet_nc / pet_m models convert to stock pet, not {type(model)}"
        )
    info = with_energy_gradients(model.dataset_info, model.routed_targets.values())
    targets = {k: v for k, v in info.targets.items() if k not in DIRECT_TARGETS}
    pet_hypers = get_default_hypers(STOCK_PET)["model"]
    pet = PET(
        {k: v for k, v in model.hypers.items() if k in pet_hypers},
        DatasetInfo(
            length_unit=info.length_unit,
            atomic_types=info.atomic_types,
            targets=targets,
            extra_data=dict(info.extra_data),
        ),
    )
    finetune_config = dict(getattr(model, "finetune_config", {}) or {})
    if finetune_config:
        # the same trainable/frozen state (and LoRA layers) as the source, as
        # PET.load_checkpoint restores them
        pet = apply_finetuning_strategy(pet, finetune_config, apply_inherit_heads=False)
    names = set(pet.state_dict())
    source = model.state_dict()
    state = {k: v for k, v in source.items() if k in names}
    pet.to(next(iter(model.parameters())).dtype)
    pet.load_state_dict(state, strict=True)
    pet.additive_models[0].sync_tensor_maps()
    pet.scaler.sync_tensor_maps()
    return pet, {"kept": sorted(state), "dropped": sorted(set(source) - names)}


def describe(model: DirectPET, done: Dict[str, List[str]]) -> str:
    """One log line saying what :func:`to_stock_pet` kept and dropped."""
    heads = [t for t in DIRECT_TARGETS if t in model.dataset_info.targets]
    return (
        f"Converting the {model.architecture_name} model to stock pet: kept the "
        f"backbone and the energy head ({len(done['kept'])} tensors), dropped the "
        f"direct heads ({', '.join(heads) or 'none'}; {len(done['dropped'])} "
        "tensors); the energy now trains with conservative forces"
    )


def model_for_architecture(
    checkpoint: Dict[str, Any],
    context: str,
    architecture: str,
    load: Callable[[Dict[str, Any], str], Any],
) -> Any:
    """The model ``mtt train`` of ``architecture`` starts from, for a plugin
    checkpoint (what metatrain's ``model_from_checkpoint`` returns in
    ``cli/train.py``).

    :param checkpoint: a ``pet_nc`` / ``pet_m`` checkpoint, as loaded by torch.
    :param context: ``"finetune"`` or ``"restart"``.
    :param architecture: the architecture of the run (``options`` file).
    :param load: metatrain's ``model_from_checkpoint``.
    :return: for ``pet`` and ``"finetune"``, a stock PET model (see
        :func:`to_stock_pet`); otherwise the checkpoint's own model.
    :raises ValueError: for ``pet`` and ``"restart"``.
    """
    written_by = checkpoint.get("architecture_name")
    if architecture != STOCK_PET:
        return load(checkpoint, context)
    if context != "finetune":
        raise ValueError(
            f"a {written_by} checkpoint cannot be continued as '{architecture}' with "
            "--restart (which continues a run with its own architecture): start "
            f"'{architecture}' from it with `training.finetune.read_from` instead"
        )
    model = load(checkpoint, context)
    if not isinstance(model, DirectPET):
        return model
    pet, done = to_stock_pet(model)
    logging.info(describe(model, done))
    return pet
