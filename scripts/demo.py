"""The README's main job: train pet_nc and pet_m on bundled data and report them.

Trains small ``pet_nc`` and ``pet_m`` models on the bundled ethanol set with the
unmodified ``mtt train`` (recipes in ``recipes/small/``), exports them, and prints
the energy and force errors of each force head on the test split chosen by
metatrain. Run through ``scripts/demo.sh`` (which installs first) or directly:

    python scripts/demo.py [--quick] [--out demo]

``--quick`` trains for a few epochs only (used by CI so that this script cannot rot).
"""

import argparse
import subprocess
import sys
from pathlib import Path

import ase.io
import yaml

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes" / "small"
MODELS = {"pet_nc": "ethanol_pet_nc.yaml", "pet_m": "ethanol_pet_m.yaml"}


def train(name: str, recipe: Path, workdir: Path, quick: bool) -> Path:
    """Run ``mtt train`` on a copy of ``recipe`` in ``workdir / name``."""
    rundir = workdir / name
    rundir.mkdir(parents=True)
    options = yaml.safe_load(recipe.read_text())
    data = (recipe.parent / options["training_set"]["systems"]["read_from"]).resolve()
    options["training_set"]["systems"]["read_from"] = str(data)
    if quick:
        options["architecture"]["training"]["num_epochs"] = 3
    (rundir / "options.yaml").write_text(yaml.safe_dump(options, sort_keys=False))
    mtt = Path(sys.executable).parent / "mtt"
    print(f"[demo] training {name} ({recipe.name}) in {rundir} ...", flush=True)
    with open(rundir / "mtt.log", "w") as log:
        status = subprocess.run(
            [str(mtt), "train", "options.yaml", "-o", f"{name}.pt"],
            cwd=rundir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    if status.returncode != 0:
        sys.exit(f"[demo] `mtt train` failed for {name}: see {rundir / 'mtt.log'}")
    return rundir


def test_frames(rundir: Path, data: Path) -> list:
    """The structures of metatrain's test split for the run in ``rundir``."""
    indices_file = next(rundir.glob("outputs/*/*/indices/test.txt"))
    indices = [int(line) for line in indices_file.read_text().split()]
    frames = ase.io.read(data, ":")
    return [frames[i] for i in indices]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few epochs only")
    parser.add_argument("--out", default="demo", help="output folder (new)")
    args = parser.parse_args()

    from metatrain_nc.evaluation.accuracy import model_accuracy
    from metatrain_nc.evaluation.command import format_table

    workdir = Path(args.out).resolve()
    if workdir.exists():
        sys.exit(f"[demo] '{workdir}' exists: remove it or pass --out NEW_FOLDER")
    workdir.mkdir(parents=True)
    data = (ROOT / "recipes" / "data" / "ethanol_100_eV.xyz").resolve()
    results = []
    try:
        for name, recipe in MODELS.items():
            rundir = train(name, RECIPES / recipe, workdir, args.quick)
            frames = test_frames(rundir, data)
            results.append(model_accuracy(str(rundir / f"{name}.pt"), frames))
    except BaseException:
        print(f"[demo] stopped; partial results kept in {workdir}", file=sys.stderr)
        raise
    table = format_table(results)
    (workdir / "accuracy.txt").write_text(table + "\n")
    print()
    print(
        f"Test-set errors ({len(frames)} ethanol structures, metatrain's test split):"
    )
    print(table)
    print()
    print(f"[demo] models, logs and this table are in {workdir}")
    for name in MODELS:
        print(f"  {name}: {workdir / name / (name + '.pt')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
