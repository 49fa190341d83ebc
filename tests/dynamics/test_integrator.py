"""The RESPA integrator against ASE's velocity Verlet; force provider; thermostats."""

import ase.build
import ase.io
import numpy as np
import pytest
from ase import units
from ase.md.verlet import VelocityVerlet

from metatrain_nc.dynamics.integrator import MultipleTimeStep
from metatrain_nc.dynamics.observer import Monitor
from metatrain_nc.dynamics.structures import maxwell_boltzmann
from metatrain_nc.errors import UserInputError
from metatrain_nc.force_models import MetatomicModel as ModelForces
from metatrain_nc.force_models import ModelCalculator


def _thermal(atoms, temperature=300.0, seed=1):
    atoms = atoms.copy()
    maxwell_boltzmann(atoms, temperature, seed)
    return atoms


def test_one_evaluation_gives_both_forces(models, ethanol_box):
    """Conservative forces agree with metatomic's ASE calculator, direct forces have
    zero net force, a direct-only call makes no backward pass."""
    from metatomic_ase import MetatomicCalculator

    provider = ModelForces(models["nc"])
    result = provider.evaluate(ethanol_box, conservative=True, direct=True)
    assert provider.n_forward == 1 and provider.n_backward == 1
    reference = MetatomicCalculator(models["nc"], non_conservative=False)
    atoms = ethanol_box.copy()
    atoms.calc = reference
    np.testing.assert_allclose(result.conservative, atoms.get_forces(), atol=1e-10)
    assert result.energy == pytest.approx(atoms.get_potential_energy(), abs=1e-10)
    np.testing.assert_allclose(result.direct.sum(axis=0), 0.0, atol=1e-10)
    # the direct head differs from -dE/dr by the (mean-free) rotation field
    assert np.abs(result.direct - result.conservative).max() > 1e-3
    direct = provider.evaluate(ethanol_box, conservative=False, direct=True)
    assert provider.n_forward == 2 and provider.n_backward == 1
    np.testing.assert_allclose(direct.direct, result.direct, atol=1e-12)
    assert direct.conservative is None and direct.stress is None


def test_mts_stride_one_is_velocity_verlet(models, ethanol_box):
    """M = 1 MTS reproduces ASE's velocity Verlet with conservative forces."""
    from metatomic_ase import MetatomicCalculator

    start = _thermal(ethanol_box)
    reference = start.copy()
    reference.calc = MetatomicCalculator(models["nc"], non_conservative=False)
    VelocityVerlet(reference, timestep=0.5 * units.fs).run(40)

    atoms = start.copy()
    dyn = MultipleTimeStep(atoms, 0.5 * units.fs, models["nc"], forces="mts", stride=1)
    dyn.run(40)
    difference = np.abs(atoms.positions - reference.positions).max()
    assert difference < 1e-9, difference
    np.testing.assert_allclose(
        atoms.get_momenta(), reference.get_momenta(), atol=1e-9, rtol=0
    )


def test_conservative_mode_is_velocity_verlet_at_inner_step(models, ethanol_box):
    """``forces="conservative"`` with stride M is velocity Verlet at timestep / M."""
    start = _thermal(ethanol_box)
    reference = start.copy()
    reference.calc = ModelCalculator(models["nc"], forces="conservative")
    VelocityVerlet(reference, timestep=0.5 * units.fs).run(32)
    atoms = start.copy()
    dyn = MultipleTimeStep(
        atoms, 2.0 * units.fs, models["nc"], forces="conservative", stride=4
    )
    dyn.run(8)
    assert np.abs(atoms.positions - reference.positions).max() < 1e-9
    assert dyn.get_time() == pytest.approx(16 * units.fs)


def test_mts_cost_and_direct_mode(models, ethanol_box):
    """An MTS outer step costs M forward passes and one backward pass; direct mode
    never runs a backward pass; MTS with exact direct forces equals conservative."""
    start = _thermal(ethanol_box)
    dyn = MultipleTimeStep(
        start.copy(), 4 * units.fs, models["nc"], forces="mts", stride=8
    )
    dyn.run(3)
    assert dyn.provider.n_forward == 1 + 3 * 8
    assert dyn.provider.n_backward == 1 + 3
    direct = MultipleTimeStep(
        start.copy(), 4 * units.fs, models["nc"], forces="direct", stride=8
    )
    direct.run(3)
    assert direct.provider.n_backward == 0

    # with direct == conservative forces the correction vanishes
    a, b = start.copy(), start.copy()
    MultipleTimeStep(a, 4 * units.fs, models["c"], forces="mts", stride=8).run(3)
    MultipleTimeStep(b, 4 * units.fs, models["c"], forces="conservative", stride=8).run(
        3
    )
    assert np.abs(a.positions - b.positions).max() < 1e-9


def _mts(atoms, model, **options) -> MultipleTimeStep:
    """MTS at a 2 fs outer step, stride 4 (``options`` override)."""
    return MultipleTimeStep(
        atoms, 2 * units.fs, model, **{"forces": "mts", "stride": 4, **options}
    )


def test_native_ase_features(models, ethanol_box, tmp_path):
    """Trajectory, logfile and observers work as for ASE's own integrators."""
    atoms = _thermal(ethanol_box)
    calls = []
    dyn = _mts(
        atoms,
        models["nc"],
        trajectory=str(tmp_path / "md.traj"),
        logfile=str(tmp_path / "md.log"),
        loginterval=2,
    )
    dyn.attach(lambda: calls.append(dyn.nsteps), interval=3)
    dyn.run(6)
    assert calls == [0, 3, 6]
    frames = ase.io.read(tmp_path / "md.traj", ":")
    assert len(frames) == 4  # steps 0, 2, 4, 6
    assert len((tmp_path / "md.log").read_text().splitlines()) == 5  # header + 4


