"""Labelling one sampled frame: a random cell strain, then the reference's energy,
forces and stress, with provenance in the frame.

The strain is drawn from the frame's own seed (trajectory seed and frame number), so a
frame is labelled the same way whichever worker labels it and however often the
build is resumed. Non-finite labels and reference errors become a
:class:`LabelFailure` (reported, the frame not written), never a label.
"""

from dataclasses import dataclass
from typing import Any, Dict, Optional, Union

import ase
import numpy as np
from ase.calculators.singlepoint import SinglePointCalculator
from ase.stress import full_3x3_to_voigt_6_stress

from ..errors import UserInputError

#: units of the written labels (also written in every frame)
UNITS = "energy:eV forces:eV/A stress:eV/A^3"


@dataclass
class LabelFailure:
    """A frame the reference could not label.

    :ivar trajectory: its trajectory.
    :ivar frame: its number in the trajectory.
    :ivar message: what went wrong, naming the reference and the frame.
    """

    trajectory: int
    frame: int
    message: str


def frame_strain(seed: int, frame: int, max_strain: float) -> np.ndarray:
    """The symmetric strain (3x3, dimensionless) applied to ``frame`` of the
    trajectory of ``seed``: components uniform in ``[-max_strain, max_strain]``."""
    rng = np.random.default_rng([int(seed), int(frame), 7])
    upper = rng.uniform(-max_strain, max_strain, size=(3, 3))
    return np.triu(upper) + np.triu(upper, 1).T


def strained(atoms: ase.Atoms, strain: np.ndarray) -> ase.Atoms:
    """A copy of ``atoms`` (species, positions, cell, pbc only) with its cell and
    positions deformed by ``(1 + strain)``."""
    deformation = np.eye(3) + strain
    copy = ase.Atoms(
        numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc
    )
    if np.any(strain):
        copy.set_cell(np.asarray(atoms.cell) @ deformation.T, scale_atoms=True)
    return copy


def label_frame(
    model: Any,
    sampled: ase.Atoms,
    frame: int,
    seed: int,
    max_strain: float,
    provenance: Dict[str, Any],
) -> Union[ase.Atoms, LabelFailure]:
    """The labelled frame (a new ``Atoms`` with energy, forces and, when periodic,
    stress as single-point results and provenance in ``info``), or the failure.

    :param model: the reference, a :class:`~metatrain_nc.force_models.ForceModel`.
    :param sampled: the sampled frame; ``info["trajectory"]`` names its trajectory.
    :param frame: its number in the trajectory.
    :param seed: the trajectory's seed.
    :param provenance: reference name, version and method, the plan's seed.
    """
    trajectory = int(sampled.info["trajectory"])
    periodic = bool(np.all(sampled.pbc))
    # a molecule has no cell to strain
    strain = frame_strain(seed, frame, max_strain) if periodic else np.zeros((3, 3))
    atoms = strained(sampled, strain)
    where = f"trajectory {trajectory} frame {frame}"
    try:
        result = model.evaluate(atoms, conservative=True, direct=False, stress=periodic)
    except UserInputError as error:
        return LabelFailure(trajectory, frame, f"{where}: {error}")
    except Exception as error:  # the reference's own failure, reported as such
        return LabelFailure(
            trajectory,
            frame,
            f"{where}: reference '{model.source}' raised {type(error).__name__}: "
            f"{error}",
        )
    bad = _non_finite(result.energy, result.conservative, result.stress, periodic)
    if bad is not None:
        return LabelFailure(
            trajectory,
            frame,
            f"{where}: reference '{model.source}' returned non-finite {bad}; the frame "
            "is not written",
        )
    results: Dict[str, Any] = {
        "energy": float(result.energy),
        "forces": np.asarray(result.conservative, dtype=float),
    }
    if periodic:
        results["stress"] = full_3x3_to_voigt_6_stress(result.stress)
    atoms.calc = SinglePointCalculator(atoms, **results)
    info = {
        **provenance,
        "units": UNITS,
        "trajectory": trajectory,
        "frame": int(frame),
        "trajectory_seed": int(seed),
        "temperature_K": float(sampled.info["temperature_K"]),
        "start_frame": int(sampled.info["start_frame"]),
        "sample_step": int(sampled.info["sample_step"]),
        "sample_time_fs": float(sampled.info["sample_time_fs"]),
        "strain": full_3x3_to_voigt_6_stress(strain),
    }
    atoms.info.update(info)
    return atoms


def _non_finite(
    energy: Optional[float],
    forces: Optional[np.ndarray],
    stress: Optional[np.ndarray],
    periodic: bool,
) -> Optional[str]:
    if energy is None or not np.isfinite(energy):
        return "energy"
    if forces is None or not np.all(np.isfinite(forces)):
        return "forces"
    if periodic and (stress is None or not np.all(np.isfinite(stress))):
        return "stress"
    return None
