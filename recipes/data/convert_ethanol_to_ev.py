"""Make ``ethanol_100_eV.xyz`` (eV, eV/A) from ``ethanol_100.xyz`` (kcal/mol).

Run from this folder: ``python convert_ethanol_to_ev.py``. Deterministic.
"""

import ase.io
import numpy as np

KCAL_PER_MOL_IN_EV = 0.0433641

frames = ase.io.read("ethanol_100.xyz", ":")
for atoms in frames:
    # ASE puts energy and forces of an extxyz file on a single-point calculator
    energy = atoms.get_potential_energy() * KCAL_PER_MOL_IN_EV
    forces = np.asarray(atoms.get_forces()) * KCAL_PER_MOL_IN_EV
    atoms.calc = None
    atoms.info["energy"] = energy
    atoms.arrays["forces"] = forces
ase.io.write("ethanol_100_eV.xyz", frames, format="extxyz")
