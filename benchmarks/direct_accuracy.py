"""Direct-force accuracy at equal training budget: pet_nc and pet_m's direct head
against stock pet's conservative forces (target: <= 1.3x).

Trains the three small ethanol recipes of ``recipes/small/`` (``ethanol_pet_c``,
``ethanol_pet_nc``, ``ethanol_pet_m``) with the unmodified ``mtt train``, in one
process tree, one after the other; the epoch counts of the recipes give each model
about the same wall time on 2 CPU cores (pet_nc epochs are ~2x cheaper). Reports
test-set errors on metatrain's test split (same seed, same split for all three), the
training wall times, and the ratios to pet's conservative force RMSE.

Run: ``python benchmarks/direct_accuracy.py --out DIR``. ``--reuse DEMO_DIR`` takes
the pet_nc and pet_m runs of ``scripts/demo.py`` instead of training them again.
"""

import argparse
import re
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import ase.io
import yaml

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes" / "small"
DATA = ROOT / "recipes" / "data" / "ethanol_100_eV.xyz"


def train(name, recipe, workdir):
    rundir = workdir / name
    rundir.mkdir(parents=True)
    options = yaml.safe_load((RECIPES / recipe).read_text())
    options["training_set"]["systems"]["read_from"] = str(DATA)
    (rundir / "options.yaml").write_text(yaml.safe_dump(options))
    start = time.perf_counter()
    with open(rundir / "mtt.log", "w") as log:
        subprocess.run(
            [
                str(Path(sys.executable).parent / "mtt"),
                "train",
                "options.yaml",
                "-o",
                f"{name}.pt",
            ],
            cwd=rundir,
            stdout=log,
            stderr=subprocess.STDOUT,
            check=True,
        )
    return rundir, time.perf_counter() - start


def training_seconds(rundir):
    """Wall time between 'Starting training' and 'Training finished' in the log."""
    stamps = {}
    for line in (rundir / "mtt.log").read_text().splitlines():
        match = re.match(r"\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\]", line)
        if match and "Starting training" in line and "scratch" not in line:
            stamps["start"] = match.group(1)
        if match and "Training finished" in line:
            stamps["end"] = match.group(1)
    fmt = "%Y-%m-%d %H:%M:%S"
    return (
        datetime.strptime(stamps["end"], fmt) - datetime.strptime(stamps["start"], fmt)
    ).total_seconds()


def main():
    from metatrain_nc.evaluation.accuracy import model_accuracy

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="new folder for the runs")
    parser.add_argument("--reuse", help="a scripts/demo.py output folder")
    args = parser.parse_args()
    workdir = Path(args.out).resolve()
    workdir.mkdir(parents=True)
    runs = {"pet": train("pet", "ethanol_pet_c.yaml", workdir)[0]}
    for name in ("pet_nc", "pet_m"):
        if args.reuse:
            runs[name] = Path(args.reuse).resolve() / name
        else:
            runs[name] = train(name, f"ethanol_{name}.yaml", workdir)[0]
    frames = ase.io.read(DATA, ":")
    rows = []
    for name, rundir in runs.items():
        indices = next(rundir.glob("outputs/*/*/indices/test.txt")).read_text().split()
        test = [frames[int(i)] for i in indices]
        result = model_accuracy(str(rundir / f"{name}.pt"), test)
        for head in result.heads:
            rows.append((name, head, result.forces[head], training_seconds(rundir)))
    reference = next(r[2].rmse for r in rows if r[0] == "pet")
    print(
        f"{'model':<8} {'head':<13} {'F RMSE meV/A':>13} {'ratio to pet':>13} "
        f"{'training s':>11}"
    )
    for name, head, errors, seconds in rows:
        print(
            f"{name:<8} {head:<13} {errors.rmse:13.1f} "
            f"{errors.rmse / reference:13.2f} {seconds:11.0f}"
        )


if __name__ == "__main__":
    main()
