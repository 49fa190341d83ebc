"""The README's main job: PET-C, PET-NC and PET-M on CHGNet-labelled water, compared.

1. models: the shipped checkpoints (:data:`SHIPPED`: small PETs, 46k parameters,
   trained on 608 frames of 64 H2O labelled by CHGNet plus two rounds of active
   learning, PET-M trained longer: docs/water_chgnet_models.md), exported with the
   unmodified ``mtt export``; or, with ``--train``, trained here with ``mtt train`` on
   the same data by the round-0 recipes of ``recipes/water_chgnet/`` (hours; the
   active-learning rounds are not repeated); with ``--quick``, trained here for a few
   epochs on the bundled 40-frame water (CI: the pipeline cannot rot);
2. ``mtt-nc compare`` on the data set's test split (trajectories never trained on):
   accuracy, cost, lambda, NVE with conservative, direct and multiple-time-step
   forces, NVT under the paper's SVR tau 10 fs, relaxations;
3. prints the main numbers, what the NVT runs resolve and where the report is.

Run through ``scripts/demo.sh`` (which installs first) or directly:

    python scripts/demo.py [--quick | --train] [--nvt-time FS] [--out demo]

A demo cut short (a long ``--nvt-time`` or ``--train`` takes hours) continues with
the same options and ``--resume``: finished trainings and compare runs are kept, and
an MD run cut short continues from its last restart point (saved every 5 minutes).
"""

import argparse
import json
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import ase.io
from make_demo_models import DEMO, train  # scripts/ is on sys.path

from metatrain_nc.compare.nvt_reading import change_text, largest_split, verdict
from metatrain_nc.compare.sections import nvt_findings

ROOT = Path(__file__).resolve().parents[1]
#: the shipped models: PET-C and PET-NC after active learning, PET-M trained longer
#: (docs/water_chgnet_models.md), and the recipes ``--train`` runs
SHIPPED = {
    "pet_c": ROOT / "recipes" / "water_chgnet_al2" / "pretrained" / "pet_c.ckpt",
    "pet_nc": ROOT / "recipes" / "water_chgnet_al2" / "pretrained" / "pet_nc.ckpt",
    "pet_m": ROOT / "recipes" / "water_chgnet_al2_long" / "pretrained" / "pet_m.ckpt",
}
RECIPES = ROOT / "recipes" / "water_chgnet"
#: the test split of the CHGNet-labelled water (76 frames: its 307 K trajectory)
TEST = ROOT / "recipes" / "data" / "water_chgnet" / "test.xyz.gz"
#: ``--quick``: the bundled 40-frame water and its toy recipes
QUICK_DATA = ROOT / "recipes" / "data" / "water_64h2o_40frames.xyz"
MODELS = ("pet_c", "pet_nc", "pet_m")
#: the demo's options, saved in its folder so that ``--resume`` continues the same demo
DEMO_OPTIONS = "demo.json"
#: the committed long NVT runs of these models, with the models read from each: this
#: demo's own comparison with ``--nvt-time 20000`` (the last 10 of 20 ps analysed),
#: then the paper-protocol runs (SVR tau 10 fs, 5 and 20 ps; PET-M's MTS at the
#: stride 4 its NVE scan chose)
LONG_RUNS = (
    ("docs/demo_20ps/report", ("PET-C", "PET-NC", "PET-M")),
    ("docs/paper_run_chgnet", ("PET-C", "PET-NC")),
    ("docs/paper_run_chgnet_20ps", ("PET-NC",)),
    ("docs/paper_run_chgnet_pm_long", ("PET-M",)),
    ("docs/paper_run_chgnet_pm_long_20ps", ("PET-M",)),
)
#: runs of the committed 20 ps demo repeated from other seeds with the same settings
#: (``mtt-nc md ... --seed N``): (model, mode, the demo's run, the replicas); the
#: demo reads each group as one with ``mtt-nc read`` (one run's block errors miss
#: swings slower than its blocks)
LONG_REPLICAS = (
    (
        "PET-M",
        "mts",
        "docs/demo_20ps/report/md/PET-M-svr-mts",
        (
            "docs/demo_20ps/replicas/PET-M-svr-mts-seed1",
            "docs/demo_20ps/replicas/PET-M-svr-mts-seed2",
        ),
    ),
)

