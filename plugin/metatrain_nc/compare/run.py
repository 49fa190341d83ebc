"""``compare()``: every stage for every model, one report (the engine of
``mtt-nc compare``).

Models are loaded once through the force-model layer: exported models, checkpoints
and ASE calculators side by side. Everything the user gave is checked before any work
(models, structures, output folder); then each (stage, model) runs on its own: a
failure there is recorded in the report (``{"error": ...}``) and the other sections go
on. A section a model cannot give (lambda of an ASE calculator on a structure too
large for a finite-difference Jacobian) is skipped with a note. The report is
written into a hidden staging folder renamed at the end, so an interrupted run leaves
nothing behind and an existing folder is only replaced with ``force``.
"""

import os
import platform
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

from ..errors import UserInputError
from ..files import (
    StagedFolder,
    check_outdir,
    clean_json,
    read_structure,
    read_structures,
    write_json,
)
from .models import (
    ModelEntry,
    add_pairs,
    compatibility_notes,
    describe_model,
    unique_names,
)
from .settings import CompareSettings


def _versions() -> Dict[str, str]:
    from importlib.metadata import version

    out = {"python": platform.python_version()}
    for package in ("metatrain-nc", "metatrain", "torch", "metatomic-torch", "ase"):
        try:
            out[package] = version(package)
        except Exception:
            out[package] = "unknown"
    return out


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


class SkippedStage(Exception):
    """A section a model cannot give: recorded as a note, not as a failure."""


def _antisymmetry(entry: ModelEntry, frames, settings: CompareSettings, folder: Path):
    """The antisymmetry stage on the loaded model (its dtype, and an ASE calculator's
    direct/conservative declaration, go with it). An ASE calculator has no autograd:
    its Jacobian comes from finite differences, exact lambda only, so a structure
    beyond ``max_exact_rows`` skips the section."""
    from .stages import antisymmetry_stage

    if not entry.differentiable:
        for index, atoms in enumerate(frames[: settings.lambda_structures]):
            if 3 * len(atoms) > settings.max_exact_rows:
                raise SkippedStage(
                    "the Jacobian of an ASE calculator comes from finite differences "
                    "of its forces: exact lambda only (the stochastic estimator needs "
                    f"J^T v), and structure {index} has 3N = {3 * len(atoms)} rows, "
                    f"more than max_exact_rows = {settings.max_exact_rows}"
                )
    return antisymmetry_stage(entry, frames, settings, folder)


