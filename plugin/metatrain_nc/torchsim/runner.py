"""N replicas of one MD run in one torch-sim batch (the engine of
``mtt-nc md --engine torch-sim``).

:func:`run_replicas` takes the settings of ``mtt-nc md`` (:class:`MDSettings`) and
runs every replica in one batch with :func:`~.integrator.mts_step`: replica ``k``
starts from its structure (one structure repeated, or one per replica) with the
velocities that ``mtt-nc md --seed SEED+k`` would give it, and its thermostat
noise from its own generator. Each replica gets the output folder of the ASE path
(``replica_000/``, ...: trajectory, CSV log, ``summary.json`` with the same drift,
equipartition and bonded-topology verdicts and wording, figures, chemiscope)
written by the same code; a replica that runs away (above ``max_temperature_K``,
non-finite values, a model that fails on it) stops alone, the others go on. The
top-level ``summary.json`` lists the replicas and the batch's throughput.
"""

import dataclasses
import os
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import ase
import numpy as np
import torch
from ase import units

from ..dynamics.md import MDSettings, initial_velocities
from ..dynamics.monitor import Monitor, RunawayError
from ..dynamics.outputs import FILES, TrajectoryWriter, run_summary, write_run
from ..errors import ModelError, UserInputError
from ..files import StagedFolder, write_json
from ..force_models.timing import WallClock
from .integrator import (
    LangevinThermostat,
    SVRThermostat,
    mts_init,
    mts_step,
    runaway_systems,
    select,
)
from .monitors import ReplicaView
from .states import atoms_to_state, require_torch_sim

ENGINE = "torch-sim"


def replica_starts(
    structures: Union[ase.Atoms, Sequence[ase.Atoms]],
    settings: MDSettings,
    replicas: Optional[int] = None,
) -> List[tuple]:
    """``(atoms with velocities, velocity source)`` of each replica: ``replicas``
    copies of one structure (velocities of seeds ``seed``, ``seed + 1``, ...), or
    one per structure of a list."""
    if isinstance(structures, ase.Atoms):
        structures = [structures] * (1 if replicas is None else int(replicas))
    structures = list(structures)
    if replicas is not None and len(structures) != int(replicas):
        raise UserInputError(
            f"{replicas} replicas asked for {len(structures)} structures"
        )
    if not structures:
        raise UserInputError("no replica to run (--replicas must be >= 1)")
    return [
        initial_velocities(atoms, dataclasses.replace(settings, seed=settings.seed + k))
        for k, atoms in enumerate(structures)
    ]


def make_thermostat(settings: MDSettings):
    """The thermostat of ``settings`` (``None`` for NVE)."""
    if settings.ensemble == "nve":
        return None
    kT = units.kB * settings.temperature_K
    tau = settings.tau_fs * units.fs
    if settings.ensemble == "langevin":
        return LangevinThermostat(kT, tau)
    return SVRThermostat(kT, tau)


class _Replica:
    def __init__(self, index: int, atoms, source, dt, ensemble, dof, folder, settings):
        self.index = index
        self.view = ReplicaView(atoms, dt, ensemble, dof)
        self.view.velocity_source = source
        self.path = folder / f"replica_{index:03d}"
        self.path.mkdir()
        self.writer = TrajectoryWriter(self.view, self.path / FILES["trajectory"])
        self.monitor = Monitor(self.view, settings.max_temperature_K)
        self.status, self.message = "completed", None
        self.settings = settings

    def observe(self, state, position: int, progress) -> bool:
        """The ASE observers at this step (monitor, then trajectory); False when
        the monitor stopped the replica."""
        settings, view = self.settings, self.view
        view.sync(state, position)
        if view.nsteps % settings.log_every == 0:
            try:
                self.monitor()
                if progress is not None:
                    progress(self.index, self.monitor.rows[-1])
            except RunawayError as error:
                self.stop(str(error))
                return False
        if view.nsteps % settings.trajectory_every == 0:
            self.writer()
        return True

    def stop(self, message: str) -> None:
        self.status, self.message = "runaway", message
        if self.writer.last_step != self.view.nsteps:
            self.writer()  # keep the frame that ran away


