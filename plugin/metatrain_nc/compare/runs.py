"""The MD runs and relaxations of both protocols, one model each, as JSON-ready
records (MD folders below the report): :func:`md_stage` (standard), :func:`nvt_run`
(paper) and :func:`relax_set` (both; starts from :mod:`metatrain_nc.dynamics.starts`).

Units: times in fs (records: ps where named), temperatures in K, forces in eV/A.
"""

import dataclasses
import math
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Sequence, Tuple

import ase
import ase.io

from .models import ModelEntry
from .settings import CompareSettings

#: most trajectory frames of one MD run of the standard protocol: a longer run writes
#: every k-th outer step (a 20 ps NVT at 2 fs: 1000 frames, ~35 MB for 192 atoms,
#: instead of 10000)
MAX_FRAMES = 1000

#: numbers kept from each MD summary of the standard protocol
MD_KEYS = tuple(
    "status message outer_steps_done simulated_time_ps wall_time_s "
    "model_forward_passes model_backward_passes heating_rate_K_per_ps "
    "heating_rate_error_K_per_ps drift_meV_per_atom_per_ps "
    "drift_error_meV_per_atom_per_ps drift_ratio conserved_fluctuation_meV_per_atom "
    "mean_temperature_K".split()
)


def md_settings(
    settings: CompareSettings,
    mode: str,
    ensemble: str,
    time_fs: float,
    tau_fs: float,
    **extra: Any,
):
    """The :class:`~metatrain_nc.dynamics.md.MDSettings` of a run of ``time_fs`` (in
    outer steps of ``stride`` inner steps) with forces ``mode``."""
    from ..dynamics.md import MDSettings

    return MDSettings(
        forces=mode,
        timestep_fs=settings.mts_outer_fs,
        stride=settings.stride,
        steps=settings.outer_steps(time_fs),
        ensemble=ensemble,
        temperature_K=settings.temperature_K,
        tau_fs=tau_fs,
        seed=settings.seed,
        max_temperature_K=settings.max_temperature_K,
        **extra,
    )


#: show a progress bar for each MD run (set by :func:`md_progress_bars`)
_PROGRESS: ContextVar[bool] = ContextVar("md_progress_bars", default=False)


@contextmanager
def md_progress_bars(enabled: bool) -> Iterator[None]:
    """Within the block, each MD run of :func:`run_entry` shows a progress bar
    (outer steps, below the comparison's own bar; a 20 ps run takes hours)."""
    token = _PROGRESS.set(bool(enabled))
    try:
        yield
    finally:
        _PROGRESS.reset(token)


def run_entry(
    entry: ModelEntry, atoms: ase.Atoms, outdir: Path, md, settings, **options
) -> Dict[str, Any]:
    """:func:`~metatrain_nc.dynamics.md.run_md` of ``entry`` (its own model calls
    counted) into ``outdir``: the run's summary, with ``inner_steps_per_s``.

    The run saves restart points (:mod:`~metatrain_nc.dynamics.restart`): a unit
    of an interrupted comparison that runs again continues its MD runs cut short
    from their last point and takes the runs it finished as they are."""
    from tqdm.auto import tqdm

    from ..dynamics.md import run_md

    entry.reset_counters()
    bar = tqdm(
        total=md.steps,
        desc=f"  {outdir.name}",
        unit="step",
        leave=False,
        disable=not _PROGRESS.get(),
    )

    def progress(row: Dict[str, float]) -> None:
        bar.update(int(row["step"]) - bar.n)

    try:
        summary = run_md(
            entry.model, atoms, outdir, md, resume=True, progress=progress, **options
        )
    finally:
        bar.close()
    inner = summary["outer_steps_done"] * settings.stride
    summary["inner_steps_per_s"] = inner / max(summary["wall_time_s"], 1e-9)
    return summary


def equilibrated(
    entry: ModelEntry, atoms: ase.Atoms, folder: Path, md, settings: CompareSettings
) -> Tuple[Optional[ase.Atoms], Dict[str, Any]]:
    """An equilibration run ``md`` into ``folder`` (:func:`run_entry`): its end state
    with its momenta (``None`` unless it completed) and its summary."""
    from ..dynamics.outputs import FILES

    md = dataclasses.replace(md, trajectory_every=md.steps, plots=False)
    summary = run_entry(entry, atoms, folder, md, settings, force=True)
    if summary["status"] != "completed":
        return None, summary
    return ase.io.read(folder / FILES["trajectory"], -1), summary


