"""Fixtures of the antisymmetry tests: analytic models and small structures."""

from pathlib import Path

import ase
import ase.build
import ase.io
import pytest

from ..analytic_models import export_pair_model

ROOT = Path(__file__).resolve().parents[2]
WATER = ROOT / "recipes" / "data" / "water_64h2o_40frames.xyz"
STRENGTH = 0.1  # eV/A^2, rotation field of the non-conservative pair model


@pytest.fixture(scope="session")
def pair_nc(tmp_path_factory) -> str:
    """Analytic float64 model: direct forces = -dE/dr + 0.1 x rotation field."""
    path = tmp_path_factory.mktemp("models") / "pair_nc.pt"
    return export_pair_model(str(path), nonconservative_strength=STRENGTH)


@pytest.fixture(scope="session")
def pair_c(tmp_path_factory) -> str:
    """Analytic float64 model whose direct forces are exactly -dE/dr."""
    path = tmp_path_factory.mktemp("models") / "pair_c.pt"
    return export_pair_model(str(path))


@pytest.fixture(scope="session")
def pair_energy_only(tmp_path_factory) -> str:
    """Analytic model without a ``non_conservative_force`` output."""
    path = tmp_path_factory.mktemp("models") / "pair_energy.pt"
    return export_pair_model(str(path), direct_forces=False)


@pytest.fixture
def ethanol() -> ase.Atoms:
    """One ethanol molecule (9 atoms, non-periodic)."""
    return ase.build.molecule("CH3CH2OH")


@pytest.fixture
def water_cluster_periodic() -> ase.Atoms:
    """The first 8 water molecules of the bundled box, kept in the 12.4 A cell."""
    atoms = ase.io.read(WATER, 0)[:24]
    atoms.pbc = True
    return atoms


@pytest.fixture(scope="session")
def structures_file(tmp_path_factory) -> Path:
    """Two ethanol structures in an extxyz file."""
    path = tmp_path_factory.mktemp("structures") / "ethanol.xyz"
    first = ase.build.molecule("CH3CH2OH")
    second = first.copy()
    second.rattle(0.05, seed=1)
    ase.io.write(path, [first, second])
    return path
