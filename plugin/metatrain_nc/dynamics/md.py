"""One MD run from model + structure to an output folder (the engine of ``mtt-nc md``).

:func:`run_md` validates everything first (no folder is created for bad input), then
integrates with :class:`~.integrator.MultipleTimeStep`, writing the trajectory as it
goes, and finishes with the CSV log, ``summary.json``, figures and the chemiscope
dataset. A runaway stops the run (too hot, non-finite values, or a model that fails
during a step: non-finite forces, an ASE calculator that raises); its outputs are
written all the same, with ``"status": "runaway"`` and the ``message`` in the
summary. A model that fails on the start structure is an error (nothing written).
The monitors' warnings (:func:`~.monitor.diagnose`: equipartition with a thermostat,
energy drift in NVE, :func:`~.monitor.drift_verdict`; molecules broken or formed,
from the census of the trajectory frames by :mod:`.topology`) go into the summary
(``warnings``, ``equipartition``, ``drift_check``, ``topology``) without stopping
the run.

With ``stride="auto"`` (``--stride auto``), :func:`~.stride.find_stride` first scans
the outer step at a fixed inner step, and the run uses the stride it chose.

Model calls are counted per run: ``model_forward_passes``, ``model_backward_passes``
and ``fast_model_forward_passes`` of the summary are the production run's own (its
first evaluation and its steps), whatever the models did before (a stride scan, whose
calls are in ``stride_scan``, or other runs of the same model objects).
"""

import contextlib
import dataclasses
import math
import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Tuple, Union

import ase
from ase import units

from ..errors import UserInputError
from ..files import StagedFolder
from ..force_models.force_split import ForceSplit, force_split
from ..force_models.timing import WallClock
from . import restart
from .integrator import ENSEMBLES, MultipleTimeStep
from .monitor import EQUILIBRATION_FRACTION, Monitor, RunawayError
from .outputs import FILES, TrajectoryWriter, run_summary, write_run
from .structures import has_velocities, maxwell_boltzmann


@dataclass
class MDSettings:
    """Settings of one run (times in fs, temperatures in K).

    ``timestep_fs`` is the outer step; inner steps are ``timestep_fs / stride``;
    ``steps`` counts outer steps (total time ``steps * timestep_fs``).

    ``stride="auto"`` (``forces="mts"`` only): the stride comes from
    :func:`~.stride.find_stride` at the inner step ``inner_timestep_fs`` (default
    ``timestep_fs / 8``), strides 1, 2, 4, ... up to ``max_stride``, NVE segments of
    ``scan_time_fs``; the run then keeps the requested duration
    ``steps * timestep_fs`` with the chosen outer step.
    ``equilibration_fraction``: the share of the run left out of the equipartition
    check (:func:`~.monitor.equipartition`).
    """

    forces: str = "mts"
    timestep_fs: float = 4.0
    stride: Union[int, str] = 8
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
    equilibration_fraction: float = EQUILIBRATION_FRACTION
    inner_timestep_fs: Optional[float] = None
    scan_time_fs: float = 200.0
    max_stride: int = 32

    def check(self) -> None:
        if not self.timestep_fs > 0:
            raise UserInputError(f"--timestep must be > 0 fs, got {self.timestep_fs}")
        if self.stride == "auto":
            self._check_auto()
        elif isinstance(self.stride, str) or self.stride < 1:
            raise UserInputError(
                f"--stride must be an integer >= 1 or 'auto', got {self.stride}"
            )
        if not 0 <= self.equilibration_fraction < 1:
            raise UserInputError(
                "--equilibration must be a fraction in [0, 1), got "
                f"{self.equilibration_fraction}"
            )
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

    def _check_auto(self) -> None:
        if self.forces != "mts":
            raise UserInputError(
                "--stride auto scans the outer step of multiple time stepping: use "
                f"it with --forces mts (got --forces {self.forces})"
            )
        inner = self.inner_timestep_fs
        if inner is not None and not (math.isfinite(inner) and inner > 0):
            raise UserInputError(f"--inner-timestep must be > 0 fs, got {inner}")
        if self.max_stride < 2:
            raise UserInputError(f"--max-stride must be >= 2, got {self.max_stride}")
        if not self.scan_time_fs > 0:
            raise UserInputError(f"--scan-time must be > 0 fs, got {self.scan_time_fs}")

    @property
    def scan_inner_timestep_fs(self) -> float:
        """Inner step of ``stride="auto"`` (fs)."""
        if self.inner_timestep_fs is not None:
            return float(self.inner_timestep_fs)
        return self.timestep_fs / 8.0

    @property
    def scan_strides(self) -> list:
        """Strides of ``stride="auto"``: 1, 2, 4, ... up to ``max_stride``."""
        strides = [1]
        while strides[-1] * 2 <= self.max_stride:
            strides.append(strides[-1] * 2)
        return strides

    def with_stride(self, stride: int, inner_timestep_fs: float) -> "MDSettings":
        """These settings with a chosen stride at the given inner step, keeping the
        duration ``steps * timestep_fs`` (rounded up to whole outer steps)."""
        outer = stride * inner_timestep_fs
        duration = self.steps * self.timestep_fs
        steps = max(1, math.ceil(duration / outer - 1e-9))
        return dataclasses.replace(
            self, stride=int(stride), timestep_fs=outer, steps=steps
        )