@pytest.mark.parametrize("ensemble", ["svr", "langevin"])
def test_thermostats_conserved_quantity_and_reproducibility(
    models, ethanol_box, ensemble
):
    """The conserved quantity of SVR/Langevin stays flat while the thermostat moves
    energy; the same seed gives the same trajectory."""

    def run(seed):
        atoms = _thermal(ethanol_box, temperature=50.0)
        dyn = _mts(
            atoms,
            models["c"],
            ensemble=ensemble,
            temperature_K=300.0,
            tau=20 * units.fs,
            rng=seed,
        )
        monitor = Monitor(dyn)
        dyn.attach(monitor, interval=1)
        dyn.run(60)
        return atoms, dyn, monitor

    atoms, dyn, monitor = run(3)
    conserved = np.array([r["conserved_eV"] for r in monitor.rows])
    # the thermostat pumped a lot of energy in (50 K -> ~300 K) ...
    assert abs(dyn.thermostat_energy) > 0.5
    # ... and the conserved quantity did not move with it
    assert np.ptp(conserved) < 0.02 * abs(dyn.thermostat_energy)
    assert monitor.rows[-1]["temperature_K"] > 150
    again, _, _ = run(3)
    np.testing.assert_array_equal(atoms.positions, again.positions)
    other, _, _ = run(4)
    assert np.abs(other.positions - atoms.positions).max() > 1e-6


def _copper_run(ensemble, constraint, steps=40):
    """Thermostatted EMT dynamics of a rattled 32-atom Cu cell at 300 K (the
    conservative split, outer step 2 fs, 4 inner steps); the conserved energy after
    every outer step and the dynamics."""
    from ase.calculators.emt import EMT

    from metatrain_nc.force_models import load_force_model

    atoms = ase.build.bulk("Cu", cubic=True).repeat((2, 2, 2))
    atoms.rattle(0.05, seed=1)
    maxwell_boltzmann(atoms, 300.0, 1)  # the fixed atoms move at the start too
    if constraint is not None:
        atoms.set_constraint(constraint)
    dyn = _mts(
        atoms,
        load_force_model(EMT()),
        forces="conservative",
        ensemble=ensemble,
        temperature_K=300.0,
        tau=20 * units.fs,
        rng=5,
    )
    conserved = [dyn.conserved_energy()]
    for _ in range(steps):
        dyn.run(1)
        conserved.append(dyn.conserved_energy())
    return np.array(conserved), dyn


@pytest.mark.parametrize(
    "ensemble, constraint",
    [
        ("langevin", "fixatoms"),
        ("langevin", "fixcom"),
        ("svr", "fixatoms"),
        ("svr", "fixcom"),
    ],
)
def test_thermostat_energy_under_constraints(ensemble, constraint):
    """With FixAtoms or FixCom the thermostat's energy exchange is the kinetic-energy
    change the atoms actually get (noise on fixed atoms or on the centre of mass,
    removed by the constraint, is none): the conserved energy holds as well as
    without the constraint (it moved by ~1 eV in 40 Langevin steps with FixAtoms,
    counting the noise the fixed atoms never kept)."""
    from ase.constraints import FixAtoms, FixCom

    fixed = [0, 1, 2, 3]
    make = {"fixatoms": lambda: FixAtoms(indices=fixed), "fixcom": FixCom}
    free, _ = _copper_run(ensemble, None)
    conserved, dyn = _copper_run(ensemble, make[constraint]())
    # the thermostat did move energy (~0.3-0.5 eV) ...
    assert abs(dyn.thermostat_energy) > 0.1
    # ... and the conserved energy drifts as little as without the constraint
    assert np.ptp(conserved) < 5 * np.ptp(free) + 1e-5, (
        np.ptp(conserved),
        np.ptp(free),
    )
    assert np.ptp(conserved) < 1e-3
    momenta = dyn.atoms.get_momenta()
    if constraint == "fixatoms":
        # the noise and friction act on the free atoms only
        np.testing.assert_array_equal(momenta[fixed], 0.0)
        assert np.abs(momenta[4:]).max() > 0.1
    else:
        np.testing.assert_allclose(momenta.sum(axis=0), 0.0, atol=1e-10)


def test_bad_arguments(models, ethanol_box):
    atoms = _thermal(ethanol_box)
    with pytest.raises(UserInputError, match="non_conservative_force"):
        MultipleTimeStep(atoms, units.fs, models["energy"], forces="mts")
    with pytest.raises(UserInputError, match="non_conservative_force"):
        MultipleTimeStep(atoms, units.fs, models["energy"], forces="direct")
    with pytest.raises(UserInputError, match="time step"):
        MultipleTimeStep(atoms, 0.0, models["nc"])
    with pytest.raises(UserInputError, match="stride"):
        MultipleTimeStep(atoms, units.fs, models["nc"], stride=0)
    with pytest.raises(UserInputError, match="temperature"):
        MultipleTimeStep(atoms, units.fs, models["nc"], ensemble="svr", tau=1.0)
    gold = ethanol_box.copy()
    gold[0].symbol = "Au"
    with pytest.raises(UserInputError, match="Au"):
        MultipleTimeStep(gold, units.fs, models["nc"])
    # an energy-only model is fine for conservative dynamics
    MultipleTimeStep(atoms, units.fs, models["energy"], forces="conservative").run(1)
