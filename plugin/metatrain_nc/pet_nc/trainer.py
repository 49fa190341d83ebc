"""The ``pet_nc`` trainer."""

from ..direct.trainer import DirectTrainer
from .model import PETNC


class Trainer(DirectTrainer):
    """Trains :class:`~metatrain_nc.pet_nc.model.PETNC` (see ``direct/trainer.py``)."""

    model_class = PETNC