def prepare(
    model: Union[ForceSplit, Any], atoms: ase.Atoms, settings: MDSettings, fast=None
) -> MultipleTimeStep:
    """Validate and build the dynamics (velocities set, nothing written).

    :param model: a :class:`~metatrain_nc.force_models.force_split.ForceSplit` of
        mode ``settings.forces``, or anything
        :func:`~metatrain_nc.force_models.load_force_model` takes.
    :param fast: with a model and ``settings.forces == "mts"`` only: the model of the
        inner steps.
    """
    settings.check()
    if settings.stride == "auto":
        raise UserInputError(
            "stride 'auto' is resolved by run_md (or find_stride) before the dynamics"
        )
    atoms, source = initial_velocities(atoms, settings)
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


def initial_velocities(atoms: ase.Atoms, settings: MDSettings) -> Tuple[ase.Atoms, str]:
    """A copy of ``atoms`` with its initial velocities, and where they come from
    (``"structure"`` or ``"maxwell-boltzmann"``)."""
    atoms = atoms.copy()
    if settings.velocities == "structure" and not has_velocities(atoms):
        raise UserInputError("the structure has no velocities (momenta)")
    source = "structure"
    if settings.velocities == "maxwell-boltzmann" or (
        settings.velocities == "auto" and not has_velocities(atoms)
    ):
        maxwell_boltzmann(atoms, settings.temperature_K, settings.seed)
        source = "maxwell-boltzmann"
    return atoms, source


def scan_stride(
    model: Union[ForceSplit, Any],
    atoms: ase.Atoms,
    settings: MDSettings,
    fast=None,
    progress=None,
):
    """:func:`~.stride.find_stride` for ``settings`` (``stride="auto"``), from the
    run's own start (same positions and velocities); ``model``: an ``mts`` force
    split, or a model (and ``fast``) as :func:`~.stride.find_stride` takes."""
    from .stride import find_stride

    settings.check()
    start, _ = initial_velocities(atoms, settings)
    return find_stride(
        model,
        start,
        inner_timestep_fs=settings.scan_inner_timestep_fs,
        strides=settings.scan_strides,
        segment_fs=settings.scan_time_fs,
        fast=fast,
        max_temperature_K=settings.max_temperature_K,
        progress=progress,
    )


def run_md(
    model: Union[ForceSplit, Any],
    atoms: ase.Atoms,
    outdir: Union[str, os.PathLike],
    settings: MDSettings,
    force: bool = False,
    progress: Optional[Callable[[Dict[str, float]], None]] = None,
    fast=None,
    stride_scan=None,
    restart_interval_s: Optional[float] = None,
    resume: bool = False,
) -> Dict[str, Any]:
    """Run MD and write the output folder; return the summary (``status`` is
    ``"completed"`` or ``"runaway"`` with a ``message``; ``warnings``: the monitors'
    warnings, see :func:`~.monitor.diagnose`).

    :param model: a :class:`~metatrain_nc.force_models.force_split.ForceSplit` of
        mode ``settings.forces``, or anything
        :func:`~metatrain_nc.force_models.load_force_model` takes (the split is built
        here, once, for the stride scan and the run).
    :param fast: with a model and ``settings.forces == "mts"`` only: the model of the
        inner steps (default: the direct head of ``model``).
    :param stride_scan: with ``settings.stride == "auto"``, a
        :class:`~.stride.StrideScan` already made by :func:`scan_stride` (else the
        scan runs here).
    :param restart_interval_s: save a restart point at most this often (s of wall
        clock; :mod:`.restart`): a run cut short can then be continued. ``None``
        (default): no restart points, and a run cut short leaves nothing.
    :param resume: continue the run cut short in ``outdir`` from its last restart
        point (same settings, models and atoms), or return the summary of the run
        finished there with them; if there is neither, run (with restart points:
        ``restart_interval_s``, default :data:`~.restart.DEFAULT_INTERVAL_S`).
        The summary's ``continued_at_steps`` lists the steps it continued from.
    """
    settings.check()
    split = force_split(model, settings.forces, fast)
    wanted = restart.identity(settings, split, atoms)
    if resume:
        finished = restart.finished_run(outdir, wanted, force)
        if finished is not None:
            return finished
        if restart_interval_s is None:
            restart_interval_s = restart.DEFAULT_INTERVAL_S
    point = None
    if restart_interval_s is None:
        folder = StagedFolder(outdir, force)
    else:
        folder = restart.ResumableFolder(outdir, wanted, force, resume)
        point = folder.point
    try:
        before = _calls(split)
        dyn, settings, scan = _dynamics(split, atoms, settings, point, stride_scan)
        writer = TrajectoryWriter(
            dyn,
            folder.path / FILES["trajectory"],
            state=None if point is None else point.meta["writer"],
        )
        monitor = Monitor(dyn, settings.max_temperature_K, callback=progress)
        if point is not None:
            restart.restore(point, dyn, monitor)
        dyn.attach(monitor, interval=settings.log_every)
        dyn.attach(writer, interval=settings.trajectory_every)
        earlier = _Earlier(point)
        clock = WallClock().start()
        if restart_interval_s is not None:
            fixed = {
                "identity": wanted,
                "run_settings": dict(settings.__dict__),
                "stride_scan": scan,
                "velocity_source": dyn.velocity_source,
                "continued_at": earlier.continued_at,
            }

            def snapshot() -> "restart.RestartPoint":
                calls = earlier.calls(_run_calls(before, _calls(split)))
                elapsed = earlier.elapsed_s + clock.seconds
                return restart.capture(dyn, monitor, writer, fixed, elapsed, calls)

            recorder = restart.RestartRecorder(
                folder.path, restart_interval_s, snapshot
            )
            dyn.attach(recorder, interval=1)
            stopping = recorder.stopping_on_signals()
        else:
            stopping = contextlib.nullcontext()
        status, message = "completed", None
        try:
            with stopping:
                dyn.run(settings.steps - dyn.nsteps)
        except RunawayError as error:
            status, message = "runaway", str(error)
            if writer.last_step != dyn.nsteps:
                writer()  # keep the frame that ran away
        elapsed = earlier.elapsed_s + clock.stop()
        writer.close()
        calls = earlier.calls(_run_calls(before, _calls(split)))
        summary = run_summary(
            split.model,
            split,
            dyn,
            settings,
            status,
            message,
            elapsed,
            calls,
            monitor,
            topology=writer.topology,
        )
        summary["stride_scan"] = scan
        summary["warnings"] = [
            {"kind": "pair", "message": message} for message in dyn.pair_warnings
        ] + summary["warnings"]
        if split.fast_model is not None:
            summary["pair"] = split.describe()
        summary["started_with"] = wanted
        summary["continued_at_steps"] = earlier.continued_at
        title = f"{settings.forces} forces, {settings.ensemble}"
        write_run(folder.path, summary, monitor, settings, title, writer.n_frames)
        summary["output_dir"] = str(folder.commit())
        return summary
    except BaseException:
        if isinstance(folder, restart.ResumableFolder):
            folder.keep()  # a run cut short after a restart point can continue
        else:
            folder.discard()
        raise


