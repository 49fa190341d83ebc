"""PET with direct force and stress heads, the base of ``pet_nc`` and ``pet_m``.

:class:`DirectPET` *is* metatrain's :class:`~metatrain.pet.PET` (subclassed, not
copied) with two changes:

1. the dataset info it is built from is routed (:mod:`.routing`): force and stress
   labels of the ``energy`` target become the ``non_conservative_force`` and
   ``non_conservative_stress`` targets, and the energy keeps its gradients only for
   ``pet_m``;
2. its backend is :class:`.backend.DirectForceBackend`, whose direct force head
   gives forces with zero net force per structure (see there).

Checkpoints store the plugin's own version *and* the version of PET's checkpoint
format they were written with, so PET's upgrade chain
(``metatrain/pet/checkpoints.py``) keeps applying to the PET part of the state.
"""

from typing import Any, Dict, List, Optional

from metatensor.torch import Labels
from metatomic.torch import ModelMetadata
from metatrain.pet import PET
from metatrain.pet import Trainer as PETTrainer
from metatrain.pet import checkpoints as pet_checkpoints
from metatrain.utils.architectures import get_default_hypers
from metatrain.utils.data import DatasetInfo
from metatrain.utils.hypers import raise_if_hypers_mismatch

from .backend import DirectForceBackend
from .checkpoints import (
    PET_MODEL_VERSION_KEY,
    PET_TRAINER_VERSION_KEY,
    this_module,
    upgrade,
)
from .routing import (
    FORCE_OUTPUT,
    Routes,
    route_dataset_info,
    with_conservative_energy,
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

    __checkpoint_version__ = 1
    #: entry-point name of the architecture, written into checkpoints
    architecture_name: str = ""
    #: whether the energy keeps its gradients (conservative forces) in training
    keep_conservative: bool = False

    def __init__(self, hypers: Dict[str, Any], dataset_info: DatasetInfo) -> None:
        routed, routes = route_dataset_info(dataset_info, self.keep_conservative)
        super().__init__(hypers, routed)
        self.routes: Routes = routes
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
        if model_hypers is not None:
            defaults = get_default_hypers(self.architecture_name)["model"]
            raise_if_hypers_mismatch(self.hypers, model_hypers, default_hypers=defaults)
        routed, _ = route_dataset_info(dataset_info, self.keep_conservative)
        model = super().restart(routed, model_hypers=None)
        _, model.routes = route_dataset_info(model.dataset_info, self.keep_conservative)
        return model

    def get_checkpoint(self) -> Dict[str, Any]:
        checkpoint = super().get_checkpoint()
        checkpoint["architecture_name"] = self.architecture_name
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
        info = self.dataset_info
        if cls.keep_conservative:
            info = with_conservative_energy(info, self.routes)
        routed, routes = route_dataset_info(info, cls.keep_conservative)
        self.__class__ = cls
        self.dataset_info = routed
        self.routes = routes

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
