"""Physics of the three force modes on 8 non-interacting ethanol molecules.

The model's direct forces are the conservative ones plus a rotation field of
strength 0.005 eV/A^2 (up to ~0.1 eV/A here): direct NVE heats, MTS with M = 8 (inner
0.5 fs, outer 4 fs) behaves like conservative dynamics at 0.5 fs.
"""

import pytest
from ase import units

from metatrain_nc.dynamics.integrator import MultipleTimeStep
from metatrain_nc.dynamics.observer import Monitor
from metatrain_nc.dynamics.statistics import summarise
from metatrain_nc.dynamics.structures import maxwell_boltzmann

OUTER_STEPS = 125  # 0.5 ps


@pytest.fixture(scope="module")
def runs(models, relaxed_ethanol):
    from .conftest import molecules_in_box

    start = molecules_in_box(relaxed_ethanol)
    maxwell_boltzmann(start, 200.0, seed=0)
    summaries = {}
    for mode in ("conservative", "direct", "mts"):
        atoms = start.copy()
        dyn = MultipleTimeStep(atoms, 4 * units.fs, models["nc"], forces=mode, stride=8)
        monitor = Monitor(dyn)
        dyn.attach(monitor, interval=1)
        dyn.run(OUTER_STEPS)
        summaries[mode] = summarise(monitor.rows, len(atoms))
    return summaries


def test_conservative_nve_keeps_energy(runs):
    c = runs["conservative"]
    drift_over_run = abs(c["drift_meV_per_atom_per_ps"]) * c["duration_ps"]
    assert drift_over_run < 5 * c["conserved_fluctuation_meV_per_atom"]
    assert abs(c["drift_meV_per_atom_per_ps"]) < 0.05


def test_direct_nve_heats(runs):
    c, d = runs["conservative"], runs["direct"]
    assert d["heating_rate_K_per_ps"] > 1000
    assert d["heating_rate_K_per_ps"] > 10 * abs(c["heating_rate_K_per_ps"])
    assert d["drift_meV_per_atom_per_ps"] > 1000 * abs(c["drift_meV_per_atom_per_ps"])


def test_mts_drift_close_to_conservative(runs):
    c, m = runs["conservative"], runs["mts"]
    assert abs(m["drift_meV_per_atom_per_ps"]) < 0.05
    assert abs(m["drift_meV_per_atom_per_ps"] - c["drift_meV_per_atom_per_ps"]) < 0.02
    error = m["heating_rate_error_K_per_ps"] + c["heating_rate_error_K_per_ps"]
    assert abs(m["heating_rate_K_per_ps"] - c["heating_rate_K_per_ps"]) < 3 * error
    assert m["mean_temperature_K"] == pytest.approx(c["mean_temperature_K"], rel=0.05)


def test_drift_ratio_separates_direct_from_conservative(runs):
    """The drift benchmarks' ratio (energy change from the fitted drift over the
    kinetic energy's standard deviation): well below 1 for conservative dynamics and
    MTS, far above for direct forces."""
    c, d, m = runs["conservative"], runs["direct"], runs["mts"]
    assert c["drift_ratio"] < 0.1 and m["drift_ratio"] < 0.1
    assert d["drift_ratio"] > 1.0


def test_drift_ratio_by_hand():
    from metatrain_nc.dynamics.statistics import drift_ratio

    # 10 atoms, 1 ps, kinetic energy alternating 1.0 / 1.2 eV, drift 2 meV/atom/ps
    rows = [
        {"time_fs": 100.0 * i, "kinetic_eV": 1.0 + 0.2 * (i % 2)} for i in range(11)
    ]
    import numpy as np

    spread = float(np.std([r["kinetic_eV"] for r in rows], ddof=1))
    assert drift_ratio(rows, 2.0, 10) == pytest.approx(0.02 / spread)
    assert drift_ratio(rows, -2.0, 10) == pytest.approx(0.02 / spread)
    assert drift_ratio(rows, None, 10) is None
    assert drift_ratio(rows[:2], 2.0, 10) is None
