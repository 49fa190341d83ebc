"""PET with direct force and stress heads, the base of ``pet_nc`` and ``pet_m``.

:class:`DirectPET` *is* metatrain's :class:`~metatrain.pet.PET` (subclassed, not
copied) with two changes:

1. the dataset info it is built from is routed (:mod:`.routing`): force and stress
   labels of the ``energy`` target become the ``non_conservative_force`` and
   ``non_conservative_stress`` targets, and the energy keeps its gradients only for
   ``pet_m``. Which targets routing made is an explicit field of the model
   (:attr:`DirectPET.routed_targets`) and of its checkpoints
   (``model_data["routed_targets"]``); a restart or fine-tuning routes the labels
   of the *new* data set, so that the heads of targets it lacks are dropped (or
   kept untrained) exactly as metatrain does for stock ``pet``;
2. its backend is :class:`.backend.DirectForceBackend`, whose direct force head
   gives forces with zero net force per structure (see there).

Checkpoints store the plugin's own version *and* the version of PET's checkpoint
format they were written with, so PET's upgrade chain
(``metatrain/pet/checkpoints.py``) keeps applying to the PET part of the state.
"""

import logging
from typing import Any, Dict, List, Literal, Optional

from metatensor.torch import Labels
from metatomic.torch import ModelMetadata
from metatrain.pet import PET
from metatrain.pet import Trainer as PETTrainer
from metatrain.pet import checkpoints as pet_checkpoints
from metatrain.utils.architectures import get_default_hypers
from metatrain.utils.data import DatasetInfo
from metatrain.utils.data.atomic_basis_helpers import densify_atomic_basis_dataset_info
from metatrain.utils.hypers import raise_if_hypers_mismatch
from metatrain.utils.metadata import merge_metadata

from .backend import DirectForceBackend
from .checkpoints import (
    PET_MODEL_VERSION_KEY,
    PET_TRAINER_VERSION_KEY,
    this_module,
    upgrade,
)
from .routing import (
    FORCE_OUTPUT,
    LABELS,
    ROUTED_TARGETS_KEY,
    Routes,
    route_dataset_info,
    with_energy_gradients,
)


