"""What each compared model is: its kind, force heads, species and units.

Every model goes through the force-model layer
(:func:`~metatrain_nc.force_models.load_force_model`): exported metatomic models
(``.pt``), metatrain checkpoints (``.ckpt``) and ASE calculators side by side. A model
has a ``"conservative"`` head (``-dE/dr``) unless it is a ``pet_nc`` model (its energy
head is not trained for forces) or an ASE calculator declared direct, and a
``"direct"`` head when it has direct forces; its MD force modes follow (``mts`` with
both heads). A *pair* (``--pair SLOW+FAST``, :mod:`.pairs`) is an entry of kind
``"pair"``.
"""

import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import ase.data

from ..errors import UserInputError


@dataclass
class ModelEntry:
    """One model of the comparison.

    :ivar name: label in tables and figures (unique).
    :ivar path: what the user gave (path, ``module:callable``) or the model's source;
        a checkpoint's is replaced by its export in the report folder.
    :ivar architecture: metatrain architecture from the metadata (``""`` if unknown),
        or the class of an ASE calculator.
    :ivar heads: force heads, from ``("conservative", "direct")``.
    :ivar model: the loaded :class:`~metatrain_nc.force_models.ForceModel`, used by
        every stage; its kind (``"metatomic"`` or ``"ase"``), atomic types (``None``:
        any) and declared units are the entry's.
    """

    name: str
    path: str
    architecture: str = ""
    heads: List[str] = field(default_factory=list)
    model: Any = field(default=None, repr=False, compare=False)
    #: a pair only: the fast (inner-step) model, what the user named it, its label
    fast: Any = field(default=None, repr=False, compare=False)
    fast_path: Optional[str] = None
    fast_name: Optional[str] = None
    slow_name: Optional[str] = None
    #: what the report's header says about this entry (a pair's cutoff mismatch)
    notes: List[str] = field(default_factory=list)

    @property
    def model_kind(self) -> str:
        return self.model.kind

    @property
    def is_pair(self) -> bool:
        """A teacher (``model``) with a separate fast model for MTS inner steps."""
        return self.fast is not None

    @property
    def modes(self) -> List[str]:
        """MD force modes this model supports."""
        if self.is_pair:
            return ["mts"]
        modes = list(self.heads)
        if "conservative" in self.heads and "direct" in self.heads:
            modes.append("mts")
        return modes

    @property
    def kind(self) -> str:
        """``"conservative"``, ``"direct"``, ``"hybrid"`` or ``"pair"``."""
        if self.is_pair:
            return "pair"
        if len(self.heads) == 2:
            return "hybrid"
        return self.heads[0]

    def reset_counters(self) -> None:
        """Zero the model's forward/backward counts (each MD run reports its own)."""
        for model in (self.model, self.fast):
            if model is not None:
                model.n_forward = 0
                model.n_backward = 0

    def as_dict(self) -> Dict[str, Any]:
        species = (
            ["any"]
            if self.model.atomic_types is None
            else [ase.data.chemical_symbols[z] for z in self.model.atomic_types]
        )
        return {
            "name": self.name,
            "path": self.path,
            "model_kind": self.model_kind,
            "architecture": self.architecture,
            "kind": self.kind,
            "heads": self.heads,
            "md_modes": self.modes,
            "species": species,
            "units": self.model.units,
            "outputs": getattr(self.model, "outputs", []),
            "dtype": getattr(self.model, "dtype", None),
        } | (
            {
                "slow": self.slow_name,
                "fast": self.fast_name,
                "fast_path": self.fast_path,
                "fast_architecture": getattr(self.fast, "architecture", ""),
            }
            if self.is_pair
            else {}
        )


def describe_model(
    model: Any,
    name: Optional[str] = None,
    *,
    direct: bool = False,
    float64: bool = False,
    device: str = "cpu",
) -> ModelEntry:
    """Load ``model`` through the force-model layer and describe it.

    :param model: ``.pt`` or ``.ckpt`` path, ``[direct:]module:callable``, an ASE
        calculator, a model object or a :class:`~metatrain_nc.force_models.ForceModel`.
    :param name: label (default: from the file name or ``module.callable``).
    :param direct: every ASE calculator's forces are direct (``--direct``).
    :param float64: evaluate metatomic models in float64.
    :raises UserInputError: missing file, unloadable model, or no force output (the
        force-model layer refuses it).
    """
    from ..force_models.specs import load_listed_model, model_label

    force_model = load_listed_model(
        model, direct=direct, float64=float64, device=device
    )
    source = os.fspath(model) if isinstance(model, (str, os.PathLike)) else ""
    kind = "" if force_model.kind == "metatomic" else " (ASE calculator)"
    return ModelEntry(
        name=name or model_label(model),
        path=source or str(force_model.source),
        architecture=force_model.architecture + kind,
        heads=list(force_model.trained_heads),
        model=force_model,
    )


def unique_names(models: Sequence[Any], names: Optional[Sequence[str]]) -> List[str]:
    """Labels for the models: the user's, else file stems (``module.callable`` for
    an ASE calculator) made unique."""
    from ..force_models.specs import model_label

    if names:
        if len(names) != len(models):
            raise UserInputError(
                f"--names has {len(names)} entries for {len(models)} models"
            )
        if len(set(names)) != len(names):
            raise UserInputError(f"--names must be unique, got {list(names)}")
        return list(names)
    labels: List[str] = []
    for model in models:
        labels.append(unique_label(model_label(model), labels))
    return labels


def unique_label(stem: str, taken: Sequence[str]) -> str:
    """``stem``, else ``stem-2``, ``stem-3``, ...: the first not in ``taken``."""
    label, k = stem, 2
    while label in taken:
        label, k = f"{stem}-{k}", k + 1
    return label


def missing_species(entry: ModelEntry, species: Sequence[int]) -> Optional[str]:
    """Why ``entry`` cannot run on structures of the atomic numbers ``species``
    (``None``: it can; an ASE calculator takes any species)."""
    known = entry.model.atomic_types
    missing = [] if known is None else sorted({int(z) for z in species} - set(known))
    if not missing:
        return None
    symbols = [ase.data.chemical_symbols[z] for z in missing]
    return (
        f"model '{entry.name}' does not know species {symbols} of the structures "
        f"(it knows {[ase.data.chemical_symbols[z] for z in known]})"
    )


def compatibility_notes(
    entries: Sequence[ModelEntry], species: Sequence[int]
) -> List[str]:
    """Notes on models that differ in units or species (for the report's header).

    :param species: atomic numbers present in the test structures.
    """
    notes = [note for e in entries for note in e.notes]
    entries = [e for e in entries if not e.is_pair]
    energy_units = {e.name: e.model.units.get("energy", "") for e in entries}
    if len(set(energy_units.values())) > 1:
        listed = ", ".join(f"{k}: {v or 'none'}" for k, v in energy_units.items())
        notes.append(
            f"The models declare different energy units ({listed}); every number "
            "in this report is converted to eV and Angstrom."
        )
    for entry in entries:
        if message := missing_species(entry, species):
            notes.append(f"M{message[1:]}: its sections are skipped.")
    return notes
