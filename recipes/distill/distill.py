"""Distil small direct-force students from a conservative teacher and run multiple
time stepping with the teacher-student pair, end to end (recipes/distill/README.md).

1. sample: NVT (SVR) MD with the teacher's conservative forces at a couple of
   temperatures (``mtt-nc md``), one frame every few femtoseconds;
2. label: the teacher's energies, forces and stress of those frames (``mtt-nc
   label``); the last frames of every trajectory are held out as the test set;
3. train: a few ``pet_nc`` students of different sizes with the unmodified ``mtt
   train`` (``student.yaml`` with the model hypers of each size);
4. measure: each student's force error against the teacher on the held-out frames
   (``mtt-nc accuracy``), its cost per force call against the teacher's conservative
   call (one process, interleaved), and the largest multiple-time-step stride whose
   NVE drift stays within 2x of the teacher's (``mtt-nc md teacher.pt --forces mts
   --fast student.pt --stride auto``); the student with the best predicted speed-up
   at its stride is chosen;
5. report: the teacher's conservative NVE next to the chosen pair's, and the
   speed-up of the pair's MD steps over the teacher's, measured in one process
   (``report.md``, ``report.json``).

    python recipes/distill/distill.py --out distill-run            # ~25 min, 2 cores
    python recipes/distill/distill.py --out distill-quick --quick  # a test, < 2 min
    python recipes/distill/distill.py --out run --teacher my_teacher.pt \\
        --structures my_system.xyz --temperatures 300,400

Every step is a command a user can run by hand: they are printed, and their logs kept
in the output folder (``logs/``).
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DEFAULT_TEACHER = ROOT / "recipes" / "demo" / "pretrained" / "pet_c.ckpt"
DEFAULT_STRUCTURES = ROOT / "recipes" / "data" / "water_64h2o_40frames.xyz"
STUDENT_YAML = HERE / "student.yaml"

#: student sizes measured by default: model hypers on top of student.yaml's
SIZES: Dict[str, Dict[str, object]] = {
    "d8-L1-c3.5": dict(d_pet=8, d_head=8, d_node=8, d_feedforward=16,
                       num_heads=1, num_gnn_layers=1, cutoff=3.5),
    "d16-L1-c3.5": dict(d_pet=16, d_head=16, d_node=16, d_feedforward=32,
                        num_heads=2, num_gnn_layers=1, cutoff=3.5),
    "d32-L1-c4.5": dict(d_pet=32, d_head=32, d_node=32, d_feedforward=64,
                        num_heads=2, num_gnn_layers=1, cutoff=4.5),
    # not measured by default: on molecules (ethanol) the one-layer students stay on
    # the direct heads' initial plateau, this one learns (docs/distill.md)
    "d16-L2-c4.5": dict(d_pet=16, d_head=16, d_node=16, d_feedforward=32,
                        num_heads=2, num_gnn_layers=2, cutoff=4.5),
}  # fmt: skip
DEFAULT_SIZES = ("d8-L1-c3.5", "d16-L1-c3.5", "d32-L1-c4.5")


@dataclass
class Plan:
    """What one run does (times in fs, temperatures in K)."""

    temperatures: Tuple[float, ...] = (300.0, 400.0)
    #: structure-file frames the sampling runs start from (one per temperature)
    start_frames: Tuple[int, ...] = (0, 20)
    #: time step of the teacher's sampling runs, and its own step in the speed-up
    timestep_fs: float = 0.5
    #: inner step of the stride scans, the NVE runs and the timing (the teacher's
    #: reference runs use it too: same inner step, only the forces differ)
    inner_fs: float = 0.25
    sample_steps: int = 800
    sample_every: int = 8
    thermostat_tau_fs: float = 50.0
    test_fraction: float = 0.2
    sizes: Tuple[str, ...] = DEFAULT_SIZES
    epochs: int = 30
    #: student training (None: student.yaml's 5e-3 and 2, chosen on water; on
    #: ethanol the two-layer student learned at 1e-3 with batches of 10, not there)
    learning_rate: Optional[float] = None
    batch_size: Optional[int] = None
    #: stride scan: NVE segments of scan_fs at the inner step inner_fs
    scan_fs: float = 60.0
    max_stride: int = 8
    #: NVE production runs (teacher conservative, each pair at its stride)
    run_fs: float = 100.0
    #: in-process timing: repeats of run_inner_steps inner steps per dynamics
    timing_repeats: int = 3
    timing_inner_steps: int = 32
    cost_repeats: int = 7
    jobs: int = 2

    def timing_outer_steps(self, stride: int) -> int:
        """Outer steps of one timed repeat at ``stride``."""
        return max(1, self.timing_inner_steps // stride)

    @classmethod
    def quick(cls) -> "Plan":
        return cls(
            sample_steps=40,
            sample_every=8,
            sizes=("d8-L1-c3.5",),
            epochs=1,
            scan_fs=4.0,
            max_stride=4,
            run_fs=5.0,
            timing_repeats=1,
            timing_inner_steps=8,
            cost_repeats=2,
        )


# -- running commands ----------------------------------------------------------------
@dataclass
class Job:
    name: str
    command: List[str]
    cwd: Path
    log: Path
    cpu_s: float = 0.0
    wall_s: float = 0.0


class Runner:
    """Runs commands (at most ``jobs`` at a time), logs them, sums their CPU time."""

    def __init__(self, out: Path, jobs: int):
        self.logs = out / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.jobs = max(1, jobs)
        self.done: List[Job] = []

    def run(self, batch: Sequence[Tuple[str, List[str], Path]]) -> List[Job]:
        """Run ``(name, command, cwd)`` jobs; stop the recipe if one fails."""
        pending = [
            Job(name, [str(c) for c in command], cwd, self.logs / f"{name}.log")
            for name, command, cwd in batch
        ]
        running: Dict[int, Tuple[Job, subprocess.Popen, float]] = {}
        finished: List[Job] = []
        while pending or running:
            while pending and len(running) < self.jobs:
                job = pending.pop(0)
                print(f"[distill] $ {' '.join(_short(c) for c in job.command)}")
                handle = open(job.log, "w")
                env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
                process = subprocess.Popen(
                    job.command,
                    cwd=job.cwd,
                    stdout=handle,
                    stderr=subprocess.STDOUT,
                    env=env,
                )
                handle.close()
                running[process.pid] = (job, process, time.perf_counter())
            pid, status, usage = os.wait4(-1, 0)
            if pid not in running:
                continue
            job, process, began = running.pop(pid)
            process.returncode = os.waitstatus_to_exitcode(status)
            job.cpu_s = usage.ru_utime + usage.ru_stime
            job.wall_s = time.perf_counter() - began
            if process.returncode != 0:
                for _, other, _ in running.values():
                    other.kill()
                sys.exit(
                    f"[distill] '{job.name}' failed (exit {process.returncode}): "
                    f"see {job.log}\n{_tail(job.log)}"
                )
            finished.append(job)
            self.done.append(job)
        return finished


def _short(text: str) -> str:
    try:
        return os.path.relpath(text) if os.path.isabs(text) else text
    except ValueError:
        return text


def _tail(path: Path, lines: int = 15) -> str:
    text = path.read_text(errors="replace").replace("\r", "\n").splitlines()
    return "\n".join(line for line in text[-lines:])


def tool(name: str) -> str:
    """A console script of this interpreter's environment (``mtt``, ``mtt-nc``)."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


