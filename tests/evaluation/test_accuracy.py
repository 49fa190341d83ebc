"""``mtt-nc accuracy`` and ``model_accuracy`` on the force-model layer: metatomic
models, ASE calculators (objects, ``module:callable``), partial and missing labels."""

import json
import os
import subprocess
import sys

import ase.io
import numpy as np
import pytest
from ase.calculators.lj import LennardJones
from ase.calculators.singlepoint import SinglePointCalculator

from metatrain_nc.errors import UserInputError
from metatrain_nc.evaluation import model_accuracy

from ..analytic_models import export_pair_model

#: a module file defining ASE calculator factories (written into tmp_path)
FACTORIES = """
from ase.calculators.lj import LennardJones


def make_lj():
    return LennardJones(sigma=1.2, epsilon=0.01, rc=4.0, smooth=True)


def make_soft():
    return LennardJones(sigma=1.0, epsilon=0.02, rc=4.0, smooth=True)
"""


def _lj():
    return LennardJones(sigma=1.2, epsilon=0.01, rc=4.0, smooth=True)


def _soft():
    return LennardJones(sigma=1.0, epsilon=0.02, rc=4.0, smooth=True)


@pytest.fixture
def factories(tmp_path, monkeypatch):
    """``calcs:make_lj`` and ``calcs:make_soft`` importable here and in subprocesses."""
    folder = tmp_path / "modules"
    folder.mkdir()
    (folder / "calcs.py").write_text(FACTORIES)
    monkeypatch.syspath_prepend(str(folder))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(
        [str(folder)] + [p for p in [os.environ.get("PYTHONPATH")] if p]
    )
    yield env
    sys.modules.pop("calcs", None)


def _labelled(path, frames, calculator, energy=True, forces=True):
    """Write ``frames`` with the energies/forces of ``calculator`` as labels."""
    out = []
    for atoms in frames:
        atoms = ase.Atoms(atoms.numbers, atoms.positions)
        atoms.calc = calculator
        results = {}
        if energy:
            results["energy"] = atoms.get_potential_energy()
        if forces:
            results["forces"] = atoms.get_forces()
        atoms.calc = SinglePointCalculator(atoms, **results)
        out.append(atoms)
    ase.io.write(path, out)
    return path


def _frames(ethanol_frames, count=3):
    return ase.io.read(ethanol_frames, f":{count}")


def _cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "metatrain_nc.cli", "accuracy", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
    )


def test_ase_calculator_object_and_factory(ethanol_frames, tmp_path, factories):
    frames = ase.io.read(
        _labelled(tmp_path / "lj.xyz", _frames(ethanol_frames), _lj()), ":"
    )
    # labels made by the same calculator: no error, one conservative head
    exact = model_accuracy(_lj(), frames)
    assert exact.kind == "ase" and exact.heads == ["conservative"]
    # (labels written to extxyz with 8 significant digits)
    assert exact.energy.rmse < 1e-6 and exact.forces["conservative"].rmse < 1e-4
    # another calculator: the errors computed by hand
    soft = model_accuracy("calcs:make_soft", frames)
    assert soft.model == "calcs:make_soft"
    expected_forces, expected_energy = [], []
    for atoms in frames:
        work = ase.Atoms(atoms.numbers, atoms.positions, calculator=_soft())
        expected_forces.append(work.get_forces() - atoms.get_forces())
        expected_energy.append(
            (work.get_potential_energy() - atoms.get_potential_energy()) / len(atoms)
        )
    rmse = 1000 * np.sqrt(np.mean(np.concatenate(expected_forces) ** 2))
    assert soft.forces["conservative"].rmse == pytest.approx(rmse, rel=1e-10)
    assert soft.energy.mae == pytest.approx(
        1000 * np.mean(np.abs(expected_energy)), rel=1e-10
    )
    # declared direct (prefix or keyword): the same numbers under the direct head
    for direct in (
        model_accuracy("direct:calcs:make_soft", frames),
        model_accuracy(_soft(), frames, direct=True),
    ):
        assert direct.heads == ["direct"]
        assert direct.forces["direct"].rmse == pytest.approx(rmse, rel=1e-10)


