"""Energy and force errors of a force model, for each of its force heads.

A ``pet_m`` model has two force heads (conservative ``-dE/dr`` and direct
``non_conservative_force``), a ``pet_nc`` model one that matters (direct; its
energy head is never trained on forces, so its gradient is not reported as the
model's forces), a conservative model one, an ASE calculator one (conservative unless
declared direct). :func:`model_accuracy` evaluates all of them in one pass over the
structures, with one model evaluation per structure, through the force-model layer
(:func:`~metatrain_nc.force_models.load_force_model`).
"""

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import ase
import numpy as np

from ..errors import UserInputError


@dataclass
class HeadErrors:
    """Errors of one prediction against the labels.

    :param mae: mean absolute error (meV/atom for energies, meV/A for forces).
    :param rmse: root mean square error, same units.
    :param count: number of compared values (structures, or force components).
    """

    mae: float
    rmse: float
    count: int

    @classmethod
    def from_differences(cls, differences: np.ndarray, scale: float) -> "HeadErrors":
        values = np.asarray(differences, dtype=np.float64).ravel() * scale
        return cls(
            mae=float(np.mean(np.abs(values))),
            rmse=float(np.sqrt(np.mean(values**2))),
            count=int(values.size),
        )


@dataclass
class ModelAccuracy:
    """Errors of one model; heads without force labels are missing from ``forces``.

    :param model: where the model came from (path, ``module:callable``, a repr).
    :param energy: energy errors per atom (meV/atom), ``None`` without energy labels.
    :param forces: force errors (meV/A) per head: ``"conservative"`` and/or
        ``"direct"``; empty without force labels.
    :param heads: names of the force heads evaluated, in evaluation order.
    :param kind: ``"metatomic"`` or ``"ase"``.
    :param labels: structures with an energy label (``"energy"``) and with force
        labels (``"forces"``), out of ``n_structures``.
    """

    model: str
    energy: Optional[HeadErrors]
    forces: Dict[str, HeadErrors] = field(default_factory=dict)
    heads: List[str] = field(default_factory=list)
    kind: str = ""
    n_structures: int = 0
    labels: Dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def count_labels(
    frames: Sequence[ase.Atoms], energy_key: str = "energy", forces_key: str = "forces"
) -> Dict[str, int]:
    """How many structures have an energy label and how many have force labels."""
    counts = {"energy": 0, "forces": 0}
    for atoms in frames:
        energy, forces = _labels(atoms, energy_key, forces_key)
        counts["energy"] += energy is not None
        counts["forces"] += forces is not None
    return counts


def check_labels(
    frames: Sequence[ase.Atoms],
    energy_key: str = "energy",
    forces_key: str = "forces",
    how: str = "energy_key= / forces_key=",
) -> Dict[str, int]:
    """:func:`count_labels`, refusing structures with neither energy nor force labels.

    :param how: how the user names the labels (``--energy-key / --forces-key`` on the
        command line), for the message.
    :raises UserInputError: no structure has a label; the message names the keys
        looked for and the keys the structures have.
    """
    if len(frames) == 0:
        raise UserInputError("no structures to evaluate")
    counts = count_labels(frames, energy_key, forces_key)
    if counts["energy"] or counts["forces"]:
        return counts
    info = sorted({str(k) for atoms in frames for k in atoms.info})
    arrays = sorted(
        {str(k) for atoms in frames for k in atoms.arrays}
        - {"numbers", "positions", "momenta", "masses"}
    )
    raise UserInputError(
        f"the {len(frames)} structure(s) have no labels to compare with: no energy "
        f"'{energy_key}' (per-structure info, or an energy stored with the "
        f"structure) and no forces '{forces_key}' (per-atom array, or forces stored "
        f"with the structure). The structures have info keys {info or 'none'} and "
        f"per-atom arrays {arrays or 'none'}; name the labels with {how}"
    )


