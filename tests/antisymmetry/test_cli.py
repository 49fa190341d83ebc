"""``mtt-nc antisymmetry``: files written, overwrite protection, bad input."""

import csv
import gzip
import json
import subprocess
import sys
from pathlib import Path

import ase
import ase.build
import ase.io
import numpy as np
import pytest

from metatrain_nc.cli import main

from .conftest import STRENGTH


def run_cli(*args) -> int:
    return main(["antisymmetry", *map(str, args), "--no-progress"])


def leftovers(folder: Path, name: str):
    return [p.name for p in folder.iterdir() if p.name.startswith(f".{name}.")]


def test_outputs(pair_nc, structures_file, tmp_path, capsys):
    out = tmp_path / "out"
    code = run_cli(
        pair_nc,
        structures_file,
        "-o",
        out,
        "--rotation-loop",
        "--loop-points",
        16,
        "--square-loops",
        2,
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "lambda (non_conservative_force, exact)" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_structures"] == 2
    assert summary["output"] == "non_conservative_force"
    assert summary["model"]["source"] == pair_nc
    first = summary["structures"][0]
    assert first["method"] == "exact" and first["n_atoms"] == 9
    assert 0 < first["lambda"] < 1
    assert summary["lambda_max"] >= summary["lambda_mean"] > 0
    assert first["rotation_loop"]["work_eV"] != 0
    assert len(first["square_loops"]["work_eV"]) == 2
    for name in summary["files"]:
        assert (out / name).exists(), name
    for name in ["lambda_pairs.png", "lambda_structures.png", "chemiscope.json.gz"]:
        assert name in summary["files"]
    with open(out / "atoms.csv") as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == 18 and 0 < float(rows[0]["lambda_i"]) < 1
    with open(out / "pair_bins.csv") as stream:
        bins = list(csv.DictReader(stream))
    assert sum(int(b["count"]) for b in bins) == 2 * 9 * 8
    with gzip.open(out / "chemiscope.json.gz", "rt") as stream:
        dataset = json.load(stream)
    assert len(dataset["structures"]) == 2
    assert len(dataset["properties"]["lambda_i"]["values"]) == 18
    assert set(dataset["shapes"]) == {
        "direct_forces",
        "conservative_forces",
        "difference_forces",
    }
    assert not leftovers(tmp_path, "out")


def test_refuses_to_overwrite(pair_nc, structures_file, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    assert run_cli(pair_nc, structures_file, "-o", out) == 2
    assert "--force" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "precious"
    assert run_cli(pair_nc, structures_file, "-o", out, "--force") == 0
    assert not (out / "keep.txt").exists()
    assert (out / "summary.json").exists()
    assert not leftovers(tmp_path, "out")


def test_stochastic_and_conservative_control(pair_nc, structures_file, tmp_path):
    out = tmp_path / "stochastic"
    assert (
        run_cli(
            pair_nc,
            structures_file,
            "-o",
            out,
            "--stochastic",
            "--probes",
            8,
            "--jvp",
            "finite-difference",
        )
        == 0
    )
    summary = json.loads((out / "summary.json").read_text())
    entry = summary["structures"][0]
    assert entry["method"] == "stochastic" and entry["probes"] == 8
    assert summary["settings"]["jvp"] == "finite-difference"
    assert entry["lambda_error"] > 0
    assert "target_error" not in entry
    assert not (out / "atoms.csv").exists()

    out = tmp_path / "target"
    args = ["-o", out, "--stochastic", "--probes", 4, "--chunk-size", 4]
    assert run_cli(pair_nc, structures_file, *args, "--target-error", 0.05) == 0
    summary = json.loads((out / "summary.json").read_text())
    for entry in summary["structures"]:
        assert entry["target_reached"] is True and entry["target_error"] == 0.05
        assert entry["lambda_error"] / entry["lambda"] <= 0.05
        assert entry["probes"] > 4
    assert summary["settings"]["target_error"] == 0.05
    out = tmp_path / "budget"
    args += ["--target-error", 1e-4, "--max-probes", 8]
    args[1] = out
    assert run_cli(pair_nc, structures_file, *args) == 0
    entry = json.loads((out / "summary.json").read_text())["structures"][0]
    assert entry["target_reached"] is False and entry["probes"] == 8

    out = tmp_path / "control"
    code = run_cli(
        pair_nc,
        structures_file,
        "-o",
        out,
        "--output",
        "conservative",
        "--vjp-strategy",
        "batched",
        "--chunk-size",
        4,
    )
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["lambda_max"] < 1e-5


def test_python_api_writes_the_same(pair_nc, ethanol, tmp_path):
    from metatrain_nc.antisymmetry import evaluate

    report = evaluate([ethanol], pair_nc)
    assert report.lambdas[0] > 0
    path = report.write(tmp_path / "api")
    assert (Path(path) / "summary.json").exists()
    with pytest.raises(ValueError, match="already exists"):
        report.write(tmp_path / "api")


def _bad(tmp_path, frames=None, text=None) -> Path:
    path = tmp_path / "bad.xyz"
    if text is not None:
        path.write_text(text)
    else:
        ase.io.write(path, frames)
    return path


@pytest.mark.parametrize(
    "case",
    [
        "missing_output",
        "species",
        "empty",
        "unreadable",
        "nan",
        "overlap",
        "too_big",
        "target_without_stochastic",
        "negative_target",
        "budget_below_minimum",
    ],
)
def test_bad_input(case, pair_nc, pair_energy_only, tmp_path, capsys):
    model = pair_nc
    extra = []
    molecule = ase.build.molecule("CH3CH2OH")
    if case == "missing_output":
        model = pair_energy_only
        structures = _bad(tmp_path, [molecule])
        expected = "no 'non_conservative_force' output"
    elif case == "species":
        structures = _bad(tmp_path, [ase.build.molecule("NH3")])
        expected = "species ['N']"
    elif case == "empty":
        structures = _bad(tmp_path, text="")
        expected = "is empty"
    elif case == "unreadable":
        structures = _bad(tmp_path, text="this is not\na structure file\n")
        expected = "cannot read structures"
    elif case == "nan":
        molecule.positions[2, 1] = np.nan
        structures = _bad(tmp_path, [molecule])
        expected = "NaN"
    elif case == "overlap":
        molecule.positions[1] = molecule.positions[0] + 0.01
        structures = _bad(tmp_path, [molecule])
        expected = "overlap"
    elif case == "too_big":
        structures = _bad(tmp_path, [molecule])
        extra = ["--max-exact-rows", "20"]
        expected = "--stochastic"
    elif case == "target_without_stochastic":
        structures = _bad(tmp_path, [molecule])
        extra = ["--target-error", "0.1"]
        expected = "add --stochastic"
    elif case == "negative_target":
        structures = _bad(tmp_path, [molecule])
        extra = ["--stochastic", "--target-error", "-0.1"]
        expected = "positive fraction"
    else:
        structures = _bad(tmp_path, [molecule])
        extra = ["--stochastic", "--target-error", "0.1", "--max-probes", "8"]
        expected = "raise --max-probes"
    out = tmp_path / "out"
    assert run_cli(model, structures, "-o", out, *extra) == 2
    error = capsys.readouterr().err
    assert expected in error
    assert "Traceback" not in error
    assert not out.exists()
    assert not leftovers(tmp_path, "out")


def test_registered_as_evaluator():
    """`mtt-nc antisymmetry` exists through the metatrain.evaluators entry point."""
    from metatrain_nc.cli import evaluator_entry_points

    if "antisymmetry" not in evaluator_entry_points():
        pytest.skip("metatrain-nc is not installed (pip install -e .)")
    result = subprocess.run(
        [sys.executable, "-m", "metatrain_nc.cli", "antisymmetry", "--help"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0
    assert "--stochastic" in result.stdout


def test_analytic_value_in_summary(pair_nc, tmp_path):
    """End to end: the CLI reports the analytic lambda of the analytic model."""
    from ..analytic_models import analytic_lambda

    atoms = ase.build.molecule("CH3CH2OH")
    structures = _bad(tmp_path, [atoms])
    assert run_cli(pair_nc, structures, "-o", tmp_path / "o") == 0
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    expected = analytic_lambda(atoms, STRENGTH)
    assert summary["structures"][0]["lambda"] == pytest.approx(expected, rel=1e-6)