#: ``mtt-nc compare`` options of the demo (full and --quick)
COMPARE_OPTIONS = [
    "--timestep", "0.5",
    "--stride", "4",  # PET-M's: `mtt-nc md --forces mts --stride auto` chose it
    "--nve-time", "400",
    "--tau", "10",  # the paper's Table 2 thermostat: SVR tau 10 fs
    "--lambda-structures", "1",
    "--relax-structures", "1",
    "--relax-steps", "300",
]  # fmt: skip
#: the default NVT time of the demo (fs); ``--nvt-time`` changes it
NVT_TIME = 400.0
#: the NVT time of the committed long runs (fs): a demo run as long is not told to
#: run longer
LONG_NVT_TIME = 20000.0
QUICK_OPTIONS = [
    "--quick",
    "--timestep", "0.25",
    "--nve-time", "10",
    "--nvt-time", "5",
    "--relax-steps", "5",
    "--stages", "accuracy,cost,nve,nvt,relax",
]  # fmt: skip


def run(command, cwd: Path, log: Path) -> None:
    """Run ``command``; stop the demo with the log's path if it fails."""
    with open(log, "w") as handle:
        status = subprocess.run(
            command, cwd=cwd, stdout=handle, stderr=subprocess.STDOUT
        )
    if status.returncode != 0:
        sys.exit(f"[demo] `{' '.join(map(str, command[:3]))}` failed: see {log}")


