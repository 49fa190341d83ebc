"""``mtt-nc distill``: a conservative teacher -> a fast ``pet_nc`` student -> MTS.

1. data: the teacher's own Langevin trajectories labelled by the teacher
   (``mtt-nc reference``), or an existing reference set (``--data``);
2. students: ``pet_nc`` models of a few sizes trained with the unmodified ``mtt
   train``;
3. measurements: each student's force error against the teacher (``mtt-nc
   accuracy``), its wall-clock cost per call against the teacher's, the largest
   stride its pair with the teacher tolerates in NVE (``mtt-nc md --stride auto``),
   the teacher's own NVE from the same start;
4. the chosen pair's speed per simulated ps against the teacher's own MD at its own
   step (``report.md``, ``report.html``, ``report.json``).

Every argument is checked before any work starts; a run that fails leaves no output
folder behind.
"""

import argparse
import os
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Dict, Optional

from ..cli_options import add_options, option, option_values, switch
from ..errors import UserInputError
from .settings import DEFAULT_SIZES, SIZES, DistillSettings

DESCRIPTION = (
    "distil a conservative teacher (any model: .pt, .ckpt, module:callable) into "
    "small direct-force pet_nc students and run multiple time stepping with the pair"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--teacher",
        required=True,
        help="conservative teacher: .pt, .ckpt (exported here) or module:callable "
        "returning an ASE calculator (found from the current folder)",
    )
    parser.add_argument("--out", required=True, help="output folder (new)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--structures", help="structures the teacher's trajectories start from"
    )
    source.add_argument(
        "--data",
        help="an existing reference set labelled by the teacher (a folder with "
        "train.xyz[.gz] and test.xyz[.gz], as mtt-nc reference writes)",
    )
    add_options(parser, OPTIONS)


OPTIONS = (
    switch("--quick", "a test: minutes", field=False),
    option(
        "--temperatures",
        help="K, one trajectory each (300,350,400; the middle one is the test set)",
        field=False,
    ),
    option("--start-frames", help="frames of --structures, one each", field=False),
    option("--frames-per-trajectory", type=int),
    option(
        "--sizes",
        help=f"student sizes from {list(SIZES)} (default {','.join(DEFAULT_SIZES)})",
        field=False,
    ),
    option("--epochs", type=int, help="training epochs per student"),
    option("--learning-rate", type=float),
    option("--batch-size", type=int),
    option(
        "--student-options",
        help="mtt train options of the students (YAML)",
        field=False,
    ),
    option(
        "--inner-timestep",
        type=float,
        help="fs, of MTS and the scans (0.25)",
        field="inner_fs",
    ),
    option(
        "--teacher-timestep",
        type=float,
        help="fs, of the teacher's own MD (0.5)",
        field="teacher_timestep_fs",
    ),
    option("--max-stride", type=int),
    option("--jobs", default=2, help="parallel jobs (2)"),
)


def settings_from_args(args: argparse.Namespace) -> DistillSettings:
    settings = DistillSettings.quick() if args.quick else DistillSettings()
    if args.temperatures:
        settings.temperatures = _numbers(args.temperatures, float, "--temperatures")
    if args.start_frames:
        settings.start_frames = _numbers(args.start_frames, int, "--start-frames")
    if args.sizes:
        settings.sizes = tuple(s.strip() for s in args.sizes.split(",") if s.strip())
    for name, value in option_values(args, OPTIONS, skip_none=True).items():
        setattr(settings, name, value)
    return settings


def _numbers(text: str, kind, option: str) -> tuple:
    try:
        return tuple(kind(v) for v in text.split(",") if v.strip())
    except ValueError as error:
        raise UserInputError(
            f"{option} '{text}': give a comma-separated list"
        ) from error


def run(args: argparse.Namespace) -> int:
    result = distill(
        args.teacher,
        args.out,
        structures=args.structures,
        data=args.data,
        settings=settings_from_args(args),
        student_options=args.student_options,
        quick=args.quick,
    )
    print()
    print(result["markdown"])
    report = Path(args.out) / "report.md"
    print(f"\n[distill] report: {report} (also report.html, report.json)")
    return 0


def _check(
    teacher: str,
    out: Path,
    structures: Optional[str],
    data: Optional[str],
    settings: DistillSettings,
    student_options: Optional[str],
) -> str:
    """Every argument, before any work; returns the teacher as the steps name it
    (files made absolute)."""
    from ..force_models.loading import load_force_model

    settings.check()
    if out.exists():
        raise UserInputError(f"--out '{out}' exists: choose a new folder")
    if student_options is not None and not Path(student_options).is_file():
        raise UserInputError(f"--student-options '{student_options}' does not exist")
    spec = teacher
    if teacher.endswith((".ckpt", ".pt")) or os.path.sep in teacher:
        if not Path(teacher).is_file():
            raise UserInputError(f"teacher '{teacher}' does not exist")
        spec = str(Path(teacher).resolve())
    model = load_force_model(spec)
    model.require_trained(
        "conservative",
        ": the teacher corrects the student every M steps with its conservative "
        "forces; give a conservative model (stock pet, pet_m, an ASE calculator)",
    )
    if data is not None:
        from .stages import split_files

        split_files(Path(data))
    else:
        from ..reference_data.build import make_plan

        plan, frames = make_plan(spec, structures, **settings.reference_options())
        model.check(frames[plan.trajectories[0].start_frame], "the first start frame")
    return spec


