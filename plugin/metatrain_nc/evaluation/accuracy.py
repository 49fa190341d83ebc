"""Energy and force errors of an exported model, for each of its force heads.

A ``pet_m`` model has two force heads (conservative ``-dE/dr`` and direct
``non_conservative_force``), a ``pet_nc`` model one that matters (direct; its
energy head is never trained on forces, so its gradient is not reported as the
model's forces), a conservative model one. :func:`model_accuracy` evaluates all of
them in one pass over the structures, with one model evaluation per structure.
"""

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import ase
import numpy as np

from ..errors import UserInputError

DIRECT_FORCES = "non_conservative_force"


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
    """Errors of one model; heads absent from the model are missing from the dicts.

    :param model: path of the exported model.
    :param energy: energy errors per atom (meV/atom), ``None`` without labels.
    :param forces: force errors (meV/A) per head: ``"conservative"`` and/or
        ``"direct"``.
    :param heads: names of the force heads the model has, in evaluation order.
    """

    model: str
    energy: Optional[HeadErrors]
    forces: Dict[str, HeadErrors] = field(default_factory=dict)
    heads: List[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def _model_outputs(path: Path) -> Dict[str, object]:
    from metatomic.torch import load_atomistic_model

    return dict(load_atomistic_model(str(path)).capabilities().outputs)


def model_accuracy(
    model: str,
    frames: Sequence[ase.Atoms],
    *,
    energy_key: str = "energy",
    forces_key: str = "forces",
    conservative: Optional[bool] = None,
) -> ModelAccuracy:
    """Errors of an exported metatomic model on labelled structures.

    :param model: path to an exported ``model.pt``.
    :param frames: structures with reference energies (``info[energy_key]`` or an
        attached single-point calculator, eV) and forces (``arrays[forces_key]``,
        eV/A).
    :param energy_key: name of the energy label.
    :param forces_key: name of the forces label.
    :param conservative: report ``-dE/dr`` as a force head. ``None`` (default):
        yes, unless the model is a ``pet_nc`` model (recognised by the
        ``extra["architecture"]`` entry of its metadata).
    :return: the errors per head, in meV/atom and meV/A.
    """
    import torch
    from metatomic.torch import ModelOutput
    from metatomic_ase import MetatomicCalculator

    path = Path(model)
    if not path.is_file():
        raise UserInputError(f"model file '{model}' does not exist")
    if len(frames) == 0:
        raise UserInputError("no structures to evaluate")
    outputs = _model_outputs(path)
    if "energy" not in outputs:
        raise UserInputError(
            f"'{model}' has no 'energy' output (it has {sorted(outputs)})"
        )
    has_direct = DIRECT_FORCES in outputs
    if conservative is None:
        conservative = not _is_pet_nc(path)
    additional = (
        {DIRECT_FORCES: ModelOutput(unit="eV/A", sample_kind="atom")}
        if has_direct
        else {}
    )
    calculator = MetatomicCalculator(
        str(path),
        additional_outputs=additional,
        device="cpu",
        non_conservative=False,
    )
    energy_errors: List[float] = []
    differences: Dict[str, List[np.ndarray]] = {}
    heads = (["conservative"] if conservative else []) + (
        ["direct"] if has_direct else []
    )
    for atoms in frames:
        reference_energy, reference_forces = _labels(atoms, energy_key, forces_key)
        work = atoms.copy()
        work.calc = calculator
        # metatomic's calculator symmetrises a NaN stress for non-periodic systems
        with np.errstate(invalid="ignore"):
            if conservative:
                predicted = work.get_forces()
            energy = work.get_potential_energy()
        if reference_energy is not None:
            energy_errors.append((energy - reference_energy) / len(atoms))
        if reference_forces is None:
            continue
        if conservative:
            differences.setdefault("conservative", []).append(
                predicted - reference_forces
            )
        if has_direct:
            direct = calculator.additional_outputs[DIRECT_FORCES].block().values
            direct = direct.detach().to(torch.float64).reshape(-1, 3).numpy()
            differences.setdefault("direct", []).append(direct - reference_forces)
    return ModelAccuracy(
        model=str(path),
        energy=HeadErrors.from_differences(np.array(energy_errors), 1000.0)
        if energy_errors
        else None,
        forces={
            head: HeadErrors.from_differences(np.concatenate(values), 1000.0)
            for head, values in differences.items()
        },
        heads=heads,
    )


def _labels(atoms: ase.Atoms, energy_key: str, forces_key: str):
    energy = atoms.info.get(energy_key)
    forces = atoms.arrays.get(forces_key)
    if atoms.calc is not None:
        results = getattr(atoms.calc, "results", {})
        if energy is None and energy_key == "energy":
            energy = results.get("energy")
        if forces is None and forces_key == "forces":
            forces = results.get("forces")
    return energy, None if forces is None else np.asarray(forces, dtype=np.float64)


def _is_pet_nc(path: Path) -> bool:
    """Whether an exported model is a ``pet_nc`` model (from its metadata)."""
    from metatomic.torch import load_atomistic_model

    metadata = load_atomistic_model(str(path)).metadata()
    return metadata.extra.get("architecture", "") == "pet_nc"
