"""Does direct pre-training pay? Time-to-accuracy of pet_nc -> pet_m (and stock pet)
fine-tuning against conservative training, at equal wall-clock budgets.

Strategies, for a wall-clock budget B (minutes on this machine) and a fraction f:

- (a) ``pet_c``: stock ``pet`` trained conservatively (forces = -dE/dr) for all of B;
- (b) ``pet_m`` f: ``pet_nc`` (direct forces, no backward pass) for f B, then
  ``pet_m`` fine-tuned from that checkpoint for (1 - f) B through the unmodified
  ``mtt train`` with ``training.finetune.read_from`` (as
  ``recipes/water/pet_m_from_nc.yaml``);
- (b') ``pet`` f: the same, fine-tuned as stock ``pet``. This benchmark first turns
  the checkpoint into a stock-pet one (the same backbone and energy head; the direct
  head dropped; :func:`metatrain_nc.direct.conversion.to_stock_pet`) in a subprocess
  whose time counts in the fine-tuning budget. (``mtt train`` of ``pet`` with the
  ``pet_nc`` checkpoint as ``read_from`` now does the same conversion itself; the
  separate step is kept so that stored results stay comparable.)

Data: the bundled ethanol (``recipes/data/ethanol_100_eV.xyz``; 80 train, 10
validation, 10 test frames) and bulk-water subset
(``recipes/data/water_64h2o_40frames.xyz``; 32 / 4 / 4) with the small PETs of
``recipes/small/*.yaml``. The test frames are the same for every seed and strategy;
each seed draws its own train/validation split (and training seed). All files are
written into ``--out`` so every strategy of a seed trains on the same frames.

How the time is measured. Each training is one ``mtt train`` subprocess (``threads``
OpenMP threads, default 2; one at a time) with ``checkpoint_interval: 1`` and a
number of epochs it never reaches: the cosine learning-rate schedule is stretched over
100000 epochs after a 1-epoch warm-up, i.e. a constant learning rate, the same for all
strategies (a run that knows its budget could anneal, which lowers every error). The
wall time at which each ``model_<epoch>.ckpt`` is complete (its modification time,
counted from the start of the subprocess: start-up included, as a user pays it) is
recorded, and the process group is stopped once the run's budget is spent. The model
a user has at time t is the best model (by metatrain's validation metric,
``best_model_metric``) of the last checkpoint written before t, i.e. what
``mtt export`` or a fine-tuning would take from it. Writing a checkpoint every epoch
costs every strategy the same few tens of milliseconds per epoch.
Checkpoints are evaluated after the run (evaluation never steals training time): the
conservative forces (-dE/dr) and energies of the test frames, through
:func:`metatrain_nc.evaluation.accuracy.model_accuracy` (as
``benchmarks/direct_accuracy.py``); energy MAE/RMSE in meV/atom, force RMSE in meV/A.
Checkpoints nobody needs are deleted while the run goes on (each is ~7 MB).

Runs per dataset and seed: one ``pet_c`` curve of 1.5 max(B) (``--reference-factor``:
so that (a) can show it needs more than the largest budget), one ``pet_nc`` curve of
max(f B), and one fine-tuning curve per distinct pre-training time f B and
fine-tuning architecture, long enough for every budget that starts from it (f B
values that coincide share a curve). Budgets 5, 10, 20 min and f = 0.25, 0.5, 0.75
give 7 pre-training times and fine-tuning curves of 45 min per architecture.
Time-to-accuracy: the time the seed-mean curve of (a) needs to reach the seed-mean
error of (b) at budget B, over B (linear between evaluated times).

Cost (``--plan`` prints it for any settings): a default run (2 datasets x 3 seeds,
budgets 5, 10, 20 min, f 0.25, 0.5, 0.75, fine-tuned as pet_m and pet) is 96 runs,
6 x 135 min = 13.5 h of wall time and ~27 h of CPU time with 2 threads, plus a few
minutes of evaluation (0.4 s per ethanol checkpoint, measured) and of checkpoint
conversion (~6 s per stock-pet fine-tuning). ``--finetune pet_m`` makes it 9 h.
``--quick`` (budget 0.75 min, f 0.5, seed 0, ethanol): ~2.5 min wall; measured
2.1 min wall and 2.0 min CPU with ``--threads 1`` (with the reference run at 1x).
Use 2 threads only on an otherwise idle 2-core machine: on a machine whose cores
were busy with other jobs, a 2-thread ``mtt train`` did not finish one ethanol epoch
in 80 s (1.5 s per epoch with 1 thread), the OpenMP threads waiting for each other.
Every run records the load average at its start; the report states it.

Run: ``python benchmarks/pretrain_finetune.py --out DIR`` (resumable: one json per
finished run and evaluation; rerunning skips them). At the end (and after every
seed) it writes the tables and a figure into ``--doc`` (default
``docs/pretrain_finetune.md``, between markers so that a hand-written discussion
around them is kept; ``--quick``: ``DIR/report.md``); ``--report`` only rebuilds
them from stored results; ``--plan`` prints the runs and their cost and exits.
"""

