"""The stages of a comparison, one function per stage and model.

Each function returns a JSON-ready dictionary for ``report.json`` and writes its own
files (antisymmetry and MD folders) below ``folder``. They reuse the package's tools:
:func:`~metatrain_nc.evaluation.accuracy.model_accuracy`,
:func:`~metatrain_nc.antisymmetry.evaluate`, :func:`~metatrain_nc.dynamics.md.run_md`,
:func:`~metatrain_nc.dynamics.relax.relaxation_check` and
:class:`~metatrain_nc.force_models.ForceModel`.

Units: energies in meV/atom, forces in meV/A, times in fs/ps, costs in ms.
"""

import itertools
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import ase
import numpy as np

from ..force_models.names import CONSERVATIVE, DIRECT
from .models import ModelEntry
from .settings import CompareSettings

#: force head -> output name used by the antisymmetry evaluator
HEAD_OUTPUTS = {"conservative": "conservative", "direct": "non_conservative_force"}


def has_labels(frames: Sequence[ase.Atoms], energy_key: str, forces_key: str) -> bool:
    """Whether every structure has an energy or force label."""
    from ..evaluation.accuracy import _labels

    for atoms in frames:
        energy, forces = _labels(atoms, energy_key, forces_key)
        if energy is None and forces is None:
            return False
    return True


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


def timed_calls(calls, atoms: ase.Atoms, settings: CompareSettings) -> Dict[str, Any]:
    """Wall-clock cost of ``calls`` (``name -> ForceCall``) on ``atoms`` with
    :func:`~metatrain_nc.force_models.timing.time_force_calls` (distinct
    configurations, interleaved, 3 warm-up calls each): ``ms`` and ``ms_per_atom``
    per name (medians), ``timing`` (what was timed, every call's seconds)."""
    from ..force_models.timing import time_force_calls

    timings = time_force_calls(
        calls, atoms, repeats=settings.cost_repeats, warmup=3, where="the MD structure"
    )
    return {
        "n_atoms": len(atoms),
        "repeats": settings.cost_repeats,
        "ms": {name: t.ms_per_call for name, t in timings.items()},
        "ms_per_atom": {name: t.ms_per_atom for name, t in timings.items()},
        "timing": {name: t.as_dict() for name, t in timings.items()},
    }


def cost_stage(
    entry: ModelEntry, atoms: ase.Atoms, settings: CompareSettings
) -> Dict[str, Any]:
    """Wall time of one force evaluation per head on the MD structure (ms, ms/atom).

    ``conservative``: energy and ``-dE/dr`` (forward + backward); ``direct``: the
    forward pass only; ``mts_per_inner_step``: the average cost of an inner step of
    MTS, ``(both + (stride - 1) * direct) / stride``. A teacher-student pair: the
    teacher's conservative call, the ``fast`` model's call and ``fast +
    conservative / stride``. Timed by :func:`timed_calls`.
    """
    from ..force_models.pair import ForcePair
    from ..force_models.timing import ForceCall

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
    result = timed_calls(calls, atoms, settings)
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
    reference: Optional[str] = None
    for model_kind, kind in itertools.product(
        ("metatomic", "ase"), ("conservative", "hybrid")
    ):
        for entry in entries:
            cost = costs.get(entry.name)
            if entry.model_kind != model_kind or entry.kind != kind:
                continue
            if cost and "conservative" in cost.get("ms", {}):
                reference = entry.name
                break
        if reference:
            break
    if reference is None:
        return None
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


