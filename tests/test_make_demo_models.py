"""The resumable training driver (scripts/make_demo_models.py) restarts from model
checkpoints only."""

import os
import time
from pathlib import Path

from .script_loading import load_script


def _driver():
    return load_script("make_demo_models")


def _touch(path: Path, mtime: float, size: int = 10) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    os.utime(path, (mtime, mtime))
    return path


def test_resume_copy_ignores_the_scaler_and_composition_checkpoints(tmp_path):
    """A restarted `mtt train` writes scaler.ckpt / composition_model.ckpt in a new
    outputs folder before its first epoch: they must neither be taken for the newest
    model nor be copied over resume.ckpt."""
    driver = _driver()
    run = tmp_path / "pet_m"
    first = run / "outputs" / "day" / "08-00-00"
    second = run / "outputs" / "day" / "09-00-00"
    model = _touch(first / "model_3.ckpt", 1000.0, size=1000)
    _touch(second / "scaler.ckpt", 2000.0, size=7)
    _touch(second / "composition_model.ckpt", 2000.0, size=7)
    assert driver.newest_checkpoint(run) == model
    driver._keep_resume_copy(run)
    assert (run / "resume.ckpt").read_bytes() == model.read_bytes()
    # a newer epoch wins over the resume copy
    newer = _touch(second / "model_4.ckpt", time.time() + 60, size=2000)
    assert driver.newest_checkpoint(run) == newer


def test_recipe_paths_made_absolute_in_lists_and_finetuning(tmp_path):
    """A fine-tuning recipe with a list of training sets runs from any folder: every
    data path and the starting checkpoint are resolved against the recipe's folder."""
    driver = _driver()
    options = {
        "architecture": {
            "training": {"finetune": {"method": "full", "read_from": "../m.ckpt"}}
        },
        "training_set": [
            {"systems": {"read_from": "../data/a.xyz"}},
            {"systems": {"read_from": "../data/b.xyz"}},
        ],
        "validation_set": {"systems": {"read_from": "../data/c.xyz"}},
    }
    folder = tmp_path / "recipes" / "x"
    driver._absolute_data(options, folder)
    data = (tmp_path / "recipes" / "data").resolve()
    paths = [d["systems"]["read_from"] for d in options["training_set"]]
    assert paths == [str(data / "a.xyz"), str(data / "b.xyz")]
    assert options["validation_set"]["systems"]["read_from"] == str(data / "c.xyz")
    finetune = options["architecture"]["training"]["finetune"]
    assert finetune["read_from"] == str((tmp_path / "recipes" / "m.ckpt").resolve())
