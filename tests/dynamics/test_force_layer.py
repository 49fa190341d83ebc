"""The MTS integrator on the one force-model layer: two-model (fast/slow) MTS, ASE
calculators, ASE constraints, forces after position changes, honest calculators."""

import json

import ase
import ase.build
import ase.io
import numpy as np
import pytest
from ase import units
from ase.calculators.emt import EMT
from ase.constraints import FixAtoms, FixBondLength, FixCom
from ase.md.verlet import VelocityVerlet

from metatrain_nc.cli import main
from metatrain_nc.dynamics.integrator import MultipleTimeStep
from metatrain_nc.dynamics.structures import maxwell_boltzmann
from metatrain_nc.errors import UserInputError
from metatrain_nc.force_models import (
    ForceResult,
    MetatomicModel,
    ModelCalculator,
    load_force_model,
)

from ..analytic_models import export_pair_model


def _thermal(atoms, temperature=300.0, seed=1):
    atoms = atoms.copy()
    maxwell_boltzmann(atoms, temperature, seed)
    return atoms


def _forces(model, head):
    calc = ModelCalculator(model, forces=head)

    def evaluate(atoms):
        probe = atoms.copy()
        probe.calc = calc
        return probe.get_forces()

    return evaluate


def _respa(atoms, slow, fast, dt, stride, steps):
    """r-RESPA written out: half outer kick of F_slow - F_fast, ``stride`` velocity
    Verlet steps on F_fast, half outer kick."""
    x = atoms.positions.copy()
    p = atoms.get_momenta().copy()
    m = atoms.get_masses()[:, None]
    h = dt / stride
    probe = atoms.copy()

    def at(positions, force):
        probe.positions = positions
        return force(probe)

    for _ in range(steps):
        p += 0.5 * dt * (at(x, slow) - at(x, fast))
        for _ in range(stride):
            p += 0.5 * h * at(x, fast)
            x = x + h * p / m
            p += 0.5 * h * at(x, fast)
        p += 0.5 * dt * (at(x, slow) - at(x, fast))
    return x, p


def test_pair_matches_a_written_out_respa_loop(models, ethanol_box):
    """Slow = an energy-only model, fast = another model's direct head: the
    integrator is r-RESPA with F_slow - F_fast as the slow force."""
    start = _thermal(ethanol_box)
    atoms = start.copy()
    slow, fast = MetatomicModel(models["energy"]), MetatomicModel(models["nc"])
    dyn = MultipleTimeStep(atoms, 2 * units.fs, slow, forces="mts", stride=4, fast=fast)
    dyn.run(5)
    x, p = _respa(
        start,
        _forces(models["energy"], "conservative"),
        _forces(models["nc"], "direct"),
        2 * units.fs,
        4,
        5,
    )
    np.testing.assert_allclose(atoms.positions, x, atol=1e-10, rtol=0)
    np.testing.assert_allclose(atoms.get_momenta(), p, atol=1e-10, rtol=0)
    # an outer step: M fast forward passes; the slow model once, with its gradient
    assert fast.n_forward == 1 + 5 * 4 and fast.n_backward == 0
    assert slow.n_forward == 1 + 5 and slow.n_backward == 1 + 5


def test_pair_with_stride_one_is_velocity_verlet_on_the_slow_model(models, ethanol_box):
    start = _thermal(ethanol_box)
    reference = start.copy()
    reference.calc = ModelCalculator(models["energy"], forces="conservative")
    VelocityVerlet(reference, timestep=0.5 * units.fs).run(20)
    atoms = start.copy()
    MultipleTimeStep(
        atoms,
        0.5 * units.fs,
        models["energy"],
        forces="mts",
        stride=1,
        fast=models["nc"],
    ).run(20)
    np.testing.assert_allclose(atoms.positions, reference.positions, atol=1e-10)


def _copper_cluster():
    atoms = ase.build.bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2))
    atoms.pbc = False
    atoms.center(vacuum=5.0)
    atoms.rattle(0.05, seed=3)
    return atoms


def test_ase_calculator_as_slow_and_fast_model():
    """An ASE calculator drives the dynamics: NVE with EMT keeps its energy, and EMT
    paired with itself (F_slow - F_fast = 0) gives the conservative trajectory."""
    start = _thermal(_copper_cluster(), temperature=300.0)
    emt = load_force_model(EMT())
    assert emt.kind == "ase" and emt.heads == ["conservative"]
    atoms = start.copy()
    dyn = MultipleTimeStep(atoms, 2 * units.fs, emt, forces="conservative", stride=2)
    energies = []
    dyn.attach(lambda: energies.append(dyn.conserved_energy()), interval=1)
    dyn.run(40)
    assert np.ptp(energies) < 2e-3  # eV, over 80 fs
    paired = start.copy()
    MultipleTimeStep(
        paired, 2 * units.fs, EMT(), forces="mts", stride=2, fast=EMT()
    ).run(40)
    np.testing.assert_allclose(paired.positions, atoms.positions, atol=1e-10)


