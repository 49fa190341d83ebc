"""Fixtures of the dynamics tests: analytic models and cheap molecular systems."""

from pathlib import Path

import ase
import ase.build
import numpy as np
import pytest
from ase import units

from metatrain_nc.dynamics.integrator import MultipleTimeStep
from metatrain_nc.dynamics.observer import Monitor
from metatrain_nc.dynamics.statistics import summarise
from metatrain_nc.dynamics.verdicts import diagnose

from ..analytic_models import export_pair_model

#: strength (eV/A^2) of the non-conservative rotation field of the test model: the
#: direct forces are ~0.05-0.1 eV/A off the conservative ones for 8 molecules
STRENGTH = 0.005


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> dict:
    """Analytic float64 models: ``nc`` (direct = conservative + rotation field),
    ``c`` (direct = conservative exactly), ``energy`` (no direct output)."""
    folder = tmp_path_factory.mktemp("dynamics_models")
    return {
        "nc": export_pair_model(
            str(folder / "nc.pt"), nonconservative_strength=STRENGTH
        ),
        "c": export_pair_model(str(folder / "c.pt")),
        "energy": export_pair_model(str(folder / "energy.pt"), direct_forces=False),
    }


@pytest.fixture(scope="session")
def relaxed_ethanol(models) -> ase.Atoms:
    """One ethanol molecule relaxed with the analytic pair energy."""
    from ase.optimize import LBFGS

    from metatrain_nc.force_models import ModelCalculator

    atoms = ase.build.molecule("CH3CH2OH")
    atoms.calc = ModelCalculator(models["c"], forces="conservative")
    LBFGS(atoms, logfile=None).run(fmax=1e-4, steps=500)
    atoms.calc = None
    return atoms


def molecules_in_box(molecule: ase.Atoms, n_side: int = 2, spacing: float = 8.0):
    """``n_side**3`` copies of ``molecule`` on a grid (non-interacting: the spacing is
    larger than the model cutoff plus the molecule size), non-periodic."""
    atoms = ase.Atoms()
    for i in range(n_side):
        for j in range(n_side):
            for k in range(n_side):
                copy = molecule.copy()
                copy.translate(spacing * np.array([i, j, k], dtype=float))
                atoms += copy
    return atoms


@pytest.fixture
def ethanol_box(relaxed_ethanol) -> ase.Atoms:
    """8 relaxed ethanol molecules (72 atoms), no velocities."""
    return molecules_in_box(relaxed_ethanol)


@pytest.fixture
def ethanol_box_file(ethanol_box, tmp_path) -> Path:
    path = tmp_path / "ethanol_box.xyz"
    ase.io.write(path, ethanol_box, format="extxyz")
    return path


def run_nve(model, start, forces, timestep_fs, stride, steps):
    """An NVE run of ``steps`` outer steps from a copy of ``start``, monitored every
    step: its :func:`summarise` and :func:`diagnose`."""
    atoms = start.copy()
    dyn = MultipleTimeStep(
        atoms, timestep_fs * units.fs, model, forces=forces, stride=stride
    )
    monitor = Monitor(dyn)
    dyn.attach(monitor, interval=1)
    dyn.run(steps)
    summary = summarise(monitor.rows, len(atoms))
    return summary, diagnose(monitor.rows, summary, forces, "nve")