# -- the steps -----------------------------------------------------------------------
def prepare_teacher(teacher: str, out: Path, runner: Runner) -> str:
    """The teacher as the tools take it: a checkpoint is exported with ``mtt
    export``; anything else (``.pt``, ``module:callable``) is used as it is."""
    if not teacher.endswith(".ckpt"):
        return teacher
    folder = out / "teacher"
    folder.mkdir()
    shutil.copyfile(teacher, folder / "teacher.ckpt")
    runner.run([("export_teacher", [tool("mtt"), "export", "teacher.ckpt", "-o",
                                    "teacher.pt"], folder)])  # fmt: skip
    return str(folder / "teacher.pt")


def sample(teacher: str, structures: Path, plan: Plan, out: Path, runner: Runner):
    """NVT trajectories of the teacher, one per temperature."""
    batch = []
    for temperature, frame in zip(plan.temperatures, plan.start_frames, strict=False):
        name = f"sample_{temperature:g}K"
        command = [
            tool("mtt-nc"), "md", teacher, structures, "--index", frame,
            "--forces", "conservative", "--ensemble", "svr",
            "--temperature", temperature, "--tau", plan.thermostat_tau_fs,
            "--timestep", plan.timestep_fs, "--stride", 1,
            "--steps", plan.sample_steps, "--trajectory-every", plan.sample_every,
            "--velocities", "maxwell-boltzmann", "--no-chemiscope",
            "-o", out / "sample" / name,
        ]  # fmt: skip
        batch.append((name, command, out))
    runner.run(batch)
    return [out / "sample" / name / "trajectory.extxyz" for name, _, _ in batch]