import argparse
import copy
import json
import math
import os
import re
import resource
import signal
import subprocess
import sys
import time
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes" / "small"
DATA = ROOT / "recipes" / "data"
DEFAULT_DOC = ROOT / "docs" / "pretrain_finetune.md"
BEGIN = "<!-- pretrain_finetune.py: begin of the generated part -->"
END = "<!-- pretrain_finetune.py: end of the generated part -->"

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
STARTUP_S = 12.0
CONVERSION_S = 8.0

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


# --------------------------------------------------------------------------------------
# settings and plan


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


# --------------------------------------------------------------------------------------
# data


def xyz_blocks(path: Path) -> List[str]:
    """The frames of an (ext)xyz file as text blocks, kept verbatim."""
    lines = path.read_text().splitlines(keepends=True)
    blocks, index = [], 0
    while index < len(lines):
        if not lines[index].strip():
            index += 1
            continue
        count = int(lines[index].split()[0])
        blocks.append("".join(lines[index : index + count + 2]))
        index += count + 2
    return blocks


def split_indices(
    n_frames: int, n_test: int, n_val: int, seed: int
) -> Dict[str, List[int]]:
    """Test frames fixed for all seeds; train/validation drawn per seed."""
    order = np.random.default_rng(TEST_SPLIT_SEED).permutation(n_frames)
    test = sorted(int(i) for i in order[:n_test])
    rest = order[n_test:]
    rest = rest[np.random.default_rng(seed).permutation(len(rest))]
    return {
        "train": sorted(int(i) for i in rest[n_val:]),
        "validation": sorted(int(i) for i in rest[:n_val]),
        "test": test,
    }


