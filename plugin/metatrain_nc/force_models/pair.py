"""A fast model next to a slow one, for multiple time stepping.

The inner steps use the fast model's forces (its direct head if it has one, else its
conservative forces); the outer correction is ``F_slow - F_fast`` with the slow
model's conservative forces. With one hybrid model (``pet_m``) the pair is the model
itself: fast = its direct head, slow = its ``-dE/dr``, both from one call.
"""

from dataclasses import dataclass
from typing import Optional

import ase.data

from ..errors import UserInputError
from .base import ForceModel
from .names import CONSERVATIVE, DIRECT


@dataclass
class ForcePair:
    """The models of a multiple-time-step run.

    :ivar slow: the model of record: conservative forces and the energy.
    :ivar fast: the inner-step model (``None``: the slow model's direct head).
    """

    slow: ForceModel
    fast: Optional[ForceModel] = None

    def __post_init__(self):
        self.slow.require(
            CONSERVATIVE,
            ": the slow model of a multiple-time-step pair gives the "
            "conservative correction",
        )
        if self.fast is None:
            self.slow.require_direct()
            return
        fast, slow = self.fast, self.slow
        if fast.atomic_types is not None and slow.atomic_types is not None:
            if set(fast.atomic_types) != set(slow.atomic_types):
                raise UserInputError(
                    f"the fast model '{fast.source}' knows species "
                    f"{_symbols(fast.atomic_types)} and the slow model "
                    f"'{slow.source}' {_symbols(slow.atomic_types)}: a pair must "
                    "cover the same species"
                )

    @property
    def inner_model(self) -> ForceModel:
        """The model evaluated at inner steps."""
        return self.slow if self.fast is None else self.fast

    @property
    def inner_head(self) -> str:
        """The head driving the inner steps."""
        model = self.inner_model
        return DIRECT if model.has_direct else CONSERVATIVE

    @property
    def shared(self) -> bool:
        """One model gives both forces (one call at outer steps)."""
        return self.fast is None

    def describe(self):
        return {
            "slow": self.slow.source,
            "fast": None if self.fast is None else self.fast.source,
            "inner_head": self.inner_head,
        }


def _symbols(types):
    return [ase.data.chemical_symbols[int(z)] for z in sorted(types)]
