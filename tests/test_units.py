"""Models declaring other energy units (kcal/mol) give the same physics in eV."""

import ase.build
import numpy as np

from metatrain_nc.antisymmetry import CONSERVATIVE, DIRECT_FORCE, load_force_model
from metatrain_nc.force_models import MetatomicModel as ModelForces

from .analytic_models import export_pair_model


def test_kcal_model_forces_are_converted_to_ev(tmp_path):
    atoms = ase.build.molecule("CH3CH2OH")
    atoms.positions += np.random.default_rng(0).normal(0, 0.05, atoms.positions.shape)
    ev = export_pair_model(str(tmp_path / "ev.pt"), nonconservative_strength=0.01)
    kcal = export_pair_model(
        str(tmp_path / "kcal.pt"), nonconservative_strength=0.01, energy_unit="kcal/mol"
    )
    reference = ModelForces(ev).evaluate(atoms)
    converted = ModelForces(kcal).evaluate(atoms)
    assert abs(reference.energy) > 0.1
    np.testing.assert_allclose(converted.energy, reference.energy, rtol=1e-10)
    np.testing.assert_allclose(
        converted.conservative, reference.conservative, atol=1e-10
    )
    np.testing.assert_allclose(converted.direct, reference.direct, atol=1e-10)

    for output in (CONSERVATIVE, DIRECT_FORCE):
        forces = [
            load_force_model(path)
            .structure_forces(atoms, output)
            .forces_numpy([atoms.positions])
            for path in (ev, kcal)
        ]
        np.testing.assert_allclose(forces[1], forces[0], atol=1e-10)
