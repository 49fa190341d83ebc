"""The bonded-topology check: census of molecules, and its warning in ``mtt-nc md``.

A conservative water model that conserves energy and holds its temperature may still
dissociate its molecules (PET-C on the CHGNet water set); the census of molecules of
the trajectory frames (:mod:`metatrain_nc.dynamics.topology`) is the verdict that
sees it. The MD tests run a harmonic water model (an ASE calculator of this file)
and the same model with one O-H bond replaced by a pull on the hydrogen.
"""

import contextlib
import io
import json
from collections import Counter
from pathlib import Path

import ase
import ase.build
import ase.io
import numpy as np
import pytest
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.emt import EMT
from ase.geometry import find_mic

from metatrain_nc.cli import main
from metatrain_nc.dynamics.md import MDSettings, run_md
from metatrain_nc.dynamics.topology import (
    BOND_FACTOR,
    TopologyWatch,
    census,
    compare,
    molecules,
    whole_molecules,
)

ROOT = Path(__file__).resolve().parents[2]
WATER = ROOT / "recipes" / "data" / "water_chgnet" / "test.xyz.gz"
#: the last frame of 7 ps of PET-C Langevin MD at 300 K (benchmarks/model_stability.py)
PET_C = ROOT / "docs" / "stability" / "pet_c" / "langevin" / "segment_006"
PET_C = PET_C / "trajectory.extxyz"

#: harmonic water: O-H and H-H springs (eV/A^2) and rest lengths (A)
K_OH, R_OH, K_HH, R_HH = 30.0, 0.96, 5.0, 1.52


class HarmonicWater(Calculator):
    """Molecules O, H, H in this order, each held by three springs (no forces
    between molecules); ``pull`` (eV/A): atom 1 loses its springs and is pulled
    away from atom 0 by a constant force, a model that breaks a molecule."""

    implemented_properties = ["energy", "forces"]

    def __init__(self, pull: float = 0.0):
        super().__init__()
        self.pull = pull
        self.direction = None

    def calculate(self, atoms=None, properties=("energy",), changes=all_changes):
        super().calculate(atoms, properties, changes)
        atoms = self.atoms
        positions = atoms.positions
        energy, forces = 0.0, np.zeros_like(positions)
        for o in range(0, len(atoms), 3):
            for a, b, k, r0 in [
                (o, o + 1, K_OH, R_OH),
                (o, o + 2, K_OH, R_OH),
                (o + 1, o + 2, K_HH, R_HH),
            ]:
                if self.pull and 1 in (a, b):
                    continue
                d, r = find_mic(positions[b] - positions[a], atoms.cell, atoms.pbc)
                energy += 0.5 * k * (r - r0) ** 2
                force = -k * (r - r0) * d / r
                forces[b] += force
                forces[a] -= force
        if self.pull:
            if self.direction is None:  # fixed at the first call: a uniform field
                d = positions[1] - positions[0]
                self.direction = d / np.linalg.norm(d)
            energy -= self.pull * float(positions[1] @ self.direction)
            forces[1] += self.pull * self.direction
        self.results = {"energy": energy, "forces": forces}


def harmonic_water() -> HarmonicWater:
    return HarmonicWater()


def pulling_water() -> HarmonicWater:
    return HarmonicWater(pull=1.0)


def water_box() -> ase.Atoms:
    """8 water molecules on a 4 A grid in a periodic 8 A box."""
    atoms = ase.Atoms(cell=[8.0, 8.0, 8.0], pbc=True)
    molecule = ase.build.molecule("H2O")
    for shift in np.ndindex(2, 2, 2):
        copy = molecule.copy()
        copy.translate(1.0 + 4.0 * np.array(shift, dtype=float))
        atoms += copy
    return atoms


# -- census ------------------------------------------------------------------------
def test_every_reference_water_frame_is_64_molecules():
    frames = ase.io.read(WATER, ":")
    assert len(frames) == 76
    assert [census(frame) for frame in frames] == [Counter({"H2O": 64})] * 76


