"""PET's trainer, fed with routed labels (see :mod:`.routing`).

:class:`DirectTrainer` subclasses metatrain's PET trainer and keeps all of it (data
loaders, rotational augmentation, composition baseline, target scaling, loss,
checkpointing, distributed training). What it adds:

- the training and validation datasets are wrapped in
  :class:`~.routing.RoutedDataset`, so that force and stress labels written for the
  ``energy`` target reach the direct heads;
- the loss section a stock-``pet`` user writes (``energy: {forces: ..., stress:
  ...}``) is translated into loss terms for ``non_conservative_force`` and
  ``non_conservative_stress`` (see :meth:`DirectTrainer.loss_for_routed_targets`);
- a model of a sibling architecture (a ``pet_nc`` checkpoint fine-tuned as
  ``pet_m``) is converted to this trainer's architecture before training;
- after training (and every ``lambda_estimate.every_checkpoints`` checkpoints), lambda
  of the direct head is estimated on validation structures, logged and stored with
  the checkpoint and the exported model (see :mod:`.lambda_estimate`).
"""

import contextlib
import copy
import logging
from pathlib import Path
from typing import Any, Dict, List, Union

import torch
from metatrain.pet import Trainer as PETTrainer
from metatrain.pet import checkpoints as pet_checkpoints
from metatrain.pet import trainer as pet_trainer_module
from metatrain.utils.data import Dataset
from metatrain.utils.distributed.logging import is_main_process

from .checkpoints import PET_TRAINER_VERSION_KEY, this_module, upgrade
from .documentation import LAMBDA_ESTIMATE_DEFAULTS
from .lambda_estimate import run_estimate, store_estimate
from .model import DirectPET
from .routing import ENERGY, FORCE_OUTPUT, STRESS_OUTPUT, RoutedDataset


def _loss_spec(spec: Any) -> Dict[str, Any]:
    """A full loss specification (type, weight, reduction, gradients) from a partial
    one, a loss-type string or ``None``."""
    if isinstance(spec, str):
        spec = {"type": spec}
    full: Dict[str, Any] = {
        "type": "mse",
        "weight": 1.0,
        "reduction": "mean",
        "gradients": {},
    }
    full.update(dict(spec) if spec is not None else {})
    return full


def force_loss_factor(model: DirectPET) -> float:
    """``(s_F / s_E)^2``: converts the direct-force loss to the units of ``-dE/dr``.

    With target scaling, metatrain compares energies and their gradients in units
    of the energy scale ``s_E`` (per atom), so a conservative force error ``dF``
    costs ``(dF / s_E)^2``; the direct forces are a target of their own, scaled by
    their own ``s_F``, so the same error costs ``(dF / s_F)^2``. On ethanol
    ``s_E = 0.019 eV`` and ``s_F = 0.91 eV/A``: without this factor the direct
    forces weigh ~2000x less than conservative forces of the same weight, which is
    why a hand-made hybrid of stock ``pet`` leaves its direct head untrained.

    :param model: a model whose scaler has been fitted.
    :return: the factor (1.0 if a scale is missing).
    """
    from metatensor.torch import Labels  # noqa: F401  (metatensor classes)
    from metatomic.torch import ModelOutput, System

    types = torch.tensor(model.atomic_types, dtype=torch.int32)
    system = System(
        types=types,
        positions=torch.zeros((len(types), 3), dtype=torch.float64),
        cell=torch.zeros((3, 3), dtype=torch.float64),
        pbc=torch.zeros(3, dtype=torch.bool),
    )
    requested = {
        ENERGY: ModelOutput(sample_kind="atom"),
        FORCE_OUTPUT: ModelOutput(sample_kind="atom"),
    }
    if not all(name in model.scaler.target_infos for name in requested):
        return 1.0
    scales = model.scaler.get_scales(
        [system], requested, use_per_target_scales=True, use_per_property_scales=False
    )
    energy = scales[ENERGY].block().values.to(torch.float64).mean()
    forces = scales[FORCE_OUTPUT].block().values.to(torch.float64).mean()
    if not (energy > 0 and forces > 0):
        return 1.0
    return float((forces / energy) ** 2)


