"""Starts of relaxations: structures displaced at random (:func:`displaced`), the
molecules of the test structures alone in the gas phase (:func:`gas_starts`, the
paper's Table 7) and bulk frames (:func:`bulk_starts`).

Units: lengths in A.
"""

from typing import List, Sequence

import ase
import numpy as np

from ..errors import UserInputError
from .topology import whole_molecules

#: a displaced start is drawn again while two atoms are closer than this (A)
MIN_START_DISTANCE = 0.7
#: draws of a displacement before giving up
MAX_DRAWS = 1000


def gas_starts(
    frames: Sequence[ase.Atoms], count: int, sigma: float, seed: int
) -> List[ase.Atoms]:
    """``count`` molecules from ``frames`` (a random one of each frame in turn; the
    molecules of :mod:`.topology`, whole across periodic boundaries), each displaced
    by noise of ``sigma`` A.

    :raises UserInputError: a frame without molecules of at least two atoms.
    """
    rng = np.random.default_rng(seed)
    cut: dict = {}  # frame index -> its molecules of two or more atoms, cut once
    starts = []
    for k in range(count):
        index = k % len(frames)
        if index not in cut:
            cut[index] = [m for m in whole_molecules(frames[index]) if len(m) > 1]
        candidates = cut[index]
        if not candidates:
            raise UserInputError(
                f"structure {k % len(frames)} has no molecule of two or more bonded "
                "atoms to relax in the gas phase; use --gas-structures 0"
            )
        molecule = candidates[rng.integers(len(candidates))]
        starts.append(displaced(molecule, sigma, rng))
    return starts


def bulk_starts(
    frames: Sequence[ase.Atoms], count: int, sigma: float, seed: int
) -> List[ase.Atoms]:
    """The first ``count`` frames (cell kept), displaced by noise of ``sigma`` A."""
    rng = np.random.default_rng(seed + 1)
    return [displaced(frames[k % len(frames)], sigma, rng) for k in range(count)]


def displaced(atoms: ase.Atoms, sigma: float, rng: np.random.Generator) -> ase.Atoms:
    """A copy without calculator or momenta, displaced by Gaussian noise of ``sigma``
    A (drawn again while two atoms come closer than :data:`MIN_START_DISTANCE`)."""
    start = ase.Atoms(
        numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc
    )
    if sigma == 0 or len(start) < 2:
        return start
    for _ in range(MAX_DRAWS):
        trial = start.copy()
        trial.positions = start.positions + rng.normal(0.0, sigma, (len(start), 3))
        distances = trial.get_all_distances(mic=bool(trial.pbc.any()))
        np.fill_diagonal(distances, np.inf)
        if distances.min() >= MIN_START_DISTANCE:
            return trial
    raise UserInputError(
        f"no displacement of {sigma} A keeps the atoms {MIN_START_DISTANCE} A apart "
        f"after {MAX_DRAWS} draws; use a smaller displacement"
    )
