"""The units of both protocols in the resumable store (:mod:`.store`), then the
report: :func:`run_protocol`.

Standard protocol: a unit per stage and model; each stage function returns a
JSON-ready dictionary for ``report.json`` and writes its own files (antisymmetry
folders) below ``folder``, reusing the package's tools
(:func:`~metatrain_nc.evaluation.accuracy.model_accuracy`,
:func:`~metatrain_nc.antisymmetry.evaluate`,
:class:`~metatrain_nc.force_models.ForceModel`). Paper protocol: a unit per NVT run
(one model, force mode and thermostat; its ``mtt-nc md`` folder in ``runs/nvt/<id>/``)
or set of relaxations (one model, gas or bulk), the report rewritten after every
unit. The MD runs and relaxations of both are in :mod:`.runs`.

Units: energies in meV/atom, forces in meV/A, times in fs/ps, costs in ms.
"""

import itertools
import json
import time
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import ase
import numpy as np

from ..errors import UserInputError
from ..force_models.names import CONSERVATIVE, DIRECT
from .models import ModelEntry, compatibility_notes, describe_model, missing_species
from .settings import STAGES, CompareSettings
from .store import Records, Unit, UnitStore, run_units, unit_id, write_atomic

#: a protocol's units and the function that makes its results of their records
Plan = Tuple[List[Unit], Callable[[Records, Dict[str, str]], Dict[str, Any]]]
#: force head -> output name used by the antisymmetry evaluator
HEAD_OUTPUTS = {"conservative": "conservative", "direct": "non_conservative_force"}


def has_labels(frames: Sequence[ase.Atoms], energy_key: str, forces_key: str) -> bool:
    """Whether every structure has an energy or force label."""
    from ..evaluation.accuracy import _labels

    labels = (_labels(atoms, energy_key, forces_key) for atoms in frames)
    return all(energy is not None or forces is not None for energy, forces in labels)


def accuracy_stage(
    entry: ModelEntry,
    frames: Sequence[ase.Atoms],
    settings: CompareSettings,
    energy_key: str = "energy",
    forces_key: str = "forces",
) -> Dict[str, Any]:
    """Energy and force MAE/RMSE per head (the paper's Table 1)."""
    from ..evaluation.accuracy import model_accuracy

    if settings.accuracy_structures:
        frames = frames[: settings.accuracy_structures]
    result = model_accuracy(
        entry.model,
        frames,
        energy_key=energy_key,
        forces_key=forces_key,
        conservative="conservative" in entry.heads,
    )
    data = result.as_dict()
    data["n_structures"] = len(frames)
    return data


def cost_stage(
    entry: ModelEntry, atoms: ase.Atoms, settings: CompareSettings
) -> Dict[str, Any]:
    """Wall time of one force evaluation per head on the MD structure (ms, ms/atom).

    ``conservative``: energy and ``-dE/dr`` (forward + backward); ``direct``: the
    forward pass only; ``mts_per_inner_step``: the average cost of an inner step of
    MTS, ``(both + (stride - 1) * direct) / stride``. A teacher-student pair: the
    teacher's conservative call, the ``fast`` model's call and ``fast +
    conservative / stride``. Timed by
    :func:`~metatrain_nc.force_models.timing.time_force_calls` (distinct
    configurations, interleaved, 3 warm-up calls each): ``ms`` and ``ms_per_atom``
    per name (medians), ``timing`` (what was timed, every call's seconds).
    """
    from ..force_models.pair import ForcePair
    from ..force_models.timing import ForceCall, time_force_calls

    provider = entry.model
    provider.check(atoms, "the MD structure")
    calls = {}
    if "conservative" in entry.heads:
        calls["conservative"] = ForceCall(provider, conservative=True, direct=False)
    if entry.is_pair:
        head = ForcePair(provider, entry.fast).inner_head
        flags = dict(conservative=head == CONSERVATIVE, direct=head == DIRECT)
        calls["fast"] = ForceCall(entry.fast, **flags)
    elif "direct" in entry.heads:
        calls["direct"] = ForceCall(provider, conservative=False, direct=True)
    if len(entry.heads) == 2:
        calls["both"] = ForceCall(provider, conservative=True, direct=True)
    timings = time_force_calls(
        calls, atoms, repeats=settings.cost_repeats, warmup=3, where="the MD structure"
    )
    result: Dict[str, Any] = {
        "n_atoms": len(atoms),
        "repeats": settings.cost_repeats,
        "ms": {name: t.ms_per_call for name, t in timings.items()},
        "ms_per_atom": {name: t.ms_per_atom for name, t in timings.items()},
        "timing": {name: t.as_dict() for name, t in timings.items()},
    }
    times, stride = result["ms"], settings.stride
    if entry.is_pair:
        result["fast_head"] = head
        times["mts_per_inner_step"] = times["fast"] + times["conservative"] / stride
    elif "both" in times:
        times["mts_per_inner_step"] = (
            times["both"] + (stride - 1) * times["direct"]
        ) / stride
    if "mts_per_inner_step" in times:
        per_atom = times["mts_per_inner_step"] / len(atoms)
        result["ms_per_atom"]["mts_per_inner_step"] = per_atom
    return result