@contextlib.contextmanager
def _direct_forces_in_energy_units(model: DirectPET, scale_targets: bool):
    """While PET's trainer runs, weigh direct forces as it weighs ``-dE/dr``.

    PET's trainer builds its ``LossAggregator`` after fitting the scaler; this
    wraps that class (looked up in ``metatrain.pet.trainer``) so that the weight of
    the ``non_conservative_force`` term is multiplied by :func:`force_loss_factor`
    at that moment. Restored on exit.
    """
    if not scale_targets or ENERGY not in model.dataset_info.targets:
        yield
        return
    original = pet_trainer_module.LossAggregator

    def balanced(targets: Dict[str, Any], config: Dict[str, Any]) -> Any:
        config = copy.deepcopy(dict(config))
        if FORCE_OUTPUT in config:
            factor = force_loss_factor(model)
            spec = dict(config[FORCE_OUTPUT])
            spec["weight"] = spec.get("weight", 1.0) * factor
            config[FORCE_OUTPUT] = spec
            logging.info(
                f"Direct forces are weighed in the units of -dE/dr: loss weight "
                f"x {factor:.4g} = (force scale / energy scale)^2"
            )
        return original(targets=targets, config=config)

    pet_trainer_module.LossAggregator = balanced
    try:
        yield
    finally:
        pet_trainer_module.LossAggregator = original


