"""One unit of the paper protocol each: an NVT run, a set of relaxations.

Each function returns a JSON-ready record; the unit store keeps it in its own file so an
interrupted protocol resumes from the units that finished.
"""

from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import ase
import ase.io
import numpy as np

from ..models import ModelEntry
from ..settings import CompareSettings
from ..stages import md_settings, relax, steps_per_s

#: a rigid translation (A) that changes no physics: the forces it changes show the
#: model's round-off floor
FLOOR_SHIFT_A = np.array([0.1234, -0.0567, 0.0891])


def nvt_run(
    entry: ModelEntry,
    mode: str,
    ensemble: str,
    tau_fs: float,
    atoms: ase.Atoms,
    settings: CompareSettings,
    outdir: Path,
) -> Dict[str, Any]:
    """Equilibration, then production under one thermostat.

    With ``settings.equilibration_thermostat`` ``"same"``, one MD run whose first
    ``equilibration_fs`` are left out of every number; otherwise the equilibration is
    its own run (``<outdir>.equilibration``) under that thermostat, and the production
    run continues from its last frame and momenta. The temperatures (block averages,
    :func:`~metatrain_nc.dynamics.monitor.equipartition`) and the diffusion
    coefficients (:func:`~metatrain_nc.dynamics.diffusion.diffusion_coefficients`)
    come from the production part.

    :return: ``status``, the run's ``equipartition`` (temperatures, deviations from the
        target, species splits with errors and verdicts), ``diffusion`` (per species,
        A^2/ps), ``heating_rate_K_per_ps``, ``wall_time_s``, ``inner_steps_per_s``,
        ``warnings`` and the run's ``folder``.
    """
    import dataclasses

    from ...dynamics.md import run_md
    from ...dynamics.outputs import FILES

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
    entry.reset_counters()
    unit = {"model": entry.name, "mode": mode, "ensemble": ensemble, "tau_fs": tau_fs}
    equilibration_summary = None
    if separate:
        steps = settings.outer_steps(settings.equilibration_fs)
        first = dataclasses.replace(
            md,
            ensemble=equilibration[0],
            tau_fs=equilibration[1],
            steps=steps,
            trajectory_every=steps,
            plots=False,
            equilibration_fraction=0.0,
        )
        folder = outdir.with_name(outdir.name + ".equilibration")
        equilibration_summary = run_md(entry.model, atoms, folder, first, force=True)
        if equilibration_summary["status"] != "completed":
            message = equilibration_summary.get("message")
            return dict(
                unit,
                status=equilibration_summary["status"],
                message=f"during the equilibration: {message}",
                folder=str(outdir),
            )
        atoms = ase.io.read(folder / FILES["trajectory"], -1)
        md = dataclasses.replace(md, velocities="structure")
    summary = run_md(entry.model, atoms, outdir, md)
    record: Dict[str, Any] = {
        **unit,
        "status": summary["status"],
        "message": summary.get("message"),
        "equipartition": summary.get("equipartition"),
        "heating_rate_K_per_ps": summary.get("heating_rate_K_per_ps"),
        "wall_time_s": summary["wall_time_s"],
        "inner_steps_per_s": steps_per_s(summary, settings),
        "simulated_time_ps": summary["simulated_time_ps"],
        "warnings": summary.get("warnings", []),
        "folder": str(outdir),
        "diffusion": None,
        "production_start_fs": 0.0 if separate else settings.equilibration_fs,
        "equilibration": None
        if equilibration_summary is None
        else {
            "thermostat": settings.equilibration_thermostat,
            "equipartition": equilibration_summary.get("equipartition"),
            "wall_time_s": equilibration_summary["wall_time_s"],
        },
    }
    if summary["status"] != "completed":
        return record
    return add_diffusion(record, settings)


def add_diffusion(record: Dict[str, Any], settings: CompareSettings) -> Dict[str, Any]:
    """Diffusion coefficients of an NVT record from its run's trajectory (production
    part), with the estimator's name; an error is noted, not raised."""
    from ...dynamics.diffusion import METHOD, trajectory_diffusion
    from ...dynamics.outputs import FILES

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


def round_off_floor(entry: ModelEntry, atoms: ase.Atoms) -> Dict[str, float]:
    """Largest change of any force component (eV/A) under a rigid translation, per
    head: the noise floor of the model's arithmetic (float32: ~1e-5 to 1e-4 eV/A).

    A relaxation threshold below it cannot be met reliably whatever the optimiser.
    """
    shifted = atoms.copy()
    shifted.positions = shifted.positions + FLOOR_SHIFT_A
    floor = {}
    for head in entry.heads:
        flags = {"conservative": head == "conservative", "direct": head == "direct"}
        first = entry.model.evaluate(atoms, **flags).forces(head)
        second = entry.model.evaluate(shifted, **flags).forces(head)
        floor[head] = float(np.abs(np.asarray(first) - np.asarray(second)).max())
    return floor


def relax_set(
    entry: ModelEntry,
    starts: Sequence[ase.Atoms],
    fmax: float,
    settings: CompareSettings,
    kind: str,
    dtype_note: Optional[str] = None,
) -> Dict[str, Any]:
    """Relax every start with every head and optimiser to ``fmax``.

    :return: ``records`` (one per relaxation, with its ``stop_reason``), ``summary``
        (per head and optimiser: successes, trials, rate and its Wilson 95% interval,
        counts of stop reasons), ``round_off_floor_eV_per_A`` per head, and whether
        the floor is above ``fmax``.
    """
    from ...dynamics.relax import success_interval

    floor = round_off_floor(entry, starts[0])
    result, groups = relax(entry, starts, fmax=fmax, settings=settings)
    summary: Dict[str, Dict[str, Any]] = {}
    for head in entry.heads:
        summary[head] = {}
        for name in settings.relax_optimizers:
            records = groups.get(head, {}).get(name, [])
            successes = sum(bool(r["converged"]) for r in records)
            rate, low, high = success_interval(successes, len(records))
            summary[head][name] = {
                "successes": successes,
                "trials": len(records),
                "rate": rate,
                "interval_95": [low, high],
                "stop_reasons": result["stop_reasons"][head][name],
                "mean_steps": float(np.mean([r["steps"] for r in records])),
            }
    return {
        "model": entry.name,
        "kind": kind,
        "fmax_eV_per_A": fmax,
        "max_steps": settings.relax_steps,
        "n_structures": len(starts),
        "n_atoms": [len(a) for a in starts],
        "dtype": getattr(entry.model, "dtype", None),
        "dtype_note": dtype_note,
        "round_off_floor_eV_per_A": floor,
        "floor_above_threshold": {h: v > fmax for h, v in floor.items()},
        "summary": summary,
        "records": result["records"],
    }