def mtt(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def read_test_split(indices_file: Path) -> list:
    """The structures of metatrain's test split (a ``test.txt`` of indices) of the
    bundled 40-frame water (``--quick``)."""
    frames = ase.io.read(QUICK_DATA, ":")
    return [frames[int(i)] for i in indices_file.read_text().split()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--quick", action="store_true", help="3-epoch models, short runs"
    )
    group.add_argument(
        "--train",
        action="store_true",
        help="train the models here (recipes/water_chgnet/, hours on 2 cores)",
    )
    parser.add_argument(
        "--nvt-time",
        type=float,
        default=None,
        help=f"analysed NVT time per run in fs ({NVT_TIME:g}); 20000 resolves what "
        "the short default cannot (hours)",
    )
    parser.add_argument(
        "--mts-replicas",
        type=int,
        default=1,
        metavar="N",
        help="also run PET-M's MTS NVT run from N - 1 more seeds (mtt-nc md, the "
        "same settings) and read the N runs as one: one run's error bar misses "
        "swings of the species split that last picoseconds (with --nvt-time 20000, "
        "~1 h per run; may be added to a finished demo with --resume)",
    )
    parser.add_argument("--out", default="demo", help="output folder (new)")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the demo stopped in --out (same options): its finished "
        "trainings and runs are kept",
    )
    args = parser.parse_args()
    if args.nvt_time is not None and args.nvt_time <= 0:
        parser.error(f"--nvt-time must be positive, got {args.nvt_time:g}")
    if args.mts_replicas < 1:
        parser.error(f"--mts-replicas must be at least 1, got {args.mts_replicas}")

    out = Path(args.out).resolve()
    options = {"quick": args.quick, "train": args.train, "nvt_time": args.nvt_time}
    if args.resume:
        check_resumable(out, options)
    elif out.exists():
        sys.exit(
            f"[demo] '{out}' exists: remove it, pass --out NEW_FOLDER, or continue "
            "the demo stopped there with the same options and --resume"
        )
    missing = [str(p.relative_to(ROOT)) for p in SHIPPED.values() if not p.is_file()]
    if missing and not (args.quick or args.train):
        sys.exit(
            f"[demo] shipped checkpoints are missing: {', '.join(missing)}: restore "
            "them (`git checkout -- recipes`) or train here with `python "
            "scripts/demo.py --train`"
        )
    start = time.perf_counter()
    models_dir = out / "models"
    models_dir.mkdir(parents=True, exist_ok=args.resume)
    (out / DEMO_OPTIONS).write_text(json.dumps(options, indent=2) + "\n")
    if args.quick or args.train:
        epochs, recipes = (3, DEMO) if args.quick else (0, RECIPES)
        checkpoints = {
            name: trained(name, out / "training", epochs, recipes, args.resume)
            for name in MODELS
        }
        if args.quick:
            split = next((out / "training").glob("pet_m/outputs/*/*/indices/test.txt"))
    else:
        checkpoints = dict(SHIPPED)
    for name, checkpoint in checkpoints.items():
        if args.resume and (models_dir / f"{name}.pt").is_file():
            continue  # exported before the demo stopped
        print(f"[demo] mtt export {checkpoint.name} -> models/{name}.pt", flush=True)
        local = models_dir / f"{name}.ckpt"
        shutil.copyfile(checkpoint, local)
        partial = f"partial_{name}.pt"  # renamed when whole: a resume trusts it
        run([mtt("mtt"), "export", local.name, "-o", partial], models_dir,
            models_dir / f"export_{name}.log")  # fmt: skip
        (models_dir / partial).replace(models_dir / f"{name}.pt")

    test = read_test_split(split) if args.quick else ase.io.read(TEST, ":")
    ase.io.write(out / "test.xyz", test)
    compare_options = list(QUICK_OPTIONS if args.quick else COMPARE_OPTIONS)
    if not args.quick or args.nvt_time is not None:
        compare_options += ["--nvt-time", f"{args.nvt_time or NVT_TIME:g}"]
    print(f"[demo] mtt-nc compare on {len(test)} test structures ...", flush=True)
    command = [
        mtt("mtt-nc"),
        "compare",
        *[str(models_dir / f"{name}.pt") for name in MODELS],
        "--names", "PET-C,PET-NC,PET-M",
        "--structures", str(out / "test.xyz"),
        "-o", str(out / "report"),
        *compare_options,
    ]  # fmt: skip
    if args.resume and (out / "report" / "protocol.json").is_file():
        command.append("--resume")
    status = subprocess.run(command)
    report_file = out / "report" / "report.json"
    if not report_file.is_file():
        sys.exit(f"[demo] mtt-nc compare failed (exit {status.returncode})")
    report = json.loads(report_file.read_text())
    print()
    print(summary_table(report))
    print()
    for paragraph in nvt_findings(report):  # what the NVT runs resolve, plainly
        first, rest = "[demo] NVT: ", "[demo]   "
        print(
            textwrap.fill(paragraph, 88, initial_indent=first, subsequent_indent=rest)
        )
    if args.mts_replicas > 1 and status.returncode == 0:
        folders = mts_replicas(out, args.mts_replicas, args.resume)
        line = pooled_line("PET-M", "mts", folders, out / "replicas")
        seeds = ", ".join(
            str(json.loads((f / "summary.json").read_text())["settings"]["seed"])
            for f in folders
        )
        print(
            textwrap.fill(
                "[demo] NVT: "
                + (
                    line
                    or f"PET-M mts, {len(folders)} runs (seeds {seeds}): too short "
                    "for error bars, nothing to read as one (run longer: --nvt-time)"
                ),
                88,
                subsequent_indent="[demo]   ",
            )
        )
    if not args.quick and (args.nvt_time or NVT_TIME) < LONG_NVT_TIME:
        for line in long_run_lines():
            print(textwrap.fill(line, 88, subsequent_indent="[demo]   "))
    print()
    minutes = (time.perf_counter() - start) / 60
    print(f"[demo] done in {minutes:.1f} min; report: {out / 'report' / 'report.md'}")
    print(
        f"[demo]   also {out / 'report' / 'report.html'} (figures and interactive "
        "chemiscope viewers embedded, offline)"
    )
    return 0 if status.returncode == 0 else status.returncode


def check_resumable(out: Path, options: dict) -> None:
    """Exit with a message unless ``out`` holds a demo started with ``options``."""
    saved_file = out / DEMO_OPTIONS
    if not saved_file.is_file():
        sys.exit(
            f"[demo] --resume: '{out}' holds no demo ({DEMO_OPTIONS} is missing): "
            "nothing to resume; run without --resume in a new --out"
        )
    saved = json.loads(saved_file.read_text())
    if saved != options:
        differ = ", ".join(
            f"--{k.replace('_', '-')} {_shown(saved.get(k))} (now {_shown(v)})"
            for k, v in options.items()
            if saved.get(k) != v
        )
        sys.exit(
            f"[demo] --resume: the demo in '{out}' was started with other options: "
            f"{differ}; resume with the same options, or run in a new --out"
        )


