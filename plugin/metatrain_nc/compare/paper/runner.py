"""The resumable paper protocol: a folder of units, each stored when it finishes.

Layout of the output folder::

    protocol.json       settings, models and structures of the protocol
    units/<id>.json     the record of each finished unit
    runs/nvt/<id>/      each NVT run's mtt-nc md folder (log, trajectory, figures)
    report.md, report.html, report.json, table2_deviations.png, table7_success.png

A unit is an NVT run (one model, force mode and thermostat) or a set of relaxations
(one model, gas or bulk). An interrupted protocol (Ctrl-C, a killed job, a machine
that stops) continues with ``--resume`` from the units that finished; an NVT run that
was cut short left no folder (its staging folder is removed on resume) and runs
again. The report is rewritten after every unit.
"""

import json
import os
import shutil
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from ...errors import UserInputError
from ...files import clean_json, read_structure, read_structures, write_json
from ..models import ModelEntry, describe_model, unique_names
from .settings import PaperSettings

#: settings that may change between the parts of one protocol (units are keyed by
#: them, or only the report uses them); every other setting must stay the same for
#: ``--resume``
PART_SETTINGS = ("parts", "thermostats", "sigma")
#: settings a protocol folder made before they existed ran with
LEGACY_SETTINGS = {"equilibration_thermostat": "same"}


def _unit_id(*parts: Any) -> str:
    text = "-".join(str(p) for p in parts)
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


def _model_source(model: Any) -> str:
    return os.fspath(model) if isinstance(model, (str, os.PathLike)) else repr(model)


def _write_atomic(path: Path, data: Dict[str, Any]) -> None:
    partial = path.with_name(f".{path.name}.partial")
    write_json(partial, data)
    partial.replace(path)


def _open_folder(
    outdir: Path, protocol: Dict[str, Any], resume: bool, force: bool
) -> Optional[Path]:
    """Create, replace or reopen ``outdir``; returns a folder to delete at the end
    (the replaced one) or ``None``."""
    saved_path = outdir / "protocol.json"
    if outdir.exists() and resume:
        if not saved_path.is_file():
            raise UserInputError(
                f"'{outdir}' is not a folder of `mtt-nc compare --protocol paper` "
                "(no protocol.json): nothing to resume; choose another -o"
            )
        saved = json.loads(saved_path.read_text())
        differences = [
            key
            for key in ("models", "structures", "md_structure")
            if saved.get(key) != protocol[key]
        ]
        fixed = {k: v for k, v in saved["settings"].items() if k not in PART_SETTINGS}
        mine = {k: v for k, v in protocol["settings"].items() if k not in PART_SETTINGS}
        differences += [
            f"settings.{k}"
            for k in mine
            if fixed.get(k, LEGACY_SETTINGS.get(k)) != mine[k]
        ]
        if differences:
            raise UserInputError(
                f"--resume: '{outdir}' was started with other {differences} than "
                "given now; resume with the same models, structures and settings "
                "(only the parts and thermostats may change), or use another -o"
            )
        return None
    if outdir.exists():
        if not force:
            raise UserInputError(
                f"output folder '{outdir}' exists; continue it with --resume, "
                "replace it with --force, or choose another -o"
            )
        aside = Path(tempfile.mkdtemp(prefix=f".{outdir.name}.old-", dir=outdir.parent))
        os.replace(outdir, aside / "old")
        outdir.mkdir()
        return aside
    try:
        outdir.mkdir(parents=True)
    except OSError as error:
        raise UserInputError(
            f"cannot create the output folder '{outdir}': {error.strerror or error}; "
            "choose a folder you can write to (-o)"
        ) from error
    return None


def _update_diffusion(outdir: Path, settings: PaperSettings) -> None:
    """Recompute the diffusion of finished NVT units made with another estimator,
    where their trajectory is still there (:data:`~metatrain_nc.dynamics.diffusion.
    METHOD`)."""
    from ...dynamics.diffusion import METHOD
    from ...dynamics.outputs import FILES
    from .units import add_diffusion

    for path in sorted((outdir / "units").glob("nvt-*.json")):
        record = json.loads(path.read_text())
        if record.get("diffusion_method") == METHOD or record.get("status") != (
            "completed"
        ):
            continue
        if not (Path(record["folder"]) / FILES["trajectory"]).is_file():
            continue
        _write_atomic(path, clean_json(add_diffusion(record, settings)))


