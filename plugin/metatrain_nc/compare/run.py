"""``compare()``: the engine of ``mtt-nc compare``, both protocols.

Models are loaded once through the force-model layer: exported models, checkpoints
and ASE calculators side by side. Everything the user gave is checked before any work
(models, structures, output folder); then the protocol's units run through the
resumable unit store (:mod:`.store`), each on its own: a failure there is recorded in
the report and the other units go on; ``--resume`` continues a folder from the units
that finished.

The standard protocol's unit is a stage of one model (:mod:`.stages`; a section a
model cannot give is skipped with a note); the report is written at the end. The
paper protocol's units are NVT runs and sets of relaxations (:mod:`.paper`); its
report is rewritten after every unit.
"""

import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import ase
import ase.data

from ..errors import UserInputError
from ..files import clean_json, read_structure, read_structures, write_json
from .models import ModelEntry, compatibility_notes, describe_model, unique_names
from .settings import STAGES, CompareSettings
from .store import UnitStore, check_target, error_message, run_units, unit_id


@dataclass
class Job:
    """What a protocol works on: the loaded models and structures, its settings."""

    entries: List[ModelEntry]
    frames: List[ase.Atoms]
    md_atoms: ase.Atoms
    settings: CompareSettings
    species: List[int]
    structures: str
    md_source: str
    md_index: int
    energy_key: str = "energy"
    forces_key: str = "forces"
    device: str = "cpu"
    quick: bool = False


def versions() -> Dict[str, str]:
    from importlib.metadata import version

    out = {"python": platform.python_version()}
    for package in ("metatrain-nc", "metatrain", "torch", "metatomic-torch", "ase"):
        try:
            out[package] = version(package)
        except Exception:
            out[package] = "unknown"
    return out


def missing_species(entry: ModelEntry, species: Sequence[int]) -> Optional[str]:
    if entry.atomic_types is None:  # an ASE calculator: any species
        return None
    missing = sorted(set(int(z) for z in species) - set(entry.atomic_types))
    if not missing:
        return None
    symbols = [ase.data.chemical_symbols[z] for z in missing]
    known = [ase.data.chemical_symbols[z] for z in entry.atomic_types]
    return (
        f"model '{entry.name}' does not know species {symbols} of the structures "
        f"(it knows {known}); compare models trained on these species"
    )


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
    species = sorted(
        {int(z) for a in frames for z in a.numbers} | set(md_atoms.numbers)
    )
    for entry in entries if paper else ():
        if message := missing_species(entry, species):
            raise UserInputError(message)
    job = Job(
        entries,
        frames,
        md_atoms,
        settings,
        species,
        os.fspath(structures),
        os.fspath(md_structure or structures),
        md_index,
        energy_key,
        forces_key,
        device,
        quick,
    )
    protocol = {
        "models": {
            e.name: os.fspath(m) if isinstance(m, (str, os.PathLike)) else repr(m)
            for e, m in zip(entries, models, strict=False)
        },
        "structures": job.structures,
        "md_structure": [job.md_source, md_index],
        "settings": settings.as_dict(),
    }
    if not paper:
        protocol.update(pairs=[str(p) for p in pairs], labels=[energy_key, forces_key])
    start = time.perf_counter()
    store = UnitStore(outdir, protocol, resume, force)
    try:
        if paper:
            from .paper.protocol import run_paper

            result = run_paper(job, store, progress=progress, log=log)
        else:
            result = run_standard(job, store, progress=progress, log=log, start=start)
    except BaseException:
        store.close(done=False)
        raise
    store.close(done=True)
    return result


def _export_checkpoints(entries: Sequence[ModelEntry], folder: Path) -> None:
    """Save the exports of ``.ckpt`` models into ``folder/models/`` (in the dtype they
    are evaluated in), for use with other tools."""
    for entry in entries:
        if entry.is_pair:  # its teacher is exported as a model of its own, if listed
            continue
        if entry.model_kind == "metatomic" and entry.path.endswith(".ckpt"):
            (folder / "models").mkdir(exist_ok=True)
            target = folder / "models" / f"{entry.name}.pt"
            entry.model.model.save(str(target))
            entry.path = str(target)