def test_moving_one_hydrogen_to_another_molecule_gives_hydroxide_and_hydronium():
    atoms = ase.io.read(WATER, 0)
    found = molecules(atoms)
    oxygens = np.flatnonzero(atoms.numbers == 8)
    donor, acceptor = oxygens[0], oxygens[1]
    (moved, _) = [
        i for i in np.flatnonzero(found.labels == found.labels[donor]) if i != donor
    ]
    # on the acceptor, 0.98 A away opposite to its own two hydrogens
    own = [i for i in np.flatnonzero(found.labels == found.labels[acceptor])]
    own = [i for i in own if i != acceptor]
    vectors = atoms.get_distances(acceptor, own, mic=True, vector=True)
    away = -vectors.sum(axis=0)
    atoms.positions[moved] = atoms.positions[acceptor] + 0.98 * away / np.linalg.norm(
        away
    )
    assert census(atoms) == Counter({"H2O": 62, "HO": 1, "H3O": 1})
    change = compare(Counter({"H2O": 64}), census(atoms))
    assert change.changed
    assert change.broken == Counter({"H2O": 2})
    assert change.formed == Counter({"HO": 1, "H3O": 1})
    assert change.message == (
        "the bonded topology changed: start 64 H2O; now 62 H2O, 1 H3O, 1 HO"
    )


def test_a_molecule_across_the_cell_boundary_is_one_molecule():
    atoms = ase.build.molecule("H2O")
    atoms.set_cell([6.0, 6.0, 6.0])
    atoms.pbc = True
    atoms.translate(-atoms.positions[0] + [3.0, 0.05, 3.0])  # O near the y = 0 face
    atoms.wrap()
    assert np.ptp(atoms.positions[:, 1]) > 4.0  # one H at the far side of the cell
    found = molecules(atoms)
    assert found.census == Counter({"H2O": 1})
    assert found.extended == [False]
    # without periodic boundaries it falls apart
    atoms.pbc = False
    assert census(atoms) != Counter({"H2O": 1})

    # made whole again: the molecule of ase.build, moved
    (whole,) = whole_molecules(_periodic(atoms))
    assert not whole.pbc.any() and whole.cell.volume == 0
    reference = ase.build.molecule("H2O").get_all_distances()
    assert np.allclose(whole.get_all_distances(), reference)


def _periodic(atoms: ase.Atoms) -> ase.Atoms:
    atoms = atoms.copy()
    atoms.pbc = True
    return atoms


def test_gas_starts_are_whole_water_molecules():
    """The paper protocol's gas-phase starts cut out of the periodic water frames:
    64 H2O per frame (no hydrogen-bonded dimer), whole, without a cell, displaced
    but never two atoms closer than MIN_START_DISTANCE."""
    from metatrain_nc.dynamics.starts import MIN_START_DISTANCE, gas_starts

    frames = ase.io.read(WATER, ":3")
    assert all(len(whole_molecules(f)) == 64 for f in frames)
    starts = gas_starts(frames, 12, 0.3, seed=0)
    assert [a.get_chemical_formula() for a in starts] == ["H2O"] * 12
    for atoms in starts:
        assert not atoms.pbc.any()
        distances = atoms.get_all_distances()
        assert distances.max() < 4.0  # whole (a wrapped one spans ~12 A)
        assert distances[np.triu_indices(3, 1)].min() >= MIN_START_DISTANCE


def test_short_hydrogen_bond_does_not_merge_molecules():
    """A proton 1.19 A from its oxygen and 1.23 A from another (the shortest hydrogen
    bond of the CHGNet water at 450 K) stays with the nearer one."""
    atoms = ase.Atoms(
        "OHHOHH",
        positions=[
            [0.0, 0.0, 0.0],
            [1.19, 0.0, 0.0],
            [-0.3, 0.93, 0.0],
            [2.42, 0.0, 0.0],
            [2.72, 0.93, 0.0],
            [2.72, -0.93, 0.0],
        ],
    )
    assert 1.23 < 1.3 * (0.31 + 0.66) == pytest.approx(1.261)
    assert census(atoms) == Counter({"H2O": 2})
    atoms.positions[1, 0] = 1.25  # now nearer the other oxygen: a transfer
    assert census(atoms) == Counter({"HO": 1, "H3O": 1})


def test_extended_structures_are_not_checked():
    for atoms in [ase.build.bulk("Cu", cubic=True) * (2, 2, 2), ase.build.bulk("C")]:
        found = molecules(atoms)
        assert found.any_extended
        watch = TopologyWatch(atoms)
        assert "extended bonded network" in watch.skipped
        watch(atoms, 10.0)
        result = watch.result()
        assert result["checked"] is False and "changed" not in result
    # a molecule in vacuum is checked
    assert TopologyWatch(ase.build.molecule("CH3CH2OH")).skipped is None