LOCK_FILE = ".running"


def _lock(outdir: Path):
    """Hold an exclusive lock on ``outdir`` while this process works in it (released
    when the process ends, however it ends).

    :raises UserInputError: another process holds it (two runs in one folder would
        remove each other's unfinished MD runs).
    """
    import fcntl

    handle = open(outdir / LOCK_FILE, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        owner = handle.read().strip() or "?"
        handle.close()
        raise UserInputError(
            f"another `mtt-nc compare --protocol paper` (process {owner}) is working "
            f"in '{outdir}'; wait for it to finish, or stop it and --resume"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def _relax_entry(entry: ModelEntry, settings: PaperSettings, device: str):
    """The model for relaxations: float64 when it allows it, with a note if not."""
    if not settings.float64 or entry.model_kind != "metatomic":
        return entry, None
    try:
        return describe_model(entry.path, entry.name, float64=True, device=device), None
    except UserInputError as error:
        return entry, f"{entry.name} relaxes in {entry.model.dtype}: {error}"


def run_paper_protocol(
    models: Sequence[Any],
    structures: Union[str, os.PathLike],
    outdir: Union[str, os.PathLike],
    settings: Optional[PaperSettings] = None,
    *,
    names: Optional[Sequence[str]] = None,
    md_structure: Optional[Union[str, os.PathLike]] = None,
    md_index: int = 0,
    resume: bool = False,
    force: bool = False,
    direct: bool = False,
    device: str = "cpu",
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> Dict[str, Any]:
    """Run (or continue) the paper protocol; see :class:`PaperSettings`.

    :param models: as for :func:`~metatrain_nc.compare.compare`.
    :param structures: test structures (the relaxation starts come from them).
    :param md_structure: start of the NVT runs (default: ``structures``), frame
        ``md_index``.
    :param resume: continue ``outdir`` (same models, structures and settings; the
        parts and thermostats may differ).
    :param force: replace an existing ``outdir``.
    :return: the content of ``report.json`` plus ``output_dir`` and ``failures``.
    """
    from ..run import _missing_species

    settings = settings or PaperSettings()
    settings.check()
    if not models:
        raise UserInputError("no models to compare")
    labels = unique_names(list(models), names)
    frames = read_structures(structures)
    md_atoms = read_structure(md_structure or structures, md_index)
    entries = [
        describe_model(m, n, direct=direct, device=device)
        for m, n in zip(models, labels, strict=True)
    ]
    species = sorted(
        {int(z) for a in frames for z in a.numbers} | set(md_atoms.numbers)
    )
    for entry in entries:
        message = _missing_species(entry, species)
        if message:
            raise UserInputError(message)
    outdir = Path(outdir)
    protocol = {
        "models": {
            e.name: _model_source(m) for e, m in zip(entries, models, strict=True)
        },
        "structures": os.fspath(structures),
        "md_structure": [os.fspath(md_structure or structures), md_index],
        "settings": settings.as_dict(),
    }
    replaced = _open_folder(outdir, protocol, resume, force)
    lock = _lock(outdir)
    try:
        return _run_units(
            entries,
            frames,
            md_atoms,
            settings,
            outdir,
            protocol,
            replaced,
            structures=structures,
            device=device,
            progress=progress,
            log=log,
        )
    finally:
        lock.close()


def _run_units(
    entries: List[ModelEntry],
    frames,
    md_atoms,
    settings: PaperSettings,
    outdir: Path,
    protocol: Dict[str, Any],
    replaced: Optional[Path],
    *,
    structures,
    device: str,
    progress: bool,
    log: Callable[[str], None],
) -> Dict[str, Any]:
    """The units of the protocol in ``outdir`` (locked by this process)."""
    from tqdm.auto import tqdm

    from ..run import _versions
    from .report import write_report
    from .structures import bulk_starts, gas_starts
    from .units import nvt_run, relax_set

    _write_atomic(outdir / "protocol.json", protocol)
    (outdir / "units").mkdir(exist_ok=True)
    runs_dir = outdir / "runs" / "nvt"
    runs_dir.mkdir(parents=True, exist_ok=True)
    for leftover in runs_dir.glob(".*.partial-*"):  # a run that was cut short
        shutil.rmtree(leftover, ignore_errors=True)

    units: List[Tuple[str, Callable[[], Dict[str, Any]]]] = []
    if "nvt" in settings.parts:
        for ensemble, tau in settings.thermostats:
            for entry in entries:
                for mode in entry.modes:
                    uid = _unit_id("nvt", entry.name, mode, f"{ensemble}{tau:g}")
                    units.append(
                        (
                            uid,
                            lambda e=entry, m=mode, ens=ensemble, t=tau, u=uid: nvt_run(
                                e, m, ens, t, md_atoms, settings, runs_dir / u
                            ),
                        )
                    )
    notes: List[str] = []
    relax_entries: Dict[str, Any] = {}
    if "gas" in settings.parts or "bulk" in settings.parts:
        starts = {}
        if "gas" in settings.parts:
            starts["gas"] = (
                gas_starts(
                    frames, settings.gas_structures, settings.gas_sigma_A, settings.seed
                ),
                settings.gas_fmax,
            )
        if "bulk" in settings.parts:
            count = min(settings.bulk_structures, len(frames))
            if count < settings.bulk_structures:
                notes.append(
                    f"{count} bulk structures relaxed: the test set has no more"
                )
            starts["bulk"] = (
                bulk_starts(frames, count, settings.bulk_sigma_A, settings.seed),
                settings.bulk_fmax,
            )

        def relax_unit(entry: ModelEntry, kind: str) -> Dict[str, Any]:
            if entry.name not in relax_entries:
                relax_entries[entry.name] = _relax_entry(entry, settings, device)
            model, note = relax_entries[entry.name]
            return relax_set(
                model, starts[kind][0], starts[kind][1], settings, kind, note
            )

        for kind in starts:
            for entry in entries:
                uid = _unit_id("relax", kind, entry.name)
                units.append((uid, lambda e=entry, k=kind: relax_unit(e, k)))

    def load(uid: str) -> Optional[Dict[str, Any]]:
        path = outdir / "units" / f"{uid}.json"
        return json.loads(path.read_text()) if path.is_file() else None

    _update_diffusion(outdir, settings)
    failures: List[Tuple[str, str]] = []
    data: Dict[str, Any] = {}

    def refresh() -> None:
        records = {uid: load(uid) for uid, _ in units}
        # units of earlier parts of this protocol (other thermostats, other parts)
        for path in sorted((outdir / "units").glob("*.json")):
            records.setdefault(path.stem, json.loads(path.read_text()))
        done = {k: v for k, v in records.items() if v is not None}
        data.clear()
        data.update(
            versions=_versions(),
            settings=settings.as_dict(),
            models={e.name: e.as_dict() for e in entries},
            structures={"path": os.fspath(structures), "count": len(frames)},
            md_structure={
                "n_atoms": len(md_atoms),
                "formula": md_atoms.get_chemical_formula(),
            },
            nvt=[v for k, v in done.items() if k.startswith("nvt-")],
            relax=[v for k, v in done.items() if k.startswith("relax-")],
            done_units=len(done),
            total_units=len(records),
            pending=[k for k, v in records.items() if v is None],
            cpu_hours=sum(v.get("unit_wall_time_s", 0.0) for v in done.values())
            / 3600.0,
            updated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            notes=notes + [v[1] for v in relax_entries.values() if v[1]],
            failures=failures,
        )
        clean = clean_json(data)
        write_report(clean, outdir)
        _write_atomic(outdir / "report.json", clean)

    bar = tqdm(
        total=len(units), desc="paper protocol", unit="unit", disable=not progress
    )
    try:
        for uid, work in units:
            bar.set_postfix_str(uid)
            if load(uid) is not None:
                bar.update()
                continue
            start = time.perf_counter()
            try:
                record = work()
            except UserInputError:
                raise
            except Exception as error:  # one unit must not lose the others
                message = f"{type(error).__name__}: {error}"
                failures.append((uid, message))
                log(f"[paper] {uid} failed: {message}")
                bar.update()
                continue
            record["unit_wall_time_s"] = time.perf_counter() - start
            _write_atomic(outdir / "units" / f"{uid}.json", clean_json(record))
            refresh()
            bar.update()
    finally:
        bar.close()
    refresh()
    if replaced is not None:
        shutil.rmtree(replaced, ignore_errors=True)
    result = dict(data)
    result["output_dir"] = str(outdir)
    return result
