"""One MD run from model + structure to an output folder (the engine of ``mtt-nc md``).

:func:`run_md` validates everything first (no folder is created for bad input), then
integrates with :class:`~.integrator.MultipleTimeStep`, writing the trajectory as it
goes, and finishes with the CSV log, ``summary.json``, figures and the chemiscope
dataset. A runaway stops the run; its outputs are written all the same, with
``"status": "runaway"`` in the summary.
"""

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Union

import ase
from ase import units

from ..errors import UserInputError
from ..files import StagedFolder, write_csv, write_json
from .integrator import ENSEMBLES, MultipleTimeStep
from .monitor import Monitor, RunawayError, summarise
from .outputs import (
    FILES,
    TrajectoryWriter,
    plot_md,
    write_chemiscope,
)
from .structures import has_velocities, maxwell_boltzmann


@dataclass
class MDSettings:
    """Settings of one run (times in fs, temperatures in K).

    ``timestep_fs`` is the outer step; inner steps are ``timestep_fs / stride``;
    ``steps`` counts outer steps (total time ``steps * timestep_fs``).
    """

    forces: str = "mts"
    timestep_fs: float = 4.0
    stride: int = 8
    steps: int = 100
    ensemble: str = "nve"
    temperature_K: float = 300.0
    tau_fs: float = 100.0
    seed: int = 0
    log_every: int = 1
    trajectory_every: int = 1
    max_temperature_K: Optional[float] = 5000.0
    velocities: str = "auto"  # "auto" | "structure" | "maxwell-boltzmann"
    chemiscope: bool = True
    plots: bool = True

    def check(self) -> None:
        if not self.timestep_fs > 0:
            raise UserInputError(f"--timestep must be > 0 fs, got {self.timestep_fs}")
        if self.stride < 1:
            raise UserInputError(f"--stride must be >= 1, got {self.stride}")
        if self.steps < 1:
            raise UserInputError(f"--steps must be >= 1, got {self.steps}")
        if self.ensemble not in ENSEMBLES:
            raise UserInputError(f"unknown ensemble '{self.ensemble}'")
        if self.ensemble != "nve" and not self.tau_fs > 0:
            raise UserInputError(f"--tau must be > 0 fs, got {self.tau_fs}")
        if not self.temperature_K > 0 and (
            self.ensemble != "nve" or self.velocities != "structure"
        ):
            raise UserInputError(
                f"--temperature must be > 0 K, got {self.temperature_K}"
            )
        if self.log_every < 1 or self.trajectory_every < 1:
            raise UserInputError("--log-every and --trajectory-every must be >= 1")
        if self.velocities not in ("auto", "structure", "maxwell-boltzmann"):
            raise UserInputError(f"unknown velocity source '{self.velocities}'")


def prepare(
    model, atoms: ase.Atoms, settings: MDSettings, fast=None
) -> MultipleTimeStep:
    """Validate and build the dynamics (velocities set, nothing written).

    :param model: anything :func:`~metatrain_nc.force_models.load_force_model` takes.
    :param fast: ``settings.forces == "mts"`` only: the model of the inner steps.
    """
    settings.check()
    atoms = atoms.copy()
    if settings.velocities == "structure" and not has_velocities(atoms):
        raise UserInputError("the structure has no velocities (momenta)")
    source = "structure"
    if settings.velocities == "maxwell-boltzmann" or (
        settings.velocities == "auto" and not has_velocities(atoms)
    ):
        maxwell_boltzmann(atoms, settings.temperature_K, settings.seed)
        source = "maxwell-boltzmann"
    dyn = MultipleTimeStep(
        atoms,
        settings.timestep_fs * units.fs,
        model,
        forces=settings.forces,
        stride=settings.stride,
        ensemble=settings.ensemble,
        temperature_K=settings.temperature_K if settings.ensemble != "nve" else None,
        tau=settings.tau_fs * units.fs,
        rng=settings.seed + 1,
        fast=fast,
    )
    dyn.velocity_source = source
    return dyn


def run_md(
    model,
    atoms: ase.Atoms,
    outdir: Union[str, os.PathLike],
    settings: MDSettings,
    force: bool = False,
    progress: Optional[Callable[[Dict[str, float]], None]] = None,
    fast=None,
) -> Dict[str, Any]:
    """Run MD and write the output folder; return the summary (``status`` is
    ``"completed"`` or ``"runaway"`` with a ``message``).

    :param fast: ``settings.forces == "mts"`` only: the model of the inner steps
        (default: the direct head of ``model``).
    """
    dyn = prepare(model, atoms, settings, fast=fast)
    folder = StagedFolder(outdir, force)
    try:
        writer = TrajectoryWriter(dyn, folder.path / FILES["trajectory"])
        monitor = Monitor(dyn, settings.max_temperature_K, callback=progress)
        dyn.attach(monitor, interval=settings.log_every)
        dyn.attach(writer, interval=settings.trajectory_every)
        status, message = "completed", None
        start = time.perf_counter()
        try:
            dyn.run(settings.steps)
        except RunawayError as error:
            status, message = "runaway", str(error)
            if writer.last_step != dyn.nsteps:
                writer()  # keep the frame that ran away
        elapsed = time.perf_counter() - start
        writer.close()
        target = settings.temperature_K if settings.ensemble != "nve" else None
        summary: Dict[str, Any] = {
            "status": status,
            "message": message,
            "model": dyn.provider.source,
            "model_kind": dyn.provider.kind,
            "model_dtype": dyn.provider.dtype,
            "fast_model": None if dyn.pair is None else dyn.pair.describe()["fast"],
            "degrees_of_freedom": dyn.degrees_of_freedom,
            "n_atoms": len(dyn.atoms),
            "settings": dict(settings.__dict__),
            "velocity_source": dyn.velocity_source,
            "inner_timestep_fs": settings.timestep_fs / settings.stride,
            "outer_steps_done": int(dyn.nsteps),
            "simulated_time_ps": dyn.get_time() / units.fs / 1000.0,
            "wall_time_s": elapsed,
            "model_forward_passes": dyn.provider.n_forward,
            "model_backward_passes": dyn.provider.n_backward,
            "fast_model_forward_passes": _fast_calls(dyn),
            "files": dict(FILES),
        }
        summary["files"].pop("relax_table")
        summary.update(summarise(monitor.rows, len(dyn.atoms), target))
        write_csv(folder.path / FILES["log"], monitor.columns, monitor.rows)
        if settings.plots and monitor.rows:
            title = f"{settings.forces} forces, {settings.ensemble}"
            plot_md(monitor.rows, folder.path, title, target)
        if settings.chemiscope and writer.n_frames:
            write_chemiscope(
                folder.path / FILES["trajectory"], _chemiscope_path(folder)
            )
        write_json(folder.path / FILES["summary"], summary)
        summary["output_dir"] = str(folder.commit())
        return summary
    except BaseException:
        folder.discard()
        raise


def _fast_calls(dyn: MultipleTimeStep) -> Optional[int]:
    if dyn.pair is None or dyn.pair.fast is None:
        return None
    return dyn.pair.fast.n_forward


def _chemiscope_path(folder: StagedFolder) -> Path:
    return folder.path / FILES["chemiscope"]
