"""Distillation (``mtt-nc distill``): a conservative teacher, small ``pet_nc``
students trained on its labels with the unmodified ``mtt train``, and multiple time
stepping with the teacher outside and a student inside.

- :func:`distill`: the whole run;
- :class:`DistillSettings`: its settings; :data:`SIZES`: the student sizes.
"""

from ..lazy_exports import lazy_exports

_EXPORTS = {
    "distill": "command",
    "DistillSettings": "settings",
    "SIZES": "settings",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
