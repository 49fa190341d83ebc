"""Building a reference data set: plan, sample, label, split (``mtt-nc reference``).

:func:`build_reference_set` validates everything first (structures, start frames,
the reference and the sampler, the work folder), writes ``plan.json`` and then runs
two resumable stages on ``workers`` processes:

1. *sampling*: each trajectory is Langevin dynamics of the sampler
   (:mod:`.sampling`), one trajectory per worker at a time;
2. *labelling*: each kept frame, randomly strained, is labelled by the reference
   (:mod:`.labelling`), frames shared out among the workers in small batches.

Interrupted (Ctrl-C, a killed session), the same command continues where it stopped.
At the end the frames are written by split, trajectory-disjoint, as
``train.xyz``, ``validation.xyz`` and ``test.xyz`` (``.xyz.gz`` with ``gzip``) beside
``summary.json``. Frames the reference could not label are listed in
``failures.json`` and named on the command line; the splits are then written only
with ``skip_failed``.

Worker processes are started fresh (``spawn``) with the caller's working folder on
their import path, so a ``module:callable`` reference found in the folder the user
runs in is found by every worker.
"""

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..errors import UserInputError
from .plan import (
    SPLITS,
    ReferencePlan,
    TrajectorySpec,
    file_sha256,
    parse_temperatures,
    resolve_splits,
    trajectory_seeds,
)
from .workers import MODELS, Runner


@dataclass
class BuildSummary:
    """What a build did.

    :ivar out: the work folder.
    :ivar files: split name -> written file (only when the set is complete).
    :ivar frames: split name -> frames.
    :ivar failures: frames the reference could not label (messages).
    :ivar sampling_seconds_per_step: wall-clock seconds per sampler step and worker
        in this run (``None`` if nothing was sampled now).
    :ivar labelling_seconds_per_frame: wall-clock seconds per labelled frame and
        worker in this run (``None`` if nothing was labelled now).
    """

    out: Path
    files: Dict[str, Path] = field(default_factory=dict)
    frames: Dict[str, int] = field(default_factory=dict)
    failures: List[str] = field(default_factory=list)
    sampling_seconds_per_step: Optional[float] = None
    labelling_seconds_per_frame: Optional[float] = None
    complete: bool = False


