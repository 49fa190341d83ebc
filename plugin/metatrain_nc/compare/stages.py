"""The units of both protocols in the resumable store (:mod:`.store`), then the
report: :func:`run_protocol`.

Standard protocol: a unit per stage and model (the measuring stages in
:mod:`.measurements`, the MD and relaxation stages in :mod:`.runs`). Paper protocol:
a unit per NVT run (one model, force mode and thermostat; its ``mtt-nc md`` folder in
``runs/nvt/<id>/``) or set of relaxations (one model, gas or bulk; starts from
:mod:`~metatrain_nc.dynamics.starts`), the report rewritten after every unit.
"""

import time
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ..errors import UserInputError
from ..evaluation.accuracy import has_labels
from ..unit_store import Records, Unit, UnitStore, run_units, unit_id
from .measurements import (
    SkippedStage,
    accuracy_stage,
    add_cost_ratios,
    antisymmetry_stage,
    cost_stage,
)
from .models import ModelEntry, compatibility_notes, describe_model, missing_species
from .report import write_report
from .settings import PAPER_STAGES, STAGES, THERMOSTATS, CompareSettings

#: a protocol's units and the function that makes its results of their records
Plan = Tuple[List[Unit], Callable[[Records, Dict[str, str]], Dict[str, Any]]]


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
    from ..dynamics.starts import bulk_starts
    from .runs import md_stage, relax_set

    s, frames, md_atoms = job.settings, job.frames, job.md_atoms

    def starts():
        count = min(s.relax_structures, len(frames))
        return bulk_starts(frames, count, s.relax_sigma_A, s.seed)

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
        "relax": lambda e: relax_set(e, starts(), s.relax_fmax, s, "bulk"),
    }


def standard_plan(job, store: UnitStore, log: Callable[[str], None]) -> Plan:
    """The standard protocol's units (a model that misses species of the structures
    loses its sections) and their results."""
    from .pairs import PAIR_STAGES

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
        data: Dict[str, Any] = dict(job.header)
        data.update(
            quick=job.quick,
            notes=compatibility_notes(entries, job.species),
            models={name: {"info": info} for name, info in infos.items()},
        )
        if accuracy_note:
            data["accuracy_note"] = accuracy_note
        failures: List[str] = []
        data.update(nvt=[], relax=[])  # rows of Tables 2 and 7, as in the paper's
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
            elif stage == "nvt":
                data["nvt"] += [
                    dict(run, model=entry.name, mode=mode, teacher=entry.slow_name,
                         ensemble="svr", tau_fs=settings.tau_fs)
                    for mode, run in record["result"].items()
                ]  # fmt: skip
            elif stage == "relax":
                data["relax"].append(record["result"])
            else:
                section[stage] = record["result"]
        costs = {n: m["cost"] for n, m in data["models"].items() if "cost" in m}
        data["cost_reference"] = add_cost_ratios(costs, entries)
        data["elapsed_s"] = time.perf_counter() - job.start
        data["failures"] = failures
        return data

    return units, collect


# -- paper protocol ------------------------------------------------------------------
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
    from ..dynamics.starts import bulk_starts, gas_starts
    from .runs import nvt_run, relax_set

    s, frames = job.settings, job.frames
    units: List[Unit] = []
    if "nvt" in s.stages:
        for ensemble, tau in s.thermostats:
            for entry in job.entries:
                for mode in s.run_modes(entry.modes):
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

    runs_dir = store.path / "runs" / "nvt"
    runs_dir.mkdir(parents=True, exist_ok=True)
    notes: List[str] = []
    relax_entries: Dict[str, Any] = {}
    units = paper_units(job, runs_dir, notes, relax_entries)

    def collect(records: Records, failed: Dict[str, str]) -> Dict[str, Any]:
        done = {k: v for k, v in records.items() if v is not None}
        wall_time_s = sum(v.get("unit_wall_time_s", 0.0) for v in done.values())
        return dict(
            job.header,
            models={e.name: e.as_dict() for e in job.entries},
            nvt=sorted(
                (v for k, v in done.items() if k.startswith("nvt-")),
                key=lambda r: _rank(THERMOSTATS, (r["ensemble"], float(r["tau_fs"]))),
            ),
            relax=sorted(
                (v for k, v in done.items() if k.startswith("relax-")),
                key=lambda r: _rank(PAPER_STAGES, r["kind"]),
            ),
            done_units=len(done),
            total_units=len(records),
            pending=[k for k, v in records.items() if v is None],
            cpu_hours=wall_time_s / 3600.0,
            updated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            notes=notes + [v[1] for v in relax_entries.values() if v[1]],
            failures=list(failed.items()),
        )

    return units, collect


def _rank(order: Sequence[Any], key: Any) -> int:
    """Where ``key`` stands in ``order`` (after it when absent): the paper's order of
    thermostats and relaxation phases in the report, whichever part ran last."""
    return order.index(key) if key in order else len(order)


def run_protocol(
    job, store: UnitStore, *, progress: bool, log: Callable[[str], None]
) -> Dict[str, Any]:
    """Run (or continue) the units of the job's protocol in ``store`` and write the
    report: the standard protocol's at the end (a unit that fails is a failed
    section), the paper protocol's after every unit (a :class:`UserInputError`
    stops it)."""
    options: Dict[str, Any] = dict(progress=progress, log=log)
    if job.settings.protocol == "paper":
        units, collect = paper_plan(job, store, log)
        options.update(live=True, fatal=(UserInputError,), desc="paper protocol")
    else:
        units, collect = standard_plan(job, store, log)
    from .runs import md_progress_bars

    with md_progress_bars(progress):
        return run_units(units, store, collect, write_report, **options)