def md_stage(
    entry: ModelEntry,
    atoms: ase.Atoms,
    settings: CompareSettings,
    folder: Path,
    ensemble: str,
) -> Dict[str, Any]:
    """One MD run per force mode (NVE, or NVT with the SVR thermostat) into
    ``folder/NAME-ENSEMBLE-MODE``; a pair's one ``mts`` run has its fast model drive
    the inner steps. The NVE runs start from the end of ``equilibration_fs`` of SVR
    with the model's own forces (``folder/NAME-equilibration``).

    :param ensemble: ``"nve"`` or ``"svr"``.
    :return: per mode, the run's summary numbers (:data:`MD_KEYS`, per-species
        temperatures, the equipartition check of NVT runs), inner steps per second
        and its folder relative to the report.
    """
    if ensemble == "nve" and settings.equilibration_fs > 0:
        # SVR with the model's own forces (a pair's: its teacher's), one start for all
        mode = "conservative" if "conservative" in entry.heads else "direct"
        time_fs = settings.equilibration_fs
        tau_fs = min(settings.tau_fs, time_fs / 4)
        md = md_settings(settings, mode, "svr", time_fs, tau_fs, chemiscope=False)
        outdir = folder / f"{entry.name}-equilibration"
        atoms, first = equilibrated(entry, atoms, outdir, md, settings)
        if atoms is None:
            raise RuntimeError(f"the equilibration ({outdir}): {first.get('message')}")
    total = settings.nve_time_fs if ensemble == "nve" else settings.nvt_time_fs
    results: Dict[str, Any] = {}
    steps = settings.outer_steps(total)
    every = max(1, math.ceil(steps / MAX_FRAMES))
    for mode in settings.run_modes(entry.modes):
        md = md_settings(
            settings, mode, ensemble, total, settings.tau_fs, trajectory_every=every
        )
        outdir = folder / f"{entry.name}-{ensemble}-{mode}"
        summary = run_entry(
            entry, atoms, outdir, md, settings, force=True, fast=entry.fast
        )
        data = {key: summary.get(key) for key in MD_KEYS}
        for key, value in summary.items():
            if key.startswith(("mean_temperature_", "deviation_")):
                data[key] = value
        if summary.get("equipartition") is not None:  # NVT: splits, error bars
            data["equipartition"] = summary["equipartition"]
        if entry.is_pair:
            data["fast_model_forward_passes"] = summary.get("fast_model_forward_passes")
        data["inner_steps_per_s"] = summary["inner_steps_per_s"]
        data["folder"] = str(outdir.relative_to(folder.parent))
        results[mode] = data
    return results


