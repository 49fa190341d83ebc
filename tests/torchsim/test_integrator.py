"""The torch-sim MTS integrator against torch-sim's velocity Verlet, the ASE MTS
integrator and itself one system at a time."""

import math

import ase.build
import numpy as np
import pytest
import torch
import torch_sim as ts
from ase import units

from metatrain_nc.dynamics.integrator import MultipleTimeStep
from metatrain_nc.dynamics.structures import maxwell_boltzmann
from metatrain_nc.torchsim import (
    LangevinThermostat,
    MetatomicSplit,
    ModelPairSplit,
    SVRThermostat,
    atoms_to_state,
    mts_init,
    mts_step,
    runaway_systems,
    select,
)

STEPS = 40


def _thermal(atoms, temperature=300.0, seed=0):
    atoms = atoms.copy()
    maxwell_boltzmann(atoms, temperature, seed)
    return atoms


def _torch_sim_nve(model, state, dt):
    """torch-sim's own NVE (velocity Verlet): ``(init, step)`` whatever its API
    generation (init/step functions from 0.5 on, a factory before)."""
    if hasattr(ts, "nve_init"):
        return (
            lambda s: ts.nve_init(s, model, kT=torch.tensor(0.0, dtype=s.dtype)),
            lambda s: ts.nve_step(s, model, dt=dt),
        )
    init, step = ts.integrators.nve(
        model, dt=torch.tensor(dt, dtype=torch.float64), kT=torch.tensor(0.0)
    )
    return init, step


def _lennard_jones(sigma=3.405, epsilon=0.0104):
    from torch_sim.models.lennard_jones import LennardJonesModel

    return LennardJonesModel(
        sigma=sigma, epsilon=epsilon, dtype=torch.float64, cutoff=2.5 * 3.405
    )