def write_split(dataset: Dataset, seed: int, folder: Path) -> Dict[str, Path]:
    """Write train.xyz, validation.xyz and test.xyz of a seed into ``folder``."""
    blocks = xyz_blocks(DATA / dataset.data)
    indices = split_indices(len(blocks), dataset.n_test, dataset.n_val, seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for part, chosen in indices.items():
        paths[part] = folder / f"{part}.xyz"
        if not paths[part].exists():
            tmp = paths[part].with_suffix(".tmp")
            tmp.write_text("".join(blocks[i] for i in chosen))
            tmp.replace(paths[part])
    return paths


def run_options(
    dataset: Dataset,
    arch: str,
    seed: int,
    split: Dict[str, Path],
    settings: dict,
    read_from: Optional[Path] = None,
) -> dict:
    """The options file of one run: the small recipe, with the benchmark's split,
    epochs, learning rate and checkpointing."""
    recipe = yaml.safe_load(
        (RECIPES / f"{dataset.recipe}_{RECIPE_OF[arch]}.yaml").read_text()
    )
    targets = recipe["training_set"]["targets"]
    training = recipe["architecture"]["training"]
    training.update(
        num_epochs=NUM_EPOCHS,
        warmup_fraction=WARMUP_EPOCHS / NUM_EPOCHS,
        checkpoint_interval=1,
        num_workers=0,
        learning_rate=settings["learning_rate"],
    )
    if read_from is not None:
        training["learning_rate"] = settings["finetune_learning_rate"]
        training["finetune"] = {"method": "full", "read_from": str(read_from)}
        if arch == "pet_m":
            training["direct_forces_weight"] = settings["direct_forces_weight"]
            if "stress" in training["loss"]["energy"]:
                training["direct_stress_weight"] = settings["direct_forces_weight"]
    # the pre-trained pet_nc and the fine-tuned model share the backbone's hypers
    if arch != "pet_nc":
        nc = yaml.safe_load((RECIPES / f"{dataset.recipe}_pet_nc.yaml").read_text())
        if nc["architecture"]["model"] != recipe["architecture"]["model"]:
            raise RuntimeError(
                f"recipes/small/{dataset.recipe}_{RECIPE_OF[arch]}.yaml and "
                f"{dataset.recipe}_pet_nc.yaml have different model hypers"
            )

    def section(path: Path) -> dict:
        return {
            "systems": {"read_from": str(path), "length_unit": "angstrom"},
            "targets": copy.deepcopy(targets),
        }

    return {
        "seed": int(seed),
        "architecture": recipe["architecture"],
        "training_set": section(split["train"]),
        "validation_set": section(split["validation"]),
        "test_set": 0.0,
    }


# --------------------------------------------------------------------------------------
# training with checkpoint times


CHECKPOINT = re.compile(r"model_(\d+)\.ckpt$")


def checkpoint_complete(path: Path) -> bool:
    """Whether ``torch.save`` finished writing ``path`` (a zip with its directory)."""
    try:
        with zipfile.ZipFile(path):
            return True
    except (zipfile.BadZipFile, OSError):
        return False


class CheckpointTracker:
    """Watches ``outputs/*/*/model_<epoch>.ckpt`` of a running ``mtt train``.

    A checkpoint is complete once the next one exists, and its time (modification
    time since ``start``) is then final. Of the complete ones, those that are the
    last before a wanted time are kept, the others deleted at once.
    """

    def __init__(self, run_dir: Path, start: float, wanted: Sequence[float]):
        self.run_dir = run_dir
        self.start = start
        self.wanted = sorted(wanted)
        self.paths: Dict[int, Path] = {}
        self.times: Dict[int, float] = {}
        self.kept: Dict[int, bool] = {}

    def _time(self, epoch: int) -> float:
        if epoch not in self.times:
            self.times[epoch] = self.paths[epoch].stat().st_mtime - self.start
        return self.times[epoch]

    def _decide(self, epoch: int, next_time: float) -> None:
        this = self._time(epoch)
        keep = any(this <= w < next_time for w in self.wanted)
        self.kept[epoch] = keep
        if not keep:
            self.paths[epoch].unlink(missing_ok=True)

    def scan(self) -> None:
        for path in self.run_dir.glob("outputs/*/*/model_*.ckpt"):
            match = CHECKPOINT.search(path.name)
            if match and int(match[1]) not in self.paths:
                self.paths[int(match[1])] = path
        epochs = sorted(self.paths)
        for index, epoch in enumerate(epochs[:-2]):
            if epoch not in self.kept:
                self._decide(epoch, self._time(epochs[index + 1]))

    def finish(self, duration: float) -> List[dict]:
        """Decide the last checkpoints once the run stopped; drop a checkpoint cut
        short by the stop or completed after ``duration``."""
        self.scan()
        epochs = sorted(self.paths)
        while epochs and not (
            self.kept.get(epochs[-1]) is not None
            or (
                checkpoint_complete(self.paths[epochs[-1]])
                and self._time(epochs[-1]) <= duration
            )
        ):
            self.paths[epochs[-1]].unlink(missing_ok=True)
            del self.paths[epochs[-1]]
            epochs.pop()
        for index, epoch in enumerate(epochs):
            if epoch not in self.kept:
                later = epochs[index + 1 :]
                self._decide(epoch, self._time(later[0]) if later else math.inf)
        return [
            {
                "epoch": epoch,
                "time_s": round(self._time(epoch), 3),
                "kept": self.kept[epoch],
                "path": os.path.relpath(self.paths[epoch], self.run_dir),
            }
            for epoch in epochs
        ]


def checkpoint_at(checkpoints: Sequence[dict], time_s: float) -> Optional[dict]:
    """The last checkpoint written at or before ``time_s``."""
    before = [c for c in checkpoints if c["time_s"] <= time_s + 1e-6]
    return max(before, key=lambda c: c["time_s"]) if before else None


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def stop(process: subprocess.Popen) -> None:
    """Stop the process group we started: SIGTERM, then SIGKILL."""
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 30.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def log_tail(path: Path, lines: int = 15) -> str:
    text = path.read_text(errors="replace").splitlines() if path.exists() else []
    return "\n".join(text[-lines:])


def train_curve(
    run: Run,
    run_dir: Path,
    options: dict,
    threads: int,
    convert_from: Optional[Path] = None,
) -> dict:
    """Train ``run`` for its duration; return what ``run.json`` stores."""
    env = dict(os.environ)
    env.update(
        OMP_NUM_THREADS=str(threads),
        MKL_NUM_THREADS=str(threads),
        PYTHONUNBUFFERED="1",
    )
    mtt = Path(sys.executable).parent / "mtt"
    log_path = run_dir / "mtt.log"
    cpu_before = children_cpu()
    load_before = os.getloadavg()[0]
    start = time.time()
    conversion_s = None
    if convert_from is not None:
        # convert the pet_nc checkpoint to stock pet first (counts in the budget)
        result = subprocess.run(
            [
                sys.executable,
                str(Path(__file__).resolve()),
                "--convert-pet-nc",
                str(convert_from),
                str(options["architecture"]["training"]["finetune"]["read_from"]),
            ],
            env=env,
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"converting {convert_from} to a stock-pet checkpoint failed:\n"
                f"{result.stderr[-3000:]}"
            )
        conversion_s = time.time() - start
    (run_dir / "options.yaml").write_text(yaml.safe_dump(options, sort_keys=False))
    tracker = CheckpointTracker(run_dir, start, run.wanted)
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [str(mtt), "train", "options.yaml", "-o", "model.pt"],
            cwd=run_dir,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        try:
            while True:
                elapsed = time.time() - start
                if process.poll() is not None:
                    raise RuntimeError(
                        f"mtt train stopped by itself after {elapsed:.0f} s "
                        f"(exit code {process.returncode}); its log, {log_path}, "
                        f"ends with:\n{log_tail(log_path)}"
                    )
                if elapsed >= run.duration:
                    break
                tracker.scan()
                time.sleep(max(0.0, min(POLL_S, run.duration - elapsed)))
        finally:
            if process.poll() is None:
                stop(process)
    wall = time.time() - start
    checkpoints = tracker.finish(run.duration)
    epochs = [c["time_s"] for c in checkpoints]
    return {
        "run": asdict(run),
        "wall_s": round(wall, 2),
        "cpu_s": round(children_cpu() - cpu_before, 2),
        # 1-minute load averages: other work on the machine slows the run down
        "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2),
        "conversion_s": None if conversion_s is None else round(conversion_s, 2),
        "epochs": len(checkpoints),
        "first_checkpoint_s": epochs[0] if epochs else None,
        "seconds_per_epoch": float(np.median(np.diff(epochs)))
        if len(epochs) > 2
        else None,
        "checkpoints": checkpoints,
    }


def convert_pet_nc_to_pet(source: Path, target: Path) -> None:
    """Write a stock-``pet`` checkpoint with the backbone and energy head of a
    ``pet_nc`` checkpoint's best model (the direct heads dropped), for
    ``training.finetune.read_from`` of an ``architecture: pet`` run
    (:func:`metatrain_nc.direct.conversion.to_stock_pet`)."""
    import torch
    from metatrain.utils.io import model_from_checkpoint

    from metatrain_nc.direct.conversion import to_stock_pet

    checkpoint = torch.load(source, weights_only=False, map_location="cpu")
    if checkpoint.get("architecture_name") != "pet_nc":
        raise ValueError(f"{source} is not a pet_nc checkpoint")
    model, _ = to_stock_pet(model_from_checkpoint(checkpoint, context="finetune"))
    tmp = target.with_suffix(".tmp")
    torch.save(model.get_checkpoint(), tmp)
    tmp.replace(target)


# --------------------------------------------------------------------------------------
# evaluation


def evaluate_run(run: Run, run_dir: Path, info: dict, test: Path, threads: int) -> dict:
    """Errors of the model at each wanted time on the test frames."""
    import ase.io
    import torch

    from metatrain_nc.evaluation.accuracy import model_accuracy

    torch.set_num_threads(threads)
    frames = ase.io.read(test, ":")
    cpu_before = time.process_time()
    wall_before = time.perf_counter()
    cache: Dict[int, dict] = {}
    points = []
    for wanted in run.wanted:
        checkpoint = checkpoint_at(info["checkpoints"], wanted)
        if checkpoint is None:
            points.append({"wanted_s": wanted, "missing": "no checkpoint yet"})
            continue
        epoch = checkpoint["epoch"]
        if epoch not in cache:
            result = model_accuracy(
                str(run_dir / checkpoint["path"]), frames, conservative=True
            )
            errors = {
                "energy_mae": result.energy.mae,
                "energy_rmse": result.energy.rmse,
                "force_rmse": result.forces["conservative"].rmse,
                "force_mae": result.forces["conservative"].mae,
            }
            if "direct" in result.forces:
                errors["direct_force_rmse"] = result.forces["direct"].rmse
            cache[epoch] = errors
        points.append(
            {
                "wanted_s": wanted,
                "epoch": epoch,
                "checkpoint_s": checkpoint["time_s"],
                **cache[epoch],
            }
        )
    return {
        "points": points,
        "evaluations": len(cache),
        "cpu_s": round(time.process_time() - cpu_before, 2),
        "wall_s": round(time.perf_counter() - wall_before, 2),
    }


# --------------------------------------------------------------------------------------
# the benchmark


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)


