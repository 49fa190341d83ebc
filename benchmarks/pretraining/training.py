"""Training with checkpoint times: one ``mtt train`` subprocess per run, stopped
when its budget is spent, its checkpoints timed and thinned while it runs
(:class:`CheckpointTracker`), then evaluated on the test frames with the package's
:func:`metatrain_nc.evaluation.accuracy.model_accuracy`; :func:`run_seed` does all
runs of a dataset and seed that are not done yet (resumable)."""

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
from dataclasses import asdict
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import yaml

from .data import run_options, write_split
from .plan import POLL_S, Dataset, Run, plan_runs

#: the benchmark's script (its ``--convert-pet-nc`` runs in a subprocess)
SCRIPT = Path(__file__).resolve().parents[1] / "pretrain_finetune.py"


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
                str(SCRIPT),
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


def evaluate_run(run: Run, run_dir: Path, info: dict, test: Path, threads: int) -> dict:
    """Errors of the model at each wanted time on the test frames."""
    import ase.io
    import torch

    from metatrain_nc.evaluation.accuracy import model_accuracy
    from metatrain_nc.force_models.timing import WallClock

    torch.set_num_threads(threads)
    frames = ase.io.read(test, ":")
    cpu_before = time.process_time()
    clock = WallClock().start()
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
        "wall_s": round(clock.stop(), 2),
    }


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
