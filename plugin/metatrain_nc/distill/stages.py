"""The steps of ``mtt-nc distill``: teacher, data, students, measurements.

Each step is a tool a user can run by hand (``mtt export``, ``mtt-nc reference``,
``mtt train``, ``mtt-nc accuracy``, ``mtt-nc md``); the commands are printed and
their logs kept in ``<out>/logs/``.
"""

import shutil
from pathlib import Path
from typing import Dict, Optional

import yaml

from ..errors import UserInputError
from .jobs import Job, Runner, tool
from .settings import SIZES, DistillSettings

#: the default student options (``--student-options`` replaces them)
STUDENT_OPTIONS = Path(__file__).resolve().parent / "student.yaml"
#: the structure every MD run and timing starts from
NVE_START = "nve_start.extxyz"


def prepare_teacher(teacher: str, out: Path, runner: Runner) -> str:
    """The teacher as the tools take it: a checkpoint is exported with ``mtt
    export`` into ``<out>/teacher/``; anything else is used as it is."""
    if not teacher.endswith(".ckpt"):
        return teacher
    folder = out / "teacher"
    folder.mkdir(exist_ok=True)
    shutil.copyfile(teacher, folder / "teacher.ckpt")
    runner.run(
        [
            (
                "export_teacher",
                [tool("mtt"), "export", "teacher.ckpt", "-o", "teacher.pt"],
            )
        ],
        cwd=folder,
    )
    return str(folder / "teacher.pt")


def split_files(folder: Path) -> Dict[str, Path]:
    """``train`` and ``test`` files (``.xyz`` or ``.xyz.gz``) of a reference set.

    :raises UserInputError: a split is missing.
    """
    found = {}
    for split in ("train", "test"):
        for suffix in (".xyz", ".xyz.gz"):
            if (folder / f"{split}{suffix}").is_file():
                found[split] = (folder / f"{split}{suffix}").resolve()
        if split not in found:
            raise UserInputError(
                f"--data '{folder}' has no {split}.xyz or {split}.xyz.gz: give the "
                "folder of a reference set (mtt-nc reference)"
            )
    return found


def make_data(
    teacher: str,
    structures: Optional[Path],
    settings: DistillSettings,
    out: Path,
    data: Optional[Path] = None,
) -> Dict[str, object]:
    """The labelled train and test frames: an existing reference set (``data``), or
    one built here with the teacher (``mtt-nc reference``: a Langevin trajectory of
    the teacher per temperature, the middle one held out). Writes the MD start
    (the first test frame) to ``<out>/data/nve_start.extxyz``."""
    import ase.io
    import numpy as np

    folder = out / "data"
    if data is None:
        from ..reference_data.build import build_reference_set

        build_reference_set(
            teacher,
            str(structures),
            str(folder),
            workers=min(settings.jobs, len(settings.temperatures)),
            **settings.reference_options(),
        )
        files = split_files(folder)
    else:
        files = split_files(data)
        folder.mkdir(parents=True, exist_ok=True)
    train = ase.io.read(files["train"], ":")
    test = ase.io.read(files["test"], ":")
    start = test[0].copy()
    start.calc = None
    ase.io.write(folder / NVE_START, start, format="extxyz")
    return {
        "train": len(train),
        "test": len(test),
        "atoms": len(start),
        "stress": bool(np.all(start.pbc)),
        "files": {k: str(v) for k, v in files.items()},
        "source": str(data) if data is not None else "built here (mtt-nc reference)",
        # who labelled the frames, from their provenance (empty: not recorded)
        "labelled_by": sorted(
            {str(a.info["reference"]) for a in train + test if "reference" in a.info}
        ),
    }


def student_options(
    size: str,
    epochs: int,
    train_file: Path,
    stress: bool = True,
    learning_rate: Optional[float] = None,
    batch_size: Optional[int] = None,
    template: Path = STUDENT_OPTIONS,
) -> Dict[str, object]:
    """``mtt train`` options of one student: ``template`` with the hypers of
    ``size``, ``epochs`` and the training file; without the stress target and its
    loss when the labels have none (molecules)."""
    options = yaml.safe_load(Path(template).read_text())
    options["architecture"]["model"].update(SIZES[size])
    options["architecture"]["training"]["num_epochs"] = epochs
    if learning_rate is not None:
        options["architecture"]["training"]["learning_rate"] = learning_rate
    if batch_size is not None:
        options["architecture"]["training"]["batch_size"] = batch_size
    options["training_set"]["systems"]["read_from"] = str(train_file)
    if not stress:
        options["training_set"]["targets"]["energy"]["stress"] = False
        options["architecture"]["training"]["loss"]["energy"].pop("stress", None)
    return options