def remove_kept(run_dir: Path, info: dict) -> None:
    for checkpoint in info["checkpoints"]:
        (run_dir / checkpoint["path"]).unlink(missing_ok=True)


def run_seed(
    out: Path, settings: dict, dataset: Dataset, seed: int, keep: bool
) -> None:
    """All runs and evaluations of one dataset and seed that are not done yet."""
    import shutil

    seed_dir = out / dataset.name / f"seed{seed}"
    split = write_split(dataset, seed, seed_dir / "data")
    runs = plan_runs(settings)
    infos: Dict[str, dict] = {}
    for run in runs:
        run_dir = seed_dir / run.name
        info_path = run_dir / "run.json"
        if info_path.exists():
            infos[run.name] = json.loads(info_path.read_text())
        else:
            if run_dir.exists():
                shutil.rmtree(run_dir)  # an unfinished run: start it again
            run_dir.mkdir(parents=True)
            read_from = convert_from = None
            if run.pretrain is not None:
                source = checkpoint_at(infos["pet_nc"]["checkpoints"], run.pretrain)
                if source is None:
                    info = {
                        "run": asdict(run),
                        "skipped": f"pet_nc wrote no checkpoint in {run.pretrain} s",
                        "checkpoints": [],
                    }
                    write_json(info_path, info)
                    infos[run.name] = info
                    continue
                read_from = seed_dir / "pet_nc" / source["path"]
                if not read_from.exists():
                    raise RuntimeError(
                        f"the pet_nc checkpoint {read_from} that {run.name} starts "
                        f"from was deleted; remove {seed_dir / 'pet_nc'} to train "
                        "it again"
                    )
                if run.arch == "pet":
                    convert_from = read_from
                    read_from = run_dir / "pretrained_as_pet.ckpt"
            options = run_options(dataset, run.arch, seed, split, settings, read_from)
            print(
                f"[{time.strftime('%H:%M:%S')}] {dataset.name} seed {seed}: "
                f"training {run.name} for {run.duration / 60:.2f} min",
                flush=True,
            )
            info = train_curve(run, run_dir, options, settings["threads"], convert_from)
            write_json(info_path, info)
            infos[run.name] = info
        eval_path = run_dir / "eval.json"
        if run.evaluate and not eval_path.exists():
            evaluation = evaluate_run(
                run, run_dir, infos[run.name], split["test"], settings["threads"]
            )
            write_json(eval_path, evaluation)
        if not keep and eval_path.exists():
            remove_kept(run_dir, infos[run.name])
            (run_dir / "pretrained_as_pet.ckpt").unlink(missing_ok=True)
    if not keep and "pet_nc" in infos:
        remove_kept(seed_dir / "pet_nc", infos["pet_nc"])