def test_constraints_are_honoured(models, ethanol_box):
    atoms = _thermal(ethanol_box)
    fixed = [0, 5, 17]
    atoms.set_constraint(FixAtoms(indices=fixed))
    before = atoms.positions[fixed].copy()
    dyn = MultipleTimeStep(atoms, 2 * units.fs, models["nc"], forces="mts", stride=4)
    assert dyn.degrees_of_freedom == 3 * len(atoms) - 3 * len(fixed)
    dyn.run(5)
    np.testing.assert_array_equal(atoms.positions[fixed], before)
    np.testing.assert_array_equal(dyn.forces()[fixed], 0.0)
    np.testing.assert_array_equal(dyn.step()[fixed], 0.0)

    com = _thermal(ethanol_box)
    com.set_momenta(com.get_momenta() + 0.05 * com.get_masses()[:, None])
    com.set_constraint(FixCom())
    start = com.get_center_of_mass()
    dyn = MultipleTimeStep(com, 2 * units.fs, models["nc"], forces="direct", stride=4)
    dyn.run(5)
    np.testing.assert_allclose(com.get_center_of_mass(), start, atol=1e-10)

    bond = _thermal(ethanol_box)
    bond.set_constraint(FixBondLength(0, 1))
    with pytest.raises(UserInputError, match="FixBondLength.*FixAtoms and FixCom"):
        MultipleTimeStep(bond, units.fs, models["nc"])


def test_forces_are_recomputed_after_positions_change(models, ethanol_box):
    atoms = _thermal(ethanol_box)
    dyn = MultipleTimeStep(atoms, 2 * units.fs, models["nc"], forces="mts", stride=4)
    dyn.run(2)
    atoms.positions[3] += [0.05, -0.02, 0.03]
    fresh_start = atoms.copy()
    fresh_start.set_momenta(atoms.get_momenta())
    dyn.run(2)
    fresh = MultipleTimeStep(
        fresh_start, 2 * units.fs, models["nc"], forces="mts", stride=4
    )
    fresh.run(2)
    np.testing.assert_allclose(atoms.positions, fresh_start.positions, atol=1e-12)


def test_step_returns_the_reported_forces(models, ethanol_box):
    """``step()`` returns the forces at the new positions, ``dyn.forces()`` (and
    ``dyn.snapshot()``) report the conservative ones in MTS (never the direct ones
    under that name); ``atoms.calc`` is left alone."""
    atoms = _thermal(ethanol_box)
    dyn = MultipleTimeStep(atoms, 2 * units.fs, models["nc"], forces="mts", stride=4)
    seen = []
    dyn.attach(lambda: seen.append(dyn.snapshot().get_forces()), interval=1)
    returned = dyn.step()
    conservative = _forces(models["nc"], "conservative")(atoms)
    direct = _forces(models["nc"], "direct")(atoms)
    assert np.abs(conservative - direct).max() > 1e-3
    np.testing.assert_allclose(returned, conservative, atol=1e-12)
    np.testing.assert_allclose(dyn.forces(), conservative, atol=1e-12)
    assert atoms.calc is None
    dyn.run(2)
    np.testing.assert_allclose(
        seen[-1], _forces(models["nc"], "conservative")(atoms), atol=1e-12
    )
    direct_dyn = MultipleTimeStep(
        atoms.copy(), units.fs, models["nc"], forces="direct", stride=2
    )
    returned = direct_dyn.step()
    np.testing.assert_allclose(
        returned, _forces(models["nc"], "direct")(direct_dyn.atoms), atol=1e-12
    )


def test_calculator_never_reports_another_head(models, ethanol_box):
    """A result without the calculator's head leaves ``forces`` out: ASE asks again
    and gets the right head."""
    atoms = ethanol_box.copy()
    calc = ModelCalculator(models["nc"], forces="conservative")
    direct = _forces(models["nc"], "direct")(atoms)
    atoms.calc = calc
    calc.store(atoms, ForceResult(energy=1.0, direct=direct))
    np.testing.assert_allclose(
        atoms.get_forces(), _forces(models["nc"], "conservative")(atoms), atol=1e-12
    )


def test_langevin_counts_the_centre_of_mass(models, ethanol_box):
    atoms = _thermal(ethanol_box)
    n = len(atoms)
    kinetic = atoms.get_kinetic_energy()
    for ensemble, dof in [("nve", 3 * n - 3), ("svr", 3 * n - 3), ("langevin", 3 * n)]:
        dyn = MultipleTimeStep(
            atoms.copy(),
            units.fs,
            models["nc"],
            ensemble=ensemble,
            temperature_K=300.0,
            tau=100 * units.fs,
        )
        assert dyn.degrees_of_freedom == dof
        assert dyn.temperature() == pytest.approx(2 * kinetic / (dof * units.kB))