def split_and_label(
    teacher: str, trajectories: List[Path], plan: Plan, out: Path, runner: Runner
) -> Dict[str, object]:
    """Label every sampled frame with the teacher (``mtt-nc label``), then hold out
    the last ``test_fraction`` of each trajectory as the test set; the NVE start is
    the last frame of the first trajectory, with its velocities."""
    import ase.io

    data = out / "data"
    data.mkdir()
    frames, parts = [], []
    for path in trajectories:
        trajectory = ase.io.read(path, ":")
        n_test = max(1, int(round(plan.test_fraction * len(trajectory))))
        frames += trajectory
        parts += ["train"] * (len(trajectory) - n_test) + ["test"] * n_test
    ase.io.write(data / "sampled.xyz", frames, format="extxyz")
    ase.io.write(data / "nve_start.extxyz", ase.io.read(trajectories[0], -1),
                 format="extxyz")  # fmt: skip
    print(f"[distill] 2/5 labelling {len(frames)} frames", flush=True)
    command = [tool("mtt-nc"), "label", teacher, data / "sampled.xyz",
               "-o", data / "labelled.xyz"]  # fmt: skip
    runner.run([("label", command, out)])
    labelled = ase.io.read(data / "labelled.xyz", ":")
    for part in ("train", "test"):
        chosen = [a for a, p in zip(labelled, parts, strict=True) if p == part]
        ase.io.write(data / f"{part}.xyz", chosen, format="extxyz")
    return {
        "train": parts.count("train"),
        "test": parts.count("test"),
        "atoms": len(frames[0]),
        # `mtt-nc label` writes a stress only when a structure is periodic
        "stress": any(
            atoms.calc is not None and "stress" in atoms.calc.results
            for atoms in labelled
        ),
    }


def student_options(
    size: str,
    epochs: int,
    train_file: Path,
    stress: bool = True,
    learning_rate: Optional[float] = None,
    batch_size: Optional[int] = None,
) -> Dict[str, object]:
    """``mtt train`` options of one student: student.yaml with the hypers of ``size``,
    ``epochs`` and the training file; without the stress target and its loss when
    the labels have none (molecules: `mtt-nc label` writes a stress only for
    periodic structures)."""
    options = yaml.safe_load(STUDENT_YAML.read_text())
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
    plan: Plan, out: Path, runner: Runner, stress: bool = True
) -> Dict[str, Job]:
    """Train every student size with ``mtt train`` (see :func:`student_options`)."""
    batch = []
    # the most expensive first, so that parallel jobs finish together
    for size in sorted(plan.sizes, key=_training_cost, reverse=True):
        folder = out / "students" / size
        folder.mkdir(parents=True)
        student = student_options(
            size,
            plan.epochs,
            out / "data" / "train.xyz",
            stress,
            learning_rate=plan.learning_rate,
            batch_size=plan.batch_size,
        )
        (folder / "options.yaml").write_text(yaml.safe_dump(student, sort_keys=False))
        command = [tool("mtt"), "train", "options.yaml", "-o", "student.pt"]
        batch.append((f"train_{size}", command, folder))
    return {job.name[len("train_") :]: job for job in runner.run(batch)}


