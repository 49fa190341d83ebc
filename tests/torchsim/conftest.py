"""Fixtures of the torch-sim tests: the analytic float64 models of the dynamics
tests and cheap molecular systems."""

import ase
import ase.build
import pytest

from ..analytic_models import export_pair_model
from ..dynamics.conftest import STRENGTH, molecules_in_box


@pytest.fixture(scope="session")
def ts_models(tmp_path_factory) -> dict:
    """``nc``: direct = conservative + a rotation field; ``c``: direct exact."""
    folder = tmp_path_factory.mktemp("torchsim_models")
    return {
        "nc": export_pair_model(
            str(folder / "nc.pt"), nonconservative_strength=STRENGTH
        ),
        "c": export_pair_model(str(folder / "c.pt")),
    }


@pytest.fixture(scope="session")
def relaxed_box(ts_models) -> ase.Atoms:
    """8 relaxed ethanol molecules (72 atoms, non-interacting), no velocities."""
    from ase.optimize import LBFGS

    from metatrain_nc.force_models import ModelCalculator

    atoms = ase.build.molecule("CH3CH2OH")
    atoms.calc = ModelCalculator(ts_models["c"], forces="conservative")
    LBFGS(atoms, logfile=None).run(fmax=1e-4, steps=500)
    atoms.calc = None
    return molecules_in_box(atoms)
