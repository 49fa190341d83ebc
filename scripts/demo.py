"""The README's main job: PET-C, PET-NC and PET-M on bundled water, compared.

1. models: the small pre-trained checkpoints of ``recipes/demo/pretrained/`` (made
   from the bundled water subset by ``scripts/make_demo_models.py``, 20 to 45 min of
   CPU training each), exported with the unmodified ``mtt export``; or, with
   ``--train``, trained here with ``mtt train`` and the same recipes (slow); with
   ``--quick``, trained here for a few epochs (CI: the pipeline cannot rot);
2. ``mtt-nc compare`` on the test split of the water subset: accuracy, cost, lambda,
   NVE with conservative, direct and multiple-time-step forces, NVT, relaxations;
3. prints the main numbers and where the report is.

Run through ``scripts/demo.sh`` (which installs first) or directly:

    python scripts/demo.py [--quick | --train] [--out demo]
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
from make_demo_models import train  # scripts/ is on sys.path

from metatrain_nc.compare.nvt_reading import nvt_verdict

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "recipes" / "demo"
PRETRAINED = DEMO / "pretrained"
DATA = ROOT / "recipes" / "data" / "water_64h2o_40frames.xyz"
MODELS = ("pet_c", "pet_nc", "pet_m")

#: ``mtt-nc compare`` options of the demo (full and --quick)
COMPARE_OPTIONS = [
    "--timestep", "0.25",
    "--stride", "4",
    "--nve-time", "250",
    "--nvt-time", "200",
    "--tau", "20",
    "--lambda-structures", "1",
    "--relax-structures", "1",
    "--relax-steps", "300",
]  # fmt: skip
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
    """The structures of metatrain's test split (a ``test.txt`` of indices)."""
    frames = ase.io.read(DATA, ":")
    return [frames[int(i)] for i in indices_file.read_text().split()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--quick", action="store_true", help="3-epoch models, short runs"
    )
    group.add_argument("--train", action="store_true", help="train the models here")
    parser.add_argument("--out", default="demo", help="output folder (new)")
    args = parser.parse_args()

    out = Path(args.out).resolve()
    if out.exists():
        sys.exit(f"[demo] '{out}' exists: remove it or pass --out NEW_FOLDER")
    out.mkdir(parents=True)
    start = time.perf_counter()
    models_dir = out / "models"
    models_dir.mkdir()
    if args.quick or args.train:
        checkpoints = {
            name: train(name, out / "training", epochs=3 if args.quick else 0)
            for name in MODELS
        }
        split = next((out / "training").glob("pet_m/outputs/*/*/indices/test.txt"))
    else:
        missing = [n for n in MODELS if not (PRETRAINED / f"{n}.ckpt").is_file()]
        if missing:
            sys.exit(
                f"[demo] pre-trained checkpoints {missing} are missing from "
                f"{PRETRAINED}: run `python scripts/make_demo_models.py` or "
                "`python scripts/demo.py --train`"
            )
        checkpoints = {name: PRETRAINED / f"{name}.ckpt" for name in MODELS}
        split = PRETRAINED / "test_indices.txt"
    for name, checkpoint in checkpoints.items():
        print(f"[demo] mtt export {checkpoint.name} -> models/{name}.pt", flush=True)
        local = models_dir / f"{name}.ckpt"
        shutil.copyfile(checkpoint, local)
        run([mtt("mtt"), "export", local.name, "-o", f"{name}.pt"], models_dir,
            models_dir / f"export_{name}.log")  # fmt: skip

    test = read_test_split(split)
    ase.io.write(out / "test.xyz", test)
    print(f"[demo] mtt-nc compare on {len(test)} test structures ...", flush=True)
    command = [
        mtt("mtt-nc"),
        "compare",
        *[str(models_dir / f"{name}.pt") for name in MODELS],
        "--names", "PET-C,PET-NC,PET-M",
        "--structures", str(out / "test.xyz"),
        "-o", str(out / "report"),
        *(QUICK_OPTIONS if args.quick else COMPARE_OPTIONS),
    ]  # fmt: skip
    status = subprocess.run(command)
    report_file = out / "report" / "report.json"
    if not report_file.is_file():
        sys.exit(f"[demo] mtt-nc compare failed (exit {status.returncode})")
    report = json.loads(report_file.read_text())
    print()
    print(summary_table(report))
    print()
    for paragraph in nvt_verdict(report):  # what the NVT runs resolve, plainly
        first, rest = "[demo] NVT: ", "[demo]   "
        print(
            textwrap.fill(paragraph, 88, initial_indent=first, subsequent_indent=rest)
        )
    print()
    minutes = (time.perf_counter() - start) / 60
    print(f"[demo] done in {minutes:.1f} min; report: {out / 'report' / 'report.md'}")
    print(
        f"[demo]   also {out / 'report' / 'report.html'} (figures and interactive "
        "chemiscope viewers embedded, offline)"
    )
    return 0 if status.returncode == 0 else status.returncode


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