def add_cost_ratios(costs: Dict[str, Dict[str, Any]], entries: Sequence[ModelEntry]):
    """Speed-ups against the reference conservative cost, in place.

    The reference is the first conservative-only model (PET-C), else the first model
    with a conservative head; metatomic models come before ASE calculators (an
    analytic potential next to networks is no reference for them);
    ``speedup[k] = reference ms / ms of k``.
    """
    order = itertools.product(("metatomic", "ase"), ("conservative", "hybrid"))
    ranked = [
        entry.name
        for model_kind, kind in order
        for entry in entries
        if (entry.model_kind, entry.kind) == (model_kind, kind)
        and "conservative" in (costs.get(entry.name) or {}).get("ms", {})
    ]
    if not ranked:
        return None
    reference = ranked[0]
    ref_ms = costs[reference]["ms"]["conservative"]
    for cost in costs.values():
        if "ms" in cost:
            cost["reference"] = reference
            cost["speedup"] = {k: ref_ms / v for k, v in cost["ms"].items() if v > 0}
    return reference


class SkippedStage(Exception):
    """A section a model cannot give: recorded as a note, not as a failure."""


def antisymmetry_stage(
    entry: ModelEntry,
    frames: Sequence[ase.Atoms],
    settings: CompareSettings,
    folder: Path,
) -> Dict[str, Any]:
    """lambda (mean, max), pair bins and square-loop work for each head.

    Writes one ``mtt-nc antisymmetry`` folder per head (tables, figures, chemiscope).
    An ASE calculator has no autograd: its Jacobian comes from finite differences,
    exact lambda only, so a structure beyond ``max_exact_rows`` skips the section.
    """
    from ..antisymmetry import AntisymmetrySettings, evaluate

    frames = list(frames[: settings.lambda_structures])
    stochastic = any(3 * len(a) > settings.max_exact_rows for a in frames)
    for index, atoms in enumerate(frames):
        if not entry.differentiable and 3 * len(atoms) > settings.max_exact_rows:
            raise SkippedStage(
                "the Jacobian of an ASE calculator comes from finite differences "
                "of its forces: exact lambda only (the stochastic estimator needs "
                f"J^T v), and structure {index} has 3N = {3 * len(atoms)} rows, "
                f"more than max_exact_rows = {settings.max_exact_rows}"
            )
    results: Dict[str, Any] = {}
    for head in entry.heads:
        lambda_settings = AntisymmetrySettings(
            output=HEAD_OUTPUTS[head],
            stochastic=stochastic,
            probes=settings.stochastic_probes,
            max_exact_rows=settings.max_exact_rows,
            square_loops=settings.square_loops,
            square_eps=settings.square_eps_A,
            seed=settings.seed,
        )
        report = evaluate(frames, entry.model, lambda_settings)
        outdir = folder / f"{entry.name}-{head}"
        report.write(outdir, force=True)
        summary = report.summary()
        works = [
            s.square_loops for s in report.structures if s.square_loops is not None
        ]
        data: Dict[str, Any] = {
            "method": summary["settings"]["method"],
            "n_structures": summary["n_structures"],
            "lambda_mean": summary["lambda_mean"],
            "lambda_max": summary["lambda_max"],
            "folder": str(outdir.relative_to(folder.parent)),
        }
        if works:
            data["square_loop_eps_A"] = settings.square_eps_A
            data["loop_work_mean_abs_eV"] = float(
                np.mean([w["mean_abs_work_eV"] for w in works])
            )
            data["loop_force_floor_max_eV_per_A"] = float(
                np.max([w["max_force_floor_eV_per_A"] for w in works])
            )
        bins = report.pair_bins()
        if bins:
            data["pair_bins"] = {k: np.asarray(v).tolist() for k, v in bins.items()}
        results[head] = data
    return results


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