class DirectTrainer(PETTrainer):
    """Trainer of :class:`~.model.DirectPET` models (``pet_nc`` and ``pet_m``)."""

    __checkpoint_version__ = 2
    #: the model class this trainer trains (set by subclasses)
    model_class: type = DirectPET

    def loss_for_routed_targets(self, model: DirectPET) -> Union[str, Dict[str, Any]]:
        """The loss configuration in terms of the routed targets.

        - ``energy.gradients.positions`` (what ``energy: {forces: ...}`` expands to)
          becomes the loss of ``non_conservative_force``, scaled by
          ``direct_forces_weight`` if set; likewise ``strain`` for
          ``non_conservative_stress`` with ``direct_stress_weight``;
        - the energy keeps its gradient terms only for ``pet_m``;
        - explicit entries for the direct targets are kept as written.

        :param model: the model being trained (its routes say what was routed).
        :return: a loss configuration for metatrain's ``LossAggregator``.
        """
        loss = self.hypers["loss"]
        if isinstance(loss, str):
            return loss
        loss = copy.deepcopy(dict(loss))
        routes = model.routes
        energy = _loss_spec(loss.get(ENERGY))
        gradients = dict(energy.get("gradients", {}) or {})
        for routed, output, gradient, weight in (
            (routes.forces, FORCE_OUTPUT, "positions", "direct_forces_weight"),
            (routes.stress, STRESS_OUTPUT, "strain", "direct_stress_weight"),
        ):
            if routed and output not in loss:
                spec = _loss_spec(gradients.get(gradient, {}))
                if self.hypers.get(weight) is not None:
                    spec["weight"] = self.hypers[weight]
                loss[output] = spec
        if ENERGY in loss and not routes.keep_conservative:
            energy["gradients"] = {}
            loss[ENERGY] = energy
        return loss

    def scales_for_direct_forces(self, train_datasets: List[Any]) -> Any:
        """Fixed scaling weights with one scale for the direct forces of all species.

        metatrain's scaler fits one scale per atomic type for per-atom targets;
        applied to forces, per-type scales would break the zero net force of each
        structure. The direct forces get instead a single scale, the RMS of the
        force labels (over at most 1000 training structures). Scales the user fixed
        are kept.

        :param train_datasets: routed training datasets.
        :return: the ``fixed_scaling_weights`` to train with.
        """
        fixed = self.hypers["fixed_scaling_weights"]
        if isinstance(fixed, str) or not self.hypers["scale_targets"]:
            return fixed
        fixed = dict(fixed or {})
        if FORCE_OUTPUT in fixed:
            return fixed
        total, count = 0.0, 0
        for dataset in train_datasets:
            step = max(1, len(dataset) // 1000)
            for index in range(0, len(dataset), step):
                sample = dataset[index]
                if FORCE_OUTPUT not in sample._fields:
                    continue
                values = sample[FORCE_OUTPUT].block().values
                total += float((values.to(torch.float64) ** 2).sum())
                count += values.numel()
        if count > 0 and total > 0:
            fixed[FORCE_OUTPUT] = (total / count) ** 0.5
        return fixed

    def train(
        self,
        model: DirectPET,
        dtype: torch.dtype,
        devices: List[torch.device],
        train_datasets: List[Union[Dataset, torch.utils.data.Subset]],
        val_datasets: List[Union[Dataset, torch.utils.data.Subset]],
        checkpoint_dir: str,
    ) -> None:
        name = self.model_class.architecture_name
        if not isinstance(model, DirectPET):
            raise ValueError(
                f"{name} cannot continue training a model of class "
                f"'{type(model).__name__}' (the checkpoint given to --restart or "
                "`finetune.read_from` was written by another architecture). Use a "
                "pet_nc or pet_m checkpoint, start from scratch, or train that "
                "checkpoint with its own architecture."
            )
        if type(model) is not self.model_class:
            logging.info(
                f"Converting the {model.architecture_name} model to "
                f"{self.model_class.architecture_name}"
            )
            model.convert_to(self.model_class)

        routes = model.routes
        # the targets of this run's data set (not those the model had before a
        # restart or fine-tuning: heads of targets the data lacks are not trained)
        if ENERGY in routes.targets and FORCE_OUTPUT not in routes.targets:
            # other targets (dipoles, ...) are PET's business and train as with pet
            raise ValueError(
                f"{name} learns forces directly, but the training set has no force "
                "labels (`forces` of the energy target). Give the energy target "
                "its forces, e.g. `energy: {key: energy, unit: eV, forces: {key: "
                "forces}}`, or declare a `non_conservative_force` target. To train "
                "(or fine-tune on) energies only, use `pet`."
            )
        # a stored lambda belongs to the weights it was estimated on
        store_estimate(model, None)
        self._lambda_datasets = list(val_datasets)
        train_datasets = [RoutedDataset(d, routes) for d in train_datasets]
        val_datasets = [RoutedDataset(d, routes) for d in val_datasets]

        user_loss = self.hypers["loss"]
        user_fixed_scales = self.hypers["fixed_scaling_weights"]
        self.hypers["loss"] = self.loss_for_routed_targets(model)
        self.hypers["fixed_scaling_weights"] = self.scales_for_direct_forces(
            train_datasets
        )
        self._checkpoints_saved = 0
        self._training = True
        try:
            with _direct_forces_in_energy_units(model, self.hypers["scale_targets"]):
                super().train(
                    model, dtype, devices, train_datasets, val_datasets, checkpoint_dir
                )
        finally:
            self._training = False
            self.hypers["loss"] = user_loss
            self.hypers["fixed_scaling_weights"] = user_fixed_scales
        if routes.forces and not routes.keep_conservative:
            logging.info(
                f"{name}: the direct forces are the 'non_conservative_force' metrics "
                "above. If mtt evaluates the exported model below, its "
                "'energy_positions_gradients' are derivatives of the energy head, "
                "which pet_nc never trains on forces: do not read them as the "
                "model's forces."
            )
        if is_main_process():
            store_estimate(model, None)  # an intermediate one is not the best model's
            run_estimate(
                model,
                self._lambda_datasets,
                self.lambda_hypers(),
                which="best",
                epoch=self.best_epoch,
                state_dict=self.best_model_state_dict,
            )

    def lambda_hypers(self) -> Dict[str, int]:
        """``lambda_estimate`` with defaults for keys the hypers lack (hypers stored
        by older versions)."""
        return dict(
            LAMBDA_ESTIMATE_DEFAULTS, **(self.hypers.get("lambda_estimate") or {})
        )

    def save_checkpoint(self, model: Any, path: Union[str, Path]) -> None:
        """PET's checkpoint; every ``lambda_estimate.every_checkpoints``-th
        intermediate one also estimates lambda of the current weights first and
        stores it in the checkpoint."""
        every = int(self.lambda_hypers()["every_checkpoints"])
        if getattr(self, "_training", False) and every > 0:
            self._checkpoints_saved += 1
            if self._checkpoints_saved % every == 0:
                run_estimate(
                    model,
                    self._lambda_datasets,
                    self.lambda_hypers(),
                    which="latest",
                    epoch=self.epoch,
                )
        super().save_checkpoint(model, path)

    @classmethod
    def upgrade_checkpoint(cls, checkpoint: Dict) -> Dict:
        upgrade(
            checkpoint,
            "trainer_ckpt_version",
            cls.__checkpoint_version__,
            this_module(),
            "trainer",
            default=1,
        )
        upgrade(
            checkpoint,
            PET_TRAINER_VERSION_KEY,
            PETTrainer.__checkpoint_version__,
            pet_checkpoints,
            "trainer",
            default=PETTrainer.__checkpoint_version__,
        )
        return checkpoint
