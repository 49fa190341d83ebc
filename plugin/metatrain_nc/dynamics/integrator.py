"""Multiple-time-step (RESPA) molecular dynamics for ASE, with direct forces.

:class:`MultipleTimeStep` is an :class:`ase.md.md.MolecularDynamics`: ``run(steps)``,
``attach(observer, interval)``, ``trajectory=``, ``logfile=`` work as for
:class:`ase.md.VelocityVerlet`. One ``step()`` advances the outer time step ``timestep``
and is made of ``stride`` (M) inner velocity-Verlet steps of ``timestep / M``:

- ``forces="mts"`` (r-RESPA, Tuckerman, Berne, Martyna 1992): the inner steps use the
  direct forces ``F_nc`` (forward pass only); the outer level kicks the velocities with
  the correction ``F_c - F_nc`` for ``timestep / 2`` at both ends of the outer step.
  The last inner evaluation of each outer step returns ``F_c`` and ``F_nc`` from one
  model call, so an outer step costs ``M`` forward passes and one backward pass.
- ``forces="conservative"`` / ``"direct"``: all M inner steps use ``F_c`` / ``F_nc``
  (plain velocity Verlet at ``timestep / M``): the three modes run the same number of
  steps over the same time, so they compare like for like.

With ``stride=1`` and ``forces="mts"`` the update is velocity Verlet with conservative
forces (to round-off). Thermostats act for ``timestep / 2`` before and after the
outer step (symmetric splitting); their energy exchange enters :meth:`conserved_energy`.
"""

from typing import IO, Optional, Union

import ase
import numpy as np
from ase import units
from ase.md.md import MolecularDynamics

from ..errors import UserInputError
from .forces import FORCE_MODES, ForceResult, ModelCalculator, load_force_model
from .thermostats import LangevinThermostat, SVRThermostat, Thermostat

ENSEMBLES = ("nve", "svr", "langevin")


def degrees_of_freedom(atoms: ase.Atoms) -> int:
    """``3N - 3`` (total momentum conserved; at least 1)."""
    return max(3 * len(atoms) - 3, 1)