def stage_functions(job, path: Path, accuracy_note: Optional[str]):
    """``stage -> function(entry)`` of the standard protocol."""
    from .runs import md_stage, relax_stage

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


def standard_plan(job, store: UnitStore, log: Callable[[str], None]) -> Plan:
    """The standard protocol's units (a model that misses species of the structures
    loses its sections) and their results."""
    from .pairs import PAIR_STAGES
    from .run import versions

    path, settings, entries = store.path, job.settings, job.entries
    infos = {e.name: e.as_dict() for e in entries}
    _export_checkpoints(entries, path)
    for entry in entries:  # where a checkpoint's export is, in the report folder
        if entry.path != infos[entry.name]["path"]:
            infos[entry.name]["export"] = str(Path(entry.path).relative_to(path))
    accuracy_note = None
    if not has_labels(job.frames, job.energy_key, job.forces_key):
        accuracy_note = (
            f"The test structures have no '{job.energy_key}'/'{job.forces_key}' "
            "labels: the accuracy section is skipped; every other section ran."
        )
    functions = stage_functions(job, path, accuracy_note)

    def unit(entry: ModelEntry, stage: str) -> Dict[str, Any]:
        record: Dict[str, Any] = {"model": entry.name, "stage": stage}
        try:
            record["result"] = functions[stage](entry)
        except SkippedStage as skipped:
            record["skipped"] = str(skipped)
            log(f"[compare] {entry.name} / {stage} skipped: {skipped}")
        return record

    missing = {e.name: missing_species(e, job.species) for e in entries}
    for name, message in missing.items():
        if message:
            log(f"[compare] {name}: {message}")
    plan = [
        (stage, entry)
        for stage in settings.stages
        for entry in entries
        if stage in (PAIR_STAGES if entry.is_pair else STAGES)
    ]
    units = [
        (unit_id(stage, e.name), partial(unit, e, stage))
        for stage, e in plan
        if not missing[e.name]
    ]

    def collect(records: Records, failed: Dict[str, str]) -> Dict[str, Any]:
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
            "models": {name: {"info": info} for name, info in infos.items()},
        }
        if accuracy_note:
            data["accuracy_note"] = accuracy_note
        failures: List[str] = []
        for stage, entry in plan:
            section = data["models"][entry.name]
            record = records.get(unit_id(stage, entry.name))
            if record is None:
                message = missing[entry.name] or failed[unit_id(stage, entry.name)]
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
        data["elapsed_s"] = time.perf_counter() - job.start
        data["failures"] = failures
        return data

    return units, collect


# -- paper protocol ------------------------------------------------------------------
def _update_diffusion(store: UnitStore, settings: CompareSettings) -> None:
    """Recompute the diffusion of finished NVT units made with another estimator,
    where their trajectory is still there (:data:`~metatrain_nc.dynamics.diffusion.
    METHOD`)."""
    from ..dynamics.diffusion import METHOD
    from ..dynamics.outputs import FILES
    from .runs import add_diffusion

    for path in sorted(store.units.glob("nvt-*.json")):
        record = json.loads(path.read_text())
        if record.get("diffusion_method") == METHOD or record.get("status") != (
            "completed"
        ):
            continue
        if not (Path(record["folder"]) / FILES["trajectory"]).is_file():
            continue
        write_atomic(path, add_diffusion(record, settings))


def _relax_entry(entry: ModelEntry, settings: CompareSettings, device: str):
    """The model for relaxations: float64 when it allows it, with a note if not."""
    if not settings.relax_float64 or entry.model_kind != "metatomic":
        return entry, None
    try:
        return describe_model(entry.path, entry.name, float64=True, device=device), None
    except UserInputError as error:
        return entry, f"{entry.name} relaxes in {entry.model.dtype}: {error}"


