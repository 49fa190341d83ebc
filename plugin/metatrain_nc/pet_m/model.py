"""The ``pet_m`` model: conservative energy head and direct heads, one backbone."""

from typing import Dict, List

from metatensor.torch import Labels

from ..direct.model import DirectPET


class PETM(DirectPET):
    """PET with a conservative energy head *and* direct force/stress heads.

    The energy keeps its gradients (conservative forces and stress by autograd) and
    the same labels also train the direct heads: one evaluation of the exported
    model returns both kinds of forces, which is what multiple-time-step dynamics
    needs.
    """

    # TorchScript reads attribute types from each class's own annotations
    component_labels: Dict[str, List[List[Labels]]]

    architecture_name = "pet_m"
    __default_metadata__ = DirectPET.metadata_for("pet_m")
    keep_conservative = True