def _dynamics(split: ForceSplit, atoms: ase.Atoms, settings: MDSettings, point, scan):
    """The dynamics of a run (:func:`prepare`), its settings (the stride chosen by
    the ``scan`` of :func:`scan_stride`, made here when ``stride="auto"`` and
    ``None``) and the scan as a dictionary (``None``: no scan); or, from a restart
    ``point``, the dynamics at the point with the settings and scan it saved."""
    if point is not None:
        settings = MDSettings(**point.meta["run_settings"])
        start = atoms.copy()
        start.set_cell(point.cell)
        start.set_positions(point.positions, apply_constraint=False)
        start.set_momenta(point.momenta, apply_constraint=False)
        from_point = dataclasses.replace(settings, velocities="structure")
        dyn = prepare(split, start, from_point)
        dyn.velocity_source = point.meta["velocity_source"]
        return dyn, settings, point.meta["stride_scan"]
    if settings.stride == "auto":
        if scan is None:
            scan = scan_stride(split, atoms, settings)
        settings = settings.with_stride(scan.stride, scan.inner_timestep_fs)
    dyn = prepare(split, atoms, settings)
    return dyn, settings, None if scan is None else scan.to_dict()


class _Earlier:
    """What the earlier parts of a continued run did (nothing for a new run): their
    wall time, model calls and the steps the run continued from."""

    def __init__(self, point) -> None:
        meta = {} if point is None else point.meta
        self.elapsed_s = float(meta.get("elapsed_s", 0.0))
        self.before = meta.get("calls")
        self.continued_at = list(meta.get("continued_at", []))
        if point is not None:
            self.continued_at.append(point.step)

    def calls(self, now: Dict[str, Optional[int]]) -> Dict[str, Optional[int]]:
        """The calls of the whole run: ``now`` (this part's) plus the earlier ones."""
        if not self.before:
            return now
        return {
            key: None if value is None else value + (self.before.get(key) or 0)
            for key, value in now.items()
        }


def _calls(split: ForceSplit) -> Tuple[int, int, Optional[int]]:
    """Calls so far: (model forward, model backward, fast model forward)."""
    fast = split.fast_model
    return (
        split.model.n_forward,
        split.model.n_backward,
        None if fast is None else fast.n_forward,
    )


def _run_calls(before, after) -> Dict[str, Optional[int]]:
    """The calls of one run (``after - before``) as summary fields."""
    fast = None if after[2] is None else after[2] - (before[2] or 0)
    return {
        "model_forward_passes": after[0] - before[0],
        "model_backward_passes": after[1] - before[1],
        "fast_model_forward_passes": fast,
    }
