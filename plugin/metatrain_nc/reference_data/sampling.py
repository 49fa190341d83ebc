"""Sampling one trajectory of a reference set: Langevin dynamics of the sampler.

The trajectory starts from one frame of the structures file with Maxwell-Boltzmann
velocities at its temperature, runs ``equilibration_steps`` and then keeps a frame
every ``interval_steps``. Hydrogen gets ``plan.hydrogen_mass`` during sampling: the
Boltzmann distribution of configurations does not depend on masses, and a heavier
hydrogen allows a longer time step. Frames are appended to
``trajectories/NNN.extxyz`` (positions and momenta); the dynamics state (positions,
momenta, the thermostat's random generator) is committed with each frame, so an
interrupted trajectory continues where it stopped.
"""

import json
from pathlib import Path
from typing import Any, Callable, Optional

import ase
import numpy as np

from ..errors import UserInputError
from .plan import ReferencePlan
from .store import FrameLog

#: runaway guard: a trajectory whose kinetic temperature exceeds this multiple of its
#: target, or whose atoms come closer than :data:`MIN_DISTANCE`, stops with an error
MAX_TEMPERATURE_RATIO = 3.0
MIN_DISTANCE = 0.5  # A


def trajectory_log(workdir: Path, index: int) -> FrameLog:
    """The frame log of trajectory ``index``."""
    folder = Path(workdir) / "trajectories"
    folder.mkdir(parents=True, exist_ok=True)
    return FrameLog(folder, f"{index:03d}")


def sample_trajectory(
    plan: ReferencePlan,
    index: int,
    workdir: Path,
    start: ase.Atoms,
    sampler: Any,
    progress: Optional[Callable[[int], None]] = None,
) -> int:
    """Run (or continue) trajectory ``index`` until it holds its frames.

    :param start: the frame it starts from (not modified).
    :param sampler: a :class:`~metatrain_nc.force_models.ForceModel` with
        conservative forces.
    :param progress: called with the number of frames added after each frame.
    :return: frames in the trajectory.
    :raises UserInputError: the sampler gives non-finite forces or the trajectory runs
        away (too hot, atoms too close); nothing of the failing frame is written.
    """
    from ase.constraints import FixCom
    from ase.md.langevin import Langevin
    from ase.units import fs

    from ..dynamics.structures import thermalize_momenta
    from ..force_models.calculator import ModelCalculator

    spec = plan.trajectories[index]
    log = trajectory_log(workdir, index).open()
    if log.n_frames >= plan.frames_per_trajectory:
        return log.n_frames

    atoms = ase.Atoms(
        numbers=start.numbers, positions=start.positions, cell=start.cell, pbc=start.pbc
    )
    masses = atoms.get_masses()
    masses[atoms.numbers == 1] = plan.hydrogen_mass
    atoms.set_masses(masses)
    rng = np.random.default_rng(spec.seed)
    if "rng" in log.state:
        rng.bit_generator.state = json.loads(log.state["rng"])
        atoms.positions = np.array(log.state["positions"], dtype=float)
        atoms.set_momenta(np.array(log.state["momenta"], dtype=float))
        step = int(log.state["step"])
    else:
        thermalize_momenta(atoms, spec.temperature, rng=rng)
        step = 0
    atoms.set_constraint(FixCom())
    atoms.calc = ModelCalculator(sampler, "conservative")
    dynamics = Langevin(
        atoms,
        timestep=plan.timestep * fs,
        temperature_K=spec.temperature,
        friction=plan.friction / fs,
        fixcm=False,
        rng=rng,
    )
    while log.n_frames < plan.frames_per_trajectory:
        first = plan.equilibration_steps + (log.n_frames + 1) * plan.interval_steps
        for _ in range(first - step):
            dynamics.run(1)
            step += 1
            _check(atoms, spec.temperature, index, step)
        frame = atoms.copy()
        frame.calc = None
        frame.set_constraint()
        frame.info.update(
            trajectory=index,
            sample_step=step,
            sample_time_fs=round(step * plan.timestep, 6),
            temperature_K=spec.temperature,
            start_frame=spec.start_frame,
        )
        log.append(
            [frame],
            step=step,
            positions=atoms.positions.tolist(),
            momenta=atoms.get_momenta().tolist(),
            rng=json.dumps(rng.bit_generator.state),
        )
        if progress is not None:
            progress(1)
    return log.n_frames


def _check(atoms: ase.Atoms, target: float, index: int, step: int) -> None:
    forces = atoms.calc.results.get("forces")
    where = f"sampling trajectory {index} at step {step}"
    if forces is not None and not np.all(np.isfinite(forces)):
        raise UserInputError(
            f"{where}: the sampler returned non-finite forces; the trajectory stops "
            "(frames kept so far stay)"
        )
    temperature = atoms.get_temperature()
    if not np.isfinite(temperature) or temperature > MAX_TEMPERATURE_RATIO * target:
        raise UserInputError(
            f"{where}: kinetic temperature {temperature:.0f} K for a target of "
            f"{target:.0f} K, a runaway; use a smaller --timestep or a stable sampler"
        )
    if len(atoms) > 1:
        distances = atoms.get_all_distances(mic=bool(np.any(atoms.pbc)))
        np.fill_diagonal(distances, np.inf)
        if distances.min() < MIN_DISTANCE:
            raise UserInputError(
                f"{where}: two atoms {distances.min():.2f} A apart, a runaway; use a "
                "smaller --timestep or a stable sampler"
            )
