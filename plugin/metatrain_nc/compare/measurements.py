"""The measuring stages of the standard protocol, one model each: accuracy against
the labels, cost per force call, antisymmetry of the force Jacobian. Each returns a
JSON-ready dictionary for ``report.json`` (antisymmetry also writes its folders),
reusing the package's tools (:func:`~metatrain_nc.evaluation.accuracy.model_accuracy`,
:func:`~metatrain_nc.antisymmetry.evaluate`, :mod:`metatrain_nc.timing`).

Units: energies in meV/atom, forces in meV/A, costs in ms.
"""

import itertools
from pathlib import Path
from typing import Any, Dict, Sequence

import ase
import numpy as np

from ..force_models.names import CONSERVATIVE, DIRECT
from .models import ModelEntry
from .settings import CompareSettings

#: force head -> output name used by the antisymmetry evaluator
HEAD_OUTPUTS = {"conservative": "conservative", "direct": "non_conservative_force"}


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
        if entry.model_kind == "ase" and 3 * len(atoms) > settings.max_exact_rows:
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
