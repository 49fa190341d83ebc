"""The paper protocol's units in the resumable store (:mod:`..store`).

Besides the store's files, the output folder holds::

    runs/nvt/<id>/      each NVT run's mtt-nc md folder (log, trajectory, figures)
    report.md, report.html, report.json, table2_deviations.png, table7_success.png

A unit is an NVT run (one model, force mode and thermostat) or a set of relaxations
(one model, gas or bulk). The report is rewritten after every unit, so a protocol
that runs for hours shows what it has so far.
"""

import json
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any, Callable, Dict, List

from ...errors import UserInputError
from ..models import ModelEntry, describe_model
from ..settings import CompareSettings
from ..store import Records, Unit, UnitStore, run_units, unit_id, write_atomic


def _update_diffusion(store: UnitStore, settings: CompareSettings) -> None:
    """Recompute the diffusion of finished NVT units made with another estimator,
    where their trajectory is still there (:data:`~metatrain_nc.dynamics.diffusion.
    METHOD`)."""
    from ...dynamics.diffusion import METHOD
    from ...dynamics.outputs import FILES
    from ..runs import add_diffusion

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
    from ..runs import nvt_run, relax_set
    from .structures import bulk_starts, gas_starts

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


def run_paper(
    job, store: UnitStore, *, progress: bool, log: Callable[[str], None]
) -> Dict[str, Any]:
    """Run (or continue) the paper protocol's units in ``store``, the report rewritten
    after every unit; see :meth:`~..settings.CompareSettings.paper`."""
    from ..run import versions

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

    return run_units(
        units,
        store,
        collect,
        live=True,
        fatal=(UserInputError,),
        progress=progress,
        log=log,
        desc="paper protocol",
    )
