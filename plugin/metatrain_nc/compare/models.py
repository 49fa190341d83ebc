"""What each compared model is: its force heads, species and units.

A model has a ``"conservative"`` head (``-dE/dr`` of its ``energy`` output) unless it is
a ``pet_nc`` model, whose energy head is not trained for forces, and a ``"direct"`` head
when it exposes ``non_conservative_force``. The MD force modes follow: conservative,
direct, and ``mts`` for models with both heads.
"""

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import ase.data

from ..errors import UserInputError

DIRECT_FORCE = "non_conservative_force"


@dataclass
class ModelEntry:
    """One model of the comparison.

    :ivar name: label in tables and figures (unique).
    :ivar path: the exported model or checkpoint given by the user.
    :ivar architecture: metatrain architecture from the metadata (``""`` if unknown).
    :ivar heads: force heads, from ``("conservative", "direct")``.
    :ivar atomic_types: atomic numbers the model knows.
    :ivar units: declared units of ``energy`` and of the direct forces.
    """

    name: str
    path: str
    architecture: str = ""
    heads: List[str] = field(default_factory=list)
    atomic_types: List[int] = field(default_factory=list)
    units: Dict[str, str] = field(default_factory=dict)
    outputs: List[str] = field(default_factory=list)

    @property
    def modes(self) -> List[str]:
        """MD force modes this model supports."""
        modes = list(self.heads)
        if "conservative" in self.heads and "direct" in self.heads:
            modes.append("mts")
        return modes

    @property
    def kind(self) -> str:
        """``"conservative"``, ``"direct"`` or ``"hybrid"``."""
        if len(self.heads) == 2:
            return "hybrid"
        return self.heads[0]

    def as_dict(self) -> Dict[str, Any]:
        return {
            "name": self.name,
            "path": self.path,
            "architecture": self.architecture,
            "kind": self.kind,
            "heads": self.heads,
            "md_modes": self.modes,
            "species": [ase.data.chemical_symbols[z] for z in self.atomic_types],
            "units": self.units,
            "outputs": self.outputs,
        }


def describe_model(path: str, name: Optional[str] = None) -> ModelEntry:
    """Load ``path`` (``.pt`` or ``.ckpt``) and describe it.

    :raises UserInputError: missing file, unloadable model, or no force output.
    """
    from ..model_loading import load_exported_model

    if not Path(path).is_file():
        raise UserInputError(f"model file '{path}' does not exist")
    model, _ = load_exported_model(path)
    capabilities = model.capabilities()
    outputs = dict(capabilities.outputs)
    architecture = str(model.metadata().extra.get("architecture", ""))
    if not architecture and str(path).endswith(".ckpt"):
        architecture = checkpoint_architecture(str(path))
    heads = []
    if "energy" in outputs and architecture != "pet_nc":
        heads.append("conservative")
    if DIRECT_FORCE in outputs:
        heads.append("direct")
    if not heads:
        raise UserInputError(
            f"model '{path}' has neither an 'energy' nor a '{DIRECT_FORCE}' output "
            f"(it has {sorted(outputs)}): nothing to compare"
        )
    units = {"length": str(capabilities.length_unit)}
    if "energy" in outputs:
        units["energy"] = str(outputs["energy"].unit)
    if DIRECT_FORCE in outputs:
        units["direct_forces"] = str(outputs[DIRECT_FORCE].unit)
    return ModelEntry(
        name=name or Path(path).stem,
        path=str(path),
        architecture=architecture,
        heads=heads,
        atomic_types=sorted(int(t) for t in capabilities.atomic_types),
        units=units,
        outputs=sorted(outputs),
    )


def checkpoint_architecture(path: str) -> str:
    """The ``architecture_name`` a metatrain checkpoint records (``""`` if none)."""
    import metatomic.torch  # noqa: F401  (classes stored in the checkpoint)
    import torch

    try:
        checkpoint = torch.load(path, weights_only=False, map_location="cpu")
    except Exception:
        return ""
    if not isinstance(checkpoint, dict):
        return ""
    return str(checkpoint.get("architecture_name", ""))


def unique_names(paths: Sequence[str], names: Optional[Sequence[str]]) -> List[str]:
    """Labels for the models: the user's, else file stems made unique."""
    if names:
        if len(names) != len(paths):
            raise UserInputError(
                f"--names has {len(names)} entries for {len(paths)} models"
            )
        if len(set(names)) != len(names):
            raise UserInputError(f"--names must be unique, got {list(names)}")
        return list(names)
    labels: List[str] = []
    for path in paths:
        stem = Path(os.fspath(path)).stem
        label, k = stem, 2
        while label in labels:
            label, k = f"{stem}-{k}", k + 1
        labels.append(label)
    return labels


def compatibility_notes(
    entries: Sequence[ModelEntry], species: Sequence[int]
) -> List[str]:
    """Notes on models that differ in units or species (for the report's header).

    :param species: atomic numbers present in the test structures.
    """
    notes = []
    energy_units = {e.name: e.units.get("energy", "") for e in entries}
    if len(set(energy_units.values())) > 1:
        listed = ", ".join(f"{k}: {v or 'none'}" for k, v in energy_units.items())
        notes.append(
            f"The models declare different energy units ({listed}); every number "
            "in this report is converted to eV and Angstrom."
        )
    needed = set(int(z) for z in species)
    for entry in entries:
        missing = sorted(needed - set(entry.atomic_types))
        if missing:
            symbols = [ase.data.chemical_symbols[z] for z in missing]
            notes.append(
                f"Model '{entry.name}' does not know species {symbols} of the test "
                "structures: its sections are skipped."
            )
    return notes
