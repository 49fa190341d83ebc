"""What the force splits of a torch-sim batch share (:mod:`.splits`).

- :class:`ForceBatch`: what a split returns for a batch (energies, conservative and
  direct forces);
- ``_Split``: the base of the splits: the force ``mode``, its ``fast_head`` /
  ``slow_head``, ``splits`` and ``with_mode`` (the same split in another mode,
  sharing its models).
"""

import copy
from dataclasses import dataclass
from typing import Optional

import torch

from ..force_models.force_split import MTS, check_force_mode
from ..force_models.names import CONSERVATIVE, DIRECT


@dataclass
class ForceBatch:
    """What a split returned for a batch (``None``: not asked / not available)."""

    energy: Optional[torch.Tensor] = None
    conservative: Optional[torch.Tensor] = None
    direct: Optional[torch.Tensor] = None

    def forces(self, head: str) -> Optional[torch.Tensor]:
        """The forces of ``head`` (``"conservative"`` or ``"direct"``)."""
        return self.conservative if head == CONSERVATIVE else self.direct


def _heads(mode: str):
    """``(fast_head, slow_head)`` of a force mode."""
    if mode == CONSERVATIVE:
        return CONSERVATIVE, CONSERVATIVE
    if mode == DIRECT:
        return DIRECT, DIRECT
    return DIRECT, CONSERVATIVE


class _Split:
    """What both splits share: the mode, its heads and :meth:`with_mode`."""

    mode: str = MTS

    @property
    def fast_head(self) -> str:
        return _heads(self.mode)[0]

    @property
    def slow_head(self) -> str:
        return _heads(self.mode)[1]

    @property
    def splits(self) -> bool:
        return self.mode == MTS

    def with_mode(self, mode: str) -> "_Split":
        """This split in force mode ``mode``, sharing its models (and neighbour
        lists); the same object for the same mode."""
        if mode == self.mode:
            return self
        siblings = self.__dict__.setdefault("_siblings", {self.mode: self})
        if mode not in siblings:
            check_force_mode(mode)
            sibling = copy.copy(self)
            sibling.mode = mode
            sibling._validate()
            siblings[mode] = sibling
        return siblings[mode]

    def _validate(self) -> None:
        pass
