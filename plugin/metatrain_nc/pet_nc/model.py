"""The ``pet_nc`` model: PET with direct forces and an energy head."""

from typing import Dict, List

from metatensor.torch import Labels

from ..direct.model import DirectPET


class PETNC(DirectPET):
    """PET whose forces and stress come from direct heads only.

    The energy target loses its gradients: training never back-propagates through
    the positions, and the exported model's forces are ``non_conservative_force``.
    """

    # TorchScript reads attribute types from each class's own annotations
    component_labels: Dict[str, List[List[Labels]]]

    architecture_name = "pet_nc"
    __default_metadata__ = DirectPET.metadata_for("pet_nc")
    keep_conservative = False