def test_bad_pairs(models, ethanol_box, tmp_path):
    atoms = _thermal(ethanol_box)
    with pytest.raises(UserInputError, match="--forces mts"):
        MultipleTimeStep(
            atoms, units.fs, models["energy"], forces="direct", fast=models["nc"]
        )
    hydrocarbon = export_pair_model(str(tmp_path / "ch.pt"), atomic_types=(1, 6))
    with pytest.raises(UserInputError, match=r"does not know species \[.O.\]"):
        MultipleTimeStep(atoms, units.fs, models["energy"], fast=hydrocarbon)
    # a direct-only ASE calculator cannot give the conservative correction
    with pytest.raises(UserInputError, match="slow model"):
        MultipleTimeStep(
            atoms, units.fs, load_force_model(EMT(), direct=True), fast=models["nc"]
        )


def _write_factory(folder):
    (folder / "my_calculators.py").write_text(
        "from ase.calculators.emt import EMT\n"
        "def make_emt():\n    return EMT()\n"
        "NOT_CALLABLE = 3\n"
        "def make_nothing():\n    return 'no calculator'\n"
    )


def test_md_cli_with_fast_model_and_ase_calculator(
    models, ethanol_box_file, tmp_path, monkeypatch, capsys
):
    out = tmp_path / "pair"
    argv = ["md", models["energy"], str(ethanol_box_file), "-o", str(out)]
    argv += ["--forces", "mts", "--fast", models["nc"], "--steps", "4"]
    argv += ["--timestep", "2", "--stride", "4"]
    assert main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["fast_model"] == models["nc"]
    assert summary["fast_model_forward_passes"] == 1 + 4 * 4
    assert summary["model_forward_passes"] == 1 + 4

    monkeypatch.chdir(tmp_path)
    _write_factory(tmp_path)
    cluster = tmp_path / "cu.xyz"
    ase.io.write(cluster, _copper_cluster())
    out = tmp_path / "emt"
    argv = ["md", "my_calculators:make_emt", str(cluster), "-o", str(out)]
    argv += ["--forces", "conservative", "--steps", "20", "--stride", "2"]
    argv += ["--timestep", "2"]
    assert main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model_kind"] == "ase"
    assert abs(summary["drift_meV_per_atom_per_ps"]) < 5.0


def test_relax_cli_with_ase_calculators(tmp_path, monkeypatch, capsys):
    """EMT relaxes as a conservative model and, declared direct, as a direct one."""
    monkeypatch.chdir(tmp_path)
    _write_factory(tmp_path)
    cluster = tmp_path / "cu.xyz"
    ase.io.write(cluster, _copper_cluster())
    for name, extra, modes in [
        ("c", [], ["conservative"]),
        ("d", ["--direct"], ["direct"]),
    ]:
        out = tmp_path / name
        argv = ["relax", "my_calculators:make_emt", str(cluster), "-o", str(out)]
        argv += ["--fmax", "0.05", "--steps", "200", "--optimizers", "LBFGS"]
        assert main(argv + extra) == 0
        summary = json.loads((out / "summary.json").read_text())
        assert list(summary["fraction_converged"]) == modes
        assert summary["fraction_converged"][modes[0]]["LBFGS"] == 1.0


@pytest.mark.parametrize(
    "model, extra, message",
    [
        ("no_such_module:make", [], "module 'no_such_module' cannot be imported"),
        ("my_calculators:NOT_CALLABLE", [], "not callable"),
        ("my_calculators:make_nothing", [], "not an ASE calculator"),
        ("my_calculators:missing", [], "no attribute 'missing'"),
        ("my_calculators:make_emt", ["--forces", "mts"], "direct force head"),
        (
            "my_calculators:make_emt",
            ["--forces", "conservative", "--fast", "my_calculators:make_emt"],
            "--forces mts",
        ),
    ],
)
def test_md_cli_bad_models(tmp_path, monkeypatch, capsys, model, extra, message):
    monkeypatch.chdir(tmp_path)
    _write_factory(tmp_path)
    cluster = tmp_path / "cu.xyz"
    ase.io.write(cluster, _copper_cluster())
    out = tmp_path / "out"
    assert main(["md", model, str(cluster), "-o", str(out), *extra]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


def test_md_cli_refuses_overlapping_atoms(models, ethanol_box, tmp_path, capsys):
    atoms = ethanol_box.copy()
    atoms.positions[7] = atoms.positions[2] + [0.01, 0.0, 0.0]
    path = tmp_path / "overlap.xyz"
    ase.io.write(path, atoms)
    out = tmp_path / "md"
    assert main(["md", models["nc"], str(path), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "atoms 2 (" in err and "7 (" in err and "apart" in err
    assert not out.exists()
