"""The recording observer of an MD run (:class:`~.integrator.MultipleTimeStep` or any
ASE dynamics with its energy methods).

:class:`Monitor` is an ASE observer: ``dyn.attach(monitor, interval=k)`` records, every
``k`` outer steps, one row of :data:`COLUMNS` plus one temperature per species, and
stops a runaway run by raising :class:`RunawayError` (the check is
:func:`runaway_message`). What the rows say is computed by
:mod:`.statistics` and judged by :mod:`.verdicts`.

Temperatures: total ``2 K / ((3N - 3) k_B)``; per species ``2 K_s / (3 N_s k_B)``
(:func:`species_degrees_of_freedom` and :attr:`Monitor.species_scale` correct the
latter for the centre-of-mass motion).
"""

import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional

import numpy as np
from ase import units
from ase.data import chemical_symbols

#: columns of every record (units in the names)
COLUMNS = [
    "step",
    "time_fs",
    "potential_eV",
    "kinetic_eV",
    "total_eV",
    "conserved_eV",
    "temperature_K",
]


def runaway_message(
    row: Mapping[str, float], positions: np.ndarray, bound: Optional[float]
) -> Optional[str]:
    """Why a run that recorded ``row`` (with atoms at ``positions``) must stop: a
    non-finite value, or a temperature above ``bound`` (K; ``None``: no bound);
    ``None`` when it may go on."""
    bad = [k for k, v in row.items() if not math.isfinite(v)]
    if bad or not np.all(np.isfinite(positions)):
        return (
            f"non-finite values at step {row['step']} (t = {row['time_fs']:.1f} "
            f"fs): {bad or ['positions']}"
        )
    if bound is not None and row["temperature_K"] > bound:
        return (
            f"runaway: temperature {row['temperature_K']:.0f} K above the bound "
            f"{bound:.0f} K at step {row['step']} (t = {row['time_fs']:.1f} fs)"
        )
    return None


class RunawayError(RuntimeError):
    """The simulation ran away (too hot or non-finite); the message says why."""


@dataclass
class Monitor:
    """Records energies and temperatures; stops runaways.

    :param dyn: the dynamics (a :class:`~.integrator.MultipleTimeStep`).
    :param max_temperature_K: stop when the temperature exceeds it (``None``: no bound).
    :param callback: called with each new row (e.g. a progress bar update).
    """

    dyn: Any
    max_temperature_K: Optional[float] = None
    rows: List[Dict[str, float]] = field(default_factory=list)
    callback: Any = None

    def __post_init__(self):
        numbers = self.dyn.atoms.numbers
        self.species = [
            chemical_symbols[z] for z in sorted(set(int(z) for z in numbers))
        ]
        self._masks = {
            chemical_symbols[z]: numbers == z
            for z in sorted(set(int(z) for z in numbers))
        }
        #: kinetic degrees of freedom of each species (see
        #: :func:`species_degrees_of_freedom`)
        self.species_dof = species_degrees_of_freedom(
            self.dyn.atoms, getattr(self.dyn, "ensemble", "nve") != "langevin"
        )
        #: factors turning the recorded ``2 K_s / (3 N_s k_B)`` into the species
        #: temperature with its own degrees of freedom, for
        #: :func:`~.verdicts.equipartition`
        self.species_scale = {
            symbol: (3.0 * float(mask.sum()) / self.species_dof[symbol])
            if self.species_dof[symbol] > 0
            else 0.0
            for symbol, mask in self._masks.items()
        }

    @property
    def columns(self) -> List[str]:
        """All column names: :data:`COLUMNS` then ``temperature_<X>_K`` per species."""
        return COLUMNS + [f"temperature_{s}_K" for s in self.species]

    def __call__(self) -> None:
        dyn = self.dyn
        atoms = dyn.atoms
        momenta = atoms.get_momenta()
        masses = atoms.get_masses()[:, None]
        per_atom_kinetic = 0.5 * np.sum(momenta**2 / masses, axis=1)
        row = {
            "step": int(dyn.nsteps),
            "time_fs": dyn.get_time() / units.fs,
            "potential_eV": dyn.potential_energy(),
            "kinetic_eV": dyn.kinetic_energy(),
        }
        row["total_eV"] = row["potential_eV"] + row["kinetic_eV"]
        row["conserved_eV"] = dyn.conserved_energy()
        row["temperature_K"] = dyn.temperature()
        for symbol, mask in self._masks.items():
            kinetic = float(per_atom_kinetic[mask].sum())
            row[f"temperature_{symbol}_K"] = 2.0 * kinetic / (3 * mask.sum() * units.kB)
        self.rows.append(row)
        if self.callback is not None:
            self.callback(row)
        message = runaway_message(row, atoms.positions, self.max_temperature_K)
        if message is not None:
            raise RunawayError(message)


def species_degrees_of_freedom(
    atoms, momentum_conserved: bool = True
) -> Dict[str, float]:
    """Kinetic degrees of freedom of each species: ``3 N_s`` (free atoms: those not
    held by ``FixAtoms``) less the species' share of the centre-of-mass motion,
    ``3 M_s / M``, when the total momentum is conserved (NVE, SVR; ``FixCom``).

    Their sum is the ``3N - 3`` of the total temperature. Without the correction,
    a species of heavy atoms looks colder than the rest in a small system (8 waters
    at zero total momentum: oxygen 11% below the target).
    """
    from ase.constraints import FixAtoms, FixCom

    numbers = atoms.numbers
    free = np.ones(len(atoms), dtype=bool)
    com = momentum_conserved
    for constraint in atoms.constraints:
        if isinstance(constraint, FixAtoms):
            free[constraint.index] = False
            com = False  # pinned atoms take the momentum
    if any(isinstance(c, FixCom) for c in atoms.constraints):
        com = True
    masses = atoms.get_masses()
    total = float(masses[free].sum())
    dof = {}
    for z in sorted(set(int(z) for z in numbers)):
        mask = (numbers == z) & free
        value = 3.0 * float(mask.sum())
        if com and total > 0:
            value -= 3.0 * float(masses[mask].sum()) / total
        dof[chemical_symbols[z]] = value
    return dof