def _training_cost(size: str) -> float:
    hypers = SIZES[size]
    return float(hypers["d_pet"]) * float(hypers["cutoff"]) ** 3


def accuracy(plan: Plan, out: Path, runner: Runner) -> Dict[str, Dict[str, float]]:
    """Direct-force errors of every student against the teacher's held-out labels."""
    students = [out / "students" / s / "student.pt" for s in plan.sizes]
    result = out / "students" / "accuracy.json"
    command = [tool("mtt-nc"), "accuracy", *students, "--structures",
               out / "data" / "test.xyz", "--json", result]  # fmt: skip
    runner.run([("accuracy", command, out)])
    data = json.loads(result.read_text())  # one entry per model, in order
    errors = {}
    for size, entry in zip(plan.sizes, data, strict=True):
        forces = entry["forces"]["direct"]
        errors[size] = {
            "force_rmse_meV_per_A": forces["rmse"],
            "force_mae_meV_per_A": forces["mae"],
            "energy_rmse_meV_per_atom": (entry.get("energy") or {}).get("rmse"),
        }
    return errors


def costs(teacher: str, plan: Plan, out: Path) -> Dict[str, float]:
    """Milliseconds per force call on the NVE start: the teacher's conservative
    forces and each student's direct forces, medians of interleaved repeats in this
    process (one thread)."""
    import ase.io
    import torch

    from metatrain_nc.force_models import load_force_model

    torch.set_num_threads(1)
    atoms = ase.io.read(out / "data" / "nve_start.extxyz")
    models = {"teacher": load_force_model(teacher)}
    for size in plan.sizes:
        models[size] = load_force_model(str(out / "students" / size / "student.pt"))

    def call(name):
        if name == "teacher":
            models[name].evaluate(atoms, conservative=True, direct=False)
        else:
            models[name].evaluate(atoms, conservative=False, direct=True)

    times: Dict[str, List[float]] = {name: [] for name in models}
    for name in models:
        for _ in range(3):  # TorchScript profiling, neighbour lists
            call(name)
    for _ in range(plan.cost_repeats):
        for name in models:
            began = time.process_time()
            call(name)
            times[name].append(time.process_time() - began)
    return {name: 1000 * statistics.median(values) for name, values in times.items()}


def scan_strides(teacher: str, plan: Plan, out: Path, runner: Runner):
    """``mtt-nc md --forces mts --fast student --stride auto`` for every student (a
    stride scan, then an NVE run of ``run_fs``), and the teacher's conservative NVE
    from the same start."""
    start = out / "data" / "nve_start.extxyz"
    common = ["--ensemble", "nve", "--velocities", "structure", "--no-chemiscope",
              "--trajectory-every", 50]  # fmt: skip
    batch = [
        (
            "nve_teacher",
            [tool("mtt-nc"), "md", teacher, start, "--forces", "conservative",
             "--timestep", plan.inner_fs, "--stride", 1,
             "--steps", int(round(plan.run_fs / plan.inner_fs)),
             *common, "-o", out / "nve" / "teacher"],
            out,
        )
    ]  # fmt: skip
    for size in plan.sizes:
        student = out / "students" / size / "student.pt"
        command = [
            tool("mtt-nc"), "md", teacher, start, "--forces", "mts",
            "--fast", student, "--stride", "auto",
            "--inner-timestep", plan.inner_fs, "--scan-time", plan.scan_fs,
            "--max-stride", plan.max_stride,
            "--timestep", plan.inner_fs, "--steps",
            int(round(plan.run_fs / plan.inner_fs)),
            *common, "-o", out / "nve" / size,
        ]  # fmt: skip
        batch.append((f"nve_{size}", command, out))
    runner.run(batch)
    summaries = {}
    for name in ["teacher", *plan.sizes]:
        summaries[name] = json.loads((out / "nve" / name / "summary.json").read_text())
    return summaries