def train_students(
    settings: DistillSettings,
    data: Dict[str, object],
    out: Path,
    runner: Runner,
    template: Path = STUDENT_OPTIONS,
) -> Dict[str, Job]:
    """Train every student size with ``mtt train`` (most expensive first)."""
    batch = []
    for size in sorted(settings.sizes, key=_training_cost, reverse=True):
        folder = out / "students" / size
        folder.mkdir(parents=True, exist_ok=True)
        options = student_options(
            size,
            settings.epochs,
            Path(data["files"]["train"]),
            bool(data["stress"]),
            learning_rate=settings.learning_rate,
            batch_size=settings.batch_size,
            template=template,
        )
        (folder / "options.yaml").write_text(yaml.safe_dump(options, sort_keys=False))
        batch.append((f"train_{size}", [tool("mtt"), "train", "options.yaml",
                                        "-o", "student.pt"], folder))  # fmt: skip
    return {job.name[len("train_") :]: job for job in runner.run(batch)}


def _training_cost(size: str) -> float:
    hypers = SIZES[size]
    return (
        float(hypers["d_pet"])
        * float(hypers["num_gnn_layers"])
        * float(hypers["cutoff"]) ** 3
    )


def accuracy(
    settings: DistillSettings, data: Dict[str, object], out: Path, runner: Runner
) -> Dict[str, Dict[str, float]]:
    """Direct-force errors of every student against the teacher's test labels."""
    import json

    students = [out / "students" / s / "student.pt" for s in settings.sizes]
    result = out / "students" / "accuracy.json"
    command = [tool("mtt-nc"), "accuracy", *students, "--structures",
               data["files"]["test"], "--json", result]  # fmt: skip
    runner.run([("accuracy", command)])
    entries = json.loads(result.read_text())  # one entry per model, in order
    errors = {}
    for size, entry in zip(settings.sizes, entries, strict=True):
        forces = entry["forces"]["direct"]
        errors[size] = {
            "force_rmse_meV_per_A": forces["rmse"],
            "force_mae_meV_per_A": forces["mae"],
            "energy_rmse_meV_per_atom": (entry.get("energy") or {}).get("rmse"),
        }
    return errors


def scan_strides(teacher: str, settings: DistillSettings, out: Path, runner: Runner):
    """``mtt-nc md --forces mts --fast student --stride auto`` for every student (a
    stride scan, then an NVE run of ``run_fs``) and the teacher's conservative NVE,
    from the same start and Maxwell-Boltzmann velocities (300 K, seed 0); with
    ``--resume``, a run cut short continues and a finished one is kept."""
    import json

    start = out / "data" / NVE_START
    steps = int(round(settings.run_fs / settings.inner_fs))
    common = ["--ensemble", "nve", "--velocities", "maxwell-boltzmann",
              "--temperature", 300, "--seed", 0, "--no-chemiscope",
              "--trajectory-every", 50,
              "--resume"]  # fmt: skip
    batch = [
        ("nve_teacher",
         [tool("mtt-nc"), "md", teacher, start, "--forces", "conservative",
          "--timestep", settings.inner_fs, "--stride", 1, "--steps", steps,
          *common, "-o", out / "nve" / "teacher"]),
    ]  # fmt: skip
    for size in settings.sizes:
        student = out / "students" / size / "student.pt"
        batch.append(
            (f"nve_{size}",
             [tool("mtt-nc"), "md", teacher, start, "--forces", "mts",
              "--fast", student, "--stride", "auto",
              "--inner-timestep", settings.inner_fs, "--scan-time", settings.scan_fs,
              "--max-stride", settings.max_stride,
              "--timestep", settings.inner_fs, "--steps", steps,
              *common, "-o", out / "nve" / size])
        )  # fmt: skip
    runner.run(batch)
    return {
        name: json.loads((out / "nve" / name / "summary.json").read_text())
        for name in ["teacher", *settings.sizes]
    }
