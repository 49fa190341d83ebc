"""Data sets that mix periodic structures (with stress) and molecules (stress NaN).

metatrain's ASE reader accepts stress labels that are all NaN for a structure
without a cell (and refuses finite ones), and its losses and metrics skip NaN
labels: stock ``pet`` trains such a data set with ``stress`` on. So must ``pet_nc``
and ``pet_m``, whose direct stress is routed from those labels.
"""

from pathlib import Path
from typing import List

import ase
import ase.io
import numpy as np
import pytest
import yaml
from ase.calculators.singlepoint import SinglePointCalculator

from ..conftest import WATER, run_mtt, write_options

CLUSTER_RADIUS = 4.0  # angstrom, O-O distance from the central water molecule


def _labelled(atoms: ase.Atoms, energy: float, forces, stress) -> ase.Atoms:
    atoms.calc = SinglePointCalculator(
        atoms, energy=energy, forces=forces, stress=stress
    )
    return atoms


def _water_cluster(frame: ase.Atoms, stress: np.ndarray) -> ase.Atoms:
    """Whole water molecules around the first one, cut out of a periodic frame,
    without a cell; labels: the frame's forces on those atoms, an energy in
    proportion to the frame's, and ``stress``."""
    oxygens = np.flatnonzero(frame.numbers == 8)
    # the frame stores each molecule as O, H, H
    assert np.all(frame.numbers[oxygens + 1] == 1)
    assert np.all(frame.numbers[oxygens + 2] == 1)
    distances = frame.get_distances(oxygens[0], oxygens, mic=True)
    indices = np.concatenate(
        [[o, o + 1, o + 2] for o in oxygens[distances < CLUSTER_RADIUS]]
    )
    # unwrap around the central oxygen: every atom at its minimum-image position
    vectors = frame.get_distances(oxygens[0], indices, mic=True, vector=True)
    positions = frame.positions[oxygens[0]] + vectors
    cluster = ase.Atoms(frame.numbers[indices], positions, pbc=False)
    forces = frame.get_forces()[indices]
    forces -= forces.mean(axis=0)
    energy = frame.get_potential_energy() * len(indices) / len(frame)
    return _labelled(cluster, energy, forces, stress)


def write_mixed_data(path: Path, cluster_stress: np.ndarray) -> List[ase.Atoms]:
    """4 periodic water frames with stress, then 2 water clusters (no cell) whose
    stress labels are ``cluster_stress`` (Voigt, 6 values)."""
    source = ase.io.read(WATER, ":6")
    frames = []
    for frame in source[:4]:
        periodic = ase.Atoms(frame.numbers, frame.positions, cell=frame.cell, pbc=True)
        frames.append(
            _labelled(
                periodic,
                frame.get_potential_energy(),
                frame.get_forces(),
                frame.get_stress(),
            )
        )
    frames += [_water_cluster(frame, cluster_stress) for frame in source[4:]]
    ase.io.write(path, frames, format="extxyz")
    return frames


def mixed_options(workdir: Path, architecture: str) -> Path:
    """Tiny one-epoch options with stress on; training and validation sets are the
    whole file, so the clusters go through both."""
    options_file = write_options(
        workdir / "options.yaml",
        architecture,
        "mixed.xyz",
        epochs=1,
        stress=True,
        training={"batch_size": 2},
    )
    options = yaml.safe_load(options_file.read_text())
    options["validation_set"] = options["training_set"]
    options_file.write_text(yaml.safe_dump(options, sort_keys=False))
    return options_file


def test_mixed_data_is_what_it_claims(tmp_path):
    frames = write_mixed_data(tmp_path / "mixed.xyz", np.full(6, np.nan))
    read_back = ase.io.read(tmp_path / "mixed.xyz", ":")
    assert len(read_back) == 6
    for atoms in read_back[:4]:
        assert atoms.pbc.all() and atoms.cell.volume > 0
        assert np.all(np.isfinite(atoms.get_stress()))
    for atoms, original in zip(read_back[4:], frames[4:], strict=True):
        assert not atoms.pbc.any() and atoms.cell.volume == 0
        assert len(atoms) >= 15  # at least 5 whole molecules
        assert np.all(np.isnan(atoms.get_stress()))
        # whole molecules: every hydrogen within 1.3 A of an oxygen
        distances = atoms.get_all_distances()
        hydrogens = atoms.numbers == 1
        oxygens = atoms.numbers == 8
        assert np.all(distances[hydrogens][:, oxygens].min(axis=1) < 1.3)
        np.testing.assert_allclose(atoms.get_forces(), original.get_forces(), atol=1e-6)


@pytest.mark.parametrize("architecture", ["pet_nc", "pet_m"])
def test_nan_stress_of_molecules_is_absent(tmp_path, architecture):
    write_mixed_data(tmp_path / "mixed.xyz", np.full(6, np.nan))
    mixed_options(tmp_path, architecture)
    run = run_mtt(["train", "options.yaml"], cwd=tmp_path)
    assert (tmp_path / "model.ckpt").exists()
    assert (tmp_path / "model.pt").exists()
    log = run.stdout + run.stderr
    # the direct stress trained on the periodic frames, and its metric is finite
    assert "non_conservative_stress RMSE" in log
    for line in log.splitlines():
        if "Epoch" in line and "non_conservative_stress RMSE" in line:
            assert "nan" not in line.lower(), line


def test_finite_virial_without_cell_is_refused(tmp_path):
    # metatrain's reader refuses finite *stress* without a cell itself, but passes
    # virial labels as they are: those reach the routing
    frames = write_mixed_data(tmp_path / "mixed.xyz", np.full(6, np.nan))
    for atoms in frames:
        volume = atoms.cell.volume
        stress = atoms.get_stress(voigt=False)
        atoms.info["virial"] = (
            -stress * volume if volume > 0 else np.full((3, 3), 0.1)
        ).reshape(-1)
    ase.io.write(tmp_path / "mixed.xyz", frames, format="extxyz")
    mixed_options(tmp_path, "pet_nc")
    options = yaml.safe_load((tmp_path / "options.yaml").read_text())
    for section in ("training_set", "validation_set"):
        energy = options[section]["targets"]["energy"]
        energy["stress"] = False
        energy["virial"] = {"key": "virial"}
    (tmp_path / "options.yaml").write_text(yaml.safe_dump(options, sort_keys=False))
    run = run_mtt(["train", "options.yaml"], cwd=tmp_path, check=False)
    output = run.stdout + run.stderr
    assert run.returncode != 0, output[-3000:]
    assert "has finite stress labels but no periodic cell" in output, output[-3000:]
