"""Initial velocities of a structure (reading structures: :mod:`metatrain_nc.files`)."""

import ase
import numpy as np
from ase.md.velocitydistribution import Stationary

try:  # ASE >= 3.29; MaxwellBoltzmannDistribution is deprecated there
    from ase.md.velocitydistribution import thermalize_momenta
except ImportError:  # pragma: no cover - older ASE
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    def thermalize_momenta(atoms, temperature_K, *, rng=None):
        MaxwellBoltzmannDistribution(atoms, temperature_K=temperature_K, rng=rng)


def has_velocities(atoms: ase.Atoms) -> bool:
    """Whether ``atoms`` carries non-zero momenta (e.g. from an extxyz ``momenta``)."""
    return atoms.has("momenta") and bool(np.any(atoms.get_momenta() != 0.0))


def maxwell_boltzmann(atoms: ase.Atoms, temperature_K: float, seed: int) -> None:
    """Draw momenta from the Maxwell-Boltzmann distribution at ``temperature_K`` (K)
    with numpy's generator seeded by ``seed`` (ASE's ``thermalize_momenta``), then
    remove the centre-of-mass motion (ASE's ``Stationary``, without rescaling: the
    remaining 3N - 3 degrees of freedom are at ``temperature_K``). Reproducible: the
    same seed gives the same momenta."""
    thermalize_momenta(atoms, temperature_K, rng=np.random.default_rng(seed))
    if len(atoms) > 1:
        Stationary(atoms, preserve_temperature=False)