class MultipleTimeStep(MolecularDynamics):
    """RESPA molecular dynamics with conservative, direct or MTS forces.

    :param atoms: the structure; its momenta are the initial velocities.
    :param timestep: outer time step (ASE time units, e.g. ``4 * ase.units.fs``).
    :param model: a :class:`~metatrain_nc.dynamics.forces.ModelForces`, an exported
        model path (``.pt``), a metatrain checkpoint (``.ckpt``) or a model object.
    :param forces: ``"mts"``, ``"conservative"`` or ``"direct"``.
    :param stride: M, inner steps per outer step (>= 1).
    :param ensemble: ``"nve"``, ``"svr"`` (Bussi) or ``"langevin"``.
    :param temperature_K: thermostat target (K); required for ``svr``/``langevin``.
    :param tau: thermostat relaxation time (ASE time units); required for
        ``svr``/``langevin`` (Langevin friction is ``1 / tau``).
    :param rng: numpy generator (or seed) for the thermostat noise.
    :param trajectory, logfile, loginterval: as for :class:`ase.md.VelocityVerlet`.
    """

    def __init__(
        self,
        atoms: ase.Atoms,
        timestep: float,
        model,
        forces: str = "mts",
        stride: int = 8,
        ensemble: str = "nve",
        temperature_K: Optional[float] = None,
        tau: Optional[float] = None,
        rng: Union[None, int, np.random.Generator] = None,
        trajectory: Optional[str] = None,
        logfile: Union[IO, str, None] = None,
        loginterval: int = 1,
        **kwargs,
    ):
        if forces not in FORCE_MODES:
            raise UserInputError(
                f"unknown force mode '{forces}'; choose one of {list(FORCE_MODES)}"
            )
        if not (np.isfinite(timestep) and timestep > 0):
            raise UserInputError(f"the time step must be positive, got {timestep}")
        if int(stride) != stride or stride < 1:
            raise UserInputError(f"the stride M must be an integer >= 1, got {stride}")
        if ensemble not in ENSEMBLES:
            raise UserInputError(
                f"unknown ensemble '{ensemble}'; choose one of {list(ENSEMBLES)}"
            )
        self.provider = load_force_model(model)
        self.force_mode = forces
        self.stride = int(stride)
        if forces != "conservative":
            self.provider.require_direct()
        self.provider.check_atoms(atoms)
        if not isinstance(rng, np.random.Generator):
            rng = np.random.default_rng(rng)
        self.rng = rng
        self.ensemble = ensemble
        self.thermostat: Thermostat = Thermostat()
        if ensemble != "nve":
            if temperature_K is None or not temperature_K > 0:
                raise UserInputError(f"ensemble '{ensemble}' needs a temperature > 0")
            if tau is None or not tau > 0:
                raise UserInputError(f"ensemble '{ensemble}' needs a tau > 0")
            if ensemble == "svr":
                self.thermostat = SVRThermostat(
                    temperature_K, tau, degrees_of_freedom(atoms), rng
                )
            else:
                self.thermostat = LangevinThermostat(temperature_K, tau, rng)
        self.temperature_K = temperature_K
        # the calculator reports the forces that drive the atoms in this mode (the
        # conservative ones at outer steps of MTS), cached from our own evaluations
        calc_mode = "direct" if forces == "direct" else "conservative"
        self.calc = ModelCalculator(self.provider, forces=calc_mode)
        atoms.calc = self.calc
        #: kinetic energy taken out by the thermostat so far (eV)
        self.thermostat_energy = 0.0
        self.last: Optional[ForceResult] = None
        super().__init__(
            atoms,
            timestep,
            trajectory=trajectory,
            logfile=logfile,
            loginterval=loginterval,
            **kwargs,
        )
        self._evaluate(outer=True)

    # -- forces --------------------------------------------------------------------
    def _evaluate(self, outer: bool) -> ForceResult:
        """Evaluate the forces needed at the current positions and cache them."""
        mode = self.force_mode
        conservative = mode == "conservative" or (mode == "mts" and outer)
        # the direct head costs nothing extra on a conservative pass: keep it when the
        # model has one (|F_c - F_nc| for monitors)
        direct = mode != "conservative" or self.provider.has_direct
        result = self.provider.evaluate(
            self.atoms, conservative=conservative, direct=direct
        )
        self.calc.store(self.atoms, result)
        self.last = result
        return result

    def _inner_forces(self, result: ForceResult) -> np.ndarray:
        if self.force_mode == "conservative":
            return result.conservative
        return result.direct

    # -- integration ----------------------------------------------------------------
    def _thermostat(self, dt: float) -> None:
        if self.ensemble == "nve":
            return
        momenta, taken = self.thermostat.apply(
            self.atoms.get_momenta(), self.masses, dt
        )
        self.atoms.set_momenta(momenta)
        self.thermostat_energy += taken

    def _kick(self, forces: np.ndarray, dt: float) -> None:
        momenta = self.atoms.get_momenta() + dt * forces
        self.atoms.set_momenta(momenta)

    def step(self) -> None:
        """One outer step: ``stride`` inner velocity-Verlet steps (see module doc)."""
        dt = self.dt
        h = dt / self.stride
        self._thermostat(0.5 * dt)
        result = self.last
        if self.force_mode == "mts":
            self._kick(result.conservative - result.direct, 0.5 * dt)
        for inner in range(self.stride):
            self._kick(self._inner_forces(result), 0.5 * h)
            positions = self.atoms.get_positions()
            velocities = self.atoms.get_momenta() / self.masses
            self.atoms.set_positions(positions + h * velocities)
            result = self._evaluate(outer=inner == self.stride - 1)
            self._kick(self._inner_forces(result), 0.5 * h)
        if self.force_mode == "mts":
            self._kick(result.conservative - result.direct, 0.5 * dt)
        self._thermostat(0.5 * dt)

    def _refresh_properties(self) -> None:
        # forces of the current positions are cached by _evaluate
        return None

    # -- observables -----------------------------------------------------------------
    def potential_energy(self) -> float:
        """Potential energy (eV) at the current positions (the ``energy`` output)."""
        return float(self.last.energy)

    def kinetic_energy(self) -> float:
        """Kinetic energy (eV)."""
        return float(self.atoms.get_kinetic_energy())

    def conserved_energy(self) -> float:
        """``E_pot + E_kin + energy taken by the thermostat`` (eV): constant for exact
        conservative dynamics in every ensemble."""
        return self.potential_energy() + self.kinetic_energy() + self.thermostat_energy

    def temperature(self) -> float:
        """Kinetic temperature ``2 K / (n_dof k_B)`` (K), ``n_dof = 3N - 3``."""
        return 2.0 * self.kinetic_energy() / (degrees_of_freedom(self.atoms) * units.kB)

    def force_difference(self) -> Optional[np.ndarray]:
        """``|F_c - F_nc|`` per atom (eV/A, shape ``(N,)``) at the current positions,
        when the last evaluation returned both, else ``None``."""
        last = self.last
        if last is None or last.conservative is None or last.direct is None:
            return None
        return np.linalg.norm(last.conservative - last.direct, axis=1)

    def todict(self):
        data = super().todict()
        data.update(
            {
                "forces": self.force_mode,
                "stride": self.stride,
                "ensemble": self.ensemble,
                "temperature_K": self.temperature_K,
            }
        )
        return data
