"""Any ASE calculator through the evaluator: Jacobians by central finite differences.

The analytic calculator below (``RotatingHarmonic``) has forces

    F_i = -k (r_i - r0) + s z_hat x (r_i - c),    c = centroid of all atoms,

a harmonic well (conservative) plus the rotation field of ``tests/analytic_models.py``.
Its Jacobian is ``J = -k I_3N + s (I_N - 1 1^T / N) (x) K`` with ``K = [z_hat x]``
antisymmetric; the two parts are Frobenius-orthogonal, ``||K||_F^2 = 2``, so

    lambda   = sqrt(2 s^2 (N - 1) / (3 N k^2 + 2 s^2 (N - 1))),
    lambda_i = sqrt(2 s^2 (N - 1) / N / (3 k^2 + 2 s^2 (N - 1) / N)).

The field is linear in the positions: central differences are exact up to round-off.
ASE's ``LennardJones`` and ``EMT`` are conservative: their lambda is finite-difference
noise (truncation ~ h^2), below the noise estimate the evaluator reports.
"""

import csv
import gzip
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import ase
import ase.build
import ase.cluster
import ase.io
import numpy as np
import pytest

from metatrain_nc.antisymmetry import (
    AntisymmetrySettings,
    antisymmetry_ratio,
    evaluate,
    force_jacobian,
    load_force_model,
    molecule_of,
    square_loop_work,
)
from metatrain_nc.antisymmetry.loops import random_square_directions
from metatrain_nc.cli import main

from ..analytic_models import analytic_rotation_work, analytic_square_loop_work

K_SPRING = 0.7  # eV/A^2
STRENGTH = 0.2  # eV/A^2

MODULE_SOURCE = textwrap.dedent(
    f'''
    """ASE calculators for the tests (imported as module:callable)."""

    import numpy as np
    from ase.calculators.calculator import Calculator, all_changes


    class RotatingHarmonic(Calculator):
        """F_i = -k (r_i - r0) + s z_hat x (r_i - centroid); E = k/2 sum |r_i - r0|^2
        (the energy of the conservative part only)."""

        implemented_properties = ["energy", "free_energy", "forces"]

        def __init__(self, k={K_SPRING}, s={STRENGTH}, r0=(0.3, -0.2, 0.1), **kwargs):
            super().__init__(**kwargs)
            self.k, self.s, self.r0 = k, s, np.asarray(r0, dtype=float)

        def calculate(self, atoms=None, properties=("energy",), changes=all_changes):
            super().calculate(atoms, properties, changes)
            r = self.atoms.positions
            d = r - self.r0
            rotation = self.s * np.cross([0.0, 0.0, 1.0], r - r.mean(axis=0))
            energy = 0.5 * self.k * float((d**2).sum())
            self.results = {{
                "energy": energy,
                "free_energy": energy,
                "forces": -self.k * d + rotation,
            }}


    def make_calc():
        return RotatingHarmonic()


    def make_lj():
        from ase.calculators.lj import LennardJones

        return LennardJones(sigma=3.4, epsilon=0.0104, rc=8.5, smooth=True)


    def make_emt():
        from ase.calculators.emt import EMT

        return EMT()


    def make_nothing():
        return None


    NOT_CALLABLE = 42
    '''
)


def analytic_lambda(n: int, k: float = K_SPRING, s: float = STRENGTH) -> float:
    return float(np.sqrt(2 * s**2 * (n - 1) / (3 * n * k**2 + 2 * s**2 * (n - 1))))


def analytic_atom_lambda(n: int, k: float = K_SPRING, s: float = STRENGTH) -> float:
    anti = 2 * s**2 * (n - 1) / n
    return float(np.sqrt(anti / (3 * k**2 + anti)))


def analytic_jacobian(n: int, k: float = K_SPRING, s: float = STRENGTH) -> np.ndarray:
    rotation = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    centred = np.eye(n) - np.full((n, n), 1.0 / n)
    return -k * np.eye(3 * n) + s * np.kron(centred, rotation)


def ethanol_frames():
    first = ase.build.molecule("CH3CH2OH")
    second = first.copy()
    second.rattle(0.05, seed=1)
    return [first, second]


def argon_cluster():
    atoms = ase.cluster.Icosahedron("Ar", noshells=2)  # 13 atoms
    atoms.rattle(0.05, seed=1)
    return atoms


