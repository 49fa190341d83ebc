"""Are a reference set's labels the reference's? Relabel a few random frames.

``mtt-nc reference ... --verify N`` (after the build) and :func:`verify_labels`
evaluate the named reference again on ``N`` random frames of the written splits and
report the largest differences from the stored labels.
"""

from pathlib import Path
from typing import Any, Dict, List, Sequence

import numpy as np


def verify_labels(
    files: Sequence[Path], reference: Any, count: int = 3, seed: int = 0
) -> Dict[str, Any]:
    """Relabel ``count`` random frames of ``files`` with ``reference``.

    :param reference: anything :func:`~metatrain_nc.force_models.load_force_model`
        takes (the reference named in the frames' provenance).
    :return: ``frames`` (``"file:index"`` of each), ``max_force_difference`` (eV/A),
        ``max_energy_difference`` (eV), ``max_stress_difference`` (eV/A^3, ``None``
        for non-periodic frames).
    """
    import ase.io

    from ..force_models.loading import load_force_model

    model = load_force_model(reference)
    pool: List[tuple] = []
    for path in files:
        frames = ase.io.read(path, ":")
        pool.extend((Path(path).name, i, atoms) for i, atoms in enumerate(frames))
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(pool), size=min(count, len(pool)), replace=False)
    forces, energies, stresses, names = [], [], [], []
    for k in sorted(int(c) for c in chosen):
        name, index, atoms = pool[k]
        periodic = bool(np.all(atoms.pbc))
        fresh = ase.Atoms(
            numbers=atoms.numbers,
            positions=atoms.positions,
            cell=atoms.cell,
            pbc=atoms.pbc,
        )
        result = model.evaluate(fresh, conservative=True, direct=False, stress=periodic)
        names.append(f"{name}:{index}")
        forces.append(float(np.abs(result.conservative - atoms.get_forces()).max()))
        energies.append(abs(result.energy - atoms.get_potential_energy()))
        if periodic:
            stored = atoms.get_stress(voigt=False)
            stresses.append(float(np.abs(result.stress - stored).max()))
    return {
        "frames": names,
        "max_force_difference": max(forces),
        "max_energy_difference": max(energies),
        "max_stress_difference": max(stresses) if stresses else None,
    }
