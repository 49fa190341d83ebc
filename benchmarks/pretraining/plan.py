"""Settings and run plan of ``benchmarks/pretrain_finetune.py``: the datasets, the
checked settings (:func:`make_settings`), the runs of one dataset and seed
(:func:`plan_runs`) and their estimated cost (:func:`plan_cost`)."""

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ROOT / "recipes" / "small"
DATA = ROOT / "recipes" / "data"

#: epochs written into the options: never reached, the run is stopped on time
NUM_EPOCHS = 100_000
WARMUP_EPOCHS = 1
#: the test frames are drawn once, with this seed, for every seed of the benchmark
TEST_SPLIT_SEED = 20261130
#: evaluation points of the conservative curve: evenly spaced, plus a few early
GRID_POINTS = 30
EARLY_POINTS = 8
#: seconds between two looks for new checkpoints
POLL_S = 0.25
#: measured on the 2-core machine (quick run): evaluation of one checkpoint (s)
EVAL_S = {"ethanol": 0.5, "water": 1.5}
#: mtt train start-up before the first epoch, and the checkpoint conversion (s)
SETTINGS_FILE = "settings.json"
SETTINGS_VERSION = 1


@dataclass(frozen=True)
class Dataset:
    name: str
    data: str
    recipe: str
    n_test: int
    n_val: int
    description: str


DATASETS = {
    "ethanol": Dataset(
        "ethanol",
        "ethanol_100_eV.xyz",
        "ethanol",
        10,
        10,
        "ethanol, 100 frames of 9 atoms (eV)",
    ),
    "water": Dataset(
        "water",
        "water_64h2o_40frames.xyz",
        "water",
        4,
        4,
        "bulk water, 40 frames of 64 H2O (periodic, with stress)",
    ),
}
FINETUNE_ARCHITECTURES = ("pet_m", "pet")
RECIPE_OF = {"pet": "pet_c", "pet_nc": "pet_nc", "pet_m": "pet_m"}
DEFAULTS = {
    "budgets": [5.0, 10.0, 20.0],
    "fractions": [0.25, 0.5, 0.75],
    "seeds": [0, 1, 2],
    "datasets": ["ethanol", "water"],
    "finetune": ["pet_m", "pet"],
}
QUICK = {
    "budgets": [0.75],
    "fractions": [0.5],
    "seeds": [0],
    "datasets": ["ethanol"],
    "finetune": ["pet_m", "pet"],
}


class InputError(Exception):
    """Bad command-line input: reported without a traceback, exit code 2."""


def make_settings(
    budgets: Sequence[float],
    fractions: Sequence[float],
    seeds: Sequence[int],
    datasets: Sequence[str],
    finetune: Sequence[str],
    threads: int = 2,
    learning_rate: float = 1e-3,
    finetune_learning_rate: float = 1e-3,
    direct_forces_weight: float = 0.1,
    reference_factor: float = 1.5,
) -> dict:
    """Check the benchmark's settings and return them as a json-able dict.

    :raises InputError: unknown dataset or fine-tuning architecture, a fraction
        outside (0, 1), a budget or learning rate that is not positive, negative
        seeds, duplicates, fewer than one thread.
    """
    budgets = [float(b) for b in budgets]
    fractions = [float(f) for f in fractions]
    seeds = [int(s) for s in seeds]
    if not budgets or not fractions or not seeds or not datasets or not finetune:
        raise InputError(
            "budgets, fractions, seeds, datasets and --finetune need a value"
        )
    unknown = [d for d in datasets if d not in DATASETS]
    if unknown:
        raise InputError(
            f"unknown dataset(s) {', '.join(unknown)}; known: {', '.join(DATASETS)}"
        )
    unknown = [a for a in finetune if a not in FINETUNE_ARCHITECTURES]
    if unknown:
        raise InputError(
            f"unknown fine-tuning architecture(s) {', '.join(unknown)}; known: "
            f"{', '.join(FINETUNE_ARCHITECTURES)}"
        )
    bad = [b for b in budgets if not (math.isfinite(b) and b > 0)]
    if bad:
        raise InputError(f"budgets must be positive minutes, got {bad}")
    bad = [f for f in fractions if not (math.isfinite(f) and 0 < f < 1)]
    if bad:
        raise InputError(f"fractions must lie strictly between 0 and 1, got {bad}")
    if any(s < 0 for s in seeds):
        raise InputError(f"seeds must be non-negative integers, got {seeds}")
    for name, values in (
        ("budgets", budgets),
        ("fractions", fractions),
        ("seeds", seeds),
        ("datasets", list(datasets)),
        ("--finetune", list(finetune)),
    ):
        if len(set(values)) != len(values):
            raise InputError(f"{name} has duplicates: {values}")
    if threads < 1:
        raise InputError(f"--threads must be at least 1, got {threads}")
    for name, value in (
        ("--lr", learning_rate),
        ("--finetune-lr", finetune_learning_rate),
    ):
        if not (math.isfinite(value) and value > 0):
            raise InputError(f"{name} must be positive, got {value}")
    if not (math.isfinite(reference_factor) and reference_factor >= 1):
        raise InputError(f"--reference-factor must be >= 1, got {reference_factor}")
    if not (math.isfinite(direct_forces_weight) and direct_forces_weight >= 0):
        raise InputError(
            f"--direct-forces-weight must be >= 0, got {direct_forces_weight}"
        )
    return {
        "version": SETTINGS_VERSION,
        "budgets_min": sorted(budgets),
        "fractions": sorted(fractions),
        "seeds": seeds,
        "datasets": list(datasets),
        "finetune": list(finetune),
        "threads": int(threads),
        "learning_rate": float(learning_rate),
        "finetune_learning_rate": float(finetune_learning_rate),
        "direct_forces_weight": float(direct_forces_weight),
        "reference_factor": float(reference_factor),
        "num_epochs": NUM_EPOCHS,
        "warmup_epochs": WARMUP_EPOCHS,
        "test_split_seed": TEST_SPLIT_SEED,
    }


