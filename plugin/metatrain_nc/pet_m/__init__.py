"""The ``pet_m`` architecture (entry point ``metatrain.architectures: pet_m``)."""

from ..compat import check_metatrain_version

check_metatrain_version()

from .model import PETM  # noqa: E402
from .trainer import Trainer  # noqa: E402

__model__ = PETM
__trainer__ = Trainer
__capabilities__ = {
    "supported_devices": __model__.__supported_devices__,
    "supported_dtypes": __model__.__supported_dtypes__,
}
__authors__ = [("metatrain-nc developers", "@metatrain-nc")]
__maintainers__ = [("metatrain-nc developers", "@metatrain-nc")]
