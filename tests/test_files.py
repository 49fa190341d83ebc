"""The shared file layer: reading structures, CSV/JSON, staged output folders; and the
Maxwell-Boltzmann start velocities."""

import csv
import gzip
import json
import math

import ase
import ase.build
import ase.io
import numpy as np
import pytest

from metatrain_nc.errors import UserInputError
from metatrain_nc.files import (
    StagedFolder,
    check_outdir,
    clean_json,
    read_structure,
    read_structures,
    write_csv,
    write_json,
)


@pytest.fixture
def two_frames(tmp_path):
    path = tmp_path / "two.xyz"
    ase.io.write(path, [ase.build.molecule("H2O"), ase.build.molecule("CH4")])
    return path


def test_read_structures(two_frames):
    assert [len(a) for a in read_structures(two_frames)] == [3, 5]
    assert [len(a) for a in read_structures(str(two_frames), "1")] == [5]
    assert len(read_structure(two_frames, -1)) == 5


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing", "does not exist"),
        ("folder", "is a folder"),
        ("empty", "is empty"),
        ("unreadable", "cannot read structures from"),
        ("no_frame", "no structures in"),
        ("frame_out_of_range", "has 2 frame(s); frame 5 does not exist"),
    ],
)
def test_read_errors(case, message, tmp_path, two_frames):
    path = tmp_path / "bad.xyz"
    if case == "folder":
        path.mkdir()
    elif case == "empty":
        path.write_text("")
    elif case == "unreadable":
        path.write_text("this is not\na structure file\n")
    with pytest.raises(UserInputError) as info:
        if case == "no_frame":
            read_structures(two_frames, "5:")
        elif case == "frame_out_of_range":
            read_structure(two_frames, 5)
        else:
            read_structures(path)
    assert message in str(info.value)


def test_write_csv_rows_as_mappings_or_sequences(tmp_path):
    path = tmp_path / "table.csv"
    write_csv(path, ["a", "b"], [{"a": 1, "b": 2.5}, {"a": 3}, [4, "x"]])
    with open(path, newline="") as stream:
        assert list(csv.reader(stream)) == [
            ["a", "b"],
            ["1", "2.5"],
            ["3", ""],
            ["4", "x"],
        ]


def test_write_json(tmp_path):
    data = {"x": np.float32(1.5), "n": np.int64(3), "bad": float("nan"), 4: [np.inf]}
    assert clean_json(data) == {"x": 1.5, "n": 3, "bad": None, "4": [None]}
    write_json(tmp_path / "a.json", data)
    assert json.loads((tmp_path / "a.json").read_text())["bad"] is None
    write_json(tmp_path / "b.json.gz", {"v": [float("nan")]}, clean=False)
    with gzip.open(tmp_path / "b.json.gz", "rt") as stream:
        assert math.isnan(json.load(stream)["v"][0])


def test_staged_folder(tmp_path):
    target = tmp_path / "out"
    with StagedFolder(target, force=False) as folder:
        (folder.path / "new.txt").write_text("new")
        assert folder.path.name.startswith(".out.partial-")
        assert folder.commit() == target
    assert (target / "new.txt").read_text() == "new"

    with pytest.raises(UserInputError, match="already exists"):
        StagedFolder(target, force=False)
    # a failure leaves the old folder and no staging folder
    with pytest.raises(RuntimeError):
        with StagedFolder(target, force=True) as folder:
            (folder.path / "newer.txt").write_text("newer")
            raise RuntimeError("stop")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert (target / "new.txt").exists()
    # with force, a complete new folder replaces the old one
    with StagedFolder(target, force=True) as folder:
        (folder.path / "newer.txt").write_text("newer")
        folder.commit()
    assert sorted(p.name for p in target.iterdir()) == ["newer.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_output_folder_errors(tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    with pytest.raises(UserInputError, match="is not a folder"):
        check_outdir(a_file, force=True)
    with pytest.raises(UserInputError, match="cannot create the output folder"):
        StagedFolder(a_file / "report", force=False)


def test_maxwell_boltzmann():
    from ase import units

    from metatrain_nc.dynamics.structures import maxwell_boltzmann

    atoms = ase.Atoms("H64", positions=np.random.default_rng(0).random((64, 3)))
    maxwell_boltzmann(atoms, 300.0, seed=4)
    momenta = atoms.get_momenta()
    assert np.abs(momenta.sum(axis=0)).max() < 1e-12
    again = atoms.copy()
    maxwell_boltzmann(again, 300.0, seed=4)
    np.testing.assert_array_equal(again.get_momenta(), momenta)
    other = atoms.copy()
    maxwell_boltzmann(other, 300.0, seed=5)
    assert not np.allclose(other.get_momenta(), momenta)
    # 3N - 3 degrees of freedom at the target temperature, within the sampling noise
    temperature = 2 * atoms.get_kinetic_energy() / (3 * len(atoms) - 3) / units.kB
    assert abs(temperature - 300.0) < 4 * 300.0 * math.sqrt(2 / (3 * 64 - 3))
