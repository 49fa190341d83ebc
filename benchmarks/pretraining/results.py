"""The results of the runs as data: what is stored (:func:`load_results`), the
errors of each strategy at each budget, time-to-accuracy (:func:`time_to_accuracy`),
the best pre-training fraction, and the cost of the results."""

import json
import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .plan import finetune_run_name, plan_runs

METRICS = {
    "force_rmse": ("force RMSE", "meV/A"),
    "energy_mae": ("energy MAE", "meV/atom"),
    "energy_rmse": ("energy RMSE", "meV/atom"),
}


def load_results(out: Path, settings: dict) -> dict:
    """``{dataset: {seed: {run name: {"run": run.json, "eval": eval.json}}}}`` of
    what is stored."""
    results: dict = {}
    for name in settings["datasets"]:
        for seed in settings["seeds"]:
            seed_dir = out / name / f"seed{seed}"
            for run in plan_runs(settings):
                entry = {}
                for key, file in (("run", "run.json"), ("eval", "eval.json")):
                    path = seed_dir / run.name / file
                    if path.exists():
                        entry[key] = json.loads(path.read_text())
                if entry:
                    results.setdefault(name, {}).setdefault(seed, {})[run.name] = entry
    return results


def point_at(entry: Optional[dict], local_s: float) -> Optional[dict]:
    """The evaluated point of a run at a wanted local time, if any."""
    if not entry or "eval" not in entry:
        return None
    for point in entry["eval"]["points"]:
        if abs(point["wanted_s"] - local_s) < 0.05 and "missing" not in point:
            return point
    return None


def strategies(settings: dict) -> List[Tuple[str, Optional[float]]]:
    return [("pet_c", None)] + [
        (arch, f) for arch in settings["finetune"] for f in settings["fractions"]
    ]


def strategy_label(arch: str, fraction: Optional[float]) -> str:
    if fraction is None:
        return "(a) pet, conservative"
    return f"(b) pet_nc {fraction:g} -> {arch}"


def strategy_values(
    seeds: dict, arch: str, fraction: Optional[float], budget_min: float
) -> Dict[int, dict]:
    """Per seed, the errors of a strategy at a budget."""
    values = {}
    for seed, runs in seeds.items():
        if fraction is None:
            point = point_at(runs.get("pet_c"), round(budget_min * 60.0, 1))
        else:
            name, local = finetune_run_name(arch, fraction, budget_min)
            point = point_at(runs.get(name), local)
        if point is not None:
            values[seed] = point
    return values


def conservative_curve(seeds: dict, metric: str) -> Dict[int, Tuple[list, list]]:
    """Per seed, the (times s, errors) of the conservative curve."""
    curves = {}
    for seed, runs in seeds.items():
        entry = runs.get("pet_c")
        if not entry or "eval" not in entry:
            continue
        times, errors = [], []
        for point in entry["eval"]["points"]:
            times.append(point["wanted_s"])
            errors.append(point.get(metric, math.nan))
        curves[seed] = (times, errors)
    return curves


def time_to_reach(times: Sequence[float], errors: Sequence[float], target: float):
    """First time a curve reaches ``target`` or below, interpolated linearly
    between evaluated times; ``None`` if it never does."""
    previous = None
    for t, e in zip(times, errors, strict=True):
        if e is None or not math.isfinite(e):
            previous = None
            continue
        if e <= target:
            if previous is None:
                return float(t)
            t0, e0 = previous
            return float(t0 + (t - t0) * (e0 - target) / (e0 - e))
        previous = (t, e)
    return None


def mean_curve(curves: Dict[int, Tuple[list, list]]) -> Tuple[list, list]:
    """Seed mean of curves on the same times (NaN where a seed lacks a point)."""
    if not curves:
        return [], []
    times = next(iter(curves.values()))[0]
    same = [c for c in curves.values() if c[0] == times]
    # NaN where some seed has no model yet: not a mean over the seeds
    errors = np.array([c[1] for c in same], dtype=float).mean(axis=0)
    return list(times), errors.tolist()


def time_to_accuracy(
    seeds: dict, arch: str, fraction: float, budget_min: float, metric: str
) -> Optional[dict]:
    """Time (a) needs to reach the error (b) reaches at ``budget_s``, over the
    budget: from the seed means, and per seed (seed s of (a) against seed s of (b)).

    A ratio above 1: conservative training needs longer than the budget; a curve
    that never reaches the error gives a lower bound (``reached`` False).
    """
    budget_s = budget_min * 60.0
    values = strategy_values(seeds, arch, fraction, budget_min)
    curves = conservative_curve(seeds, metric)
    if not values or not curves:
        return None
    times, errors = mean_curve({s: c for s, c in curves.items() if s in values})
    if not times:
        return None
    target = float(np.mean([values[s][metric] for s in values if s in curves]))
    reach = time_to_reach(times, errors, target)
    per_seed = []
    for seed, point in values.items():
        if seed in curves:
            t = time_to_reach(*curves[seed], point[metric])
            # None: seed s of (a) never reached the error of seed s of (b)
            per_seed.append(t / budget_s if t is not None else None)
    return {
        "ratio": (reach if reach is not None else max(times)) / budget_s,
        "reached": reach is not None,
        "per_seed": per_seed,
    }