# --------------------------------------------------------------------------------------
# results


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


def format_range(value: Optional[dict], digits: int = 1) -> str:
    if value is None:
        return "-"
    if value["min"] == value["max"]:
        return f"{value['mean']:.{digits}f}"
    return (
        f"{value['mean']:.{digits}f} ({value['min']:.{digits}f}-"
        f"{value['max']:.{digits}f})"
    )


def format_ratio(tta: Optional[dict]) -> str:
    if tta is None:
        return "-"
    text = f"{tta['ratio']:.2f}" if tta["reached"] else f"> {tta['ratio']:.2f}"
    finite = [r for r in tta["per_seed"] if r is not None]
    if len(tta["per_seed"]) > 1:
        if not finite:
            text += " (never)"
        else:
            high = (
                f"{max(finite):.2f}" if len(finite) == len(tta["per_seed"]) else "never"
            )
            text += f" ({min(finite):.2f}-{high})"
    return text


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


def markdown(summary: dict, settings: dict, cost: dict, epochs: List[dict], figure):
    """The generated part of the report."""
    lines = [
        f"Settings: budgets {', '.join(f'{b:g}' for b in settings['budgets_min'])} "
        f"min; f = {', '.join(f'{f:g}' for f in settings['fractions'])}; seeds "
        f"{', '.join(str(s) for s in settings['seeds'])}; fine-tuned as "
        f"{' and '.join(settings['finetune'])}; {settings['threads']} thread(s) per "
        f"`mtt train`, one at a time; learning rate {settings['learning_rate']:g} "
        f"(fine-tuning {settings['finetune_learning_rate']:g}, constant after a "
        f"1-epoch warm-up); pet_m's `direct_forces_weight` "
        f"{settings['direct_forces_weight']:g} (conservative forces weight 1).",
        "",
        f"CPU time of these results: {cost['cpu_s'] / 3600:.2f} h "
        f"({cost['training_cpu_s'] / 3600:.2f} h in {cost['runs']} `mtt train` "
        f"runs, {cost['evaluation_cpu_s'] / 60:.1f} min for {cost['evaluations']} "
        f"checkpoint evaluations); wall time {cost['wall_s'] / 3600:.2f} h on "
        f"{os.cpu_count()} cores."
        + (
            ""
            if cost["load_max"] is None
            else f" 1-minute load average when the runs started: median "
            f"{cost['load_median']:.1f}, max {cost['load_max']:.1f}"
            + (
                " (other work shared the cores: the times are inflated)."
                if cost["load_max"] > (os.cpu_count() or 1) - settings["threads"] + 1
                else "."
            )
        ),
        "",
        "Test-set errors of the conservative forces (-dE/dr) and energies at each "
        "wall-clock budget: seed mean (min-max over seeds). Time-to-accuracy: the "
        "wall time conservative training (a) needs to reach the error strategy (b) "
        "reaches within the budget, divided by the budget (from the seed-mean "
        "curves; in brackets per seed). Above 1, pre-training pays: (a) needs that "
        "many times the budget; '> x' means (a) did not reach it within its whole "
        "run.",
        "",
    ]
    if figure is not None:
        lines += [f"![error against wall-clock time]({figure.name})", ""]
    for name, data in summary.items():
        lines += [
            f"### {DATASETS[name].description}",
            "",
            "| budget min | strategy | force RMSE meV/A | energy MAE meV/atom | "
            "energy RMSE meV/atom | seeds | time-to-accuracy, forces | "
            "time-to-accuracy, energy |",
            "|---:|---|---:|---:|---:|---:|---:|---:|",
        ]
        for row in data["rows"]:
            lines.append(
                f"| {row['budget_min']:g} | "
                f"{strategy_label(row['arch'], row['fraction'])} | "
                f"{format_range(row['force_rmse'])} | "
                f"{format_range(row['energy_mae'], 2)} | "
                f"{format_range(row['energy_rmse'], 2)} | {len(row['seeds'])} | "
                f"{format_ratio(row.get('tta_force_rmse'))} | "
                f"{format_ratio(row.get('tta_energy_mae'))} |"
            )
        lines.append("")
        for arch, best in data["best"].items():
            per_budget = ", ".join(
                f"{f:g} at {b:g} min" for b, f in best["per_budget"].items()
            )
            if best["overall"] is not None:
                relative = ", ".join(
                    f"f {f:g}: {v:.2f}"
                    for f, v in sorted(best["relative_force_rmse"].items())
                )
                lines.append(
                    f"- {arch}: best f overall **{best['overall']:g}** (force RMSE "
                    f"relative to (a), mean over budgets: {relative}); per budget: "
                    f"{per_budget or '-'}."
                )
            else:
                lines.append(f"- {arch}: best f per budget: {per_budget or '-'}.")
        lines.append("")
    if epochs:
        lines += [
            "Cost of an epoch (median over runs, with a checkpoint every epoch) and "
            "time from the start of `mtt train` to its first checkpoint (start-up "
            "and one epoch):",
            "",
            "| dataset | run | s per epoch | first checkpoint s |",
            "|---|---|---:|---:|",
        ]
        for row in epochs:
            spe = row["seconds_per_epoch"]
            first = row["first_checkpoint_s"]
            lines.append(
                f"| {row['dataset']} | {row['run']} | "
                f"{'-' if spe is None else f'{spe:.2f}'} | "
                f"{'-' if first is None else f'{first:.1f}'} |"
            )
        lines.append("")
    return "\n".join(lines)


