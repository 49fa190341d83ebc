"""recipes/distill/distill.py in its quick form, so that the recipe cannot rot: the
demo teacher exported with ``mtt export``, sampled with ``mtt-nc md``, labelled with
``mtt-nc label``, a student trained with ``mtt train`` for one epoch, its accuracy,
cost and stride scan, and the report."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import ase.io

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "distill" / "distill.py"


def test_distill_quick(tmp_path):
    out = tmp_path / "distill"
    result = subprocess.run(
        [sys.executable, str(RECIPE), "--out", str(out), "--quick"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["quick"] and report["cpu_time_min"] > 0
    # the teacher's labels, read back: 2 temperatures x 6 frames, 1 held out each
    assert report["data"] == {"train": 10, "test": 2, "atoms": 192, "stress": True}
    train = ase.io.read(out / "data" / "train.xyz", ":")
    assert len(train) == 10 and train[0].get_forces().shape == (192, 3)
    assert "stress" in train[0].calc.results
    (size,) = report["students"]
    student = report["students"][size]
    assert Path(student["model"]).is_file()  # exported by mtt train
    assert student["force_rmse_meV_per_A"] > 0 and student["ms_per_call"] > 0
    scan = student["stride_scan"]
    assert scan["rows"][0]["status"] == "reference"
    assert set(report["nve"]) == {"teacher", size}
    assert report["nve"]["teacher"]["status"] == "completed"
    markdown = (out / "report.md").read_text()
    assert "| student | parameters |" in markdown
    assert f"{out / 'report.md'}" in result.stdout


def test_distill_refuses_an_existing_folder(tmp_path):
    (tmp_path / "keep.txt").write_text("user data")
    result = subprocess.run(
        [sys.executable, str(RECIPE), "--out", str(tmp_path), "--quick"],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "exists" in result.stderr
    assert (tmp_path / "keep.txt").read_text() == "user data"


def _recipe_module():
    spec = importlib.util.spec_from_file_location("distill_recipe", RECIPE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_student_options_drop_the_stress_of_molecules(tmp_path):
    """Labels of non-periodic structures have no stress: a student asked to fit one
    would stop `mtt train`, so the options drop the target and its loss."""
    recipe = _recipe_module()
    train = tmp_path / "train.xyz"
    periodic = recipe.student_options("d8-L1-c3.5", 7, train, stress=True)
    molecule = recipe.student_options("d8-L1-c3.5", 7, train, stress=False)
    for options in (periodic, molecule):
        assert options["architecture"]["training"]["num_epochs"] == 7
        assert options["architecture"]["model"]["d_pet"] == 8
        assert options["training_set"]["systems"]["read_from"] == str(train)
    assert periodic["training_set"]["targets"]["energy"]["stress"] == {"key": "stress"}
    assert "stress" in periodic["architecture"]["training"]["loss"]["energy"]
    assert molecule["training_set"]["targets"]["energy"]["stress"] is False
    assert "stress" not in molecule["architecture"]["training"]["loss"]["energy"]
    assert molecule["architecture"]["training"]["loss"]["energy"]["forces"]


def test_distill_refuses_missing_structures_and_writes_nothing(tmp_path):
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, str(RECIPE), "--out", str(out), "--quick",
         "--structures", str(tmp_path / "missing.xyz")],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert result.returncode != 0
    assert "missing.xyz" in result.stderr and "does not exist" in result.stderr
    assert not out.exists()


def test_student_options_take_the_learning_rate_and_batch_size(tmp_path):
    recipe = _recipe_module()
    default = recipe.student_options("d16-L2-c4.5", 3, tmp_path / "t.xyz")
    chosen = recipe.student_options(
        "d16-L2-c4.5", 3, tmp_path / "t.xyz", learning_rate=1e-3, batch_size=10
    )
    assert default["architecture"]["training"]["learning_rate"] == 5e-3
    assert default["architecture"]["training"]["batch_size"] == 2
    assert chosen["architecture"]["training"]["learning_rate"] == 1e-3
    assert chosen["architecture"]["training"]["batch_size"] == 10
    assert chosen["architecture"]["model"]["num_gnn_layers"] == 2
