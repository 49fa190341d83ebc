"""Per-replica monitors of a torch-sim batch, with the ASE path's own code.

:class:`ReplicaView` shows one system of an :class:`~.integrator.MTSState` as the
ASE dynamics object that :class:`~metatrain_nc.dynamics.monitor.Monitor` and
:class:`~metatrain_nc.dynamics.outputs.TrajectoryWriter` read (``atoms``,
``nsteps``, ``get_time()``, energies, temperature, the last forces), so that each
replica gets the records, runaway stop, drift and equipartition verdicts, and files
of ``mtt-nc md``, word for word.
"""

from typing import Optional

import ase
import numpy as np
from ase import units

from ..force_models.base import ForceResult


class ReplicaView:
    """One replica of a batch, as the ASE dynamics of ``mtt-nc md``.

    :param atoms: the replica's start structure (copied; positions and momenta are
        updated by :meth:`sync`).
    :param dt: outer time step (ASE time units).
    :param ensemble: ``"nve"``, ``"svr"`` or ``"langevin"``.
    :param degrees_of_freedom: kinetic degrees of freedom of its temperature.
    """

    def __init__(self, atoms: ase.Atoms, dt: float, ensemble: str, degrees_of_freedom):
        self.atoms = atoms.copy()
        self.atoms.calc = None
        self.dt = float(dt)
        self.ensemble = ensemble
        self.degrees_of_freedom = int(degrees_of_freedom)
        self.nsteps = 0
        self.last: Optional[ForceResult] = None
        self._energy = float("nan")
        self._conserved_offset = 0.0

    def sync(self, state, index: int) -> None:
        """Copy system ``index`` of ``state`` (an ``MTSState``) into the view."""
        md = state.md
        atoms = (md.system_idx == index).nonzero().reshape(-1)
        positions = md.positions[atoms].detach().cpu().numpy().astype(np.float64)
        momenta = md.momenta[atoms].detach().cpu().numpy().astype(np.float64)
        self.atoms.set_positions(positions, apply_constraint=False)
        self.atoms.set_momenta(momenta, apply_constraint=False)
        self.nsteps = int(state.nsteps)
        self._energy = float(md.energy[index])
        self._conserved_offset = float(state.thermostat_energy[index])
        conservative = state.conservative
        direct = state.direct
        self.last = ForceResult(
            energy=self._energy,
            conservative=None
            if conservative is None
            else conservative[atoms].detach().cpu().numpy().astype(np.float64),
            direct=None
            if direct is None
            else direct[atoms].detach().cpu().numpy().astype(np.float64),
        )

    def keep(self, positions: np.ndarray, momenta: np.ndarray, nsteps: int) -> None:
        """Put back a frame (the last completed step of a replica that ran away)."""
        self.atoms.set_positions(positions, apply_constraint=False)
        self.atoms.set_momenta(momenta, apply_constraint=False)
        self.nsteps = nsteps

    def get_time(self) -> float:
        return self.nsteps * self.dt

    def potential_energy(self) -> float:
        return self._energy

    def kinetic_energy(self) -> float:
        return float(self.atoms.get_kinetic_energy())

    def conserved_energy(self) -> float:
        return self.potential_energy() + self.kinetic_energy() + self._conserved_offset

    def temperature(self) -> float:
        return 2.0 * self.kinetic_energy() / (self.degrees_of_freedom * units.kB)

    def force_difference(self) -> Optional[np.ndarray]:
        last = self.last
        if last is None or last.conservative is None or last.direct is None:
            return None
        return np.linalg.norm(last.conservative - last.direct, axis=1)
