"""The ``pet_m`` trainer."""

from ..direct.trainer import DirectTrainer
from .model import PETM


class Trainer(DirectTrainer):
    """Trains :class:`~metatrain_nc.pet_m.model.PETM` (see ``direct/trainer.py``)."""

    model_class = PETM