class DirectPET(PET):
    """PET whose forces (and stress) are also predicted directly.

    Subclasses set :attr:`architecture_name` (the entry-point name written into
    checkpoints) and :attr:`keep_conservative`.

    :param hypers: model hypers: PET's plus ``direct_force_head``.
    :param dataset_info: the dataset info built by ``mtt train`` (routed here).
    """

    # TorchScript reads attribute types from each class's own annotations
    component_labels: Dict[str, List[List[Labels]]]

    #: 1: routed targets recognised by their description; 2: marked by
    #: ``model_data["routed_targets"]``
    __checkpoint_version__ = 2
    #: entry-point name of the architecture, written into checkpoints
    architecture_name: str = ""
    #: whether the energy keeps its gradients (conservative forces) in training
    keep_conservative: bool = False

    def __init__(self, hypers: Dict[str, Any], dataset_info: DatasetInfo) -> None:
        routed, routes = route_dataset_info(dataset_info, self.keep_conservative)
        super().__init__(hypers, routed)
        #: what the data set of the current run routes (read by the trainer)
        self.routes: Routes = routes
        #: the targets of :attr:`dataset_info` that routing made, ``{direct target:
        #: energy gradient it is learned from}``; stored in checkpoints
        self.routed_targets: Dict[str, str] = routes.routed
        self._use_direct_backend()

    @staticmethod
    def metadata_for(architecture: str) -> ModelMetadata:
        """Default metadata of exported models: references, and the architecture
        name in ``extra["architecture"]`` (tools tell ``pet_nc`` from ``pet_m`` by
        it, since their outputs are the same)."""
        return ModelMetadata(
            references={
                "architecture": [
                    "https://arxiv.org/abs/2305.19302v3",
                    "https://arxiv.org/abs/2412.11569",
                ]
            },
            extra={"architecture": architecture},
        )

    def _use_direct_backend(self) -> None:
        """Swap PET's backend for one with the direct force head.

        PET builds its backend and registers its outputs inside ``PET.__init__``;
        the new backend gets the same outputs (same names, shapes and order), so the
        state-dict layout is PET's plus the pair-force head.
        """
        backend = DirectForceBackend(self.hypers, self.atomic_types)
        for name in self.target_names:
            backend.add_output(name, self.output_shapes[name])
        self.backend = backend
        self.system_conditioning = backend.system_conditioning
        if len(backend.pair_force_head) > 0:
            # the pair-force head has no linear last layer: no LLPR features for it
            self.last_layer_parameter_names.pop(FORCE_OUTPUT, None)
            self.outputs.pop(f"mtt::aux::{FORCE_OUTPUT}_last_layer_features", None)

    def _add_output(self, target_name: str, target_info: Any) -> None:
        super()._add_output(target_name, target_info)
        if target_name == FORCE_OUTPUT and len(
            getattr(self.backend, "pair_force_head", [])
        ):
            self.last_layer_parameter_names.pop(FORCE_OUTPUT, None)
            self.outputs.pop(f"mtt::aux::{FORCE_OUTPUT}_last_layer_features", None)

    def restart(
        self, dataset_info: DatasetInfo, model_hypers: Optional[Dict[str, Any]] = None
    ) -> "DirectPET":
        """Continue with the data set of a new run (``--restart``, fine-tuning).

        The routes come from the *new* data set: a target the model has but the
        new data lacks (e.g. ``non_conservative_stress`` of a model trained on
        periodic data, fine-tuned on molecules) is no longer fed, and metatrain
        treats it as for stock ``pet``: ``full`` / ``lora`` fine-tuning drops its
        head, ``heads`` and ``--restart`` keep it, untrained.
        """
        if model_hypers is not None:
            defaults = get_default_hypers(self.architecture_name)["model"]
            raise_if_hypers_mismatch(self.hypers, model_hypers, default_hypers=defaults)
        # the routed targets keep the descriptions stored with the model: metatrain
        # requires equal descriptions of a target in the old and the new data set
        stored = {
            name: self.dataset_info.targets[name].description
            for name in self.routed_targets
            if name in self.dataset_info.targets
        }
        routed, routes = route_dataset_info(
            dataset_info, self.keep_conservative, descriptions=stored
        )
        previous = dict(self.routed_targets)
        model = super().restart(routed, model_hypers=None)
        model.routes = routes
        model.routed_targets = {
            name: gradient
            for name, gradient in previous.items()
            if name not in routed.targets
        }
        model.routed_targets.update(routes.routed)
        for name, gradient in previous.items():
            if name not in routed.targets:
                logging.info(
                    f"{name} (learned from the energy's {LABELS[gradient]} labels) "
                    f"is not trained in this run: the training set has no "
                    f"{LABELS[gradient]} labels. Its head is kept as it is, or "
                    "dropped by fine-tuning with the `full` or `lora` method, as "
                    "metatrain does for any target the new data lacks"
                )
        _complete_scaler_targets(model.scaler)
        return model

    def get_checkpoint(self) -> Dict[str, Any]:
        checkpoint = super().get_checkpoint()
        checkpoint["architecture_name"] = self.architecture_name
        checkpoint["model_data"][ROUTED_TARGETS_KEY] = {
            name: gradient
            for name, gradient in self.routed_targets.items()
            if name in self.dataset_info.targets  # fine-tuning may drop targets
        }
        checkpoint["model_ckpt_version"] = self.__checkpoint_version__
        checkpoint[PET_MODEL_VERSION_KEY] = PET.__checkpoint_version__
        # the trainer part (optimizer, scheduler) follows PET's trainer format
        checkpoint[PET_TRAINER_VERSION_KEY] = PETTrainer.__checkpoint_version__
        return checkpoint

    def convert_to(self, cls: type) -> None:
        """Turn this model, in place, into a sibling architecture ``cls``.

        Used to fine-tune a ``pet_nc`` checkpoint as ``pet_m`` (the paper's
        Appendix H): both have the same modules, only the routing of the energy's
        gradients differs. In place because ``mtt train`` keeps its own reference to
        the model it saves after training.

        :param cls: a :class:`DirectPET` subclass.
        """
        if not (isinstance(cls, type) and issubclass(cls, DirectPET)):
            raise TypeError(f"cannot convert a {self.architecture_name} model to {cls}")
        routes = Routes(
            forces=self.routes.forces,
            stress=self.routes.stress,
            keep_conservative=cls.keep_conservative,
            targets=self.routes.targets,
        )
        # the energy trains on the labels this run routes (``pet_m``) or on none
        gradients = routes.routed.values() if cls.keep_conservative else None
        self.dataset_info = with_energy_gradients(self.dataset_info, gradients)
        self.__class__ = cls
        self.routes = routes

    @classmethod
    def load_checkpoint(
        cls,
        checkpoint: Dict[str, Any],
        context: Literal["restart", "finetune", "export"],
    ) -> "DirectPET":
        # metatrain upgrades only when the plugin's own version changed; the PET
        # part may be older too (idempotent when nothing is to do)
        checkpoint = cls.upgrade_checkpoint(checkpoint)
        model = super().load_checkpoint(checkpoint, context)
        # PET merges the checkpoint's metadata into the default one: a model
        # fine-tuned from another architecture would keep that one's name
        own_name = ModelMetadata(extra={"architecture": cls.architecture_name})
        model.metadata = merge_metadata(model.metadata, own_name)
        model.routed_targets = dict(checkpoint["model_data"][ROUTED_TARGETS_KEY])
        model.routes = Routes.of_model(
            model.routed_targets, cls.keep_conservative, model.dataset_info.targets
        )
        return model

    @classmethod
    def upgrade_checkpoint(cls, checkpoint: Dict) -> Dict:
        # the plugin's own format, then the PET part with PET's update functions
        upgrade(
            checkpoint,
            "model_ckpt_version",
            cls.__checkpoint_version__,
            this_module(),
            "model",
            default=1,
        )
        upgrade(
            checkpoint,
            PET_MODEL_VERSION_KEY,
            PET.__checkpoint_version__,
            pet_checkpoints,
            "model",
            default=PET.__checkpoint_version__,
        )
        return checkpoint


def _complete_scaler_targets(scaler: Any) -> None:
    """Give back to a restarted scaler the target infos of the targets it had.

    metatrain 2026.4.1's ``Scaler.restart`` keeps in ``target_infos`` only the
    targets new to the model, while its trainer looks up there every target of a
    batch (so a fine-tuning that adds a target, e.g. the direct stress of periodic
    data, fails with ``KeyError: 'energy'``; stock ``pet`` fails the same way when
    a fine-tuning adds a target) and ``get_scales`` refuses the others (so the
    direct-force loss factor fell back to 1 in every restart and fine-tuning).
    ``Scaler.__init__`` (a reloaded checkpoint) lists them all; so does this.
    Only the scales of the new targets are fitted, as before.
    """
    known = getattr(scaler, "target_infos", None)
    if known is None:  # a metatrain whose scaler has none: nothing to complete
        return
    info = scaler.dataset_info
    if getattr(scaler, "densify_atomic_basis", True):
        info = densify_atomic_basis_dataset_info(info)
    complete = dict(info.targets)
    complete.update(known)
    scaler.target_infos = complete