def copper_bulk():
    atoms = ase.build.bulk("Cu", cubic=True).repeat((2, 2, 1))  # 16 atoms, periodic
    atoms.rattle(0.05, seed=2)
    return atoms


@pytest.fixture(scope="module")
def calcs(tmp_path_factory):
    """The calculators module, importable as ``asym_test_calcs`` (on sys.path)."""
    folder = tmp_path_factory.mktemp("calcs")
    (folder / "asym_test_calcs.py").write_text(MODULE_SOURCE)
    (folder / "asym_test_broken.py").write_text("import no_such_package_here\n")
    sys.path.insert(0, str(folder))
    import asym_test_calcs

    yield asym_test_calcs
    sys.path.remove(str(folder))
    sys.modules.pop("asym_test_calcs", None)


def leftovers(folder: Path, name: str):
    return [p.name for p in folder.iterdir() if p.name.startswith(f".{name}.")]


def mtt_nc():
    executable = Path(sys.executable).parent / "mtt-nc"
    if executable.exists():
        return [str(executable)]
    return [sys.executable, "-m", "metatrain_nc.cli"]


def test_command_line_module_callable_gives_the_analytic_lambda(tmp_path):
    """``mtt-nc antisymmetry mymodule:make_calc structures.xyz -o out --direct``, with
    mymodule found through PYTHONPATH (run from another folder)."""
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "mymodule.py").write_text(MODULE_SOURCE)
    work = tmp_path / "work"
    work.mkdir()
    frames = ethanol_frames()
    ase.io.write(work / "structures.xyz", frames)
    env = dict(os.environ, PYTHONPATH=str(modules), OMP_NUM_THREADS="1")
    command = mtt_nc() + [
        "antisymmetry",
        "mymodule:make_calc",
        "structures.xyz",
        "-o",
        "out",
        "--direct",
        "--no-progress",
    ]
    result = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "(non_conservative_force, finite-difference, step 0.001 A)" in result.stdout
    assert "finite-difference noise" in result.stdout

    out = work / "out"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"]["kind"] == "ase"
    assert summary["model"]["source"] == "mymodule:make_calc"
    assert summary["model"]["heads"] == ["direct"]
    assert summary["output"] == "non_conservative_force"
    assert summary["settings"]["method"] == "finite-difference"
    assert summary["settings"]["fd_step_A"] == 1e-3
    expected = analytic_lambda(9)
    for entry in summary["structures"]:
        assert entry["method"] == "finite-difference"
        assert abs(entry["lambda"] - expected) < 1e-6
        assert entry["fd_step_A"] == 1e-3
        assert entry["fd_noise"] < 1e-8  # linear forces: round-off only
    with open(out / "atoms.csv") as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == 18
    for row in rows:
        assert float(row["lambda_i"]) == pytest.approx(analytic_atom_lambda(9), 1e-6)
    with open(out / "pair_bins.csv") as stream:
        bins = list(csv.DictReader(stream))
    assert sum(int(b["count"]) for b in bins) == 2 * 9 * 8
    with gzip.open(out / "chemiscope.json.gz", "rt") as stream:
        dataset = json.load(stream)
    assert set(dataset["shapes"]) == {"direct_forces"}
    assert not leftovers(work, "out")