def test_stride_one_is_torch_sim_velocity_verlet():
    """MTS with M = 1 (slow: Lennard-Jones argon, fast: a different LJ) is
    velocity Verlet with the slow forces: torch-sim's own, to 1e-6, over 40 steps."""
    from torch_sim.transforms import pbc_wrap_batched

    atoms = ase.build.bulk("Ar", "fcc", a=5.26, cubic=True).repeat(2)
    atoms.rattle(0.05, seed=1)
    atoms = _thermal(atoms, 80.0)
    slow, fast = _lennard_jones(), _lennard_jones(sigma=3.3, epsilon=0.012)
    dt = 5 * units.fs
    init, step = _torch_sim_nve(slow, atoms_to_state([atoms]), dt)
    reference = init(atoms_to_state([atoms]))
    split = ModelPairSplit(slow, fast)
    state = mts_init(atoms_to_state([atoms]), split)
    for _ in range(STEPS):
        reference = step(reference)
        state = mts_step(state, split, dt=dt, stride=1)
    md = state.md
    # torch-sim wraps positions into the cell; the MTS integrator does not (as ASE)
    wrapped = pbc_wrap_batched(md.positions, md.cell, md.system_idx)
    assert torch.allclose(wrapped, reference.positions, atol=1e-6, rtol=0)
    assert torch.allclose(md.momenta, reference.momenta, atol=1e-6, rtol=0)
    assert torch.allclose(md.forces, reference.forces, atol=1e-6, rtol=0)
    assert torch.allclose(md.energy, reference.energy, atol=1e-6, rtol=0)
    # and the fast model did matter at M = 4
    state4 = mts_init(atoms_to_state([atoms]), split)
    for _ in range(STEPS // 4):
        state4 = mts_step(state4, split, dt=4 * dt, stride=4)
    assert float((state4.md.momenta - reference.momenta).abs().max()) > 1e-4


@pytest.mark.parametrize("forces", ["mts", "conservative", "direct"])
def test_stride_four_matches_ase_integrator(ts_models, relaxed_box, forces):
    """Same model, start and settings: positions of the torch-sim and ASE
    integrators agree to 1e-5 A after 40 outer steps (M = 4, 2 fs)."""
    start = _thermal(relaxed_box, 300.0)
    dyn = MultipleTimeStep(
        start.copy(), 2 * units.fs, ts_models["nc"], forces=forces, stride=4
    )
    dyn.run(STEPS)
    split = MetatomicSplit(ts_models["nc"])
    state = mts_init(atoms_to_state([start]), split, forces=forces)
    for _ in range(STEPS):
        state = mts_step(state, split, dt=2 * units.fs, stride=4)
    positions = state.md.positions.numpy()
    assert np.abs(positions - dyn.atoms.positions).max() < 1e-5
    assert np.abs(state.md.momenta.numpy() - dyn.atoms.get_momenta()).max() < 1e-5
    assert float(state.md.energy[0]) == pytest.approx(dyn.potential_energy(), abs=1e-8)
    # one forward pass per inner step, one backward pass per outer step (mts)
    if forces == "mts":
        assert split.provider.n_backward == STEPS + 1
        assert split.provider.n_forward == 4 * STEPS + 1


def _starts(box, n=4):
    return [_thermal(box, 300.0, seed=k) for k in range(n)]


@pytest.mark.parametrize("thermostat", [None, "langevin", "svr"])
def test_batch_equals_single_runs(ts_models, relaxed_box, thermostat):
    """4 replicas in one batch move exactly as 4 runs of one replica (system k
    draws its noise from its own generator, seeded seed + k)."""
    kT = units.kB * 300.0
    make = {
        None: lambda: None,
        "langevin": lambda: LangevinThermostat(kT, 20 * units.fs),
        "svr": lambda: SVRThermostat(kT, 20 * units.fs),
    }[thermostat]
    starts = _starts(relaxed_box)
    split = MetatomicSplit(ts_models["nc"])
    batch = mts_init(atoms_to_state(starts), split, thermostat=make(), seed=7)
    for _ in range(10):
        batch = mts_step(batch, split, dt=2 * units.fs, stride=4)
    for k, start in enumerate(starts):
        single_split = MetatomicSplit(ts_models["nc"])
        single = mts_init(
            atoms_to_state([start]), single_split, thermostat=make(), seed=7 + k
        )
        for _ in range(10):
            single = mts_step(single, single_split, dt=2 * units.fs, stride=4)
        atoms = batch.md.system_idx == k
        assert torch.allclose(
            batch.md.positions[atoms], single.md.positions, atol=1e-9, rtol=0
        )
        assert torch.allclose(
            batch.md.momenta[atoms], single.md.momenta, atol=1e-9, rtol=0
        )
        assert torch.allclose(
            batch.conserved_energy()[k], single.conserved_energy()[0], atol=1e-9
        )
    if thermostat is not None:
        assert bool((batch.thermostat_energy != 0).all())


def test_thermostat_conserved_energy(ts_models, relaxed_box):
    """With a thermostat, E_pot + E_kin + the energy it took stays close to its
    start (MTS, M = 4), while E_pot + E_kin moves."""
    split = MetatomicSplit(ts_models["nc"])
    thermostat = LangevinThermostat(units.kB * 600.0, 10 * units.fs)
    state = mts_init(
        atoms_to_state(_starts(relaxed_box, 2)), split, thermostat=thermostat
    )
    first = state.conserved_energy().clone()
    total0 = (state.md.energy + state.kinetic_energy()).clone()
    for _ in range(25):
        state = mts_step(state, split, dt=2 * units.fs, stride=4)
    total = state.md.energy + state.kinetic_energy()
    assert float((total - total0).abs().min()) > 0.05
    assert float((state.conserved_energy() - first).abs().max()) < 0.01
    assert state.ndof.tolist() == [3 * 72, 3 * 72]


class _Poisoned:
    """A split whose fast forces of system ``bad`` turn NaN after ``after`` calls."""

    def __init__(self, split, bad: int, after: int):
        self.split, self.bad, self.after, self.calls = split, bad, after, 0
        self.shared, self.has_direct = split.shared, split.has_direct

    def _poison(self, state, result):
        self.calls += 1
        if self.calls > self.after and state.cell.shape[0] > self.bad:
            atoms = state.system_idx == self.bad
            result.direct = result.direct.clone()
            result.direct[atoms] = math.nan
        return result

    def fast(self, state):
        return self._poison(state, self.split.fast(state))

    def slow(self, state):
        return self.split.slow(state)

    def both(self, state):
        return self._poison(state, self.split.both(state))


def test_runaway_of_one_system_spares_the_others(ts_models, relaxed_box):
    """NaN forces in system 1: only system 1 is flagged; once it is dropped, the
    others go on exactly as a clean run."""
    starts = _starts(relaxed_box, 3)
    clean_split = MetatomicSplit(ts_models["nc"])
    clean = mts_init(atoms_to_state(starts), clean_split)
    split = _Poisoned(MetatomicSplit(ts_models["nc"]), bad=1, after=9)
    state = mts_init(atoms_to_state(starts), split)
    flagged = None
    for step in range(8):
        clean = mts_step(clean, clean_split, dt=2 * units.fs, stride=4)
        state = mts_step(state, split, dt=2 * units.fs, stride=4)
        bad = runaway_systems(state)
        if bool(bad.any()):
            assert flagged is None
            flagged = step
            assert bad.tolist() == [False, True, False]
            state = select(state, ~bad)
            split.bad = 99  # the poisoned system is gone
    assert flagged == 2
    assert state.systems.tolist() == [0, 2]
    keep = clean.md.system_idx != 1
    assert torch.allclose(state.md.positions, clean.md.positions[keep], atol=1e-9)
    assert bool(torch.isfinite(state.md.positions).all())


@pytest.mark.parametrize(
    "mode, backward", [("mts", 1), ("conservative", 4), ("direct", 0)]
)
def test_mode_in_the_split_and_calls_per_outer_step(
    ts_models, relaxed_box, mode, backward
):
    """The force mode lives in the split, with the names of the ASE protocol; a
    run with it equals the ``forces=`` spelling, and an outer step of M = 4 costs
    4 forward passes and ``backward`` backward passes (one for mts)."""
    from metatrain_nc.force_models.force_split import force_split

    split = MetatomicSplit(ts_models["nc"], mode=mode)
    ase_split = force_split(ts_models["nc"], forces=mode)
    for name in ("mode", "fast_head", "slow_head", "splits"):
        assert getattr(split, name) == getattr(ase_split, name), name
    assert split.describe()["forces"] == mode
    starts = _starts(relaxed_box, 2)
    state = mts_init(atoms_to_state(starts), split)
    assert state.forces == mode
    old = MetatomicSplit(ts_models["nc"])
    compat = mts_init(atoms_to_state(starts), old, forces=mode)
    provider = split.provider
    for _ in range(3):
        before = (provider.n_forward, provider.n_backward)
        state = mts_step(state, split, dt=2 * units.fs, stride=4)
        assert provider.n_forward - before[0] == 4
        assert provider.n_backward - before[1] == backward
        compat = mts_step(compat, old, dt=2 * units.fs, stride=4)
    assert torch.equal(state.md.positions, compat.md.positions)


def test_atoms_per_call_do_not_change_the_forces(ts_models, relaxed_box):
    """Groups of systems per model call (CPU default) give the forces of one call."""
    state = atoms_to_state(_starts(relaxed_box, 3))
    whole = MetatomicSplit(ts_models["nc"], max_atoms_per_call=None).both(state)
    for budget in (1, 150):
        split = MetatomicSplit(ts_models["nc"], max_atoms_per_call=budget)
        grouped = split.both(state)
        for name in ("energy", "conservative", "direct"):
            a, b = getattr(whole, name), getattr(grouped, name)
            assert torch.allclose(a, b, atol=1e-12, rtol=0), name
        assert split.provider.n_forward == 1 and split.provider.n_backward == 1
