"""Train the demo's pre-trained models (recipes/demo/pretrained/) from bundled data.

The README demo starts from small models trained for 20 to 45 minutes each on one CPU
core rather than for the few minutes a demo can afford. This script is how they were
made (``--force`` to remake them): it runs
the unmodified ``mtt train`` on each recipe of ``recipes/demo/`` (bundled water
subset, fixed seeds) and copies the checkpoints to ``recipes/demo/pretrained/``:

    python scripts/make_demo_models.py [--only pet_m] [--workdir demo-training]

Checkpoints already in ``pretrained/`` are kept unless ``--force`` is given.
"""

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "recipes" / "demo"
PRETRAINED = DEMO / "pretrained"
MODELS = ("pet_c", "pet_nc", "pet_m")


def train(name: str, workdir: Path, epochs: int = 0) -> Path:
    """Run ``mtt train`` on ``recipes/demo/water_<name>.yaml``; return the checkpoint.

    :param epochs: override the recipe's number of epochs (0: keep it).
    """
    recipe = DEMO / f"water_{name}.yaml"
    options = yaml.safe_load(recipe.read_text())
    data = (DEMO / options["training_set"]["systems"]["read_from"]).resolve()
    options["training_set"]["systems"]["read_from"] = str(data)
    if epochs:
        options["architecture"]["training"]["num_epochs"] = epochs
    rundir = workdir / name
    rundir.mkdir(parents=True)
    (rundir / "options.yaml").write_text(yaml.safe_dump(options, sort_keys=False))
    mtt = Path(sys.executable).parent / "mtt"
    start = time.perf_counter()
    print(f"[models] training {name} ({recipe.name}) in {rundir} ...", flush=True)
    with open(rundir / "mtt.log", "w") as log:
        status = subprocess.run(
            [str(mtt), "train", "options.yaml", "-o", f"{name}.pt"],
            cwd=rundir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    if status.returncode != 0:
        sys.exit(f"[models] `mtt train` failed for {name}: see {rundir / 'mtt.log'}")
    minutes = (time.perf_counter() - start) / 60
    print(f"[models] {name} trained in {minutes:.1f} min", flush=True)
    return rundir / f"{name}.ckpt"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=MODELS, action="append", help="model(s)")
    parser.add_argument("--workdir", default="demo-training", help="new folder")
    parser.add_argument("--force", action="store_true", help="replace checkpoints")
    args = parser.parse_args()
    workdir = Path(args.workdir).resolve()
    if workdir.exists():
        sys.exit(f"[models] '{workdir}' exists: remove it or pass --workdir NEW")
    names = args.only or list(MODELS)
    for name in names:
        if (PRETRAINED / f"{name}.ckpt").exists() and not args.force:
            sys.exit(
                f"[models] {PRETRAINED / (name + '.ckpt')} exists: pass --force to "
                "replace it"
            )
    PRETRAINED.mkdir(exist_ok=True)
    for name in names:
        checkpoint = train(name, workdir)
        shutil.copyfile(checkpoint, PRETRAINED / f"{name}.ckpt")
        print(f"[models] wrote {PRETRAINED / (name + '.ckpt')}", flush=True)
        # the same seed and split for every recipe: keep the test split once
        indices = next((workdir / name).glob("outputs/*/*/indices/test.txt"))
        shutil.copyfile(indices, PRETRAINED / "test_indices.txt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