@pytest.mark.parametrize(
    "factory, frame",
    [("make_lj", argon_cluster), ("make_emt", copper_bulk)],
    ids=["LennardJones", "EMT"],
)
def test_ase_potentials_are_conservative_to_noise(
    factory, frame, calcs, tmp_path, capsys
):
    """Conservative calculators: lambda is finite-difference noise (~1e-7 at the
    default 1e-3 A step), below the noise estimate that the summary reports."""
    structures = tmp_path / "structures.xyz"
    ase.io.write(structures, frame())
    out = tmp_path / "out"
    code = main(
        [
            "antisymmetry",
            f"asym_test_calcs:{factory}",
            str(structures),
            "-o",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "(conservative, finite-difference, step 0.001 A)" in printed
    assert "no measurable non-conservative part" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["output"] == "conservative"
    assert summary["model"]["heads"] == ["conservative"]
    entry = summary["structures"][0]
    assert 0 < entry["lambda"] < 1e-5
    assert entry["lambda"] < entry["fd_noise"] < 1e-4
    assert summary["fd_noise_max"] == entry["fd_noise"]


def test_python_api_with_a_calculator_object(calcs):
    """``evaluate(frames, calculator)``: lambda, per atom, per pair and loop work
    against their analytic values; the conservative label changes no number."""
    frames = ethanol_frames()
    n = len(frames[0])
    calculator = calcs.RotatingHarmonic()
    report = evaluate(
        frames,
        calculator,
        AntisymmetrySettings(rotation_loop=True, loop_points=24),
        direct=True,
        loop_deformation=0.0,
    )
    assert report.output == "non_conservative_force"
    assert report.model["kind"] == "ase"
    assert report.settings["method"] == "finite-difference"
    for structure, atoms in zip(report.structures, frames, strict=True):
        assert structure.lambda_ == pytest.approx(analytic_lambda(n), abs=1e-9)
        np.testing.assert_allclose(structure.per_atom, analytic_atom_lambda(n))
        np.testing.assert_allclose(
            structure.pairs.anti_norm, STRENGTH * np.sqrt(2) / n, rtol=1e-6
        )
        molecule = molecule_of(atoms, 0)
        assert structure.rotation_loop["work_eV"] == pytest.approx(
            analytic_rotation_work(atoms, molecule, STRENGTH), rel=1e-6
        )
        assert set(structure.forces) == {"non_conservative_force"}

    # not declared direct: the same forces count as conservative, same lambda
    conservative = evaluate(frames[:1], calculator, fd_step=1e-4)
    assert conservative.output == "conservative"
    assert conservative.settings["fd_step_A"] == 1e-4
    assert conservative.lambdas[0] == pytest.approx(analytic_lambda(n), abs=1e-9)

    atoms = frames[1]
    jacobian = force_jacobian(atoms, calculator, direct=True)
    np.testing.assert_allclose(jacobian, analytic_jacobian(n), atol=1e-9)
    assert antisymmetry_ratio(atoms, calculator) == pytest.approx(
        analytic_lambda(n), abs=1e-9
    )
    # square loops only need forces: exact (midpoint rule, linear field)
    forces = load_force_model(calculator).structure_forces(atoms, "conservative")
    assert forces.differentiable is False
    rng = np.random.default_rng(3)
    directions = [random_square_directions(n, rng) for _ in range(2)]
    squares = square_loop_work(forces, eps=0.05, directions=directions)
    for (u, v), work in zip(directions, squares.work, strict=True):
        exact = analytic_square_loop_work(u, v, 0.05, STRENGTH)
        assert work == pytest.approx(exact, rel=1e-6)

    with pytest.raises(ValueError, match="J\\^T v"):
        antisymmetry_ratio(atoms, calculator, stochastic=True)
    with pytest.raises(ValueError, match="unknown antisymmetry setting"):
        evaluate(frames, calculator, probe=8)


@pytest.mark.parametrize(
    "case",
    [
        "no_module",
        "broken_module",
        "missing_name",
        "not_callable",
        "returns_nothing",
        "stochastic",
        "direct_output_of_conservative",
        "too_big",
        "bad_step",
    ],
)
def test_bad_input(case, calcs, tmp_path, capsys):
    structures = tmp_path / "structures.xyz"
    ase.io.write(structures, ethanol_frames())
    model, extra = "asym_test_calcs:make_calc", []
    if case == "no_module":
        model, expected = (
            "no_such_module_xyz:make",
            "module 'no_such_module_xyz' cannot be imported",
        )
    elif case == "broken_module":
        model, expected = "asym_test_broken:make", "no_such_package_here"
    elif case == "missing_name":
        model, expected = "asym_test_calcs:make_nope", "has no attribute 'make_nope'"
    elif case == "not_callable":
        model, expected = "asym_test_calcs:NOT_CALLABLE", "is not callable"
    elif case == "returns_nothing":
        model, expected = "asym_test_calcs:make_nothing", "not an ASE calculator"
    elif case == "stochastic":
        extra, expected = ["--direct", "--stochastic", "--probes", "8"], "J^T v"
    elif case == "direct_output_of_conservative":
        extra = ["--output", "non_conservative_force"]
        expected = "with --direct"
    elif case == "too_big":
        extra, expected = ["--max-exact-rows", "20"], "finite-difference Jacobian"
    else:
        extra, expected = ["--fd-step", "0"], "--fd-step must be a positive"
    out = tmp_path / "out"
    code = main(["antisymmetry", model, str(structures), "-o", str(out), *extra])
    assert code == 2
    error = capsys.readouterr().err
    assert expected in error
    assert "Traceback" not in error
    assert not out.exists()
    assert not leftovers(tmp_path, "out")