def make_figure(results: dict, settings: dict, path: Path) -> Optional[Path]:
    """Error against wall-clock minutes, one curve per strategy, seed min-max."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    names = [n for n in settings["datasets"] if n in results]
    if not names:
        return None
    metrics = ["force_rmse", "energy_mae"]
    figure, axes = plt.subplots(
        len(names), 2, figsize=(11, 4.2 * len(names)), squeeze=False
    )
    colours = plt.cm.viridis(np.linspace(0.15, 0.85, len(settings["fractions"])))
    styles = {"pet_m": ("-", "o"), "pet": ("--", "s")}
    budgets = settings["budgets_min"]
    for row, name in enumerate(names):
        seeds = results[name]
        for column, metric in enumerate(metrics):
            axis = axes[row][column]
            curves = conservative_curve(seeds, metric)
            if curves:
                times, mean = mean_curve(curves)
                stack = np.array([c[1] for c in curves.values()], dtype=float)
                minutes = np.array(times) / 60.0
                axis.plot(minutes, mean, color="black", label=strategy_label("", None))
                if len(curves) > 1:
                    axis.fill_between(
                        minutes,
                        np.nanmin(stack, axis=0),
                        np.nanmax(stack, axis=0),
                        color="black",
                        alpha=0.15,
                        linewidth=0,
                    )
            offsets = np.linspace(-0.02, 0.02, len(settings["fractions"]) * 2)
            for a, arch in enumerate(settings["finetune"]):
                line, marker = styles[arch]
                for k, fraction in enumerate(settings["fractions"]):
                    xs, ys, low, high = [], [], [], []
                    for budget in budgets:
                        values = strategy_values(seeds, arch, fraction, budget)
                        data = [v[metric] for v in values.values()]
                        if not data:
                            continue
                        shift = 1 + offsets[a * len(settings["fractions"]) + k]
                        xs.append(budget * shift)
                        ys.append(np.mean(data))
                        low.append(np.mean(data) - np.min(data))
                        high.append(np.max(data) - np.mean(data))
                    if xs:
                        axis.errorbar(
                            xs,
                            ys,
                            yerr=[low, high],
                            linestyle=line,
                            marker=marker,
                            color=colours[k],
                            capsize=3,
                            label=strategy_label(arch, fraction),
                        )
            label, unit = METRICS[metric]
            axis.set_xlabel("wall-clock time (min), start-up included")
            axis.set_ylabel(f"test {label} ({unit})")
            axis.set_yscale("log")
            if max(budgets) >= 2 * min(budgets):
                axis.set_xscale("log")
                axis.xaxis.set_major_locator(
                    ticker.FixedLocator([0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120])
                )
                axis.xaxis.set_minor_formatter(ticker.NullFormatter())
            axis.xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
            axis.yaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
            axis.yaxis.set_minor_formatter(ticker.FormatStrFormatter("%g"))
            axis.tick_params(which="minor", labelsize=7)
            axis.set_title(f"{name}: conservative {label}")
            axis.grid(alpha=0.3, which="both")
            if row == 0 and column == 0:
                axis.legend(fontsize=7, loc="lower left")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def write_report(out: Path, settings: dict, doc: Path) -> str:
    """Rebuild the tables and the figure from stored results into ``doc``; return
    the generated markdown."""
    results = load_results(out, settings)
    summary = summarise(results, settings)
    cost = cost_summary(results)
    figure = make_figure(results, settings, doc.with_suffix(".png"))
    text = markdown(summary, settings, cost, epoch_table(results), figure)
    write_json(out / "summary.json", {"summary": summary, "cost": cost})
    block = f"{BEGIN}\n\n{text}\n{END}"
    if doc.exists():
        old = doc.read_text()
        if BEGIN in old and END in old:
            head, rest = old.split(BEGIN, 1)
            tail = rest.split(END, 1)[1]
            new = head + block + tail
        else:
            new = old.rstrip("\n") + "\n\n" + block + "\n"
    else:
        new = (
            "# Does direct pre-training pay?\n\n"
            "Time-to-accuracy of pet_nc -> pet_m (and stock pet) fine-tuning "
            "against conservative training at equal wall-clock budgets, from "
            "`benchmarks/pretrain_finetune.py` (its docstring says how the times "
            f"are measured). Results folder: `{out}`.\n\n{block}\n\n"
            "## Discussion\n\n(to be written)\n"
        )
    doc.write_text(new)
    return text


# --------------------------------------------------------------------------------------
# command line


def parse_list(kind, text: str) -> list:
    try:
        return [kind(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated {kind.__name__} values, got '{text}'"
        ) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Defaults: budgets 5,10,20; fractions 0.25,0.5,0.75; seeds 0,1,2; "
        "datasets ethanol,water; --finetune pet_m,pet. --quick: budget 0.75, "
        "fraction 0.5, seed 0, ethanol (options given explicitly win).",
    )
    parser.add_argument("--out", help="results folder (resumed if it exists)")
    parser.add_argument(
        "--budgets", type=lambda t: parse_list(float, t), help="minutes, e.g. 5,10,20"
    )
    parser.add_argument(
        "--fractions",
        type=lambda t: parse_list(float, t),
        help="pre-training fractions f in (0, 1), e.g. 0.25,0.5,0.75",
    )
    parser.add_argument("--seeds", type=lambda t: parse_list(int, t), help="e.g. 0,1,2")
    parser.add_argument(
        "--datasets",
        type=lambda t: parse_list(str, t),
        help=f"among {', '.join(DATASETS)}",
    )
    parser.add_argument(
        "--finetune",
        type=lambda t: parse_list(str, t),
        help="architectures fine-tuned from pet_nc: pet_m and/or pet",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=2,
        help="OpenMP threads per mtt train (2). Only on an otherwise idle machine: "
        "OpenMP threads that compete with other processes for the cores slow "
        "training down by an order of magnitude",
    )
    parser.add_argument("--lr", type=float, default=1e-3, help="learning rate (1e-3)")
    parser.add_argument(
        "--finetune-lr", type=float, default=1e-3, help="of fine-tunings (1e-3)"
    )
    parser.add_argument(
        "--direct-forces-weight",
        type=float,
        default=0.1,
        help="pet_m fine-tuning: loss weight of the direct forces (0.1; the "
        "conservative forces have 1)",
    )
    parser.add_argument(
        "--reference-factor",
        type=float,
        default=1.5,
        help="the conservative run (a) lasts this times the largest budget, so "
        "that time-to-accuracy ratios above 1 are measured there too (1.5)",
    )
    parser.add_argument("--quick", action="store_true", help="test the pipeline")
    parser.add_argument(
        "--report",
        action="store_true",
        help="only rebuild the tables and figure from the results in --out "
        "(with the settings stored there)",
    )
    parser.add_argument(
        "--plan", action="store_true", help="print the runs and their cost, and exit"
    )
    parser.add_argument(
        "--doc",
        help="report (markdown; the figure goes next to it as .png). Default: "
        "docs/pretrain_finetune.md, with --quick OUT/report.md",
    )
    parser.add_argument(
        "--keep-checkpoints",
        action="store_true",
        help="keep the evaluated checkpoints (deleted by default)",
    )
    parser.add_argument(
        "--convert-pet-nc", nargs=2, metavar=("PET_NC", "PET"), help=argparse.SUPPRESS
    )
    return parser


def resolve(args: argparse.Namespace) -> dict:
    base = QUICK if args.quick else DEFAULTS
    return make_settings(
        budgets=args.budgets if args.budgets is not None else base["budgets"],
        fractions=args.fractions if args.fractions is not None else base["fractions"],
        seeds=args.seeds if args.seeds is not None else base["seeds"],
        datasets=args.datasets if args.datasets is not None else base["datasets"],
        finetune=args.finetune if args.finetune is not None else base["finetune"],
        threads=args.threads,
        learning_rate=args.lr,
        finetune_learning_rate=args.finetune_lr,
        direct_forces_weight=args.direct_forces_weight,
        reference_factor=args.reference_factor,
    )


def check_out(out: Path, settings: dict, report_only: bool) -> Optional[dict]:
    """The settings stored in ``out`` (None for a new folder).

    :raises InputError: ``out`` is a file, a non-empty folder of something else,
        holds other settings, or (``report_only``) holds no results.
    """
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file")
    stored_path = out / SETTINGS_FILE
    if not stored_path.exists():
        if report_only:
            raise InputError(f"--report: {out} holds no results ({SETTINGS_FILE})")
        if out.exists() and any(out.iterdir()):
            raise InputError(
                f"--out {out} exists and is not a folder of this benchmark (no "
                f"{SETTINGS_FILE}); give a new or empty folder"
            )
        return None
    stored = json.loads(stored_path.read_text())
    if report_only:
        return stored
    differences = settings_difference(stored, settings)
    if differences:
        raise InputError(
            f"--out {out} holds results of other settings ("
            + "; ".join(differences)
            + "): give the same options to resume, or another --out"
        )
    return stored


def print_plan(settings: dict) -> None:
    cost = plan_cost(settings)
    print("Runs per dataset and seed (trained one after the other):")
    for run in plan_runs(settings):
        start = "" if run.pretrain is None else f" from pet_nc at {run.pretrain:g} s"
        print(
            f"  {run.name:<26} {run.arch:<7} {run.duration / 60:6.2f} min{start}, "
            f"evaluated at {len(run.wanted)} time(s)"
        )
    for name, data in cost["per_seed"].items():
        print(
            f"{name}: {data['training_s'] / 60:.1f} min of training and "
            f"~{data['evaluation_s'] / 60:.1f} min of evaluation per seed"
        )
    print(
        f"In all {cost['runs']} runs: ~{duration_text(cost['wall_s'])} wall, "
        f"~{duration_text(cost['cpu_s'])} CPU with {settings['threads']} threads"
    )


def duration_text(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.convert_pet_nc:
        source, target = args.convert_pet_nc
        convert_pet_nc_to_pet(Path(source), Path(target))
        return 0
    try:
        settings = resolve(args)
        if args.plan:
            print_plan(settings)
            return 0
        if not args.out:
            raise InputError("--out is required")
        out = Path(args.out).resolve()
        stored = check_out(out, settings, args.report)
        if args.report:
            settings = stored
        if args.doc:
            doc = Path(args.doc).resolve()
        else:
            doc = out / "report.md" if args.quick else DEFAULT_DOC
        if doc.parent != out and not doc.parent.is_dir():
            raise InputError(f"--doc: folder {doc.parent} does not exist")
        if doc.suffix != ".md":
            raise InputError(f"--doc must be a .md file, got {doc}")
    except InputError as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    try:
        return execute(args, settings, out, stored, doc)
    except RuntimeError as error:
        parser.exit(1, f"{parser.prog}: error: {error}\n")


def execute(
    args: argparse.Namespace,
    settings: dict,
    out: Path,
    stored: Optional[dict],
    doc: Path,
) -> int:
    if args.report:
        print(write_report(out, settings, doc))
        print(f"\nReport: {doc}")
        return 0
    load = os.getloadavg()[0]
    if load > 0.5:
        print(
            f"warning: the 1-minute load average is {load:.1f} before any run: "
            "other work on this machine slows the trainings down, and with "
            f"{settings['threads']} OpenMP thread(s) per run competing for cores "
            "the times may mean little (see --threads)",
            file=sys.stderr,
        )
    out.mkdir(parents=True, exist_ok=True)
    if stored is None:
        write_json(out / SETTINGS_FILE, settings)
    start = time.perf_counter()
    cpu_start = children_cpu() + time.process_time()
    for seed in settings["seeds"]:
        for name in settings["datasets"]:
            run_seed(out, settings, DATASETS[name], seed, args.keep_checkpoints)
            write_report(out, settings, doc)
    text = write_report(out, settings, doc)
    print(text)
    cpu = children_cpu() + time.process_time() - cpu_start
    print(
        f"This invocation: {(time.perf_counter() - start) / 60:.1f} min wall, "
        f"{cpu / 60:.1f} min CPU (this process and its subprocesses)."
    )
    print(f"Report: {doc} (figure {doc.with_suffix('.png')}); results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
