"""Multiple-time-step (RESPA) molecular dynamics for ASE, with direct forces.

:class:`MultipleTimeStep` is an :class:`ase.md.md.MolecularDynamics`: ``run(steps)``,
``attach(observer, interval)``, ``trajectory=``, ``logfile=`` work as for
:class:`ase.md.VelocityVerlet`, and ``step()`` returns the forces at the new
positions. One ``step()`` advances the outer time step ``timestep`` and is made of
``stride`` (M) inner velocity-Verlet steps of ``timestep / M``.

The forces come from a :class:`~metatrain_nc.force_models.force_split.ForceSplit`
(built once at the API boundary by
:func:`~metatrain_nc.force_models.force_split.force_split`): the inner steps use its
fast forces ``F_fast``; when it splits (``forces="mts"``: r-RESPA, Tuckerman, Berne,
Martyna 1992) the outer level kicks the velocities with the correction
``F_slow - F_fast`` for ``timestep / 2`` at both ends of the outer step, the last
inner evaluation of each outer step being the split's ``both`` (one call for a hybrid
model: an outer step costs ``M`` forward passes and one backward pass). A split that
does not split (``forces="conservative"`` / ``"direct"``) is plain velocity Verlet
at ``timestep / M`` with one call per inner step: the three modes run the same number
of steps over the same time, so they compare like for like.

With ``stride=1`` and ``forces="mts"`` the update is velocity Verlet with the slow
model's conservative forces (to round-off). Thermostats act for ``timestep / 2``
before and after the outer step (symmetric splitting); their energy exchange enters
:meth:`conserved_energy`. ASE constraints ``FixAtoms`` and ``FixCom`` are honoured
(forces, momenta and positions adjusted as ASE's own integrators do); others are
refused. The start momenta are put under the constraints when the dynamics is built
(fixed atoms at rest, no centre-of-mass motion with ``FixCom``), and the thermostats
act on the free motion only: their noise and friction on what the constraints
leave, their energy exchange the kinetic-energy change of the momenta the atoms get
(after the constraints), so that :meth:`conserved_energy` holds with constraints as
without. If the positions change between ``run()`` calls, the forces are recomputed.

The integrator never touches ``atoms.calc``: it keeps its last evaluation
(:attr:`MultipleTimeStep.last`) and reports from it (:meth:`~MultipleTimeStep.forces`,
:meth:`~MultipleTimeStep.potential_energy`, :meth:`~MultipleTimeStep.snapshot`);
ASE's ``trajectory=`` and ``logfile=`` write the same frames and lines as with a
calculator attached (energy, and the forces of record: the slow ones).

A model that fails during a step (non-finite energies or forces, an ASE calculator
that raises: :class:`~metatrain_nc.errors.ModelError`), or positions that become
non-finite, stop the run with :class:`~.monitor.RunawayError`: the atoms are put back
where the last completed step left them, so the trajectory so far stays consistent.
A model that fails on the start structure raises its
:class:`~metatrain_nc.errors.ModelError` from the constructor (nothing has run).
"""

from typing import IO, Any, List, Optional, Union

import ase
import numpy as np
from ase import units
from ase.md.md import MolecularDynamics

from ..errors import ModelError, UserInputError
from ..force_models.base import ForceModel, ForceResult
from ..force_models.force_split import (
    ForceSplit,
    check_force_mode,
    correction,
    fast_forces,
    force_split,
    slow_forces,
)
from .constraints import check_constraints, degrees_of_freedom
from .integrator_io import IntegratorOutputs
from .monitor import RunawayError
from .thermostats import LangevinThermostat, SVRThermostat, Thermostat

ENSEMBLES = ("nve", "svr", "langevin")