def nvt_run(
    entry: ModelEntry,
    mode: str,
    ensemble: str,
    tau_fs: float,
    atoms: ase.Atoms,
    settings: CompareSettings,
    outdir: Path,
) -> Dict[str, Any]:
    """Equilibration, then production under one thermostat (paper protocol).

    With ``settings.equilibration_thermostat`` ``"same"``, one MD run whose first
    ``equilibration_fs`` are left out of every number; otherwise the equilibration is
    its own run (``<outdir>.equilibration``) under that thermostat, continued by the
    production run. Temperatures (block averages) and diffusion coefficients
    (:func:`add_diffusion`) come from the production part.

    :return: ``status``, the run's ``equipartition`` (temperatures, deviations from the
        target, species splits with errors and verdicts), ``diffusion`` (per species,
        A^2/ps), ``heating_rate_K_per_ps``, ``wall_time_s``, ``inner_steps_per_s``,
        ``warnings`` and the run's ``folder``.
    """
    equilibration = settings.equilibration_ensemble()
    separate = equilibration is not None and settings.equilibration_fs > 0
    total = settings.nvt_time_fs + (0 if separate else settings.equilibration_fs)
    md = md_settings(
        settings,
        mode,
        ensemble,
        total,
        tau_fs,
        trajectory_every=settings.sample_every,
        chemiscope=False,
        equilibration_fraction=0.0 if separate else settings.equilibration_fs / total,
    )
    unit = {"model": entry.name, "mode": mode, "ensemble": ensemble, "tau_fs": tau_fs}
    first: Optional[Dict[str, Any]] = None
    if separate:
        steps = settings.outer_steps(settings.equilibration_fs)
        start = dataclasses.replace(
            md, ensemble=equilibration[0], tau_fs=equilibration[1], steps=steps
        )
        folder = outdir.with_name(outdir.name + ".equilibration")
        atoms, first = equilibrated(entry, atoms, folder, start, settings)
        if atoms is None:
            message = f"during the equilibration: {first.get('message')}"
            return dict(
                unit, status=first["status"], message=message, folder=str(outdir)
            )
        md = dataclasses.replace(md, velocities="structure")
    summary = run_entry(entry, atoms, outdir, md, settings)
    record: Dict[str, Any] = {
        **unit,
        "status": summary["status"],
        "message": summary.get("message"),
        "equipartition": summary.get("equipartition"),
        "heating_rate_K_per_ps": summary.get("heating_rate_K_per_ps"),
        "wall_time_s": summary["wall_time_s"],
        "inner_steps_per_s": summary["inner_steps_per_s"],
        "simulated_time_ps": summary["simulated_time_ps"],
        "warnings": summary.get("warnings", []),
        "folder": str(outdir),
        "diffusion": None,
        "production_start_fs": 0.0 if separate else settings.equilibration_fs,
        "equilibration": None
        if first is None
        else {
            "thermostat": settings.equilibration_thermostat,
            "equipartition": first.get("equipartition"),
            "wall_time_s": first["wall_time_s"],
        },
    }
    if summary["status"] != "completed":
        return record
    return add_diffusion(record, settings)


def add_diffusion(record: Dict[str, Any], settings: CompareSettings) -> Dict[str, Any]:
    """Diffusion coefficients (A^2/ps) of an NVT record from its run's trajectory
    (production part), with the estimator's name; an error is noted, not raised."""
    from ..dynamics.diffusion import METHOD, trajectory_diffusion
    from ..dynamics.outputs import FILES

    record.pop("diffusion_error", None)
    try:
        record["diffusion"] = trajectory_diffusion(
            Path(record["folder"]) / FILES["trajectory"],
            record.get("production_start_fs", settings.equilibration_fs),
            settings.diffusion_segments,
        )
    except Exception as error:  # the temperatures stand without it
        record["diffusion"] = None
        record["diffusion_error"] = str(error)
    record["diffusion_method"] = METHOD
    return record


def relax_set(
    entry: ModelEntry,
    starts: Sequence[ase.Atoms],
    fmax: float,
    settings: CompareSettings,
    kind: str,
    dtype_note: Optional[str] = None,
) -> Dict[str, Any]:
    """Relax every start with every head and optimiser to ``fmax`` (both protocols).

    :return: ``records`` (one per relaxation, with its ``stop_reason``), ``summary``
        (per head and optimiser: successes, trials, rate with its Wilson 95%
        interval, stop reasons and mean steps;
        :func:`~metatrain_nc.dynamics.relax.relaxation_check`),
        ``round_off_floor_eV_per_A`` per head
        (:func:`~metatrain_nc.dynamics.relax.round_off_floor`), and whether the
        floor is above ``fmax``.
    """
    from ..dynamics.relax import relaxation_check

    result = relaxation_check(
        entry.model,
        starts,
        force_modes=entry.heads,
        optimizers=settings.relax_optimizers,
        fmax=fmax,
        steps=settings.relax_steps,
        seed=settings.seed,
    )
    return {
        "model": entry.name,
        "kind": kind,
        "fmax_eV_per_A": fmax,
        "max_steps": settings.relax_steps,
        "n_structures": len(starts),
        "n_atoms": [len(a) for a in starts],
        "dtype": getattr(entry.model, "dtype", None),
        "dtype_note": dtype_note,
        "round_off_floor_eV_per_A": result["round_off_floor_eV_per_A"],
        "floor_above_threshold": {
            h: v is not None and v > fmax
            for h, v in result["round_off_floor_eV_per_A"].items()
        },
        "summary": result["summary"],
        "records": result["records"],
    }
