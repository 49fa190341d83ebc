"""Multiple-time-step (RESPA) molecular dynamics for ASE, with direct forces.

:class:`MultipleTimeStep` is an :class:`ase.md.md.MolecularDynamics`: ``run(steps)``,
``attach(observer, interval)``, ``trajectory=``, ``logfile=`` work as for
:class:`ase.md.VelocityVerlet`, and ``step()`` returns the forces at the new
positions. One ``step()`` advances the outer time step ``timestep`` and is made of
``stride`` (M) inner velocity-Verlet steps of ``timestep / M``:

- ``forces="mts"`` (r-RESPA, Tuckerman, Berne, Martyna 1992): the inner steps use the
  fast forces ``F_fast`` (the direct head of the model, or of a separate ``fast``
  model, or that model's forces if it has no direct head); the outer level kicks the
  velocities with the correction ``F_slow - F_fast`` (``F_slow``: the model's
  conservative forces) for ``timestep / 2`` at both ends of the outer step. With one
  hybrid model the last inner evaluation of each outer step returns both forces from
  one call: an outer step costs ``M`` forward passes and one backward pass.
- ``forces="conservative"`` / ``"direct"``: all M inner steps use ``F_c`` / ``F_nc``
  (plain velocity Verlet at ``timestep / M``): the three modes run the same number of
  steps over the same time, so they compare like for like.

With ``stride=1`` and ``forces="mts"`` the update is velocity Verlet with the slow
model's conservative forces (to round-off). Thermostats act for ``timestep / 2``
before and after the outer step (symmetric splitting); their energy exchange enters
:meth:`conserved_energy`. ASE constraints ``FixAtoms`` and ``FixCom`` are honoured
(forces, momenta and positions adjusted as ASE's own integrators do); others are
refused. If the positions change between ``run()`` calls, the forces are recomputed.

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
from ase.constraints import FixAtoms, FixCom
from ase.md.md import MolecularDynamics

from ..errors import ModelError, UserInputError
from ..force_models.base import ForceResult
from ..force_models.calculator import ModelCalculator
from ..force_models.loading import load_force_model
from ..force_models.names import CONSERVATIVE, DIRECT, FORCE_MODES
from ..force_models.pair import ForcePair
from .monitor import RunawayError
from .thermostats import LangevinThermostat, SVRThermostat, Thermostat

ENSEMBLES = ("nve", "svr", "langevin")

#: the ASE constraints the integrator honours
SUPPORTED_CONSTRAINTS = (FixAtoms, FixCom)


def degrees_of_freedom(atoms: ase.Atoms, momentum_conserved: bool = True) -> int:
    """Kinetic degrees of freedom (at least 1): ``3N``, less what the constraints
    remove, less 3 more when the total momentum is conserved (NVE, SVR without
    ``FixAtoms``; not Langevin, whose friction and noise act on every atom)."""
    removed = sum(int(c.get_removed_dof(atoms)) for c in atoms.constraints)
    pinned = any(isinstance(c, (FixAtoms, FixCom)) for c in atoms.constraints)
    if momentum_conserved and not pinned:
        removed += 3
    return max(3 * len(atoms) - removed, 1)


def check_constraints(atoms: ase.Atoms) -> None:
    """Raise :class:`UserInputError` for constraints the integrator cannot honour."""
    for constraint in atoms.constraints:
        if not isinstance(constraint, SUPPORTED_CONSTRAINTS):
            raise UserInputError(
                f"constraint {type(constraint).__name__} is not supported by the "
                "multiple-time-step integrator (it honours FixAtoms and FixCom); "
                "remove it (atoms.set_constraint()) or use ASE's own integrators"
            )


class MultipleTimeStep(MolecularDynamics):
    """RESPA molecular dynamics with conservative, direct or MTS forces.

    :param atoms: the structure; its momenta are the initial velocities.
    :param timestep: outer time step (ASE time units, e.g. ``4 * ase.units.fs``).
    :param model: the (slow) model: anything
        :func:`~metatrain_nc.force_models.load_force_model` takes (exported ``.pt``,
        ``.ckpt``, ``module:callable``, an ASE calculator, a force model).
    :param forces: ``"mts"``, ``"conservative"`` or ``"direct"``.
    :param stride: M, inner steps per outer step (>= 1).
    :param fast: ``forces="mts"`` only: a separate model for the inner steps (its
        direct head if it has one, else its forces); default: ``model``'s direct head.
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
        model: Any,
        forces: str = "mts",
        stride: int = 8,
        ensemble: str = "nve",
        temperature_K: Optional[float] = None,
        tau: Optional[float] = None,
        rng: Union[None, int, np.random.Generator] = None,
        trajectory: Optional[str] = None,
        logfile: Union[IO, str, None] = None,
        loginterval: int = 1,
        fast: Any = None,
        **kwargs,
    ):
        self._check_arguments(forces, timestep, stride, ensemble, fast)
        check_constraints(atoms)
        self.provider = load_force_model(model)
        self.force_mode = forces
        self.stride = int(stride)
        self.pair: Optional[ForcePair] = None
        #: what the pair's check says about the structure (cutoff mismatch)
        self.pair_warnings: List[str] = []
        if forces == "mts":
            fast_model = None if fast is None else load_force_model(fast)
            self.pair = ForcePair(self.provider, fast_model)
        else:
            self.provider.require(DIRECT if forces == DIRECT else CONSERVATIVE)
        self.provider.check(atoms)
        if self.pair is not None:
            self.pair_warnings = self.pair.check(atoms)
        if not isinstance(rng, np.random.Generator):
            rng = np.random.default_rng(rng)
        self.rng = rng
        self.ensemble = ensemble
        self.temperature_K = temperature_K
        self.thermostat = self._make_thermostat(atoms, temperature_K, tau)
        # the calculator reports the forces that drive the atoms in this mode (the
        # conservative ones at outer steps of MTS), cached from our own evaluations
        self.calc = ModelCalculator(
            self.provider, forces=DIRECT if forces == DIRECT else CONSERVATIVE
        )
        atoms.calc = self.calc
        #: kinetic energy taken out by the thermostat so far (eV)
        self.thermostat_energy = 0.0
        self.last: Optional[ForceResult] = None
        self._evaluated_at: Optional[np.ndarray] = None
        super().__init__(
            atoms,
            timestep,
            trajectory=trajectory,
            logfile=logfile,
            loginterval=loginterval,
            **kwargs,
        )
        self._evaluate(outer=True, where="the start structure of the dynamics")

    @staticmethod
    def _check_arguments(forces, timestep, stride, ensemble, fast) -> None:
        if forces not in FORCE_MODES:
            raise UserInputError(
                f"unknown force mode '{forces}'; choose one of {list(FORCE_MODES)}"
            )
        if fast is not None and forces != "mts":
            raise UserInputError(
                f"a fast model (--fast) drives the inner steps of multiple time "
                f"stepping: use --forces mts, or drop --fast for '{forces}' forces"
            )
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
        and cache them; ``result.direct`` holds the fast forces of MTS. ``where``
        names the structure in errors (default: the step being made)."""
        mode, provider = self.force_mode, self.provider
        where = where or self._where()
        if mode != "mts":
            conservative = mode == CONSERVATIVE
            # the direct head costs nothing extra on a conservative pass of a hybrid
            # model: keep it when the model has one (|F_c - F_nc| for monitors)
            direct = not conservative or (
                provider.kind == "metatomic" and provider.has_direct
            )
            result = provider.evaluate(
                self.atoms, conservative=conservative, direct=direct, where=where
            )
        elif self.pair.shared:
            result = provider.evaluate(
                self.atoms, conservative=outer, direct=True, where=where
            )
        else:
            result = self._evaluate_pair(outer, where)
        self._constrain(result)
        if outer or mode == DIRECT:
            self.calc.store(self.atoms, result)
        self.last = result
        self._evaluated_at = self.atoms.get_positions()
        return result

    def _evaluate_pair(self, outer: bool, where: str) -> ForceResult:
        fast, head = self.pair.fast, self.pair.inner_head
        inner = fast.evaluate(
            self.atoms,
            conservative=head == CONSERVATIVE,
            direct=head == DIRECT,
            where=where,
        )
        result = ForceResult(direct=inner.forces(head))
        if outer:
            slow = self.provider.evaluate(
                self.atoms, conservative=True, direct=False, where=where
            )
            result.energy = slow.energy
            result.conservative = slow.conservative
        return result

    def _constrain(self, result: ForceResult) -> None:
        for forces in (result.conservative, result.direct):
            if forces is not None:
                for constraint in self.atoms.constraints:
                    constraint.adjust_forces(self.atoms, forces)

    def _inner_forces(self, result: ForceResult) -> np.ndarray:
        if self.force_mode == CONSERVATIVE:
            return result.conservative
        return result.direct

    def _forces_are_current(self) -> bool:
        at = self._evaluated_at
        return at is not None and np.array_equal(at, self.atoms.positions)

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
        self.atoms.set_momenta(self.atoms.get_momenta() + dt * forces)

    def step(self) -> np.ndarray:
        """One outer step: ``stride`` inner velocity-Verlet steps (see module doc).

        :return: the forces at the new positions (eV/A, (N, 3)): the conservative
            ones for ``conservative`` and ``mts``, the direct ones for ``direct``, as
            ``atoms.get_forces()`` reports them.
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
        if self.last is not None:  # what the calculator reported before the step
            self.calc.store(self.atoms, self.last)

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
        mts = self.force_mode == "mts"
        self._thermostat(0.5 * dt)
        result = self.last
        if mts:
            self._kick(result.conservative - result.direct, 0.5 * dt)
        for inner in range(self.stride):
            self._kick(self._inner_forces(result), 0.5 * h)
            velocities = self.atoms.get_momenta() / self.masses
            self.atoms.set_positions(self.atoms.get_positions() + h * velocities)
            self._check_positions()
            result = self._evaluate(outer=inner == self.stride - 1)
            self._kick(self._inner_forces(result), 0.5 * h)
        if mts:
            self._kick(result.conservative - result.direct, 0.5 * dt)
        self._thermostat(0.5 * dt)
        forces = result.direct if self.force_mode == DIRECT else result.conservative
        return forces.copy()

    def _refresh_properties(self) -> None:
        # forces of the current positions are cached by _evaluate
        return None

    # -- observables -----------------------------------------------------------------
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
        :func:`degrees_of_freedom`)."""
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
                "forces": self.force_mode,
                "stride": self.stride,
                "ensemble": self.ensemble,
                "temperature_K": self.temperature_K,
                "fast": None if self.pair is None else self.pair.describe()["fast"],
            }
        )
        return data