def _shown(value) -> str:
    """An option's value in a message."""
    if value is None or value is False:
        return "not given"
    return "given" if value is True else f"{value:g}"


def trained(name: str, workdir: Path, epochs: int, recipes: Path, resume: bool) -> Path:
    """The checkpoint of ``name`` trained here with ``recipes``, continuing or
    reusing the training of a resumed demo."""
    final = workdir / name / f"{name}.ckpt"
    if resume and final.is_file():
        print(f"[demo] {name} trained before the demo stopped: {final}", flush=True)
        return final
    return train(name, workdir, epochs=epochs, recipes=recipes, resume=resume)


def long_run_lines() -> list:
    """What the committed long NVT runs of the shipped models (``LONG_RUNS``)
    resolve, and how to run longer here: the demo's NVT runs are too short."""
    lines = [
        "[demo] longer NVT: species splits need picoseconds to build up (PET-NC's "
        "~10 ps); the committed runs of these models (this demo with "
        f"`--nvt-time {LONG_NVT_TIME:g}`, and the paper protocol's: 500 fs "
        "equilibration, SVR tau 10 fs, `python scripts/paper_tables.py`, "
        "docs/paper_tables.md) give:"
    ]
    for folder, models in LONG_RUNS:
        report_file = ROOT / folder / "report.json"
        if not report_file.is_file():
            continue
        report = json.loads(report_file.read_text())
        stride = report["settings"].get("stride")
        for run in report.get("nvt", []):
            if run["model"] not in models:
                continue
            mode = run["mode"] + (f" (stride {stride})" if run["mode"] == "mts" else "")
            where = f"({folder}/)"
            if run.get("status") != "completed":
                message = run.get("message") or run.get("status")
                lines.append(f"[demo]   {run['model']} {mode}: {message} {where}")
                continue
            found = largest_split(run)
            if found is None:
                continue
            pair, split = found
            left_out = run["equipartition"].get("equilibration_fraction") or 0.0
            analysed = run["simulated_time_ps"] * (1 - left_out)
            value, error = split["difference"], split.get("error")
            reading = verdict(value, error, report["settings"].get("sigma", 4.0))
            changed = change_text(split)
            if changed:
                reading += f", not stationary: it {changed} between the run's halves"
            lines.append(
                f"[demo]   {run['model']} {mode}, {analysed:g} ps analysed: "
                f"{pair} {value:+.1f} ± {error:.1f} K, {reading} {where}"
            )
        lines += replica_lines(folder)
    lines.append(
        f"[demo]   run the demo's comparison that long with `--nvt-time "
        f"{LONG_NVT_TIME:g}` "
        "(about 6 h on 2 cores; a run cut short continues from its last restart "
        "point with `--resume`), and with `--mts-replicas 3` for PET-M's MTS from "
        "three seeds read as one (about 2 h more)"
    )
    return lines


def replica_lines(report_folder: str) -> list:
    """The committed runs of :data:`LONG_REPLICAS` whose main run is in
    ``report_folder``, pooled (``mtt-nc read``): each group's largest species split,
    error-weighted over its runs, with its verdict."""
    lines = []
    for model, mode, main_run, replicas in LONG_REPLICAS:
        if not main_run.startswith(report_folder.rstrip("/") + "/"):
            continue
        folders = [ROOT / main_run] + [ROOT / r for r in replicas]
        if not all((f / "summary.json").is_file() for f in folders):
            continue
        line = pooled_line(model, mode, folders, Path(replicas[0]).parent)
        if line is not None:
            lines.append("[demo]   " + line)
    return lines