def time_md(teacher: str, student: str, stride: int, plan: Plan, out: Path):
    """MD time per inner step (CPU s, one thread, this process): the teacher's
    velocity Verlet vs MTS with the student at ``stride``, same inner step, every
    repeat from the NVE start, interleaved (as benchmarks/md_speed.py)."""
    import ase.io
    import torch
    from ase import units

    from metatrain_nc.dynamics.integrator import MultipleTimeStep
    from metatrain_nc.force_models import load_force_model

    torch.set_num_threads(1)
    start = ase.io.read(out / "data" / "nve_start.extxyz")
    slow, fast = load_force_model(teacher), load_force_model(student)
    h = plan.inner_fs * units.fs

    def dynamics(mode):
        atoms = start.copy()
        if mode == "conservative":
            return MultipleTimeStep(atoms, h, slow, forces="conservative", stride=1)
        return MultipleTimeStep(atoms, stride * h, slow, forces="mts",
                                stride=stride, fast=fast)  # fmt: skip

    per_step: Dict[str, List[float]] = {"conservative": [], "mts": []}
    outer = {"conservative": plan.timing_outer_steps(1),
             "mts": plan.timing_outer_steps(stride)}  # fmt: skip
    for mode in per_step:  # warm-up
        dynamics(mode).run(1)
    for _ in range(plan.timing_repeats):
        for mode in per_step:
            dyn = dynamics(mode)
            dyn.run(1)
            began = time.process_time()
            dyn.run(outer[mode])
            inner = outer[mode] * (1 if mode == "conservative" else stride)
            per_step[mode].append((time.process_time() - began) / inner)
    ms = {mode: 1000 * statistics.median(v) for mode, v in per_step.items()}
    # a step costs the same whatever its length: per simulated fs, the teacher at
    # its own (sampling) step against MTS at the inner step
    own_step = (ms["conservative"] / plan.timestep_fs) / (ms["mts"] / plan.inner_fs)
    return {
        "ms_per_inner_step": ms,
        "repeats_ms": {m: [1000 * x for x in v] for m, v in per_step.items()},
        "speedup": ms["conservative"] / ms["mts"],
        "speedup_vs_teacher_step": own_step,
    }


# -- the report ----------------------------------------------------------------------
def choose(students: Dict[str, Dict], teacher_ms: float) -> Optional[str]:
    """The student with the best predicted MTS speed-up at its stride, teacher /
    (student + teacher / M); ``None`` if no stride above 1 was accepted."""
    best, best_speedup = None, 1.0
    for size, s in students.items():
        stride = s["stride"]
        if stride is None or stride < 2:
            continue
        speedup = teacher_ms / (s["ms_per_call"] + teacher_ms / stride)
        s["predicted_speedup"] = speedup
        if speedup > best_speedup:
            best, best_speedup = size, speedup
    return best


def md_numbers(summary: Dict) -> Dict[str, object]:
    keys = ("status", "outer_steps_done", "simulated_time_ps",
            "drift_meV_per_atom_per_ps", "drift_error_meV_per_atom_per_ps",
            "heating_rate_K_per_ps", "heating_rate_error_K_per_ps",
            "mean_temperature_K", "model_backward_passes",
            "fast_model_forward_passes")  # fmt: skip
    data = {k: summary.get(k) for k in keys}
    data["stride"] = summary["settings"]["stride"]
    data["outer_timestep_fs"] = summary["settings"]["timestep_fs"]
    data["warnings"] = [w["message"] for w in summary.get("warnings", [])]
    return data


def write_report(report: Dict, out: Path) -> str:
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = _markdown(report)
    (out / "report.md").write_text("\n".join(lines) + "\n")
    return "\n".join(lines)


def _f(value, digits=2, unit=""):
    if value is None:
        return "-"
    return f"{value:.{digits}f}{unit}"


def _pm(value, error, digits=2):
    if value is None:
        return "-"
    if error is None:
        return _f(value, digits)
    return f"{value:.{digits}f} ± {error:.{digits}f}"