#: numbers kept from each MD summary
MD_KEYS = (
    "status",
    "message",
    "outer_steps_done",
    "simulated_time_ps",
    "wall_time_s",
    "model_forward_passes",
    "model_backward_passes",
    "heating_rate_K_per_ps",
    "heating_rate_error_K_per_ps",
    "drift_meV_per_atom_per_ps",
    "drift_error_meV_per_atom_per_ps",
    "drift_ratio",
    "conserved_fluctuation_meV_per_atom",
    "mean_temperature_K",
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


def steps_per_s(summary: Dict[str, Any], settings: CompareSettings) -> float:
    """Inner steps per second of wall time of an MD run."""
    inner = summary["outer_steps_done"] * settings.stride
    return inner / max(summary["wall_time_s"], 1e-9)


def equilibrate(
    entry: ModelEntry, atoms: ase.Atoms, settings: CompareSettings
) -> ase.Atoms:
    """``settings.equilibration_fs`` of SVR dynamics at the target temperature with
    the model's own forces (conservative when it has them; a pair's: its teacher's);
    returns the end state with its momenta."""
    from ase import units

    from ..dynamics.integrator import MultipleTimeStep
    from ..dynamics.structures import has_velocities, maxwell_boltzmann

    start = atoms.copy()
    if not has_velocities(start):
        maxwell_boltzmann(start, settings.temperature_K, settings.seed)
    mode = "conservative" if "conservative" in entry.heads else "direct"
    dyn = MultipleTimeStep(
        start,
        settings.mts_outer_fs * units.fs,
        entry.model,
        forces=mode,
        stride=settings.stride,
        ensemble="svr",
        temperature_K=settings.temperature_K,
        tau=min(settings.tau_fs, settings.equilibration_fs / 4) * units.fs,
        rng=settings.seed + 7,
    )
    dyn.run(settings.outer_steps(settings.equilibration_fs))
    end = ase.Atoms(start.numbers, start.positions, cell=start.cell, pbc=start.pbc)
    end.set_momenta(start.get_momenta())
    return end


def md_stage(
    entry: ModelEntry,
    atoms: ase.Atoms,
    settings: CompareSettings,
    folder: Path,
    ensemble: str,
) -> Dict[str, Any]:
    """One MD run per force mode (NVE, or NVT with the SVR thermostat) into
    ``folder/NAME-ENSEMBLE-MODE``; a pair's one ``mts`` run has its fast model drive
    the inner steps.

    :param ensemble: ``"nve"`` or ``"svr"``.
    :return: per mode, the run's summary numbers (:data:`MD_KEYS`, per-species
        temperatures, the equipartition check of NVT runs), inner steps per second
        and its folder relative to the report.
    """
    from ..dynamics.md import run_md

    if ensemble == "nve" and settings.equilibration_fs > 0:
        atoms = equilibrate(entry, atoms, settings)
    total = settings.nve_time_fs if ensemble == "nve" else settings.nvt_time_fs
    results: Dict[str, Any] = {}
    for mode in entry.modes:
        md = md_settings(settings, mode, ensemble, total, settings.tau_fs)
        outdir = folder / f"{entry.name}-{ensemble}-{mode}"
        entry.reset_counters()  # each run reports its own model calls
        summary = run_md(entry.model, atoms, outdir, md, force=True, fast=entry.fast)
        data = {key: summary.get(key) for key in MD_KEYS}
        for key, value in summary.items():
            if key.startswith(("mean_temperature_", "deviation_")):
                data[key] = value
        if summary.get("equipartition") is not None:  # NVT: splits, error bars
            data["equipartition"] = summary["equipartition"]
        if entry.is_pair:
            data["fast_model_forward_passes"] = summary.get("fast_model_forward_passes")
        data["inner_steps_per_s"] = steps_per_s(summary, settings)
        data["folder"] = str(outdir.relative_to(folder.parent))
        results[mode] = data
    return results


def relax(entry: ModelEntry, starts, settings: CompareSettings, fmax, sigma=0.0):
    """Every start (displaced by ``sigma``) relaxed to ``fmax`` with every head and
    optimiser (:func:`~metatrain_nc.dynamics.relax.relaxation_check`): its result and
    its records per head and optimiser."""
    from ..dynamics.relax import relaxation_check

    result = relaxation_check(
        entry.model,
        starts,
        force_modes=entry.heads,
        optimizers=settings.relax_optimizers,
        fmax=fmax,
        steps=settings.relax_steps,
        sigma=sigma,
        seed=settings.seed,
    )
    groups: Dict[str, Dict[str, List[Dict[str, Any]]]] = {}
    for record in result["records"]:
        head = groups.setdefault(record["forces"], {})
        head.setdefault(record["optimizer"], []).append(record)
    return result, groups


def relax_stage(
    entry: ModelEntry, frames: Sequence[ase.Atoms], settings: CompareSettings
) -> Dict[str, Any]:
    """Fraction of displaced structures converged per head and optimiser (Table 7)."""
    frames = list(frames[: settings.relax_structures])
    fmax, sigma = settings.relax_fmax, settings.relax_sigma_A
    result, groups = relax(entry, frames, settings, fmax, sigma)
    return {
        "n_structures": len(frames),
        "fmax_eV_per_A": fmax,
        "max_steps": settings.relax_steps,
        "sigma_A": sigma,
        "fractions": result["fractions"],
        "mean_steps": {
            mode: {o: float(np.mean([r["steps"] for r in v])) for o, v in per.items()}
            for mode, per in groups.items()
        },
        "records": result["records"],
    }