def stage_functions(job: Job, path: Path, accuracy_note: Optional[str]):
    """``stage -> function(entry)`` of the standard protocol."""
    from .stages import (
        accuracy_stage,
        antisymmetry_stage,
        cost_stage,
        md_stage,
        relax_stage,
    )

    s, frames, md_atoms = job.settings, job.frames, job.md_atoms

    def accuracy(entry):
        if accuracy_note:
            return {"skipped": accuracy_note}
        return accuracy_stage(entry, frames, s, job.energy_key, job.forces_key)

    return {
        "accuracy": accuracy,
        "cost": lambda e: cost_stage(e, md_atoms, s),
        "antisymmetry": lambda e: antisymmetry_stage(
            e, frames, s, path / "antisymmetry"
        ),
        "nve": lambda e: md_stage(e, md_atoms, s, path / "md", "nve"),
        "nvt": lambda e: md_stage(e, md_atoms, s, path / "md", "svr"),
        "relax": lambda e: relax_stage(e, frames, s),
    }


def run_standard(
    job: Job,
    store: UnitStore,
    *,
    progress: bool,
    log: Callable[[str], None],
    start: float,
) -> Dict[str, Any]:
    """The standard protocol: one unit per stage and model, then the report."""
    from .pairs import PAIR_STAGES
    from .report import write_report
    from .stages import SkippedStage, add_cost_ratios, has_labels

    path, settings, entries = store.path, job.settings, job.entries
    data: Dict[str, Any] = {
        "versions": versions(),
        "quick": job.quick,
        "settings": settings.as_dict(),
        "structures": {"path": job.structures, "count": len(job.frames)},
        "md_structure": {
            "path": job.md_source,
            "index": job.md_index,
            "n_atoms": len(job.md_atoms),
            "formula": job.md_atoms.get_chemical_formula(),
            "periodic": bool(job.md_atoms.pbc.all()),
        },
        "notes": compatibility_notes(entries, job.species),
        "models": {e.name: {"info": e.as_dict()} for e in entries},
    }
    _export_checkpoints(entries, path)
    for entry in entries:  # where a checkpoint's export is, in the report folder
        if entry.path != data["models"][entry.name]["info"]["path"]:
            export = str(Path(entry.path).relative_to(path))
            data["models"][entry.name]["info"]["export"] = export
    if not has_labels(job.frames, job.energy_key, job.forces_key):
        data["accuracy_note"] = (
            f"The test structures have no '{job.energy_key}'/'{job.forces_key}' "
            "labels: the accuracy section is skipped; every other section ran."
        )
    functions = stage_functions(job, path, data.get("accuracy_note"))

    def unit(entry: ModelEntry, stage: str) -> Dict[str, Any]:
        record: Dict[str, Any] = {"model": entry.name, "stage": stage}
        try:
            record["result"] = functions[stage](entry)
        except SkippedStage as skipped:
            record["skipped"] = str(skipped)
            log(f"[compare] {entry.name} / {stage} skipped: {skipped}")
        return record

    missing = {e.name: missing_species(e, job.species) for e in entries}
    plan = [
        (stage, entry)
        for stage in settings.stages
        for entry in entries
        if stage in (PAIR_STAGES if entry.is_pair else STAGES)
    ]
    units = [
        (unit_id(stage, e.name), lambda e=e, s=stage: unit(e, s))
        for stage, e in plan
        if not missing[e.name]
    ]
    for name, message in missing.items():
        if message:
            log(f"[compare] {name}: {message}")
    failed = dict(run_units(units, store, progress=progress, log=log))
    failures: List[str] = []
    for stage, entry in plan:
        uid, section = unit_id(stage, entry.name), data["models"][entry.name]
        done = not missing[entry.name] and uid not in failed
        record = store.load(uid) if done else None
        if record is None:
            message = missing[entry.name] or error_message(failed[uid])
            section[stage] = {"error": message}
            failures.append(f"{entry.name} / {stage}: {message}")
        elif "skipped" in record:
            section.setdefault("skipped", {})[stage] = record["skipped"]
            data["notes"].append(
                f"The {stage} section of '{entry.name}' is skipped: "
                f"{record['skipped']}."
            )
        else:
            section[stage] = record["result"]
    costs = {n: m["cost"] for n, m in data["models"].items() if "cost" in m}
    data["cost_reference"] = add_cost_ratios(costs, entries)
    data["elapsed_s"] = time.perf_counter() - start
    data["failures"] = failures
    data = clean_json(data)
    figures = write_report(data, path)
    data["figures"] = {k: v for k, v in figures.items() if v}
    data["files"] = {
        "report_markdown": "report.md",
        "report_html": "report.html",
        "chemiscope": sorted(str(p.relative_to(path)) for p in path.rglob("*.json.gz")),
    }
    write_json(path / "report.json", data)
    data["output_dir"] = str(path)
    return data
