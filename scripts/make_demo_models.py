"""Train the demo's pre-trained models (recipes/demo/pretrained/), or any recipe folder
of PET-C / PET-NC / PET-M recipes, resumably.

It runs the unmodified ``mtt train`` on ``<recipes>/<prefix><name>.yaml`` for each
model (the recipes' data paths made absolute, fixed seeds) in ``--workdir/<name>``:

    python scripts/make_demo_models.py [--only pet_m] [--workdir demo-training]
    python scripts/make_demo_models.py --recipes recipes/water_chgnet \\
        --workdir training/water_chgnet [--resume] [--to DIR]

With ``--resume`` a model whose run folder exists continues from its newest
checkpoint (``mtt train --restart``); the newest checkpoint is also copied to
``<workdir>/<name>/resume.ckpt`` every minute while training, so a run killed at any
point (the end of a session) loses at most one epoch and can be committed and
continued elsewhere. Finished checkpoints are copied to ``--to`` (default
``recipes/demo/pretrained/`` for the demo recipes); existing ones are kept unless
``--force``.
"""

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import yaml

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "recipes" / "demo"
PRETRAINED = DEMO / "pretrained"
MODELS = ("pet_c", "pet_nc", "pet_m")
DATASETS = ("training_set", "validation_set", "test_set")


def recipe_path(name: str, recipes: Path = DEMO) -> Path:
    """The recipe of model ``name`` in a recipe folder (``water_<name>.yaml`` in the
    demo folder, ``<name>.yaml`` elsewhere)."""
    if recipes.resolve() == DEMO.resolve():
        return DEMO / f"water_{name}.yaml"
    return recipes / f"{name}.yaml"


def _absolute_data(options: dict, folder: Path) -> None:
    """Make the recipe's relative paths absolute: every data set (one or a list) and
    the checkpoint a fine-tuning recipe starts from."""
    for key in DATASETS:
        section = options.get(key)
        for dataset in section if isinstance(section, list) else [section]:
            if isinstance(dataset, dict):
                systems = dataset["systems"]
                systems["read_from"] = str((folder / systems["read_from"]).resolve())
    training = options.get("architecture", {}).get("training", {})
    finetune = training.get("finetune") or {}
    if finetune.get("read_from"):
        finetune["read_from"] = str((folder / finetune["read_from"]).resolve())


def newest_checkpoint(rundir: Path) -> Optional[Path]:
    """The most recent model checkpoint of a run folder (the per-epoch
    ``outputs/*/*/model_*.ckpt`` and ``resume.ckpt``; not the composition or scaler
    checkpoints metatrain writes when a run starts)."""
    found = list(rundir.glob("outputs/*/*/model_*.ckpt"))
    found += list(rundir.glob("resume.ckpt"))
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def train(
    name: str,
    workdir: Path,
    epochs: int = 0,
    recipes: Path = DEMO,
    resume: bool = False,
) -> Path:
    """Run ``mtt train`` on the recipe of ``name``; return the final checkpoint.

    :param epochs: override the recipe's number of epochs (0: keep it).
    :param resume: continue the run in ``workdir/name`` from its newest checkpoint.
    """
    recipe = recipe_path(name, recipes)
    options = yaml.safe_load(recipe.read_text())
    _absolute_data(options, recipe.parent)
    if epochs:
        options["architecture"]["training"]["num_epochs"] = epochs
    rundir = workdir / name
    restart = newest_checkpoint(rundir) if resume and rundir.exists() else None
    if rundir.exists() and not resume:
        sys.exit(f"[models] '{rundir}' exists: pass --resume or another --workdir")
    rundir.mkdir(parents=True, exist_ok=True)
    (rundir / "options.yaml").write_text(yaml.safe_dump(options, sort_keys=False))
    mtt = Path(sys.executable).parent / "mtt"
    command = [str(mtt), "train", "options.yaml", "-o", f"{name}.pt"]
    if restart is not None:
        command += ["--restart", str(restart.resolve())]
    start = time.perf_counter()
    how = f"from {restart.name}" if restart is not None else "from scratch"
    print(f"[models] training {name} ({recipe.name}, {how}) in {rundir}", flush=True)
    with open(rundir / "mtt.log", "a") as log:
        process = subprocess.Popen(
            command, cwd=rundir, stdout=log, stderr=subprocess.STDOUT
        )
        while process.poll() is None:
            time.sleep(60)
            _keep_resume_copy(rundir)
    if process.returncode != 0:
        sys.exit(f"[models] `mtt train` failed for {name}: see {rundir / 'mtt.log'}")
    minutes = (time.perf_counter() - start) / 60
    print(f"[models] {name} trained in {minutes:.1f} min", flush=True)
    return rundir / f"{name}.ckpt"


def _keep_resume_copy(rundir: Path) -> None:
    newest = newest_checkpoint(rundir)
    if newest is None or newest.name == "resume.ckpt":
        return
    if time.time() - newest.stat().st_mtime < 10:
        return  # possibly still being written: the next minute copies it
    partial = rundir / ".resume.ckpt.partial"
    shutil.copyfile(newest, partial)
    partial.replace(rundir / "resume.ckpt")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=MODELS, action="append", help="model(s)")
    parser.add_argument("--recipes", default=str(DEMO), help="recipe folder")
    parser.add_argument("--workdir", default="demo-training", help="run folder")
    parser.add_argument("--resume", action="store_true", help="continue runs")
    parser.add_argument("--to", default=None, help="where checkpoints go")
    parser.add_argument("--force", action="store_true", help="replace checkpoints")
    args = parser.parse_args()
    recipes = Path(args.recipes).resolve()
    workdir = Path(args.workdir).resolve()
    if workdir.exists() and not args.resume:
        sys.exit(f"[models] '{workdir}' exists: remove it, pass --resume or --workdir")
    demo = recipes == DEMO.resolve()
    target = Path(args.to) if args.to else (PRETRAINED if demo else None)
    names = args.only or list(MODELS)
    for name in names:
        if target and (target / f"{name}.ckpt").exists() and not args.force:
            sys.exit(
                f"[models] {target / (name + '.ckpt')} exists: pass --force to "
                "replace it"
            )
    for name in names:
        checkpoint = train(name, workdir, recipes=recipes, resume=args.resume)
        if target is None:
            continue
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(checkpoint, target / f"{name}.ckpt")
        print(f"[models] wrote {target / (name + '.ckpt')}", flush=True)
        if demo:
            # the same seed and split for every recipe: keep the test split once
            indices = next((workdir / name).glob("outputs/*/*/indices/test.txt"))
            shutil.copyfile(indices, target / "test_indices.txt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
