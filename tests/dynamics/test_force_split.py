"""The force-split protocol: its implementations reproduce the integrator as it was
before it (stored trajectories, float64, 1e-10), the caller's ``atoms.calc`` is
left alone, one force kind costs one call per inner step, and any object with
``fast``/``slow``/``both`` drives the integrator."""

import importlib.util
from pathlib import Path

import ase
import ase.build
import numpy as np
import pytest
from ase import units
from ase.calculators.emt import EMT
from ase.md.verlet import VelocityVerlet

from metatrain_nc.dynamics.integrator import MultipleTimeStep
from metatrain_nc.errors import UserInputError
from metatrain_nc.force_models import (
    ConservativeSplit,
    DirectSplit,
    ForceResult,
    ForceSplit,
    HybridSplit,
    ModelCalculator,
    PairSplit,
    load_force_model,
)
from metatrain_nc.force_models.force_split import correction, force_split

DATA = Path(__file__).parent / "data"
TOLERANCE = 1e-10


def _reference_module():
    spec = importlib.util.spec_from_file_location(
        "make_integrator_reference", DATA / "make_integrator_reference.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


REF = _reference_module()


@pytest.fixture(scope="module")
def reference():
    with np.load(DATA / "integrator_reference.npz") as data:
        return {key: data[key] for key in data.files}


def _structures(reference) -> dict:
    methanol = ase.build.molecule("CH3OH")
    argon = ase.Atoms("Ar6")
    structures = {}
    for name, atoms in (("methanol", methanol), ("argon", argon)):
        atoms.set_positions(reference[f"start_{name}_positions"])
        atoms.set_momenta(reference[f"start_{name}_momenta"])
        structures[name] = atoms
    return structures


def _split(case: str, models) -> ForceSplit:
    """The split of ``case`` built by hand (not through the factory)."""
    _, slow, fast, forces, *_ = REF.CASES[case]
    slow_model = REF.load(slow, models)
    if forces == "conservative":
        return ConservativeSplit(slow_model)
    if forces == "direct":
        return DirectSplit(slow_model)
    if fast is None:
        return HybridSplit(slow_model)
    return PairSplit(slow_model, REF.load(fast, models))


@pytest.mark.parametrize("case", list(REF.CASES))
def test_splits_reproduce_the_integrator_before_the_protocol(case, models, reference):
    """Positions, velocities, forces and energies of 40 outer steps, and the model
    calls, as the integrator of commit 480ec27 gave them (float64 models)."""
    split = _split(case, models)
    assert isinstance(split, ForceSplit)
    start = REF.start_of(case, _structures(reference))

    def make(atoms):
        return MultipleTimeStep(atoms, split=split, **REF.settings_of(case))

    record = REF.run_case(case, make, start)
    for key, value in record.items():
        expected = reference[f"{case}/{key}"]
        assert value.shape == expected.shape, key
        np.testing.assert_allclose(value, expected, atol=TOLERANCE, rtol=0, err_msg=key)
    fast = split.fast_model
    calls = [split.model.n_forward, split.model.n_backward]
    calls.append(-1 if fast is None else fast.n_forward)
    np.testing.assert_array_equal(calls, reference[f"{case}/calls"])


def test_the_caller_calculator_is_left_alone(models, reference, tmp_path):
    """The integrator reports its own energy and forces (``forces()``,
    ``snapshot()``, trajectory and log files) and never touches ``atoms.calc``."""
    start = _structures(reference)["methanol"]
    for calc in (None, EMT()):
        atoms = start.copy()
        atoms.calc = calc
        dyn = MultipleTimeStep(
            atoms,
            2 * units.fs,
            HybridSplit(load_force_model(models["nc"])),
            stride=4,
            trajectory=str(tmp_path / "md.traj"),
            logfile=str(tmp_path / "md.log"),
        )
        dyn.run(3)
        assert atoms.calc is calc
        if calc is not None:
            assert calc.results == {}  # never asked
    frame = dyn.snapshot()
    assert frame.get_potential_energy() == dyn.potential_energy()
    np.testing.assert_array_equal(frame.get_forces(), dyn.forces())
    np.testing.assert_array_equal(frame.get_momenta(), atoms.get_momenta())
    probe = atoms.copy()
    probe.calc = ModelCalculator(models["nc"], forces="conservative")
    np.testing.assert_allclose(dyn.forces(), probe.get_forces(), atol=1e-12)
    written = ase.io.read(tmp_path / "md.traj", "-1")
    assert written.get_potential_energy() == pytest.approx(dyn.potential_energy())
    np.testing.assert_allclose(written.get_forces(), dyn.forces(), atol=1e-12)


def test_one_call_per_inner_step_without_a_split(models, reference):
    """A conservative or direct split is velocity Verlet at the inner step: one
    model call (one ``fast``/``both``) per inner step, no correction call; a hybrid
    split adds one backward pass per outer step."""
    start = _structures(reference)["methanol"]
    for make, backward in (
        (DirectSplit, 0),
        (ConservativeSplit, 1 + 3 * 4),
        (HybridSplit, 1 + 3),
    ):
        model = load_force_model(models["nc"])
        split = make(model)
        counts = {"fast": 0, "slow": 0, "both": 0}
        for name in counts:
            _count(split, name, counts)
        dyn = MultipleTimeStep(start.copy(), 2 * units.fs, split, stride=4)
        dyn.run(3)
        assert model.n_forward == 1 + 3 * 4, make
        assert model.n_backward == backward, make
        # both() at the start and at each outer step, fast() at the other inner ones
        assert counts == {"fast": 3 * 3, "slow": 0, "both": 1 + 3}, make
    calculator = load_force_model(REF.lennard_jones(False))
    argon = _structures(reference)["argon"]
    MultipleTimeStep(argon, 20 * units.fs, ConservativeSplit(calculator), stride=4).run(
        3
    )
    assert calculator.n_forward == 1 + 3 * 4


def _count(split, name, counts):
    method = getattr(split, name)

    def counted(*args, **kwargs):
        counts[name] += 1
        return method(*args, **kwargs)

    setattr(split, name, counted)


def test_pair_split_with_stride_one_is_velocity_verlet(reference):
    """Teacher LJ + student LJ' (declared direct), M = 1: velocity Verlet on the
    teacher."""
    start = _structures(reference)["argon"]
    expected = start.copy()
    expected.calc = REF.lennard_jones(False)
    VelocityVerlet(expected, timestep=5 * units.fs).run(30)
    atoms = start.copy()
    split = force_split(
        REF.lennard_jones(False),
        "mts",
        load_force_model(REF.lennard_jones(True), direct=True),
    )
    assert isinstance(split, PairSplit)
    MultipleTimeStep(atoms, 5 * units.fs, split, stride=1).run(30)
    np.testing.assert_allclose(atoms.positions, expected.positions, atol=1e-10)
    np.testing.assert_allclose(atoms.get_momenta(), expected.get_momenta(), atol=1e-10)


def test_factory(models):
    nc = load_force_model(models["nc"])
    assert isinstance(force_split(nc), HybridSplit)
    assert isinstance(force_split(models["nc"], "conservative"), ConservativeSplit)
    assert isinstance(force_split(nc, "direct"), DirectSplit)
    pair = force_split(models["energy"], "mts", fast=nc)
    assert isinstance(pair, PairSplit) and pair.fast_model is nc
    assert pair.describe()["fast"] == nc.source
    hybrid = force_split(nc)
    assert force_split(hybrid) is hybrid and force_split(hybrid, "mts") is hybrid
    assert hybrid.model is nc and hybrid.fast_model is None
    assert (hybrid.splits, hybrid.fast_head, hybrid.slow_head) == (
        True,
        "direct",
        "conservative",
    )
    for one_kind in (force_split(nc, "direct"), force_split(nc, "conservative")):
        assert not one_kind.splits
        result = one_kind.both(ase.build.molecule("CH3OH"))
        np.testing.assert_array_equal(correction(one_kind, result), 0.0)
    with pytest.raises(UserInputError, match="runs 'mts' forces, not 'direct'"):
        force_split(hybrid, "direct")
    with pytest.raises(UserInputError, match="unknown force mode"):
        force_split(hybrid, "respa")
    with pytest.raises(UserInputError, match="already holds its fast model"):
        force_split(hybrid, fast=nc)
    with pytest.raises(UserInputError, match="--forces mts"):
        force_split(nc, "direct", fast=nc)
    with pytest.raises(UserInputError, match="non_conservative_force"):
        force_split(models["energy"])
    with pytest.raises(UserInputError, match="runs 'mts' forces"):
        MultipleTimeStep(ase.build.molecule("CH3OH"), units.fs, hybrid, forces="direct")


class HarmonicSplit:
    """A split written from the protocol alone: fast ``-k_fast x``, slow
    ``-k_slow x`` (eV/A^2), no force model behind it."""

    mode = "mts"
    fast_head = "direct"
    slow_head = "conservative"
    splits = True
    model = None
    fast_model = None

    def __init__(self, k_fast: float, k_slow: float):
        self.k_fast, self.k_slow = k_fast, k_slow
        self.calls = []

    def check(self, atoms):
        return []

    def fast(self, atoms, where=None):
        self.calls.append("fast")
        return ForceResult(direct=-self.k_fast * atoms.positions)

    def slow(self, atoms, where=None):
        self.calls.append("slow")
        x = atoms.positions
        return ForceResult(
            energy=0.5 * self.k_slow * float(np.sum(x * x)),
            conservative=-self.k_slow * x,
        )

    def both(self, atoms, where=None):
        result = self.slow(atoms, where)
        result.direct = self.fast(atoms, where).direct
        return result

    def describe(self):
        return {"forces": "mts", "slow": "harmonic", "fast": None}


def test_any_object_of_the_protocol_drives_the_integrator():
    """r-RESPA written out, against the integrator on :class:`HarmonicSplit`."""
    atoms = ase.Atoms("H2", positions=[(0.3, 0.0, 0.1), (-0.2, 0.1, 0.0)])
    atoms.set_momenta([[0.01, 0.0, -0.02], [0.0, 0.03, 0.0]])
    split = HarmonicSplit(k_fast=2.0, k_slow=2.5)
    assert isinstance(split, ForceSplit)
    dt, stride, steps = 1.0 * units.fs, 4, 6
    x, p = atoms.positions.copy(), atoms.get_momenta().copy()
    m = atoms.get_masses()[:, None]
    h = dt / stride
    for _ in range(steps):
        p += 0.5 * dt * (split.k_fast - split.k_slow) * x
        for _ in range(stride):
            p += -0.5 * h * split.k_fast * x
            x = x + h * p / m
            p += -0.5 * h * split.k_fast * x
        p += 0.5 * dt * (split.k_fast - split.k_slow) * x
    dyn = MultipleTimeStep(atoms, dt, split, stride=stride)
    dyn.run(steps)
    np.testing.assert_allclose(atoms.positions, x, atol=1e-12, rtol=0)
    np.testing.assert_allclose(atoms.get_momenta(), p, atol=1e-12, rtol=0)
    assert split.calls.count("slow") == 1 + steps  # both() at outer steps only
    assert dyn.potential_energy() == pytest.approx(0.5 * 2.5 * np.sum(x * x))