def _overrides(plan: Dict) -> str:
    """The student.yaml settings a run replaced, as ", learning rate 0.001"."""
    names = {"learning_rate": "learning rate", "batch_size": "batch size"}
    return "".join(
        f", {label} {plan[key]:g}"
        for key, label in names.items()
        if plan.get(key) is not None
    )


def _markdown(r: Dict) -> List[str]:
    plan, data, teacher = r["plan"], r["data"], r["teacher"]
    lines = [
        "# Distillation: a pet_nc student for multiple time stepping",
        "",
        f"Run of {r['date']} ({'--quick, ' if r['quick'] else ''}"
        f"{r['cpu_time_min']:.1f} min of CPU time, {r['wall_time_min']:.1f} min "
        f"wall, {r['jobs']} jobs of one thread each).",
        "",
        f"- Teacher: `{teacher['model']}` ({teacher['source']}), conservative "
        f"forces {teacher['ms_per_call']:.1f} ms per call on {data['atoms']} atoms.",
        f"- Data: NVT (SVR, tau {plan['thermostat_tau_fs']:g} fs) with the teacher at "
        f"{', '.join(f'{t:g}' for t in plan['temperatures'])} K, "
        f"{plan['sample_steps']} steps of {plan['timestep_fs']:g} fs each, a frame "
        f"every {plan['sample_every']} steps: {data['train']} training frames, "
        f"{data['test']} held out (the last {plan['test_fraction']:.0%} of each "
        "trajectory), labelled by the teacher (`mtt-nc label`).",
        f"- Students: `pet_nc` ({plan['epochs']} epochs of `mtt train`, "
        f"recipes/distill/student.yaml with the sizes below{_overrides(plan)}). "
        "Force error: direct "
        "forces against the teacher's on the held-out frames. Cost: one force call "
        "on the NVE start, CPU ms of one thread, medians of interleaved calls in one "
        "process. Stride: the largest M whose NVE drift stays within 2x of the "
        "teacher's (+ 1 meV/atom/ps; `--stride auto`, inner step "
        f"{plan['inner_fs']:g} fs, segments of {plan['scan_fs']:g} fs). "
        "Predicted speed-up: teacher / (student + teacher / M), at the same "
        "inner step.",
        "",
        "| student | parameters | training CPU min | F RMSE vs teacher (meV/Å) "
        "| F MAE (meV/Å) | ms per call | teacher / student | stride M "
        "| predicted speed-up |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for size, s in r["students"].items():
        lines.append(
            f"| {size}{' (chosen)' if size == r['chosen'] else ''} "
            f"| {s.get('parameters') or '-'} | {s['train_cpu_s'] / 60:.1f} "
            f"| {_f(s['force_rmse_meV_per_A'], 0)} "
            f"| {_f(s['force_mae_meV_per_A'], 0)} | {s['ms_per_call']:.1f} "
            f"| {teacher['ms_per_call'] / s['ms_per_call']:.2f}x "
            f"| {s['stride'] if s['stride'] else '-'} "
            f"| {_f(s.get('predicted_speedup'), 2, 'x')} |"
        )
    lines += [
        "",
        f"## NVE, {plan['run_fs']:g} fs from the same start (teacher's 300 K frame)",
        "",
        "| dynamics | outer step (fs) | drift (meV/atom/ps) | heating (K/ps) "
        "| mean T (K) | status |",
        "|---|---|---|---|---|---|",
    ]
    for name, run in r["nve"].items():
        label = "teacher, conservative" if name == "teacher" else f"MTS, {name}"
        lines.append(
            f"| {label} | {run['outer_timestep_fs']:g} "
            f"| {_pm(run['drift_meV_per_atom_per_ps'], run['drift_error_meV_per_atom_per_ps'])} "  # noqa: E501
            f"| {_pm(run['heating_rate_K_per_ps'], run['heating_rate_error_K_per_ps'], 0)} "  # noqa: E501
            f"| {_f(run['mean_temperature_K'], 0)} | {run['status']} |"
        )
    chosen = r["chosen"]
    lines.append("")
    if chosen is None:
        lines.append(
            "No student conserved energy at a stride above 1: train longer or a "
            "larger student (see the table), or sample more data."
        )
        return lines
    timing = r["timing"]
    run = r["nve"][chosen]
    lines += [
        "## Result",
        "",
        f"- Chosen student: **{chosen}**, force error against the teacher "
        f"{r['students'][chosen]['force_rmse_meV_per_A']:.0f} meV/Å RMSE on "
        f"{data['test']} held-out frames.",
        f"- Stride: **M = {run['stride']}** (outer step {run['outer_timestep_fs']:g} "
        f"fs, inner {plan['inner_fs']:g} fs).",
        f"- NVE drift: {_pm(run['drift_meV_per_atom_per_ps'], run['drift_error_meV_per_atom_per_ps'])} "  # noqa: E501
        f"meV/atom/ps with the pair, {_pm(r['nve']['teacher']['drift_meV_per_atom_per_ps'], r['nve']['teacher']['drift_error_meV_per_atom_per_ps'])} "  # noqa: E501
        "with the teacher's conservative forces.",
        f"- Speed-up over the teacher's conservative MD at the same inner step "
        f"({plan['inner_fs']:g} fs; CPU time per step in one process, medians of "
        f"{plan['timing_repeats']} interleaved repeats): **{timing['speedup']:.2f}x** "
        f"({timing['ms_per_inner_step']['conservative']:.1f} vs "
        f"{timing['ms_per_inner_step']['mts']:.1f} ms per inner step); per "
        f"simulated time against the teacher at its sampling step "
        f"({plan['timestep_fs']:g} fs, where its NVE drift is as small): "
        f"**{timing['speedup_vs_teacher_step']:.2f}x**.",
        "",
        "Run it yourself: `mtt-nc md "
        f"{_short(teacher['model'])} START --forces mts --fast "
        f"{_short(r['students'][chosen]['model'])} --stride {run['stride']} "
        f"--timestep {run['outer_timestep_fs']:g} -o md-pair/`.",
    ]
    for warning in run["warnings"]:
        lines.append(f"\nNote (`mtt-nc md`): {warning}")
    return lines


# -- main ----------------------------------------------------------------------------
def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="output folder (new)")
    parser.add_argument(
        "--quick", action="store_true", help="a test of the pipeline: < 2 min"
    )
    parser.add_argument(
        "--teacher",
        default=str(DEFAULT_TEACHER),
        help="conservative teacher: .ckpt (exported here), .pt, or module:callable "
        "(default: the demo PET-C)",
    )
    parser.add_argument(
        "--structures",
        default=str(DEFAULT_STRUCTURES),
        help="structures the sampling runs start from (default: the bundled water)",
    )
    parser.add_argument(
        "--temperatures", help="comma-separated sampling temperatures in K (300,400)"
    )
    parser.add_argument(
        "--start-frames", help="comma-separated frames of --structures (0,20)"
    )
    parser.add_argument(
        "--sizes",
        help=f"comma-separated student sizes, from {list(SIZES)} (default: "
        f"{','.join(DEFAULT_SIZES)})",
    )
    parser.add_argument("--epochs", type=int, help="training epochs per student")
    parser.add_argument(
        "--learning-rate",
        type=float,
        help="students' learning rate (student.yaml: 5e-3, chosen on water)",
    )
    parser.add_argument(
        "--batch-size", type=int, help="students' batch size (student.yaml: 2)"
    )
    parser.add_argument("--jobs", type=int, default=2, help="parallel jobs (2)")
    args = parser.parse_args(argv)

    plan = Plan.quick() if args.quick else Plan()
    if args.temperatures:
        plan.temperatures = tuple(float(t) for t in args.temperatures.split(","))
    if args.start_frames:
        plan.start_frames = tuple(int(i) for i in args.start_frames.split(","))
    if len(plan.start_frames) < len(plan.temperatures):
        sys.exit("[distill] give one --start-frames entry per temperature")
    if args.sizes:
        plan.sizes = tuple(s.strip() for s in args.sizes.split(","))
        unknown = [s for s in plan.sizes if s not in SIZES]
        if unknown:
            sys.exit(f"[distill] unknown sizes {unknown}; choose from {list(SIZES)}")
    if args.epochs:
        plan.epochs = args.epochs
    if args.learning_rate is not None:
        if not args.learning_rate > 0:
            sys.exit("[distill] --learning-rate must be positive")
        plan.learning_rate = args.learning_rate
    if args.batch_size is not None:
        if args.batch_size < 1:
            sys.exit("[distill] --batch-size must be at least 1")
        plan.batch_size = args.batch_size
    plan.jobs = args.jobs
    out = Path(args.out).resolve()
    if out.exists():
        sys.exit(f"[distill] '{out}' exists: remove it or choose another --out")
    # the steps run inside --out: paths given relative to here must not change
    teacher_spec = args.teacher
    if teacher_spec.endswith((".ckpt", ".pt")):
        if not Path(teacher_spec).is_file():
            sys.exit(f"[distill] teacher '{teacher_spec}' does not exist")
        teacher_spec = str(Path(teacher_spec).resolve())
    structures = Path(args.structures).resolve()
    if not structures.is_file():
        sys.exit(f"[distill] structure file '{args.structures}' does not exist")
    out.mkdir(parents=True)
    began_wall = time.perf_counter()
    began_cpu = time.process_time()
    runner = Runner(out, plan.jobs)

    print(f"[distill] 0/5 teacher {teacher_spec}", flush=True)
    teacher = prepare_teacher(teacher_spec, out, runner)
    print("[distill] 1/5 sampling with the teacher", flush=True)
    trajectories = sample(teacher, structures, plan, out, runner)
    data = split_and_label(teacher, trajectories, plan, out, runner)
    print(f"[distill] 3/5 training students {list(plan.sizes)}", flush=True)
    trained = train_students(plan, out, runner, stress=data["stress"])
    print("[distill] 4/5 accuracy, cost and stride scans", flush=True)
    errors = accuracy(plan, out, runner)
    ms = costs(teacher, plan, out)
    summaries = scan_strides(teacher, plan, out, runner)
    students = {}
    for size in plan.sizes:
        run = summaries[size]
        completed = run["status"] == "completed"
        students[size] = {
            "model": str(out / "students" / size / "student.pt"),
            "hypers": SIZES[size],
            "parameters": _parameters(trained[size].log),
            "train_cpu_s": trained[size].cpu_s,
            **errors[size],
            "ms_per_call": ms[size],
            "stride": run["settings"]["stride"] if completed else None,
            "stride_scan": run.get("stride_scan"),
        }
    chosen = choose(students, ms["teacher"])
    timing = None
    if chosen is not None:
        print(f"[distill] 5/5 timing the teacher and the pair ({chosen})", flush=True)
        timing = time_md(teacher, students[chosen]["model"],
                         students[chosen]["stride"], plan, out)  # fmt: skip
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "quick": args.quick,
        "jobs": plan.jobs,
        "plan": asdict(plan),
        "teacher": {
            "model": teacher,
            "source": teacher_spec,
            "ms_per_call": ms["teacher"],
        },  # fmt: skip
        "data": data,
        "students": students,
        "chosen": chosen,
        "nve": {name: md_numbers(summary) for name, summary in summaries.items()},
        "timing": timing,
        "commands": [
            {"name": j.name, "command": j.command, "cpu_s": j.cpu_s, "wall_s": j.wall_s}
            for j in runner.done
        ],
    }
    import resource

    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = time.process_time() - began_cpu + children.ru_utime + children.ru_stime
    report["cpu_time_min"] = cpu / 60
    report["wall_time_min"] = (time.perf_counter() - began_wall) / 60
    text = write_report(report, out)
    print()
    print(text)
    print(f"\n[distill] report: {out / 'report.md'} (and report.json)")
    return 0


def _parameters(log: Path) -> Optional[int]:
    import re

    match = re.search(r"actual number: (\d+)", log.read_text(errors="replace"))
    return int(match.group(1)) if match else None


if __name__ == "__main__":
    sys.exit(main())