@pytest.mark.skipif(not PET_C.exists(), reason="no PET-C stability run here")
def test_pet_c_water_is_reported_broken():
    start = census(ase.io.read(WATER, 0))
    end = ase.io.read(PET_C, -1)
    change = compare(start, [(0.0, start), (7000.0, census(end))])
    assert change.changed and change.first_change_fs == 7000.0
    assert change.broken["H2O"] >= 10
    assert change.message.startswith("the bonded topology changed: start 64 H2O; now")
    assert change.message.endswith("(first at 7000 fs; 1 of 2 frames differ)")


def test_compare_a_series():
    start = Counter({"H2O": 2})
    broken = Counter({"HO": 1, "H3O": 1})
    series = [(0.0, start), (250.0, broken), (500.0, start)]
    change = compare(start, series)
    assert change.changed and change.first_change_fs == 250.0
    assert change.n_changed == 1 and change.n_frames == 3
    assert change.final == start and not change.broken and not change.formed
    assert change.message == (
        "the bonded topology changed: start 2 H2O; 1 H3O, 1 HO (first at 250 fs; 1 "
        "of 3 frames differ), back to the start at the end"
    )
    same = compare(start, [(0.0, start), (10.0, start)])
    assert not same.changed and same.first_change_fs is None
    assert same.message == "the bonded topology is unchanged: 2 H2O (2 frames)"
    assert json.loads(json.dumps(change.to_dict()))["first_change"] == dict(broken)


# -- in mtt-nc md --------------------------------------------------------------------
def _run(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


MD = ["--forces", "conservative", "--timestep", "0.5", "--stride", "1"]
MD += ["--steps", "70", "--trajectory-every", "20", "--no-chemiscope"]


def _md_run(tmp_path, model: str):
    """`mtt-nc md` of the 8-molecule water box with the test model ``model``: exit
    code, stdout, stderr and summary.json."""
    structure = tmp_path / "water.xyz"
    ase.io.write(structure, water_box(), format="extxyz")
    out = tmp_path / "md"
    spec = f"tests.dynamics.test_topology:{model}"
    code, stdout, stderr = _run(["md", spec, structure, "-o", out, *MD])
    assert code == 0, stderr
    return stdout, stderr, json.loads((out / "summary.json").read_text())


def test_md_with_a_model_that_breaks_a_molecule_warns(tmp_path):
    stdout, stderr, summary = _md_run(tmp_path, "pulling_water")
    assert summary["status"] == "completed"
    topology = summary["topology"]
    assert topology["checked"] and topology["changed"]
    assert topology["start"] == {"H2O": 8}
    assert topology["bond_factor"] == BOND_FACTOR
    # frames at 0, 10, 20, 30 fs and the end (35 fs), not every step
    assert topology["n_frames"] == 5 and topology["final_time_fs"] == 35.0
    assert topology["first_change_fs"] == 10.0
    assert topology["first_change"] == {"H2O": 7, "HO": 1, "H": 1}
    # the free hydrogen flies on, through another molecule (no forces between them)
    assert topology["broken"]["H2O"] >= 1 and topology["n_changed"] == 4
    (warning,) = [w for w in summary["warnings"] if w["kind"] == "topology"]
    assert warning["message"].startswith(
        "the bonded topology changed: start 8 H2O; now "
    )
    assert "(first at 10 fs; 4 of 5 frames differ)" in warning["message"]
    (line,) = [x for x in stderr.splitlines() if "topology" in x]
    assert line.startswith("mtt-nc md: warning: the bonded topology changed: start 8")
    assert "the bonded topology is unchanged" not in stdout


def test_md_that_keeps_its_molecules_has_no_topology_warning(tmp_path):
    stdout, stderr, summary = _md_run(tmp_path, "harmonic_water")
    assert summary["warnings"] == []
    topology = summary["topology"]
    assert topology["checked"] and not topology["changed"]
    assert topology["start"] == topology["final"] == {"H2O": 8}
    assert topology["first_change_fs"] is None
    assert "the bonded topology is unchanged: 8 H2O (5 frames)" in stdout
    assert "warning" not in stderr


def test_md_of_a_metal_skips_the_check(tmp_path):
    atoms = ase.build.bulk("Cu", cubic=True) * (2, 2, 2)
    settings = MDSettings(
        forces="conservative",
        timestep_fs=2.0,
        stride=1,
        steps=5,
        chemiscope=False,
        plots=False,
    )
    summary = run_md(EMT(), atoms, tmp_path / "md", settings)
    topology = summary["topology"]
    assert topology["checked"] is False and "Cu32" in topology["reason"]
    assert not [w for w in summary["warnings"] if w["kind"] == "topology"]