def distill(
    teacher: str,
    out: str,
    *,
    structures: Optional[str] = None,
    data: Optional[str] = None,
    settings: Optional[DistillSettings] = None,
    student_options: Optional[str] = None,
    quick: bool = False,
) -> Dict[str, Any]:
    """Run the whole distillation (see the module docstring) into the new folder
    ``out``; returns the report (``report["markdown"]``: its text).

    :raises UserInputError: a bad argument (nothing written) or a failed step (the
        output folder removed).
    """
    from . import stages
    from .jobs import Runner
    from .measure import force_call_ms, md_step_ms
    from .report import choose, md_numbers, write_report

    settings = settings or DistillSettings()
    if (structures is None) == (data is None):
        raise UserInputError("give either --structures or --data")
    out_path = Path(out).resolve()
    spec = _check(teacher, out_path, structures, data, settings, student_options)
    template = Path(student_options) if student_options else stages.STUDENT_OPTIONS
    out_path.mkdir(parents=True)
    began_wall, began_cpu = time.perf_counter(), time.process_time()
    try:
        runner = Runner(out_path, settings.jobs, Path.cwd())
        print(f"[distill] 1/4 teacher {spec}; data", flush=True)
        model = stages.prepare_teacher(spec, out_path, runner)
        labelled = stages.make_data(
            model,
            Path(structures).resolve() if structures else None,
            settings,
            out_path,
            Path(data).resolve() if data else None,
        )
        print(f"[distill] 2/4 training students {list(settings.sizes)}", flush=True)
        trained = stages.train_students(
            settings, labelled, out_path, runner, template.resolve()
        )
        print("[distill] 3/4 accuracy, cost and stride scans", flush=True)
        errors = stages.accuracy(settings, labelled, out_path, runner)
        paths = {
            s: str(out_path / "students" / s / "student.pt") for s in settings.sizes
        }
        costs = force_call_ms(model, paths, out_path, settings.cost_repeats)
        ms = {name: cost.ms_per_call for name, cost in costs.items()}
        summaries = stages.scan_strides(model, settings, out_path, runner)
        students = {}
        for size in settings.sizes:
            run_ = summaries[size]
            completed = run_["status"] == "completed"
            students[size] = {
                "model": paths[size],
                "hypers": SIZES[size],
                "parameters": _parameters(trained[size].log),
                "train_cpu_s": trained[size].cpu_s,
                **errors[size],
                "ms_per_call": ms[size],
                "cost": costs[size].as_dict(),
                "stride": run_["settings"]["stride"] if completed else None,
                "stride_scan": run_.get("stride_scan"),
            }
        chosen = choose(students, ms["teacher"])
        timing = None
        if chosen is not None:
            print(f"[distill] 4/4 timing the teacher and the pair ({chosen})")
            timing = md_step_ms(
                model, paths[chosen], students[chosen]["stride"], settings, out_path
            )
        report: Dict[str, Any] = {
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "quick": quick,
            "jobs": settings.jobs,
            "settings": asdict(settings),
            "teacher": {
                "model": model,
                "source": spec,
                "ms_per_call": ms["teacher"],
                "cost": costs["teacher"].as_dict(),
            },
            "data": labelled,
            "students": students,
            "chosen": chosen,
            "nve": {name: md_numbers(s) for name, s in summaries.items()},
            "timing": timing,
            "commands": [
                {
                    "name": j.name,
                    "command": j.command,
                    "cpu_s": j.cpu_s,
                    "wall_s": j.wall_s,
                }
                for j in runner.done
            ],  # fmt: skip
        }
        import resource

        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = time.process_time() - began_cpu + children.ru_utime + children.ru_stime
        report["cpu_time_min"] = cpu / 60
        report["wall_time_min"] = (time.perf_counter() - began_wall) / 60
        report["markdown"] = write_report(report, out_path)
        return report
    except BaseException:
        shutil.rmtree(out_path, ignore_errors=True)
        raise


def _parameters(log: Path) -> Optional[int]:
    import re

    match = re.search(r"actual number: (\d+)", log.read_text(errors="replace"))
    return int(match.group(1)) if match else None


if __name__ == "__main__":  # pragma: no cover
    from ..cli import main

    sys.exit(main(["distill", *sys.argv[1:]]))