def paper_units(job, runs_dir: Path, notes: List[str], relax_entries: Dict):
    """The units of the protocol's stages (NVT runs, gas and bulk relaxations)."""
    from .runs import bulk_starts, gas_starts, nvt_run, relax_set

    s, frames = job.settings, job.frames
    units: List[Unit] = []
    if "nvt" in s.stages:
        for ensemble, tau in s.thermostats:
            for entry in job.entries:
                for mode in entry.modes:
                    uid = unit_id("nvt", entry.name, mode, f"{ensemble}{tau:g}")
                    run = (entry, mode, ensemble, tau, job.md_atoms, s, runs_dir / uid)
                    units.append((uid, partial(nvt_run, *run)))
    starts = {}
    if "gas" in s.stages:
        gas = gas_starts(frames, s.gas_structures, s.gas_sigma_A, s.seed)
        starts["gas"] = (gas, s.gas_fmax)
    if "bulk" in s.stages:
        count = min(s.relax_structures, len(frames))
        if count < s.relax_structures:
            notes.append(f"{count} bulk structures relaxed: the test set has no more")
        bulk = bulk_starts(frames, count, s.relax_sigma_A, s.seed)
        starts["bulk"] = (bulk, s.relax_fmax)

    def relax_unit(entry: ModelEntry, kind: str) -> Dict[str, Any]:
        if entry.name not in relax_entries:
            relax_entries[entry.name] = _relax_entry(entry, s, job.device)
        model, note = relax_entries[entry.name]
        return relax_set(model, starts[kind][0], starts[kind][1], s, kind, note)

    for kind in starts:
        for entry in job.entries:
            uid = unit_id("relax", kind, entry.name)
            units.append((uid, partial(relax_unit, entry, kind)))
    return units


def paper_plan(job, store: UnitStore, log: Callable[[str], None]) -> Plan:
    """The paper protocol's units (:meth:`~.settings.CompareSettings.paper`) and
    their results."""
    from .run import versions

    runs_dir = store.path / "runs" / "nvt"
    runs_dir.mkdir(parents=True, exist_ok=True)
    notes: List[str] = []
    relax_entries: Dict[str, Any] = {}
    units = paper_units(job, runs_dir, notes, relax_entries)
    _update_diffusion(store, job.settings)

    def collect(records: Records, failed: Dict[str, str]) -> Dict[str, Any]:
        done = {k: v for k, v in records.items() if v is not None}
        wall_time_s = sum(v.get("unit_wall_time_s", 0.0) for v in done.values())
        return dict(
            versions=versions(),
            settings=job.settings.as_dict(),
            models={e.name: e.as_dict() for e in job.entries},
            structures={"path": job.structures, "count": len(job.frames)},
            md_structure={
                "n_atoms": len(job.md_atoms),
                "formula": job.md_atoms.get_chemical_formula(),
            },
            nvt=[v for k, v in done.items() if k.startswith("nvt-")],
            relax=[v for k, v in done.items() if k.startswith("relax-")],
            done_units=len(done),
            total_units=len(records),
            pending=[k for k, v in records.items() if v is None],
            cpu_hours=wall_time_s / 3600.0,
            updated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            notes=notes + [v[1] for v in relax_entries.values() if v[1]],
            failures=list(failed.items()),
        )

    return units, collect


def run_protocol(
    job, store: UnitStore, *, progress: bool, log: Callable[[str], None]
) -> Dict[str, Any]:
    """Run (or continue) the units of the job's protocol in ``store`` and write the
    report: the standard protocol's at the end (a unit that fails is a failed
    section), the paper protocol's after every unit (a :class:`UserInputError`
    stops it)."""
    if job.settings.protocol != "paper":
        units, collect = standard_plan(job, store, log)
        return run_units(units, store, collect, progress=progress, log=log)
    units, collect = paper_plan(job, store, log)
    options = dict(live=True, fatal=(UserInputError,), desc="paper protocol")
    return run_units(units, store, collect, progress=progress, log=log, **options)