def settings_difference(stored: dict, asked: dict) -> List[str]:
    """Human-readable differences between stored and asked settings."""
    keys = sorted(set(stored) | set(asked))
    return [
        f"{k}: stored {stored.get(k)!r}, asked {asked.get(k)!r}"
        for k in keys
        if stored.get(k) != asked.get(k)
    ]


def seconds_label(seconds: float) -> str:
    """``75.0`` -> ``"75"``, ``22.5`` -> ``"22.5"``: run names by pre-training time."""
    return f"{seconds:.1f}".rstrip("0").rstrip(".")


@dataclass
class Run:
    """One ``mtt train`` subprocess and the times at which it is evaluated.

    :param name: folder name inside the seed's folder.
    :param arch: ``pet``, ``pet_nc`` or ``pet_m``.
    :param duration: wall seconds after which the subprocess is stopped.
    :param wanted: seconds since the start of the subprocess at which the model
        counts (the checkpoint written last before each is kept).
    :param pretrain: for fine-tuning runs, the pre-training time (s) of the pet_nc
        checkpoint it starts from; ``None`` for runs from scratch.
    :param evaluate: evaluate the kept checkpoints on the test frames.
    """

    name: str
    arch: str
    duration: float
    wanted: List[float]
    pretrain: Optional[float] = None
    evaluate: bool = True
    serves: List[Tuple[float, float]] = field(default_factory=list)


def pretrain_seconds(fraction: float, budget_min: float) -> float:
    """Pre-training time f B in seconds, rounded as run names and times are."""
    return round(fraction * budget_min * 60.0, 1)


def pretraining_times(settings: dict) -> Dict[float, List[Tuple[float, float]]]:
    """Distinct pre-training times f B (s) -> the (fraction, budget s) they serve."""
    times: Dict[float, List[Tuple[float, float]]] = {}
    for budget in settings["budgets_min"]:
        for fraction in settings["fractions"]:
            key = pretrain_seconds(fraction, budget)
            times.setdefault(key, []).append((fraction, round(budget * 60.0, 1)))
    return dict(sorted(times.items()))


def curve_grid(duration: float, budgets: Sequence[float]) -> List[float]:
    """Evaluation times (s) of the conservative curve: evenly spaced, early
    geometric points, and every budget."""
    count = max(2, min(GRID_POINTS, int(duration / 5.0)))
    points = set(np.linspace(duration / count, duration, count).tolist())
    early = min(15.0, duration / count)
    points |= set(np.geomspace(early, duration, EARLY_POINTS).tolist())
    points |= {b for b in budgets if b <= duration}
    return sorted({round(p, 1) for p in points})


def plan_runs(settings: dict) -> List[Run]:
    """The runs of one dataset and seed, in the order they are trained."""
    budgets = [round(b * 60.0, 1) for b in settings["budgets_min"]]
    pretrain = pretraining_times(settings)
    reference = round(max(budgets) * settings["reference_factor"], 1)
    runs = [
        Run("pet_c", "pet", reference, curve_grid(reference, budgets)),
        Run("pet_nc", "pet_nc", max(pretrain), sorted(pretrain), evaluate=False),
    ]
    for start, serves in pretrain.items():
        wanted = sorted({round(budget - start, 1) for _, budget in serves})
        for arch in settings["finetune"]:
            runs.append(
                Run(
                    f"{arch}_from_nc_{seconds_label(start)}s",
                    arch,
                    max(wanted),
                    wanted,
                    pretrain=start,
                    serves=serves,
                )
            )
    return runs


def finetune_run_name(
    arch: str, fraction: float, budget_min: float
) -> Tuple[str, float]:
    """Run name and local time (s) of strategy (arch, fraction) at a budget."""
    start = pretrain_seconds(fraction, budget_min)
    return (
        f"{arch}_from_nc_{seconds_label(start)}s",
        round(round(budget_min * 60.0, 1) - start, 1),
    )


def plan_cost(settings: dict) -> dict:
    """Estimated wall and CPU time (s) of the whole benchmark."""
    runs = plan_runs(settings)
    per_seed = {}
    for name in settings["datasets"]:
        wall = sum(r.duration for r in runs)
        evaluations = sum(len(r.wanted) for r in runs if r.evaluate)
        per_seed[name] = {
            "runs": len(runs),
            "training_s": wall,
            "evaluations": evaluations,
            "evaluation_s": evaluations * EVAL_S[name],
        }
    n_seeds = len(settings["seeds"])
    training = n_seeds * sum(v["training_s"] for v in per_seed.values())
    evaluation = n_seeds * sum(v["evaluation_s"] for v in per_seed.values())
    return {
        "per_seed": per_seed,
        "runs": n_seeds * sum(v["runs"] for v in per_seed.values()),
        "wall_s": training + evaluation,
        "cpu_s": training * settings["threads"] + evaluation * settings["threads"],
    }
