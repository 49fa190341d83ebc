"""Fixtures of the torch-sim tests: the analytic float64 models and the relaxed
ethanol of the dynamics tests (shared, built once per session)."""

import ase
import pytest

from ..dynamics.conftest import (  # noqa: F401  (fixtures used here)
    models,
    molecules_in_box,
    relaxed_ethanol,
)


@pytest.fixture(scope="session")
def ts_models(models) -> dict:  # noqa: F811
    """``nc``: direct = conservative + a rotation field; ``c``: direct exact."""
    return models


@pytest.fixture(scope="session")
def relaxed_box(relaxed_ethanol) -> ase.Atoms:  # noqa: F811
    """8 relaxed ethanol molecules (72 atoms, non-interacting), no velocities."""
    return molecules_in_box(relaxed_ethanol)
