"""The ``pet_m`` architecture (entry point ``metatrain.architectures: pet_m``)."""

from .model import PETM
from .trainer import Trainer

__model__ = PETM
__trainer__ = Trainer
__capabilities__ = {
    "supported_devices": __model__.__supported_devices__,
    "supported_dtypes": __model__.__supported_dtypes__,
}
__authors__ = [("metatrain-nc developers", "@metatrain-nc")]
__maintainers__ = [("metatrain-nc developers", "@metatrain-nc")]