def pooled_line(model: str, mode: str, folders: list, where) -> "str | None":
    """The runs in ``folders`` (one model and setting, other seeds) read as one by
    ``mtt-nc read``: their largest species split, error-weighted, with its verdict;
    ``None`` when their settings differ or they are too short for error bars."""
    from metatrain_nc.dynamics.reading import load_run, pool_readings, read_run

    readings = [read_run(load_run(f)) for f in folders]
    pooled = pool_readings(readings)
    splits = pooled["splits"] or {}
    entries = [(pair, e) for pair, e in splits.items() if e is not None]
    if pooled["differences"] or not entries:
        return None
    pair, entry = max(entries, key=lambda item: abs(item[1]["mean"]))
    stride = readings[0]["settings"].get("stride")
    shown = mode + (f" (stride {stride})" if mode == "mts" else "")
    seeds = ", ".join(str(s) for s in pooled["seeds"])
    reading = "resolved" if entry["resolved"] else "within error"
    reading += f" ({entry['sigma']:.1f}σ)"
    if entry["scale"] > 1.0:
        reading += (
            f"; the runs disagree beyond their own errors, error widened "
            f"{entry['scale']:.1f}x"
        )
    return (
        f"{model} {shown}, {len(folders)} runs (seeds {seeds}) read as one by "
        f"`mtt-nc read`: {pair} {entry['mean']:+.1f} ± {entry['error']:.1f} K, "
        f"{reading} ({where}/)"
    )


def mts_replicas(out: Path, count: int, resume: bool) -> list:
    """``count - 1`` more runs of the comparison's PET-M MTS NVT run from other seeds
    (``mtt-nc md`` with that run's own settings, from the first test structure, into
    ``out/replicas/PET-M-svr-mts-seedN``; a run cut short continues): the folders of
    all ``count`` runs, the comparison's first."""
    main_run = out / "report" / "md" / "PET-M-svr-mts"
    summary_file = main_run / "summary.json"
    if not summary_file.is_file():
        sys.exit(
            f"[demo] --mts-replicas: the comparison has no finished PET-M MTS NVT run "
            f"({summary_file} is missing): see the report for why it did not run"
        )
    settings = json.loads(summary_file.read_text())["settings"]
    folders = [main_run]
    for k in range(1, count):
        seed = int(settings["seed"]) + k
        folder = out / "replicas" / f"PET-M-svr-mts-seed{seed}"
        folders.append(folder)
        if (folder / "summary.json").is_file() and resume:
            continue  # finished before the demo stopped
        print(f"[demo] MTS replica from seed {seed}: mtt-nc md -> {folder}", flush=True)
        command = [
            mtt("mtt-nc"), "md", str(out / "models" / "pet_m.pt"),
            str(out / "test.xyz"), "--forces", "mts",
            "--timestep", f"{settings['timestep_fs']:g}",
            "--stride", str(settings["stride"]),
            "--steps", str(settings["steps"]),
            "--ensemble", settings["ensemble"],
            "--temperature", f"{settings['temperature_K']:g}",
            "--tau", f"{settings['tau_fs']:g}",
            "--seed", str(seed),
            "--equilibration", f"{settings['equilibration_fraction']:g}",
            "--no-chemiscope", "--resume", "-o", str(folder),
        ]  # fmt: skip
        folder.parent.mkdir(exist_ok=True)
        run(command, out, out / "replicas" / f"md_seed{seed}.log")
    return folders


def summary_table(report: dict) -> str:
    """Force errors, NVE heating/drift and cost per model and force mode."""
    lines = [
        f"{'model':<7} {'forces':<13} {'F RMSE':>8} {'NVE drift':>14} "
        f"{'heating':>9} {'cost':>8}",
        f"{'':<7} {'':<13} {'meV/A':>8} {'meV/atom/ps':>14} {'K/ps':>9} "
        f"{'speed-up':>8}",
    ]
    for name, model in report["models"].items():
        accuracy = model.get("accuracy") or {}
        nve = model.get("nve") or {}
        cost = model.get("cost") or {}
        for mode in model["info"]["md_modes"]:
            forces = (accuracy.get("forces") or {}).get(mode) or {}
            run_ = nve.get(mode) or {}
            key = "mts_per_inner_step" if mode == "mts" else mode
            speedup = (cost.get("speedup") or {}).get(key)
            lines.append(
                f"{name:<7} {mode:<13} {_num(forces.get('rmse'), 8, 0)} "
                f"{_num(run_.get('drift_meV_per_atom_per_ps'), 14, 2)} "
                f"{_num(run_.get('heating_rate_K_per_ps'), 9, 0)} "
                f"{_num(speedup, 7, 2)}x"
            )
    return "\n".join(lines)


def _num(value, width: int, digits: int) -> str:
    if value is None:
        return f"{'-':>{width}}"
    return f"{value:{width}.{digits}f}"


if __name__ == "__main__":
    sys.exit(main())