class MultipleTimeStep(IntegratorOutputs, MolecularDynamics):
    """RESPA molecular dynamics on a force split (MTS, conservative or direct).

    :param atoms: the structure; its momenta are the initial velocities. Its
        ``calc`` is left alone (the integrator reports energies and forces itself).
    :param timestep: outer time step (ASE time units, e.g. ``4 * ase.units.fs``).
    :param split: the forces: a
        :class:`~metatrain_nc.force_models.force_split.ForceSplit` (built once by
        :func:`~metatrain_nc.force_models.force_split.force_split`), or, as a
        convenience, a model (anything
        :func:`~metatrain_nc.force_models.load_force_model` takes) that becomes one
        with ``forces`` and ``fast``.
    :param forces: with a model: ``"mts"`` (default), ``"conservative"`` or
        ``"direct"``; with a split: ``None`` or the split's own mode.
    :param stride: M, inner steps per outer step (>= 1).
    :param ensemble: ``"nve"``, ``"svr"`` (Bussi) or ``"langevin"``.
    :param temperature_K: thermostat target (K); required for ``svr``/``langevin``.
    :param tau: thermostat relaxation time (ASE time units); required for
        ``svr``/``langevin`` (Langevin friction is ``1 / tau``).
    :param rng: numpy generator (or seed) for the thermostat noise.
    :param trajectory, logfile, loginterval: as for :class:`ase.md.VelocityVerlet`
        (frames and log lines carry the integrator's energy and forces of record).
    :param fast: with a model and ``forces="mts"`` only: a separate model for the
        inner steps (its direct head if it has one, else its forces); default:
        ``model``'s direct head.
    :param model: the same as ``split`` (the name of the model keyword before the
        force-split protocol).
    """

    def __init__(
        self,
        atoms: ase.Atoms,
        timestep: float,
        split: Union[ForceSplit, Any] = None,
        forces: Optional[str] = None,
        stride: int = 8,
        ensemble: str = "nve",
        temperature_K: Optional[float] = None,
        tau: Optional[float] = None,
        rng: Union[None, int, np.random.Generator] = None,
        trajectory: Optional[str] = None,
        logfile: Union[IO, str, None] = None,
        loginterval: int = 1,
        fast: Any = None,
        model: Any = None,
        **kwargs,
    ):
        if (split is None) == (model is None):
            raise UserInputError(
                "give the dynamics one force split (or model): split=... or model=..."
            )
        split = split if model is None else model
        if not isinstance(split, ForceSplit):
            check_force_mode("mts" if forces is None else forces, fast)
        self._check_arguments(timestep, stride, ensemble)
        check_constraints(atoms)
        #: the force split driving the atoms
        self.split: ForceSplit = force_split(split, forces, fast)
        self.stride = int(stride)
        #: what the split's check says about the structure (a pair's cutoff mismatch)
        self.pair_warnings: List[str] = self.split.check(atoms)
        if not isinstance(rng, np.random.Generator):
            rng = np.random.default_rng(rng)
        self.rng = rng
        self.ensemble = ensemble
        self.temperature_K = temperature_K
        self.thermostat = self._make_thermostat(atoms, temperature_K, tau)
        #: kinetic energy taken out by the thermostat so far (eV)
        self.thermostat_energy = 0.0
        #: the last evaluation (constraints applied), at :attr:`_evaluated_at`
        self.last: Optional[ForceResult] = None
        self._evaluated_at: Optional[np.ndarray] = None
        append = kwargs.pop("append_trajectory", False)
        master = kwargs.pop("master", None)
        super().__init__(
            atoms,
            timestep,
            trajectory=None,
            logfile=None,
            loginterval=loginterval,
            **kwargs,
        )
        if trajectory is not None:
            self._attach_trajectory(trajectory, loginterval, append, master)
        if logfile:
            self._attach_logger(logfile, loginterval)
        if atoms.constraints:
            # the first kick would drop the fixed atoms' (or the centre of mass's)
            # start motion unaccounted: start from the constrained momenta
            atoms.set_momenta(atoms.get_momenta(), apply_constraint=True)
        self._evaluate(outer=True, where="the start structure of the dynamics")

    # -- what other code reads -------------------------------------------------------
    @property
    def provider(self) -> ForceModel:
        """The model of record (energy, slow forces): ``split.model``."""
        return self.split.model

    @property
    def force_mode(self) -> str:
        """``"mts"``, ``"conservative"`` or ``"direct"`` (``split.mode``)."""
        return self.split.mode

    @staticmethod
    def _check_arguments(timestep, stride, ensemble) -> None:
        if not (np.isfinite(timestep) and timestep > 0):
            raise UserInputError(f"the time step must be positive, got {timestep}")
        if int(stride) != stride or stride < 1:
            raise UserInputError(f"the stride M must be an integer >= 1, got {stride}")
        if ensemble not in ENSEMBLES:
            raise UserInputError(
                f"unknown ensemble '{ensemble}'; choose one of {list(ENSEMBLES)}"
            )

    def _make_thermostat(self, atoms, temperature_K, tau) -> Thermostat:
        if self.ensemble == "nve":
            return Thermostat()
        if temperature_K is None or not temperature_K > 0:
            raise UserInputError(f"ensemble '{self.ensemble}' needs a temperature > 0")
        if tau is None or not tau > 0:
            raise UserInputError(f"ensemble '{self.ensemble}' needs a tau > 0")
        if self.ensemble == "svr":
            ndof = degrees_of_freedom(atoms, momentum_conserved=True)
            return SVRThermostat(temperature_K, tau, ndof, self.rng)
        return LangevinThermostat(temperature_K, tau, self.rng)

    # -- forces --------------------------------------------------------------------
    def _where(self) -> str:
        """How errors name the structure of the step being made."""
        time_fs = self.get_time() / units.fs
        return (
            f"the structure of outer step {self.nsteps + 1} of the dynamics "
            f"(from t = {time_fs:.2f} fs)"
        )

    def _evaluate(self, outer: bool, where: Optional[str] = None) -> ForceResult:
        """Evaluate the forces needed at the current positions (constraints applied)
        and keep them: the split's ``both`` at outer steps, its ``fast`` else.
        ``where`` names the structure in errors (default: the step being made)."""
        where = where or self._where()
        if outer:
            result = self.split.both(self.atoms, where)
        else:
            result = self.split.fast(self.atoms, where)
        self._constrain(result)
        self.last = result
        self._evaluated_at = self.atoms.get_positions()
        return result

    def _constrain(self, result: ForceResult) -> None:
        for forces in (result.conservative, result.direct):
            if forces is not None:
                for constraint in self.atoms.constraints:
                    constraint.adjust_forces(self.atoms, forces)

    def _forces_are_current(self) -> bool:
        at = self._evaluated_at
        return at is not None and np.array_equal(at, self.atoms.positions)

    # -- integration ----------------------------------------------------------------
    def _constrain_momenta(self, momenta: np.ndarray) -> None:
        """Apply the constraints to ``momenta`` in place (as ``set_momenta`` does)."""
        for constraint in self.atoms.constraints:
            constraint.adjust_momenta(self.atoms, momenta)

    def _thermostat(self, dt: float) -> None:
        if self.ensemble == "nve":
            return
        # the thermostat counts the energy of the momenta after the constraints:
        # noise given to fixed atoms (or to the centre of mass under FixCom) and
        # removed by the constraints is no energy exchange
        momenta, taken = self.thermostat.apply(
            self.atoms.get_momenta(), self.masses, dt, self._constrain_momenta
        )
        self.atoms.set_momenta(momenta, apply_constraint=False)
        self.thermostat_energy += taken

    def _kick(self, forces: np.ndarray, dt: float) -> None:
        self.atoms.set_momenta(self.atoms.get_momenta() + dt * forces)

    def step(self) -> np.ndarray:
        """One outer step: ``stride`` inner velocity-Verlet steps (see module doc).

        :return: the forces of record at the new positions (eV/A, (N, 3)): the
            split's slow forces (conservative for ``conservative`` and ``mts``,
            direct for ``direct``), as :meth:`forces` reports them.
        :raises RunawayError: a model failed during the step (non-finite values, an
            ASE calculator that raised) or the positions became non-finite; the
            atoms are back where the last completed step left them.
        """
        saved = (
            self.atoms.get_positions(),
            self.atoms.get_momenta(),
            self.thermostat_energy,
            self.last,
            self._evaluated_at,
        )
        try:
            return self._step()
        except ModelError as error:
            self._restore(saved)
            raise RunawayError(f"runaway: {error}") from error
        except RunawayError:
            self._restore(saved)
            raise

    def _restore(self, saved) -> None:
        positions, momenta, self.thermostat_energy, self.last, evaluated_at = saved
        self.atoms.set_positions(positions, apply_constraint=False)
        self.atoms.set_momenta(momenta, apply_constraint=False)
        self._evaluated_at = evaluated_at

    def _check_positions(self) -> None:
        if not np.all(np.isfinite(self.atoms.positions)):
            raise RunawayError(
                "runaway: non-finite positions in outer step "
                f"{self.nsteps + 1} (from t = {self.get_time() / units.fs:.2f} fs): "
                "the forces or velocities overflowed"
            )

    def _step(self) -> np.ndarray:
        if not self._forces_are_current():
            # positions changed since the last evaluation (e.g. between run() calls)
            self._evaluate(outer=True)
        dt = self.dt
        h = dt / self.stride
        split = self.split
        self._thermostat(0.5 * dt)
        result = self.last
        if split.splits:
            self._kick(correction(split, result), 0.5 * dt)
        for inner in range(self.stride):
            self._kick(fast_forces(split, result), 0.5 * h)
            velocities = self.atoms.get_momenta() / self.masses
            self.atoms.set_positions(self.atoms.get_positions() + h * velocities)
            self._check_positions()
            result = self._evaluate(outer=inner == self.stride - 1)
            self._kick(fast_forces(split, result), 0.5 * h)
        if split.splits:
            self._kick(correction(split, result), 0.5 * dt)
        self._thermostat(0.5 * dt)
        return slow_forces(split, result).copy()

    def _refresh_properties(self) -> None:
        # forces of the current positions are cached by _evaluate
        return None

    # -- observables -----------------------------------------------------------------
    def forces(self) -> np.ndarray:
        """The forces of record at the current positions (eV/A, (N, 3), a copy):
        the split's slow forces (what ``step()`` returns)."""
        if not self._forces_are_current():
            self._evaluate(outer=True)
        return slow_forces(self.split, self.last).copy()

    def potential_energy(self) -> float:
        """Potential energy (eV) at the current positions (the slow model's energy)."""
        if not self._forces_are_current():
            self._evaluate(outer=True)
        return float(self.last.energy)

    def kinetic_energy(self) -> float:
        """Kinetic energy (eV)."""
        return float(self.atoms.get_kinetic_energy())

    def conserved_energy(self) -> float:
        """``E_pot + E_kin + energy taken by the thermostat`` (eV): constant for exact
        conservative dynamics in every ensemble."""
        return self.potential_energy() + self.kinetic_energy() + self.thermostat_energy

    @property
    def degrees_of_freedom(self) -> int:
        """Kinetic degrees of freedom of the temperature (see
        :func:`~.constraints.degrees_of_freedom`)."""
        return degrees_of_freedom(
            self.atoms, momentum_conserved=self.ensemble != "langevin"
        )

    def temperature(self) -> float:
        """Kinetic temperature ``2 K / (n_dof k_B)`` (K)."""
        return 2.0 * self.kinetic_energy() / (self.degrees_of_freedom * units.kB)

    def force_difference(self) -> Optional[np.ndarray]:
        """``|F_slow - F_fast|`` (or ``|F_c - F_nc|``) per atom (eV/A, shape ``(N,)``)
        at the current positions, when the last evaluation returned both."""
        last = self.last
        if last is None or last.conservative is None or last.direct is None:
            return None
        return np.linalg.norm(last.conservative - last.direct, axis=1)

    def todict(self):
        data = super().todict()
        data.update(
            {
                "forces": self.split.mode,
                "stride": self.stride,
                "ensemble": self.ensemble,
                "temperature_K": self.temperature_K,
                "fast": self.split.describe()["fast"],
            }
        )
        return data
