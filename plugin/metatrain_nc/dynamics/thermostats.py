"""Thermostat half-steps acting on velocities: Bussi (SVR) and Langevin.

Each thermostat acts on momenta for a time ``dt`` (ASE time units) and returns the
kinetic energy it took out of the system (eV; negative when it added energy), which
the integrator accumulates into the conserved quantity ``E_pot + E_kin + sum(taken)``.
With constraints, ``constrain`` (the constraints' momentum adjustment, e.g. ASE's
``FixAtoms``/``FixCom``) is applied to the new momenta before the energy is counted:
the energy taken is the kinetic-energy change of the momenta returned, those the
system actually gets (fixed atoms stay at rest, the centre of mass does not move), as
ASE's ``Langevin`` leaves the momenta with these constraints.

- :class:`SVRThermostat`: stochastic velocity rescaling (G. Bussi, D. Donadio,
  M. Parrinello, J. Chem. Phys. 126, 014101 (2007)), global: all velocities scaled by
  one factor drawn so that the kinetic energy follows the canonical distribution with
  relaxation time ``tau``.
- :class:`LangevinThermostat`: per-atom Ornstein-Uhlenbeck update
  ``v <- c v + sqrt((1 - c^2) kT / m) xi`` with ``c = exp(-dt / tau)`` (friction
  ``1/tau``), exact for the free particle; on the free atoms only with ``FixAtoms``.
- :func:`correlation_time_fs`: how long each keeps the temperature correlated (what
  the error bars of a thermostatted run's mean temperature must allow for).
"""

import math
from typing import Callable, Optional

import numpy as np
from ase import units

#: a momentum adjustment applied in place (the constraints of the atoms)
Constrain = Optional[Callable[[np.ndarray], None]]


def kinetic_energy(momenta: np.ndarray, masses: np.ndarray) -> float:
    """``sum p^2 / 2m`` (eV)."""
    return 0.5 * float(np.sum(momenta**2 / masses))


class Thermostat:
    """Base class: ``apply(momenta, masses, dt, constrain) -> (momenta, energy taken,
    eV)``; ``momenta`` are expected to satisfy the constraints already, the momenta
    returned satisfy them (``constrain`` applied) and the energy taken is the
    kinetic-energy change between the two."""

    name = "nve"

    def apply(
        self,
        momenta: np.ndarray,
        masses: np.ndarray,
        dt: float,
        constrain: Constrain = None,
    ):
        return momenta, 0.0

    @staticmethod
    def _taken(before: float, new: np.ndarray, masses, constrain: Constrain):
        """``(new momenta with the constraints applied, before - their kinetic
        energy)``."""
        if constrain is not None:
            constrain(new)
        return new, before - kinetic_energy(new, masses)


class SVRThermostat(Thermostat):
    """Bussi stochastic velocity rescaling.

    :param temperature_K: target temperature (K).
    :param tau: relaxation time (ASE time units).
    :param ndof: number of degrees of freedom (``3N - 3`` when the total momentum is
        conserved, ``3N`` otherwise).
    :param rng: numpy random generator.
    """

    name = "svr"

    def __init__(
        self,
        temperature_K: float,
        tau: float,
        ndof: int,
        rng: Optional[np.random.Generator] = None,
    ):
        self.temperature_K = float(temperature_K)
        self.tau = float(tau)
        self.ndof = int(ndof)
        self.rng = rng if rng is not None else np.random.default_rng()

    def apply(
        self,
        momenta: np.ndarray,
        masses: np.ndarray,
        dt: float,
        constrain: Constrain = None,
    ):
        kinetic = kinetic_energy(momenta, masses)
        if kinetic <= 0.0:
            return momenta, 0.0
        target = 0.5 * self.ndof * units.kB * self.temperature_K
        c = math.exp(-dt / self.tau) if self.tau > 0 else 0.0
        r1 = self.rng.standard_normal()
        # sum of (ndof - 1) squared standard normals: a chi-squared variable
        rest = (
            2.0 * self.rng.standard_gamma(0.5 * (self.ndof - 1)) if self.ndof > 1 else 0
        )
        per_dof = target / self.ndof
        new = (
            c * kinetic
            + (1.0 - c) * per_dof * (r1 * r1 + rest)
            + 2.0 * r1 * math.sqrt(c * (1.0 - c) * kinetic * per_dof)
        )
        scale = math.sqrt(max(new, 0.0) / kinetic)
        # the sign keeps the update a continuous map of the random numbers
        if r1 + math.sqrt(c * kinetic / ((1.0 - c) * per_dof + 1e-300)) < 0.0:
            scale = -scale
        # a global scaling keeps fixed atoms at rest and the centre of mass still;
        # the constraints are applied anyway and the energy counted after them
        return self._taken(kinetic, momenta * scale, masses, constrain)


class LangevinThermostat(Thermostat):
    """Langevin (white-noise) thermostat acting on each atom.

    :param temperature_K: target temperature (K).
    :param tau: relaxation time ``1 / friction`` (ASE time units).
    :param rng: numpy random generator.
    """

    name = "langevin"

    def __init__(
        self,
        temperature_K: float,
        tau: float,
        rng: Optional[np.random.Generator] = None,
    ):
        self.temperature_K = float(temperature_K)
        self.tau = float(tau)
        self.rng = rng if rng is not None else np.random.default_rng()

    def apply(
        self,
        momenta: np.ndarray,
        masses: np.ndarray,
        dt: float,
        constrain: Constrain = None,
    ):
        before = kinetic_energy(momenta, masses)
        c = math.exp(-dt / self.tau)
        sigma = np.sqrt((1.0 - c * c) * units.kB * self.temperature_K * masses)
        # noise for every atom (the same random numbers with or without
        # constraints), then the constraints take it off what they hold: fixed atoms
        # stay at rest, FixCom removes the centre-of-mass part (as ASE's Langevin)
        noise = self.rng.standard_normal(momenta.shape)
        new = c * momenta + sigma * noise
        return self._taken(before, new, masses, constrain)


def correlation_time_fs(ensemble: str, tau_fs: Optional[float]) -> Optional[float]:
    """How long a thermostatted run's temperature stays correlated at least (fs):
    the relaxation time of its total energy. Langevin (friction ``1 / tau``) takes the
    kinetic energy's excess out at ``2 / tau`` and, with the potential energy holding
    about as much, the total energy's at ``1 / tau``: ``tau``; SVR relaxes the
    kinetic energy in ``tau``, the total energy in ``2 tau``. ``None`` in NVE or
    without a ``tau``."""
    if not tau_fs or not tau_fs > 0:
        return None
    return {"langevin": 1.0, "svr": 2.0}.get(ensemble, 0.0) * float(tau_fs) or None