def summarise(results: dict, settings: dict) -> dict:
    """Tables of the report as data: per dataset, budget and strategy."""
    summary: dict = {}
    for name, seeds in results.items():
        rows = []
        for budget in settings["budgets_min"]:
            for arch, fraction in strategies(settings):
                values = strategy_values(seeds, arch, fraction, budget)
                row = {
                    "budget_min": budget,
                    "arch": arch,
                    "fraction": fraction,
                    "seeds": sorted(values),
                }
                for metric in METRICS:
                    data = [v[metric] for v in values.values()]
                    row[metric] = (
                        {
                            "mean": float(np.mean(data)),
                            "min": float(np.min(data)),
                            "max": float(np.max(data)),
                        }
                        if data
                        else None
                    )
                if fraction is not None:
                    for metric in ("force_rmse", "energy_mae"):
                        row[f"tta_{metric}"] = time_to_accuracy(
                            seeds, arch, fraction, budget, metric
                        )
                rows.append(row)
        summary[name] = {"rows": rows, "best": best_fractions(rows, settings)}
    return summary


def best_fractions(rows: List[dict], settings: dict) -> Dict[str, dict]:
    """Per fine-tuning architecture: the best f at each budget (lowest mean force
    RMSE) and overall (lowest mean over budgets of the error relative to (a))."""
    best = {}
    for arch in settings["finetune"]:
        per_budget, relative = {}, {}
        for budget in settings["budgets_min"]:
            mine = [
                r
                for r in rows
                if r["arch"] == arch
                and r["budget_min"] == budget
                and r["force_rmse"] is not None
            ]
            reference = next(
                (
                    r["force_rmse"]["mean"]
                    for r in rows
                    if r["arch"] == "pet_c"
                    and r["budget_min"] == budget
                    and r["force_rmse"] is not None
                ),
                None,
            )
            if mine:
                top = min(mine, key=lambda r: r["force_rmse"]["mean"])
                per_budget[budget] = top["fraction"]
            for r in mine:
                if reference:
                    relative.setdefault(r["fraction"], []).append(
                        r["force_rmse"]["mean"] / reference
                    )
        complete = {
            f: float(np.mean(v))
            for f, v in relative.items()
            if len(v) == len(settings["budgets_min"])
        }
        overall = min(complete, key=complete.get) if complete else None
        best[arch] = {
            "per_budget": per_budget,
            "overall": overall,
            "relative_force_rmse": complete,
        }
    return best


def cost_summary(results: dict) -> dict:
    training = evaluation = wall = 0.0
    runs = evaluations = 0
    loads = []
    for seeds in results.values():
        for runs_of_seed in seeds.values():
            for entry in runs_of_seed.values():
                if "run" in entry:
                    if "load_before" in entry["run"]:
                        loads.append(entry["run"]["load_before"])
                    training += entry["run"].get("cpu_s", 0.0)
                    wall += entry["run"].get("wall_s", 0.0)
                    runs += "skipped" not in entry["run"]
                if "eval" in entry:
                    evaluation += entry["eval"]["cpu_s"]
                    wall += entry["eval"]["wall_s"]
                    evaluations += entry["eval"]["evaluations"]
    return {
        "training_cpu_s": training,
        "evaluation_cpu_s": evaluation,
        "cpu_s": training + evaluation,
        "wall_s": wall,
        "runs": runs,
        "evaluations": evaluations,
        "load_median": float(np.median(loads)) if loads else None,
        "load_max": float(np.max(loads)) if loads else None,
    }


def epoch_table(results: dict) -> List[dict]:
    """Median seconds per epoch and time to the first checkpoint, per dataset and
    architecture (fine-tunings and trainings from scratch apart)."""
    rows = []
    for name, seeds in results.items():
        groups: Dict[str, Dict[str, list]] = {}
        for runs in seeds.values():
            for run_name, entry in runs.items():
                info = entry.get("run")
                if not info or "skipped" in info:
                    continue
                kind = "pet_c" if run_name == "pet_c" else run_name.split("_from")[0]
                if "_from_" in run_name:
                    kind += " (fine-tuning)"
                group = groups.setdefault(kind, {"epoch": [], "first": []})
                if info.get("seconds_per_epoch"):
                    group["epoch"].append(info["seconds_per_epoch"])
                if info.get("first_checkpoint_s") is not None:
                    group["first"].append(info["first_checkpoint_s"])
        for kind, group in groups.items():
            rows.append(
                {
                    "dataset": name,
                    "run": kind,
                    "seconds_per_epoch": float(np.median(group["epoch"]))
                    if group["epoch"]
                    else None,
                    "first_checkpoint_s": float(np.median(group["first"]))
                    if group["first"]
                    else None,
                }
            )
    return rows
