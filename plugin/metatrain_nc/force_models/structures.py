"""What every tool checks before a model sees a structure (one set of rules).

:func:`check_structure` raises :class:`~metatrain_nc.errors.UserInputError` naming the
structure and the problem: no atoms, non-finite positions or cell, periodic in some
directions only, a periodic cell without volume, species the model does not know, or
two atoms closer than :data:`MIN_DISTANCE` (the pair is named).
:func:`describe_structure` names a structure in messages when its caller has no name
for it (formula and size).
"""

from typing import Optional, Sequence

import ase
import ase.data
import numpy as np

from ..errors import UserInputError

#: two atoms closer than this (A) are refused as overlapping: shorter than any bond
#: (H2: 0.74 A), and what a duplicated atom or a unit mix-up produces
MIN_DISTANCE = 0.5


def describe_structure(atoms: ase.Atoms) -> str:
    """How messages name a structure its caller gives no name to: ``"a C2H6O
    structure (9 atoms, not periodic)"``."""
    periodic = "periodic" if np.all(atoms.pbc) else "not periodic"
    formula = atoms.get_chemical_formula(mode="hill") if len(atoms) else "empty"
    return f"a {formula} structure ({len(atoms)} atoms, {periodic})"


def check_structure(
    atoms: ase.Atoms,
    atomic_types: Optional[Sequence[int]] = None,
    where: str = "structure",
    min_distance: float = MIN_DISTANCE,
) -> None:
    """Raise :class:`UserInputError` for a structure no model should be run on.

    :param atoms: the structure (positions in A).
    :param atomic_types: atomic numbers the model knows (``None``: any).
    :param where: how the structure is named in messages (``"structure 3 of 'x.xyz'"``).
    :param min_distance: smallest allowed interatomic distance (A, minimum image).
    """
    if len(atoms) == 0:
        raise UserInputError(f"{where} has no atoms")
    if not np.all(np.isfinite(atoms.positions)):
        raise UserInputError(f"{where} has NaN or infinite positions")
    cell = np.asarray(atoms.cell)
    if not np.all(np.isfinite(cell)):
        raise UserInputError(f"{where} has a NaN or infinite cell")
    if any(atoms.pbc) and not all(atoms.pbc):
        raise UserInputError(
            f"{where} is periodic in some directions only (pbc={list(atoms.pbc)}); "
            "make it fully periodic (with vacuum) or not periodic at all"
        )
    if all(atoms.pbc) and abs(np.linalg.det(cell)) < 1e-6:
        raise UserInputError(f"{where} is periodic but its cell has no volume")
    if atomic_types is not None:
        known = sorted(int(t) for t in atomic_types)
        unknown = sorted(set(int(z) for z in atoms.numbers) - set(known))
        if unknown:
            symbols = [ase.data.chemical_symbols[z] for z in unknown]
            raise UserInputError(
                f"{where} contains species {symbols} (atomic numbers {unknown}) that "
                f"the model does not know; it knows atomic numbers {known}"
            )
    _check_overlaps(atoms, where, min_distance)


def _check_overlaps(atoms: ase.Atoms, where: str, min_distance: float) -> None:
    if len(atoms) < 2 or min_distance <= 0:
        return
    from vesin import NeighborList

    periodic = bool(np.all(atoms.pbc))
    box = np.asarray(atoms.cell) if periodic else np.zeros((3, 3))
    i, j, d = NeighborList(cutoff=min_distance, full_list=False).compute(
        atoms.positions, box, periodic, quantities="ijd"
    )
    if len(i) == 0:
        return
    k = int(np.argmin(d))
    a, b = sorted((int(i[k]), int(j[k])))
    symbols = atoms.get_chemical_symbols()
    raise UserInputError(
        f"{where}: atoms {a} ({symbols[a]}) and {b} ({symbols[b]}) are "
        f"{float(d[k]):.3g} A apart, closer than {min_distance} A (overlapping or "
        f"duplicated atoms; {len(i)} such pair(s)): fix the structure"
    )