def _missing_species(entry: ModelEntry, species: Sequence[int]) -> Optional[str]:
    import ase.data

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
    :param outdir: new output folder (replaced only with ``force``).
    :param settings: what to run (default :class:`CompareSettings`, or its quick form
        with ``quick``).
    :param names: labels of the models (default: file names, ``module.callable``).
    :param md_structure: start of the MD runs (default: ``structures``), frame
        ``md_index``; its momenta are used when present.
    :param direct: every ASE calculator's forces are direct (``--direct``).
    :param device: torch device of the metatomic models (``settings.float64``
        chooses their precision).
    :param pairs: teacher-student pairs for multiple time stepping, each
        ``"SLOW+FAST"`` or ``(slow, fast)`` (a side may name a compared model): one
        more entry each, in the cost, NVE and NVT sections (see :mod:`.pairs`).
    :return: the content of ``report.json`` plus ``output_dir`` and ``failures``.
    """
    if settings is None:
        settings = CompareSettings.quick() if quick else CompareSettings()
    settings.check()
    if not models:
        raise UserInputError("no models to compare")
    labels = unique_names(list(models), names)
    frames = read_structures(structures)
    md_atoms = read_structure(md_structure or structures, md_index)
    check_outdir(outdir, force)
    entries = [
        describe_model(m, n, direct=direct, float64=settings.float64, device=device)
        for m, n in zip(models, labels, strict=True)
    ]
    load = dict(direct=direct, float64=settings.float64, device=device)
    entries = add_pairs(entries, pairs, md_atoms, **load)
    species = sorted(
        {int(z) for a in frames for z in a.numbers} | set(md_atoms.numbers)
    )

    start = time.perf_counter()
    with StagedFolder(outdir, force) as folder:
        return _run(
            entries,
            frames,
            md_atoms,
            settings,
            folder,
            species=species,
            structures=os.fspath(structures),
            md_source=os.fspath(md_structure or structures),
            md_index=md_index,
            energy_key=energy_key,
            forces_key=forces_key,
            quick=quick,
            progress=progress,
            log=log,
            start=start,
        )


def _run(
    entries: List[ModelEntry],
    frames,
    md_atoms,
    settings: CompareSettings,
    folder: StagedFolder,
    *,
    species,
    structures: str,
    md_source: str,
    md_index: int,
    energy_key: str,
    forces_key: str,
    quick: bool,
    progress: bool,
    log: Callable[[str], None],
    start: float,
) -> Dict[str, Any]:
    from tqdm.auto import tqdm

    from .pairs import pair_stage_functions
    from .report import write_report
    from .stages import (
        accuracy_stage,
        add_cost_ratios,
        cost_stage,
        has_labels,
        md_stage,
        relax_stage,
    )

    path = folder.path
    data: Dict[str, Any] = {
        "versions": _versions(),
        "quick": quick,
        "settings": settings.as_dict(),
        "structures": {"path": structures, "count": len(frames)},
        "md_structure": {
            "path": md_source,
            "index": md_index,
            "n_atoms": len(md_atoms),
            "formula": md_atoms.get_chemical_formula(),
            "periodic": bool(md_atoms.pbc.all()),
        },
        "notes": compatibility_notes(entries, species),
        "models": {e.name: {"info": e.as_dict()} for e in entries},
    }
    _export_checkpoints(entries, path)
    for entry in entries:  # where a checkpoint's export is, in the report folder
        if entry.path != data["models"][entry.name]["info"]["path"]:
            export = str(Path(entry.path).relative_to(path))
            data["models"][entry.name]["info"]["export"] = export
    labelled = has_labels(frames, energy_key, forces_key)
    if not labelled:
        data["accuracy_note"] = (
            f"The test structures have no '{energy_key}'/'{forces_key}' labels: the "
            "accuracy section is skipped; every other section ran."
        )

    def run_accuracy(entry):
        if not labelled:
            return {"skipped": data["accuracy_note"]}
        return accuracy_stage(entry, frames, settings, energy_key, forces_key)

    stage_functions = {
        "accuracy": run_accuracy,
        "cost": lambda e: cost_stage(e, md_atoms, settings),
        "antisymmetry": lambda e: _antisymmetry(
            e, frames, settings, path / "antisymmetry"
        ),
        "nve": lambda e: md_stage(e, md_atoms, settings, path / "md", "nve"),
        "nvt": lambda e: md_stage(e, md_atoms, settings, path / "md", "svr"),
        "relax": lambda e: relax_stage(e, frames, settings),
    }
    pair_functions = pair_stage_functions(md_atoms, settings, path)
    failures: List[str] = []
    missing = {e.name: _missing_species(e, species) for e in entries}
    bar = tqdm(
        total=len(settings.stages) * len(entries),
        desc="compare",
        unit="section",
        disable=not progress,
    )
    for stage in settings.stages:
        for entry in entries:
            functions = pair_functions if entry.is_pair else stage_functions
            if stage not in functions:  # a pair has no heads of its own to test
                bar.update()
                continue
            bar.set_postfix_str(f"{stage}: {entry.name}")
            section = data["models"][entry.name]
            try:
                if missing[entry.name]:
                    raise UserInputError(missing[entry.name])
                section[stage] = functions[stage](entry)
            except SkippedStage as skipped:
                section.setdefault("skipped", {})[stage] = str(skipped)
                data["notes"].append(
                    f"The {stage} section of '{entry.name}' is skipped: {skipped}."
                )
                log(f"[compare] {entry.name} / {stage} skipped: {skipped}")
            except Exception as error:  # one section must not lose the others
                message = str(error) or type(error).__name__
                if not isinstance(error, UserInputError):
                    message = f"{type(error).__name__}: {message}"
                section[stage] = {"error": message}
                failures.append(f"{entry.name} / {stage}: {message}")
                if not missing[entry.name] or stage == settings.stages[0]:
                    log(f"[compare] {entry.name} / {stage} failed: {message}")
            bar.update()
    bar.close()
    costs = {
        e.name: data["models"][e.name]["cost"]
        for e in entries
        if "cost" in data["models"][e.name]
    }
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
    data["output_dir"] = str(folder.commit())
    return data
