"""A fast model next to a slow one, for multiple time stepping.

The inner steps use the fast model's forces (its direct head if it has one, else its
conservative forces); the outer correction is ``F_slow - F_fast`` with the slow
model's conservative forces. With one hybrid model (``pet_m``) the pair is the model
itself: fast = its direct head, slow = its ``-dE/dr``, both from one call.

A pair of two models (a teacher and a distilled student) is checked against the
structure it will run (:meth:`ForcePair.check`):

- the slow model must have *trained* conservative forces (not a ``pet_nc`` model,
  whose energy head never saw forces, nor an ASE calculator declared direct);
- the fast model must know every species of the structure (the two models may know
  different species otherwise: a universal teacher with a water student is fine);
- cutoffs: an atom that has neighbours within the slow model's cutoff but none within
  the fast model's is an isolated atom for the fast model (no inner force at all):
  refused; a shorter (or longer) fast cutoff otherwise gives a warning that says
  which share of the slow model's neighbour pairs the fast model sees.
"""

from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import ase
import ase.data
import numpy as np

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
        fix = (
            ": the slow model of a multiple-time-step pair gives the conservative "
            "correction; use a conservative model (stock pet, pet_m, an ASE "
            "calculator) as MODEL"
        )
        if self.fast is not None:
            fix += " and the direct model as --fast"
        self.slow.require_trained(CONSERVATIVE, fix)
        if self.fast is None:
            self.slow.require_direct()

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

    def check(self, atoms: ase.Atoms) -> List[str]:
        """Refuse a structure the fast model cannot cover; return warnings.

        The slow model's own checks (:meth:`ForceModel.check`) are the caller's.

        :raises UserInputError: the fast model lacks a species of ``atoms``, or sees
            atoms as isolated that the slow model sees with neighbours.
        :return: messages about a cutoff mismatch (empty when the cutoffs agree, or
            for one hybrid model).
        """
        if self.fast is None:
            return []
        fast, slow = self.fast, self.slow
        if fast.atomic_types is not None:
            missing = sorted(
                set(int(z) for z in atoms.numbers) - set(fast.atomic_types)
            )
            if missing:
                raise UserInputError(
                    f"the fast model '{fast.source}' does not know species "
                    f"{_symbols(missing)} of the structure (it knows "
                    f"{_symbols(fast.atomic_types)}; the slow model '{slow.source}' "
                    f"knows {_symbols(slow.atomic_types)}): a student must be "
                    "trained on every species the dynamics meets; sample structures "
                    "containing them with the teacher (mtt-nc md), label them "
                    "(mtt-nc label) and train the student on them"
                )
        fast.check(atoms, "the structure (fast model)")
        return _cutoff_warnings(atoms, fast, slow)

    def describe(self) -> Dict[str, Any]:
        return {
            "slow": self.slow.source,
            "fast": None if self.fast is None else self.fast.source,
            "inner_head": self.inner_head,
            "slow_cutoff_A": cutoff_of(self.slow),
            "fast_cutoff_A": None if self.fast is None else cutoff_of(self.fast),
            "slow_interaction_range_A": interaction_range_of(self.slow),
            "fast_interaction_range_A": (
                None if self.fast is None else interaction_range_of(self.fast)
            ),
        }


def cutoff_of(model: ForceModel) -> Optional[float]:
    """The largest neighbour-list cutoff of a metatomic model (A), else ``None``."""
    cutoff = getattr(model, "cutoff", None)
    return float(cutoff) if cutoff else None


def interaction_range_of(model: ForceModel) -> Optional[float]:
    """A metatomic model's declared interaction range (A: cutoff x message-passing
    layers for PET), else ``None``."""
    inner = getattr(model, "model", None)
    if inner is None or not hasattr(inner, "capabilities"):
        return None
    value = float(inner.capabilities().interaction_range)
    return value if np.isfinite(value) else None


def _cutoff_warnings(atoms: ase.Atoms, fast: ForceModel, slow: ForceModel) -> List[str]:
    fast_cutoff, slow_cutoff = cutoff_of(fast), cutoff_of(slow)
    if fast_cutoff is None or slow_cutoff is None or fast_cutoff == slow_cutoff:
        return []
    if fast_cutoff > slow_cutoff:
        return [
            f"the fast model '{fast.source}' sees neighbours within {fast_cutoff:g} A, "
            f"farther than the slow model '{slow.source}' ({slow_cutoff:g} A): its "
            "inner steps pay for pairs whose forces the outer correction removes "
            "again; a student with the teacher's cutoff is cheaper"
        ]
    i, j, d = _pairs(atoms, slow_cutoff)
    seen = d < fast_cutoff
    n = len(atoms)
    near_slow = np.bincount(np.concatenate([i, j]), minlength=n)
    near_fast = np.bincount(np.concatenate([i[seen], j[seen]]), minlength=n)
    isolated = np.flatnonzero((near_fast == 0) & (near_slow > 0))
    if len(isolated):
        symbols = atoms.get_chemical_symbols()
        listed = ", ".join(f"{k} ({symbols[k]})" for k in isolated[:5])
        more = f" and {len(isolated) - 5} more" if len(isolated) > 5 else ""
        nearest = _nearest_neighbour_distances(i, j, d, n)[isolated]
        raise UserInputError(
            f"the fast model '{fast.source}' has a cutoff of {fast_cutoff:g} A, the "
            f"slow model '{slow.source}' {slow_cutoff:g} A: atoms {listed}{more} have "
            f"neighbours within {slow_cutoff:g} A but none within {fast_cutoff:g} A, "
            "so the fast model sees them as isolated atoms and gives them no inner "
            f"force; train the student with a cutoff of at least "
            f"{float(np.max(nearest)):.2f} A (their nearest neighbours), ideally the "
            f"teacher's {slow_cutoff:g} A"
        )
    share = float(np.mean(seen)) if len(d) else 1.0
    return [
        f"the fast model '{fast.source}' sees neighbours within {fast_cutoff:g} A, "
        f"the slow model '{slow.source}' within {slow_cutoff:g} A: in this structure "
        f"the inner forces miss {100 * (1 - share):.0f}% of the slow model's "
        "neighbour pairs, whose forces then act only through the outer correction "
        "(every STRIDE inner steps); check that the stride conserves energy "
        "(--stride auto)"
    ]


def _pairs(atoms: ase.Atoms, cutoff: float):
    """Half neighbour list ``(i, j, d)`` of ``atoms`` within ``cutoff`` (A)."""
    from vesin import NeighborList

    periodic = bool(np.all(atoms.pbc))
    box = np.asarray(atoms.cell) if periodic else np.zeros((3, 3))
    i, j, d = NeighborList(cutoff=cutoff, full_list=False).compute(
        atoms.positions, box, periodic, quantities="ijd"
    )
    return np.asarray(i, dtype=int), np.asarray(j, dtype=int), np.asarray(d)


def _nearest_neighbour_distances(i, j, d, n) -> np.ndarray:
    nearest = np.full(n, np.inf)
    np.minimum.at(nearest, i, d)
    np.minimum.at(nearest, j, d)
    return nearest


def _symbols(types) -> List[str]:
    if types is None:
        return ["any"]
    return [ase.data.chemical_symbols[int(z)] for z in sorted(types)]
