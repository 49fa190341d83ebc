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
import json
import os
import sys
import time
from pathlib import Path
from typing import List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pretraining.data import write_split  # noqa: E402
from pretraining.plan import (  # noqa: E402
    DATASETS,
    DEFAULTS,
    QUICK,
    ROOT,
    SETTINGS_FILE,
    InputError,
    finetune_run_name,
    make_settings,
    plan_cost,
    plan_runs,
    settings_difference,
)
from pretraining.report import BEGIN, END, write_report  # noqa: E402
from pretraining.results import time_to_reach  # noqa: E402
from pretraining.training import (  # noqa: E402
    CheckpointTracker,
    checkpoint_at,
    children_cpu,
    convert_pet_nc_to_pet,
    run_seed,
    write_json,
)

from metatrain_nc.cli_options import add_options, option, option_values, switch  # noqa: E402
from metatrain_nc.force_models.timing import WallClock  # noqa: E402

DEFAULT_DOC = ROOT / "docs" / "pretrain_finetune.md"
#: what the tests and other scripts take from here
__all__ = [
    "BEGIN",
    "END",
    "CheckpointTracker",
    "DATASETS",
    "DEFAULTS",
    "InputError",
    "QUICK",
    "SETTINGS_FILE",
    "checkpoint_at",
    "finetune_run_name",
    "main",
    "make_settings",
    "plan_cost",
    "plan_runs",
    "time_to_reach",
    "write_report",
    "write_split",
]


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
    add_options(parser, OPTIONS)
    return parser


OPTIONS = (
    option("--out", help="results folder (resumed if it exists)", field=False),
    option(
        "--budgets", type=lambda t: parse_list(float, t), help="minutes, e.g. 5,10,20"
    ),
    option(
        "--fractions",
        type=lambda t: parse_list(float, t),
        help="pre-training fractions f in (0, 1), e.g. 0.25,0.5,0.75",
    ),
    option("--seeds", type=lambda t: parse_list(int, t), help="e.g. 0,1,2"),
    option(
        "--datasets",
        type=lambda t: parse_list(str, t),
        help=f"among {', '.join(DATASETS)}",
    ),
    option(
        "--finetune",
        type=lambda t: parse_list(str, t),
        help="architectures fine-tuned from pet_nc: pet_m and/or pet",
    ),
    option(
        "--threads",
        default=2,
        help="OpenMP threads per mtt train (2). Only on an otherwise idle machine: "
        "OpenMP threads that compete with other processes for the cores slow "
        "training down by an order of magnitude",
    ),
    option("--lr", default=1e-3, help="learning rate (1e-3)", field="learning_rate"),
    option(
        "--finetune-lr",
        default=1e-3,
        help="of fine-tunings (1e-3)",
        field="finetune_learning_rate",
    ),
    option(
        "--direct-forces-weight",
        default=0.1,
        help="pet_m fine-tuning: loss weight of the direct forces (0.1; the "
        "conservative forces have 1)",
    ),
    option(
        "--reference-factor",
        default=1.5,
        help="the conservative run (a) lasts this times the largest budget, so "
        "that time-to-accuracy ratios above 1 are measured there too (1.5)",
    ),
    switch("--quick", "test the pipeline", field=False),
    switch(
        "--report",
        "only rebuild the tables and figure from the results in --out "
        "(with the settings stored there)",
        field=False,
    ),
    switch("--plan", "print the runs and their cost, and exit", field=False),
    option(
        "--doc",
        help="report (markdown; the figure goes next to it as .png). Default: "
        "docs/pretrain_finetune.md, with --quick OUT/report.md",
        field=False,
    ),
    switch(
        "--keep-checkpoints",
        "keep the evaluated checkpoints (deleted by default)",
        field=False,
    ),
    option(
        "--convert-pet-nc",
        nargs=2,
        metavar=("PET_NC", "PET"),
        help=argparse.SUPPRESS,
        field=False,
    ),
)


def resolve(args: argparse.Namespace) -> dict:
    base = QUICK if args.quick else DEFAULTS
    lists = ("budgets", "fractions", "seeds", "datasets", "finetune")
    values = {name: base[name] for name in lists}
    values.update(option_values(args, OPTIONS, skip_none=True))
    return make_settings(**values)


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
    clock = WallClock().start()
    cpu_start = children_cpu() + time.process_time()
    for seed in settings["seeds"]:
        for name in settings["datasets"]:
            run_seed(out, settings, DATASETS[name], seed, args.keep_checkpoints)
            write_report(out, settings, doc)
    text = write_report(out, settings, doc)
    print(text)
    cpu = children_cpu() + time.process_time() - cpu_start
    print(
        f"This invocation: {clock.stop() / 60:.1f} min wall, "
        f"{cpu / 60:.1f} min CPU (this process and its subprocesses)."
    )
    print(f"Report: {doc} (figure {doc.with_suffix('.png')}); results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
