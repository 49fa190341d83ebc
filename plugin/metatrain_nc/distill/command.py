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

Every argument is checked before any work starts. Each step is stored when it
finishes (:mod:`metatrain_nc.unit_store`): a run that is interrupted or fails keeps
its finished steps and continues with ``--resume``; one that fails before any step
finished leaves no output folder behind.
"""

import argparse
import os
import shutil
import sys
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
    parser.add_argument(
        "--out", required=True, help="output folder (new, or one to --resume)"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted or failed distillation in --out from its "
        "finished steps (same teacher, data and settings; --jobs may change)",
    )
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
        resume=args.resume,
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
    resume: bool = False,
) -> str:
    """Every argument, before any work; returns the teacher as the steps name it
    (files made absolute)."""
    from ..force_models.loading import load_force_model

    settings.check()
    if out.exists() and not resume:
        raise UserInputError(
            f"--out '{out}' exists: choose a new folder, or continue the "
            "distillation in it with --resume"
        )
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
    resume: bool = False,
) -> Dict[str, Any]:
    """Run the whole distillation (see the module docstring) into the folder ``out``
    (new, or continued with ``resume`` from its finished steps: the same teacher,
    inputs and settings, ``jobs`` aside); returns the report (``report["markdown"]``:
    its text).

    Each step of :data:`.pipeline.STEPS` is a unit of :class:`~metatrain_nc.unit_store.
    UnitStore`: stored when it finishes, so an interrupted or failed run continues
    with ``resume`` where it stopped.

    :raises UserInputError: a bad argument (nothing written) or a failed step (the
        finished steps kept, or the new folder removed when none had finished).
    """
    import json

    from ..unit_store import UnitStore, run_units
    from .pipeline import STEPS, Steps, publish

    settings = settings or DistillSettings()
    if (structures is None) == (data is None):
        raise UserInputError("give either --structures or --data")
    out_path = Path(out).resolve()
    spec = _check(
        teacher, out_path, structures, data, settings, student_options, resume
    )
    template = Path(student_options) if student_options else None
    protocol = {
        "teacher": spec,
        "structures": str(Path(structures).resolve()) if structures else None,
        "data": str(Path(data).resolve()) if data else None,
        "student_options": str(template.resolve()) if template else None,
        "quick": quick,
        "settings": json.loads(json.dumps(asdict(settings))),
    }
    new = not out_path.exists()
    try:
        options = dict(tool="mtt-nc distill", option="--out", resumable=("jobs",))
        with UnitStore(out_path, protocol, resume, False, **options) as store:
            steps = Steps(store, protocol, settings)
            units = [(name, steps.unit(name)) for name in STEPS]
            report = run_units(
                units, store, steps.collect, publish, fatal=(Exception,),
                progress=False, desc="distill",
            )  # fmt: skip
    except Exception as error:
        finished = list((out_path / "units").glob("*.json"))
        if new and not finished:
            shutil.rmtree(out_path, ignore_errors=True)
            raise
        if not isinstance(error, UserInputError):
            raise
        raise UserInputError(
            f"{error}\n[distill] the finished steps ({len(finished)} of "
            f"{len(STEPS)}) are kept in '{out_path}': run the same command with "
            "--resume to continue"
        ) from error
    report.pop("output_dir", None)
    return report


if __name__ == "__main__":  # pragma: no cover
    from ..cli import main

    sys.exit(main(["distill", *sys.argv[1:]]))