def model_accuracy(
    model: Any,
    frames: Sequence[ase.Atoms],
    *,
    energy_key: str = "energy",
    forces_key: str = "forces",
    conservative: Optional[bool] = None,
    direct: bool = False,
    float64: bool = False,
    device: str = "cpu",
) -> ModelAccuracy:
    """Errors of a force model on labelled structures.

    :param model: anything :func:`~metatrain_nc.force_models.load_force_model` takes:
        exported ``model.pt``, metatrain ``.ckpt``, ``module:callable`` returning an
        ASE calculator (``direct:module:callable`` if its forces are direct), an ASE
        calculator, a model object or a loaded
        :class:`~metatrain_nc.force_models.ForceModel`.
    :param frames: structures with reference energies (``info[energy_key]`` or an
        attached single-point calculator, eV) and/or forces (``arrays[forces_key]``,
        eV/A).
    :param energy_key: name of the energy label.
    :param forces_key: name of the forces label.
    :param conservative: report ``-dE/dr`` as a force head. ``None`` (default):
        yes, unless the model is a ``pet_nc`` model (its energy head is not trained
        on forces; see ``ForceModel.trained_heads``).
    :param direct: an ASE calculator's forces are direct (they count as conservative
        otherwise); metatomic models say themselves which heads they have.
    :param float64: evaluate a metatomic model in float64 (its ``.ckpt``, or a
        float64 export).
    :param device: torch device of a metatomic model.
    :return: the errors per head, in meV/atom and meV/A.
    :raises UserInputError: no structures, no labels at all, a non-finite label, a
        structure the model cannot evaluate, or a model that cannot be loaded.
    :raises NonFiniteError: the model returned non-finite values (an error is never
        computed from them).
    """
    from ..force_models.names import CONSERVATIVE, DIRECT
    from ..force_models.specs import load_listed_model

    labels = check_labels(frames, energy_key, forces_key)
    force_model = load_listed_model(
        model, direct=direct, float64=float64, device=device
    )
    if conservative is None:
        heads = list(force_model.trained_heads)
    else:
        heads = [h for h in force_model.heads if h != CONSERVATIVE or conservative]
    for index, atoms in enumerate(frames):
        force_model.check(atoms, f"structure {index}")
    energy_errors: List[float] = []
    differences: Dict[str, List[np.ndarray]] = {}
    for index, atoms in enumerate(frames):
        reference_energy, reference_forces = _labels(atoms, energy_key, forces_key)
        if reference_forces is not None and reference_forces.shape != (len(atoms), 3):
            raise UserInputError(
                f"structure {index}: the '{forces_key}' labels have shape "
                f"{reference_forces.shape}, expected ({len(atoms)}, 3)"
            )
        _check_finite_labels(index, reference_energy, reference_forces, energy_key)
        want = heads if reference_forces is not None else []
        result = force_model.evaluate(
            atoms,
            conservative=CONSERVATIVE in want,
            direct=DIRECT in want,
            where=f"structure {index}",
        )
        if reference_energy is not None:
            energy_errors.append((result.energy - reference_energy) / len(atoms))
        for head in want:
            differences.setdefault(head, []).append(
                result.forces(head) - reference_forces
            )
    return ModelAccuracy(
        model=str(force_model.source),
        energy=HeadErrors.from_differences(np.array(energy_errors), 1000.0)
        if energy_errors
        else None,
        forces={
            head: HeadErrors.from_differences(np.concatenate(values), 1000.0)
            for head, values in differences.items()
        },
        heads=heads,
        kind=force_model.kind,
        n_structures=len(frames),
        labels=labels,
    )


def _check_finite_labels(index, energy, forces, energy_key: str) -> None:
    """Refuse NaN or infinite labels: an error computed from them would be NaN."""
    if energy is not None and not np.isfinite(energy):
        raise UserInputError(
            f"structure {index}: the '{energy_key}' label is {energy}; fix or drop "
            "the structure (no error is computed from a non-finite label)"
        )
    if forces is not None and not np.all(np.isfinite(forces)):
        count = int(forces.size - np.count_nonzero(np.isfinite(forces)))
        raise UserInputError(
            f"structure {index}: {count} force label components are NaN or "
            "infinite; fix or drop the structure (no error is computed from a "
            "non-finite label)"
        )


def has_labels(frames: Sequence[ase.Atoms], energy_key: str, forces_key: str) -> bool:
    """Whether every structure has an energy or force label."""
    labels = (_labels(atoms, energy_key, forces_key) for atoms in frames)
    return all(energy is not None or forces is not None for energy, forces in labels)


def _labels(atoms: ase.Atoms, energy_key: str, forces_key: str):
    """The energy (eV, ``None`` if absent) and forces ((N, 3) eV/A, ``None``) of a
    structure, from its info and arrays or from a stored single-point calculator."""
    energy = atoms.info.get(energy_key)
    forces = atoms.arrays.get(forces_key)
    if atoms.calc is not None:
        results = getattr(atoms.calc, "results", {})
        if energy is None and energy_key == "energy":
            energy = results.get("energy")
        if forces is None and forces_key == "forces":
            forces = results.get("forces")
    return (
        None if energy is None else float(energy),
        None if forces is None else np.asarray(forces, dtype=np.float64),
    )
