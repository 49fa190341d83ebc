"""A model's energies, forces and stress as training labels (``mtt-nc label``).

:func:`label_structures` evaluates any :class:`~metatrain_nc.force_models.ForceModel`
on structures and returns clean copies (species, positions, cell, periodicity only:
velocities and per-atom arrays of an ``mtt-nc md`` trajectory are dropped) carrying
the labels as ASE single-point results, which ``ase.io.write(..., format="extxyz")``
stores under the keys ``energy`` (eV), ``forces`` (eV/A) and ``stress`` (eV/A^3,
ASE's sign convention, 3x3): the keys ``mtt train`` reads by default.

Stress is labelled for periodic structures; in a set that mixes periodic and
non-periodic structures the latter get an all-NaN stress, which metatrain reads as
"no stress" (so the set trains with ``stress`` on). Those are the only NaN a label
file holds: a model that returns a non-finite energy, force or stress stops the
labelling with :class:`~metatrain_nc.errors.NonFiniteError` (model and structure
named), and nothing is written.
"""

import os
from typing import Any, Callable, List, Optional, Sequence

import ase
import numpy as np
from ase.calculators.singlepoint import SinglePointCalculator
from ase.stress import full_3x3_to_voigt_6_stress

from ..errors import UserInputError
from ..force_models.names import CONSERVATIVE, DIRECT

#: label keys of the written file, and their units
KEYS = {"energy": "eV", "forces": "eV/A", "stress": "eV/A^3"}


def label_structures(
    model: Any,
    frames: Sequence[ase.Atoms],
    forces: str = CONSERVATIVE,
    stress: Optional[bool] = None,
    progress: Optional[Callable[[], None]] = None,
    source: str = "",
) -> List[ase.Atoms]:
    """Labelled copies of ``frames``.

    :param model: a :class:`~metatrain_nc.force_models.ForceModel` (or anything
        :func:`~metatrain_nc.force_models.load_force_model` takes).
    :param forces: the head written as ``forces``: ``"conservative"`` (``-dE/dr``)
        or ``"direct"``.
    :param stress: label the stress of periodic structures (``None``: when there is
        one; for ``forces="direct"`` the model's direct stress, which it must have).
    :param progress: called after each structure.
    :param source: the file of ``frames``, for messages (``structure 3 of 'x.xyz'``).
    :raises UserInputError: a head the model lacks or was not trained for (the
        ``-dE/dr`` of a ``pet_nc`` model), a structure it cannot evaluate (all
        structures are checked before any evaluation).
    :raises NonFiniteError: the model returned a non-finite energy, force or stress
        (no label is made of it).
    :raises ModelError: an ASE calculator raised on a structure.
    """
    from ..force_models.loading import load_force_model

    model = load_force_model(model)
    if forces not in (CONSERVATIVE, DIRECT):
        raise UserInputError(
            f"--forces must be 'conservative' or 'direct', got '{forces}'"
        )
    other = DIRECT if forces == CONSERVATIVE else CONSERVATIVE
    model.require_trained(
        forces,
        f": label with --forces {other}" if other in model.trained_heads else "",
    )
    frames = list(frames)
    if not frames:
        raise UserInputError("no structures to label")
    names = [
        f"structure {index}" + (f" of '{source}'" if source else "")
        for index in range(len(frames))
    ]
    for name, atoms in zip(names, frames, strict=True):
        model.check(atoms, name)
    periodic = [bool(np.all(atoms.pbc)) for atoms in frames]
    if stress is None:
        stress = any(periodic) and (forces == CONSERVATIVE or model.has_direct_stress)
    if stress and forces == DIRECT and any(periodic) and not model.has_direct_stress:
        raise UserInputError(
            f"model '{model.source}' has no direct stress output: label with "
            "--forces conservative, or without stress (--no-stress)"
        )
    labelled = []
    for name, atoms, is_periodic in zip(names, frames, periodic, strict=True):
        result = model.evaluate(
            atoms,
            conservative=forces == CONSERVATIVE,
            direct=forces == DIRECT,
            stress=bool(stress and is_periodic),
            where=name,
        )
        copy = _labelled_copy(atoms, result, forces, stress and any(periodic))
        copy.info["label_model"] = str(model.source)
        copy.info["label_forces"] = forces
        labelled.append(copy)
        if progress is not None:
            progress()
    return labelled


def _labelled_copy(atoms: ase.Atoms, result, head: str, with_stress: bool):
    clean = ase.Atoms(
        numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc
    )
    # the structure's own metadata (provenance, sampling) is kept; old labels are not
    clean.info = {
        key: value
        for key, value in atoms.info.items()
        if key not in (*KEYS, "free_energy", "virial", "label_model", "label_forces")
    }
    results = {"energy": result.energy, "forces": result.forces(head)}
    if with_stress:
        if result.stress is not None:
            results["stress"] = full_3x3_to_voigt_6_stress(result.stress)
        else:
            results["stress"] = np.full(6, np.nan)  # metatrain: no stress here
    clean.calc = SinglePointCalculator(clean, **results)
    return clean


def write_labels(path: str, frames: Sequence[ase.Atoms], force: bool = False) -> str:
    """Write labelled frames as extended XYZ, atomically (a temporary file renamed at
    the end); an existing file is replaced only with ``force``."""
    import ase.io

    if os.path.isdir(path):
        raise UserInputError(f"'{path}' is a folder: name the .xyz file to write")
    if os.path.exists(path) and not force:
        raise UserInputError(
            f"'{path}' already exists; choose another name or pass --force to "
            "replace it"
        )
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UserInputError(f"cannot write '{path}': folder '{folder}' does not exist")
    partial = os.path.join(folder, f".{os.path.basename(path)}.partial")
    try:
        ase.io.write(partial, list(frames), format="extxyz")
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    return path