def test_metatomic_model_heads_against_analytic_errors(ethanol_frames, tmp_path):
    """Both heads of a hybrid from one evaluation; the direct head's error is the
    analytic rotation field it adds (labels: the model's own -dE/dr)."""
    from metatrain_nc.force_models import load_force_model

    strength = 0.01
    path = export_pair_model(str(tmp_path / "nc.pt"), nonconservative_strength=strength)
    model = load_force_model(path)
    frames = []
    for atoms in _frames(ethanol_frames):
        result = model.evaluate(atoms, conservative=True, direct=False)
        atoms = ase.Atoms(atoms.numbers, atoms.positions)
        atoms.info["E"] = result.energy
        atoms.arrays["F"] = result.conservative
        frames.append(atoms)
    accuracy = model_accuracy(path, frames, energy_key="E", forces_key="F")
    assert accuracy.kind == "metatomic"
    assert accuracy.heads == ["conservative", "direct"]
    assert accuracy.energy.rmse < 1e-9
    assert accuracy.forces["conservative"].rmse < 1e-9
    rotation = []
    for atoms in frames:
        centred = atoms.positions - atoms.positions.mean(axis=0)
        field = strength * np.stack(
            [-centred[:, 1], centred[:, 0], np.zeros(len(atoms))], axis=1
        )
        rotation.append(field)
    expected = 1000 * np.sqrt(np.mean(np.concatenate(rotation) ** 2))
    assert accuracy.forces["direct"].rmse == pytest.approx(expected, rel=1e-6)
    # the same model object, without the energy gradient
    direct_only = model_accuracy(
        model, frames, energy_key="E", forces_key="F", conservative=False
    )
    assert direct_only.heads == ["direct"]


def test_partial_labels(ethanol_frames, tmp_path):
    only_energy = ase.io.read(
        _labelled(tmp_path / "e.xyz", _frames(ethanol_frames), _lj(), forces=False),
        ":",
    )
    result = model_accuracy(_soft(), only_energy)
    assert result.energy is not None and result.forces == {}
    assert result.labels == {"energy": 3, "forces": 0}

    only_forces = ase.io.read(
        _labelled(tmp_path / "f.xyz", _frames(ethanol_frames), _lj(), energy=False),
        ":",
    )
    result = model_accuracy(_soft(), only_forces)
    assert result.energy is None and result.forces["conservative"].rmse > 0

    from metatrain_nc.evaluation.command import format_table

    table = format_table([result], ["soft"])
    assert "no energy labels in the structures" in table


def test_cli_ase_factory_and_no_labels(ethanol_frames, tmp_path, factories):
    model = export_pair_model(str(tmp_path / "c.pt"), direct_forces=False)
    labelled = _labelled(tmp_path / "lj.xyz", _frames(ethanol_frames), _lj())
    out = tmp_path / "acc.json"
    result = _cli(
        model,
        "calcs:make_lj",
        "direct:calcs:make_soft",
        "--structures",
        labelled,
        "--json",
        out,
        env=factories,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("calcs:make_lj ") for line in lines)
    assert any(
        line.startswith("direct:calcs:make_soft ") and " direct " in line
        for line in lines
    )
    data = json.loads(out.read_text())
    assert [d["kind"] for d in data] == ["metatomic", "ase", "ase"]
    assert data[1]["forces"]["conservative"]["rmse"] < 1e-4
    assert data[2]["heads"] == ["direct"]

    # structures without any label: a clear error, exit 2, nothing written
    unlabelled = tmp_path / "unlabelled.xyz"
    ase.io.write(
        unlabelled, [ase.Atoms(a.numbers, a.positions) for a in _frames(ethanol_frames)]
    )
    out = tmp_path / "none.json"
    result = _cli(model, "--structures", unlabelled, "--json", out, env=factories)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "no labels" in result.stderr
    for word in ("'energy'", "'forces'", "--energy-key", "--forces-key"):
        assert word in result.stderr, word
    assert "-" * 3 not in result.stdout and not out.exists()
    with pytest.raises(UserInputError, match="no labels"):
        model_accuracy(model, ase.io.read(unlabelled, ":"))

    # a direct: prefix on a metatomic model is refused
    result = _cli(f"direct:{model}", "--structures", labelled, env=factories)
    assert result.returncode == 2 and "not one" in result.stderr