def make_plan(
    reference: str,
    structures: str,
    *,
    sampler: Optional[str] = None,
    trajectories: int = 8,
    temperatures: str = "250:450",
    frames_per_trajectory: int = 76,
    start_frames: Optional[Sequence[int]] = None,
    timestep: float = 2.0,
    friction: float = 0.02,
    hydrogen_mass: float = 4.0,
    equilibration_steps: int = 50,
    interval_steps: int = 8,
    max_strain: float = 0.02,
    validation_trajectories: Optional[List[int]] = None,
    test_trajectories: Optional[List[int]] = None,
    method: str = "",
    seed: int = 0,
) -> Tuple[ReferencePlan, list]:
    """The plan of a build and the structures it starts from, every option checked.

    :raises UserInputError: naming the option and the fix.
    """
    from ..files import read_structures

    _positive_int(trajectories, "--trajectories")
    _positive_int(frames_per_trajectory, "--frames-per-trajectory")
    _positive_int(interval_steps, "--interval-steps")
    if int(equilibration_steps) < 0:
        raise UserInputError("--equilibration-steps must be >= 0")
    for value, name in (
        (timestep, "--timestep"),
        (friction, "--friction"),
        (hydrogen_mass, "--hydrogen-mass"),
    ):
        if not float(value) > 0:
            raise UserInputError(f"{name} must be > 0, got {value}")
    if not 0 <= float(max_strain) < 0.2:
        raise UserInputError(
            "--max-strain must be in [0, 0.2) (a fraction, 0.02 = 2%), got "
            f"{max_strain}"
        )
    frames = read_structures(structures)
    temps = parse_temperatures(temperatures, trajectories)
    n = len(temps)
    if start_frames is None:
        start_frames = [(i * len(frames)) // n for i in range(n)]
    start_frames = [int(s) for s in start_frames]
    if len(start_frames) != n:
        raise UserInputError(
            f"--start-frames lists {len(start_frames)} frames for {n} trajectories: "
            "give one per trajectory"
        )
    for s in start_frames:
        if not 0 <= s < len(frames):
            raise UserInputError(
                f"--start-frames: '{structures}' has {len(frames)} frame(s), frame "
                f"{s} does not exist (frames are numbered from 0)"
            )
    splits = resolve_splits(temps, validation_trajectories, test_trajectories)
    seeds = trajectory_seeds(seed, n)
    specs = [
        TrajectorySpec(i, temps[i], start_frames[i], seeds[i], splits[i])
        for i in range(n)
    ]
    plan = ReferencePlan(
        reference=str(reference),
        structures=os.path.abspath(structures),
        structures_sha256=file_sha256(structures),
        trajectories=specs,
        frames_per_trajectory=int(frames_per_trajectory),
        sampler=None if sampler in (None, "", reference) else str(sampler),
        timestep=float(timestep),
        friction=float(friction),
        hydrogen_mass=float(hydrogen_mass),
        equilibration_steps=int(equilibration_steps),
        interval_steps=int(interval_steps),
        max_strain=float(max_strain),
        method=method,
        seed=int(seed),
    )
    return plan, frames


def _positive_int(value: Any, name: str) -> None:
    if int(value) != value or int(value) < 1:
        raise UserInputError(f"{name} must be a whole number >= 1, got {value}")


def load_reference(spec: str, what: str = "reference"):
    """The :class:`~metatrain_nc.force_models.ForceModel` of the reference (or
    sampler) ``spec``, which must give conservative forces."""
    from ..force_models.loading import load_force_model

    model = load_force_model(spec)
    model.require_trained(
        "conservative", f": the {what} must give conservative forces (-dE/dr)"
    )
    return model


def build_reference_set(
    reference: str,
    structures: str,
    out: str,
    *,
    workers: int = 1,
    skip_failed: bool = False,
    gzip: bool = False,
    progress: bool = True,
    **options: Any,
) -> BuildSummary:
    """Build (or continue building) a reference data set in the folder ``out``.

    :param reference: ``module:callable`` returning an ASE calculator, or a model
        file; its conservative forces, energy and stress are the labels.
    :param structures: file of starting structures (any format ASE reads).
    :param out: the work folder (created; an existing one continues its build if it
        holds the same plan).
    :param workers: worker processes (each with ``cores / workers`` torch threads).
    :param skip_failed: write the splits without frames the reference failed on.
    :param gzip: write ``.xyz.gz`` splits.
    :param options: the plan's settings, see :func:`make_plan`.
    :raises UserInputError: bad options, a reference without conservative forces, a
        folder holding another build or other files. Nothing is written then.
    """
    _positive_int(workers, "--workers")
    plan, frames = make_plan(reference, structures, **options)
    out_path = Path(out)
    plan_path = out_path / "plan.json"
    resuming = plan_path.exists()
    if out_path.exists() and not out_path.is_dir():
        raise UserInputError(f"--out '{out}' is a file: name a folder")
    if out_path.is_dir() and not resuming and any(out_path.iterdir()):
        raise UserInputError(
            f"--out '{out}' exists and holds no reference build (no plan.json): "
            "choose a new folder, or the folder of the build to continue"
        )
    model = load_reference(plan.reference)
    model.check(frames[plan.trajectories[0].start_frame], "the first start structure")
    if plan.sampler is not None:
        sampler = load_reference(plan.sampler, "sampler")
        sampler.check(frames[0], "the first start structure")
    from .provenance import model_method, model_version

    if not plan.method:
        plan.method = model_method(model)
    if resuming:
        previous = ReferencePlan.load(plan_path)
        changed = plan.differences(previous)
        if changed:
            raise UserInputError(
                f"'{out}' holds a build with other settings ("
                + "; ".join(changed[:3])
                + "): run the same command to continue it, or choose a new --out"
            )
    else:
        out_path.mkdir(parents=True, exist_ok=True)
        plan.save(plan_path)
    version = model_version(plan.reference, model)
    summary = BuildSummary(out=out_path)
    runner = Runner(plan, out_path, workers, progress)
    # in-process runs use the models loaded here, never ones of an earlier build
    MODELS.clear()
    MODELS[plan.reference] = model
    if plan.sampler is not None:
        MODELS[plan.sampler] = sampler
    try:
        summary.sampling_seconds_per_step = runner.sample(frames)
        summary.labelling_seconds_per_frame, summary.failures = runner.label(version)
    finally:
        runner.close()
        MODELS.clear()
    _write_failures(out_path, summary.failures)
    if summary.failures and not skip_failed:
        return summary
    _assemble(plan, out_path, gzip, summary)
    return summary


# --- the result ----------------------------------------------------------------------


def _write_failures(out: Path, failures: List[str]) -> None:
    path = out / "failures.json"
    if failures:
        path.write_text(json.dumps(failures, indent=2) + "\n")
    elif path.exists():
        path.unlink()


def _assemble(plan: ReferencePlan, out: Path, gzip: bool, summary: BuildSummary):
    from .store import FrameLog

    labelled = FrameLog(out, "labelled").open().read()
    order = sorted(
        labelled, key=lambda a: (int(a.info["trajectory"]), int(a.info["frame"]))
    )
    suffix = ".xyz.gz" if gzip else ".xyz"
    for split in SPLITS:
        frames = [a for a in order if plan.split_of(int(a.info["trajectory"])) == split]
        for atoms in frames:
            atoms.info["split"] = split
        summary.frames[split] = len(frames)
        path = out / f"{split}{suffix}"
        if frames:
            _write_split(path, frames)
            summary.files[split] = path
        elif path.exists():
            path.unlink()
    summary.complete = sum(summary.frames.values()) == plan.n_frames
    info = {
        "complete": summary.complete,
        "frames": summary.frames,
        "files": {k: v.name for k, v in summary.files.items()},
        "trajectories": {
            split: [
                {"index": t.index, "temperature_K": t.temperature, "seed": t.seed}
                for t in plan.trajectories
                if t.split == split
            ]
            for split in SPLITS
        },
        "failures": len(summary.failures),
    }
    (out / "summary.json").write_text(json.dumps(info, indent=2) + "\n")


def _write_split(path: Path, frames: list) -> None:
    """Extended XYZ, gzip-compressed (reproducibly: no time stamp) for ``.gz``,
    written to a temporary name and renamed."""
    import gzip
    import io

    import ase.io

    text = io.StringIO()
    ase.io.write(text, frames, format="extxyz")
    data = text.getvalue().encode()
    partial = path.with_name(f".{path.name}.partial")
    with open(partial, "wb") as stream:
        if path.suffix == ".gz":
            with gzip.GzipFile(fileobj=stream, mode="wb", mtime=0) as packed:
                packed.write(data)
        else:
            stream.write(data)
    os.replace(partial, path)
