"""Reading structures and setting initial velocities, with clear errors."""

import os
from typing import List

import ase
import ase.io
import numpy as np
from ase import units

from ..errors import UserInputError


def read_structures(path: str, index: str = ":") -> List[ase.Atoms]:
    """All frames ``index`` of ``path`` (any format ASE reads).

    :raises UserInputError: missing, unreadable or empty file; no frame selected.
    """
    if not os.path.isfile(path):
        raise UserInputError(f"structure file '{path}' does not exist")
    if os.path.getsize(path) == 0:
        raise UserInputError(f"structure file '{path}' is empty")
    try:
        frames = ase.io.read(path, index)
    except StopIteration:
        frames = []
    except Exception as error:
        raise UserInputError(
            f"cannot read structures from '{path}': {error}"
        ) from error
    if isinstance(frames, ase.Atoms):
        frames = [frames]
    frames = list(frames)
    if not frames:
        raise UserInputError(f"no structures in '{path}' (index '{index}')")
    for i, atoms in enumerate(frames):
        if len(atoms) == 0:
            raise UserInputError(f"structure {i} of '{path}' has no atoms")
    return frames


def read_structure(path: str, index: int = 0) -> ase.Atoms:
    """Frame ``index`` of ``path`` (see :func:`read_structures`)."""
    frames = read_structures(path, ":")
    if not -len(frames) <= index < len(frames):
        raise UserInputError(
            f"'{path}' has {len(frames)} frame(s); frame {index} does not exist"
        )
    return frames[index]


def has_velocities(atoms: ase.Atoms) -> bool:
    """Whether ``atoms`` carries non-zero momenta (e.g. from an extxyz ``momenta``)."""
    return atoms.has("momenta") and bool(np.any(atoms.get_momenta() != 0.0))


def maxwell_boltzmann(atoms: ase.Atoms, temperature_K: float, seed: int) -> None:
    """Draw momenta from the Maxwell-Boltzmann distribution at ``temperature_K`` (K)
    with numpy's generator seeded by ``seed``, then remove the centre-of-mass motion.
    Reproducible: the same seed gives the same momenta."""
    rng = np.random.default_rng(seed)
    masses = atoms.get_masses()[:, None]
    momenta = rng.standard_normal((len(atoms), 3)) * np.sqrt(
        masses * units.kB * temperature_K
    )
    if len(atoms) > 1:
        momenta -= masses * (momenta.sum(axis=0) / masses.sum())
    atoms.set_momenta(momenta)
