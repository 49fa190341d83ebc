"""``compare()``: the engine of ``mtt-nc compare``, both protocols.

Models are loaded once through the force-model layer: exported models, checkpoints
and ASE calculators side by side. Everything the user gave is checked before any work
(models, structures, output folder); then the protocol's units (:mod:`.stages`: a stage
of one model each, or the paper protocol's NVT runs and sets of relaxations) run in
the resumable unit store (:func:`.store.run_units`).
"""

import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import ase

from ..errors import UserInputError
from ..files import read_structure, read_structures
from ..unit_store import UnitStore, check_target, unit_id
from .models import ModelEntry, describe_model, missing_species, unique_names
from .settings import CompareSettings

#: settings that may change between the parts of one comparison (units are keyed by
#: them, or only the report uses them); every other setting must stay the same
RESUMABLE_SETTINGS = ("parts", "stages", "thermostats", "modes", "sigma")
#: settings a folder made before they existed ran with
LEGACY_SETTINGS = {"equilibration_thermostat": "same"}


@dataclass
class Job:
    """What a protocol works on: the loaded models and structures, its settings."""

    entries: List[ModelEntry]
    frames: List[ase.Atoms]
    md_atoms: ase.Atoms
    settings: CompareSettings
    species: List[int]
    #: what both protocols' results begin with: versions, settings, the structures
    header: Dict[str, Any]
    energy_key: str = "energy"
    forces_key: str = "forces"
    device: str = "cpu"
    quick: bool = False
    #: when the comparison started (``time.perf_counter()``)
    start: float = field(default_factory=time.perf_counter)


def versions() -> Dict[str, str]:
    from importlib.metadata import version

    out = {"python": platform.python_version()}
    for package in ("metatrain-nc", "metatrain", "torch", "metatomic-torch", "ase"):
        try:
            out[package] = version(package)
        except Exception:
            out[package] = "unknown"
    return out


def compare(
    models: Sequence[Any],
    structures: Union[str, os.PathLike],
    outdir: Union[str, os.PathLike],
    settings: Optional[CompareSettings] = None,
    *,
    names: Optional[Sequence[str]] = None,
    md_structure: Optional[Union[str, os.PathLike]] = None,
    md_index: int = 0,
    energy_key: str = "energy",
    forces_key: str = "forces",
    force: bool = False,
    resume: bool = False,
    quick: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
    direct: bool = False,
    device: str = "cpu",
    pairs: Sequence[Any] = (),
) -> Dict[str, Any]:
    """Compare force models on test structures; write the report into ``outdir``.

    :param models: exported models (``.pt``), metatrain checkpoints (``.ckpt``), ASE
        calculators (``"module:callable"``, ``"direct:module:callable"`` when its
        forces are direct, or a ``Calculator`` object) or loaded
        :class:`~metatrain_nc.force_models.ForceModel` objects, in any mix.
    :param structures: labelled test structures (any file ASE reads; energies in eV,
        forces in eV/A); the first ones are used for lambda and relaxations.
    :param outdir: new output folder (replaced with ``force``, continued with
        ``resume``: same models, structures and settings, other stages allowed).
    :param settings: what to run (default: the standard protocol, or its quick
        form with ``quick``; :meth:`CompareSettings.paper` for the paper's).
    :param names: labels of the models (default: file names, ``module.callable``).
    :param md_structure: start of the MD runs (default: ``structures``), frame
        ``md_index``; its momenta are used when present.
    :param direct: every ASE calculator's forces are direct (``--direct``).
    :param device: torch device of the metatomic models (``settings.float64``
        chooses their precision).
    :param pairs: teacher-student pairs for multiple time stepping (standard
        protocol), each ``"SLOW+FAST"`` or ``(slow, fast)`` (a side may name a
        compared model): one more entry each, in the cost, NVE and NVT sections.
    :return: the content of ``report.json`` plus ``output_dir`` and ``failures``.
    """
    from .pairs import add_pairs
    from .stages import run_protocol

    settings = settings or CompareSettings.preset("standard", quick)
    settings.check()
    paper = settings.protocol == "paper"
    if paper and pairs:
        raise UserInputError(
            "--pair adds a teacher-student row to the standard comparison; the "
            "paper protocol compares the listed models only: drop --pair or "
            "--protocol paper"
        )
    if not models:
        raise UserInputError("no models to compare")
    labels = unique_names(list(models), names)
    frames = read_structures(structures)
    md_atoms = read_structure(md_structure or structures, md_index)
    outdir = Path(outdir)
    check_target(outdir, resume, force)
    load = dict(direct=direct, float64=settings.float64, device=device)
    entries = [
        describe_model(m, n, **load) for m, n in zip(models, labels, strict=True)
    ]
    entries = add_pairs(entries, pairs, md_atoms, **load)
    ids = [unit_id(e.name) for e in entries]
    if len(set(ids)) < len(ids):
        raise UserInputError(
            f"the model labels {[e.name for e in entries]} name their units "
            f"{ids} in the output folder: give labels that differ in letters or "
            "digits (--names)"
        )
    if settings.modes and not any(settings.run_modes(e.modes) for e in entries):
        raise UserInputError(
            f"--modes {','.join(settings.modes)}: no model has these force modes "
            f"(theirs: {', '.join(f'{e.name} {e.modes}' for e in entries)})"
        )
    species = sorted(
        {int(z) for a in frames for z in a.numbers} | set(md_atoms.numbers)
    )
    for entry in entries if paper else ():
        if message := missing_species(entry, species):
            raise UserInputError(f"{message}: compare models trained on them")
    header = {
        "versions": versions(),
        "settings": settings.as_dict(),
        "structures": {"path": os.fspath(structures), "count": len(frames)},
        "md_structure": {
            "path": os.fspath(md_structure or structures),
            "index": md_index,
            "n_atoms": len(md_atoms),
            "formula": md_atoms.get_chemical_formula(),
            "periodic": bool(md_atoms.pbc.all()),
        },
    }
    keys = dict(energy_key=energy_key, forces_key=forces_key)
    given = dict(keys, device=device, quick=quick)
    job = Job(entries, frames, md_atoms, settings, species, header, **given)
    protocol = {
        "models": {
            e.name: os.fspath(m) if isinstance(m, (str, os.PathLike)) else repr(m)
            for e, m in zip(entries, models, strict=False)
        },
        "structures": header["structures"]["path"],
        "md_structure": [header["md_structure"]["path"], md_index],
        "settings": header["settings"],
    }
    if not paper:
        protocol.update(pairs=[str(p) for p in pairs], labels=[energy_key, forces_key])
    options = dict(resumable=RESUMABLE_SETTINGS, legacy=LEGACY_SETTINGS)
    with UnitStore(outdir, protocol, resume, force, **options) as store:
        return run_protocol(job, store, progress=progress, log=log)