def run_replicas(
    model: Any,
    structures: Union[ase.Atoms, Sequence[ase.Atoms]],
    outdir: Union[str, os.PathLike],
    settings: MDSettings,
    replicas: Optional[int] = None,
    force: bool = False,
    fast: Any = None,
    device: str = "cpu",
    progress: Optional[Callable[[int, Dict[str, float]], None]] = None,
    split: Any = None,
) -> Dict[str, Any]:
    """Run the replicas in one batch and write their folders; return the top-level
    summary (``replicas``: each replica's summary, as ``run_md`` returns it).

    :param model: anything :func:`~metatrain_nc.force_models.load_force_model`
        takes (a metatomic model), or ignored when ``split`` is given.
    :param structures: one structure (with ``replicas`` copies) or one per replica.
    :param fast: ``settings.forces == "mts"`` only: the model of the inner steps.
    :param split: a ready force split (:mod:`.splits`), e.g. a
        :class:`~.splits.MetatomicSplit` on another device.
    """
    from .splits import MetatomicSplit

    ts = require_torch_sim()
    settings.check()
    if settings.stride == "auto":
        raise UserInputError(
            "--stride auto is not available with --engine torch-sim: find the stride "
            "with the ASE engine (mtt-nc md --stride auto) and pass it as --stride"
        )
    if fast is not None and settings.forces != "mts":
        raise UserInputError(
            "--fast names the model of the inner steps of multiple time stepping: "
            f"use it with --forces mts (got --forces {settings.forces})"
        )
    starts = replica_starts(structures, settings, replicas)
    if split is None:
        split = MetatomicSplit(model, fast, mode=settings.forces)
    elif getattr(split, "mode", "mts") != settings.forces:
        if not hasattr(split, "with_mode"):
            raise UserInputError(
                f"the force split {split!r} runs '{getattr(split, 'mode', 'mts')}' "
                f"forces, not '{settings.forces}'"
            )
        split = split.with_mode(settings.forces)
    provider = split.provider
    for k, (atoms, _) in enumerate(starts):
        provider.check(atoms, f"the structure of replica {k}")
    if settings.forces != "conservative" and getattr(split, "shared", True):
        provider.require("direct")
    dt = settings.timestep_fs * units.fs
    batch = atoms_to_state([a for a, _ in starts], device, provider.torch_dtype)
    thermostat = make_thermostat(settings)
    fast_provider = getattr(split, "fast_provider", None)
    before = (
        provider.n_forward,
        provider.n_backward,
        None if fast_provider is None else fast_provider.n_forward,
    )
    state = mts_init(batch, split, thermostat=thermostat, seed=settings.seed)
    bad = runaway_systems(state)
    if bool(bad.any()):
        first = int(bad.nonzero()[0])
        raise ModelError(
            f"model '{provider.source}' gave non-finite values (or failed) on the "
            f"start structure of replica {first}"
        )
    folder = StagedFolder(outdir, force)
    try:
        items = [
            _Replica(
                k,
                a,
                s,
                dt,
                settings.ensemble,
                int(state.ndof[k]),
                folder.path,
                settings,
            )
            for k, (a, s) in enumerate(starts)
        ]
        clock = WallClock().start()
        state = _observe(state, items, progress)
        replica_steps = 0
        while state.n_systems and state.nsteps < settings.steps:
            saved = (state.md.positions.clone(), state.md.momenta.clone())
            start_time = state.nsteps * dt / units.fs
            state = mts_step(state, split, dt=dt, stride=settings.stride)
            replica_steps += state.n_systems
            bad = runaway_systems(state)
            if bool(bad.any()):
                for position in bad.nonzero().reshape(-1).tolist():
                    item = items[int(state.systems[position])]
                    atoms = (state.md.system_idx == position).nonzero().reshape(-1)
                    item.view.keep(
                        saved[0][atoms].cpu().numpy().astype(np.float64),
                        saved[1][atoms].cpu().numpy().astype(np.float64),
                        state.nsteps - 1,
                    )
                    item.stop(
                        "runaway: non-finite positions, momenta, forces or energy in "
                        f"outer step {state.nsteps} (from t = {start_time:.2f} fs): "
                        "the forces or velocities overflowed, or the model failed on "
                        "this replica"
                    )
                state = select(state, ~bad)
            state = _observe(state, items, progress)
        elapsed = clock.stop()
        calls = {
            "model_forward_passes": provider.n_forward - before[0],
            "model_backward_passes": provider.n_backward - before[1],
            "fast_model_forward_passes": None,
        }
        if fast_provider is not None:
            calls["fast_model_forward_passes"] = fast_provider.n_forward - before[2]
        summaries = [
            _finish(item, settings, split, calls, elapsed, len(items)) for item in items
        ]
        top = {
            "engine": ENGINE,
            "torch_sim_version": getattr(ts, "__version__", None)
            or _version("torch-sim-atomistic"),
            "device": str(device),
            "model": provider.source,
            "model_dtype": provider.dtype,
            "fast_model": split.describe()["fast"],
            "n_replicas": len(items),
            "settings": dict(settings.__dict__),
            "wall_time_s": elapsed,
            "replica_outer_steps": replica_steps,
            "replica_steps_per_second": replica_steps / elapsed if elapsed else None,
            **calls,
            "replicas": [
                {
                    "replica": s["replica"],
                    "status": s["status"],
                    "message": s["message"],
                    "outer_steps_done": s["outer_steps_done"],
                    "drift_meV_per_atom_per_ps": s.get("drift_meV_per_atom_per_ps"),
                    "drift_error_meV_per_atom_per_ps": s.get(
                        "drift_error_meV_per_atom_per_ps"
                    ),
                    "mean_temperature_K": s.get("mean_temperature_K"),
                    "warnings": [w["kind"] for w in s["warnings"]],
                    "folder": f"replica_{s['replica']:03d}",
                }
                for s in summaries
            ],
        }
        write_json(folder.path / FILES["summary"], top)
        top["output_dir"] = str(folder.commit())
        for summary in summaries:
            summary["output_dir"] = str(
                Path(top["output_dir"]) / f"replica_{summary['replica']:03d}"
            )
        top["replica_summaries"] = summaries
        return top
    except BaseException:
        folder.discard()
        raise


def _observe(state, items: List[_Replica], progress):
    """Call each running replica's observers; drop those their monitor stopped."""
    keep = []
    for position in range(state.n_systems):
        item = items[int(state.systems[position])]
        keep.append(item.observe(state, position, progress))
    if not all(keep):
        state = select(state, torch.tensor(keep))
    return state


def _finish(item: _Replica, settings: MDSettings, split, calls, elapsed, n) -> Dict:
    item.writer.close()
    summary = run_summary(
        split.provider,
        split,
        item.view,
        dataclasses.replace(settings, seed=settings.seed + item.index),
        item.status,
        item.message,
        elapsed,
        calls,
        item.monitor,
        topology=item.writer.topology,
        engine=ENGINE,
        replica=item.index,
        n_replicas=n,
    )
    title = f"{settings.forces} forces, {settings.ensemble} (replica {item.index})"
    write_run(item.path, summary, item.monitor, settings, title, item.writer.n_frames)
    return summary


def _version(name: str) -> Optional[str]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None
