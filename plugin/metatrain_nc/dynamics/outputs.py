"""Output folder of ``mtt-nc md`` / ``mtt-nc relax``: trajectory, CSV, JSON, PNG,
chemiscope.

Results are written into a hidden sibling folder that replaces the output folder only
when the run ends (normally or stopped as a runaway), so an existing folder is never
lost to a failed run and a crash leaves no half-written results.
"""

import csv
import gzip
import json
import math
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

import ase
import ase.io
import numpy as np

from ..files import read_structures

FILES = {
    "trajectory": "trajectory.extxyz",
    "log": "md_log.csv",
    "summary": "summary.json",
    "temperature_figure": "temperature_energy.png",
    "species_figure": "temperature_species.png",
    "chemiscope": "trajectory.chemiscope.json.gz",
    "relax_table": "relax_results.csv",
}


class TrajectoryWriter:
    """ASE observer appending the current frame to an extxyz file (flushed at once, so
    a stopped run keeps its trajectory). Frames carry ``time_fs``, ``temperature_K``,
    ``potential_eV`` in ``info`` and the momenta; with both force kinds available,
    ``forces_conservative``, ``forces_direct`` and ``force_difference`` (|F_c - F_nc|,
    eV/A) arrays.

    ``topology`` (:class:`~.topology.TopologyWatch`, made from ``dyn.atoms`` as the
    writer is made, i.e. the start; ``None`` with ``topology=False``) takes the
    census of molecules of every frame written, and :meth:`close` that of the last
    state if it was not written: the bonded-topology check costs nothing between
    frames.

    A run that continues from a restart point (:mod:`.restart`) gives the writer's
    :meth:`state` at that point as ``state``: the file is cut there (frames written
    after it are dropped) and appended to."""

    def __init__(
        self,
        dyn,
        path: Path,
        topology: bool = True,
        state: Optional[Mapping[str, Any]] = None,
    ):
        from .topology import TopologyWatch

        self.dyn = dyn
        self.path = path
        self.topology = TopologyWatch(dyn.atoms) if topology else None
        self.n_frames = 0
        self.last_step = -1
        if state is None:
            self.stream = open(path, "w")
            return
        with open(path, "r+b") as handle:
            handle.truncate(int(state["bytes"]))
        self.stream = open(path, "a")
        self.n_frames = int(state["n_frames"])
        self.last_step = int(state["last_step"])
        if self.topology is not None and state.get("topology") is not None:
            self.topology.restore(state["topology"])

    def state(self) -> Dict[str, Any]:
        """Where the writer is (JSON-ready): frames, last step, bytes written, and
        the topology watch's :meth:`~.topology.TopologyWatch.state`."""
        return {
            "n_frames": self.n_frames,
            "last_step": self.last_step,
            "bytes": self.stream.tell(),
            "topology": None if self.topology is None else self.topology.state(),
        }

    def __call__(self) -> None:
        from ase import units

        dyn = self.dyn
        atoms = dyn.atoms
        frame = ase.Atoms(
            numbers=atoms.numbers,
            positions=atoms.positions,
            cell=atoms.cell,
            pbc=atoms.pbc,
        )
        frame.set_momenta(atoms.get_momenta())
        frame.info["step"] = int(dyn.nsteps)
        frame.info["time_fs"] = float(dyn.get_time() / units.fs)
        frame.info["temperature_K"] = float(dyn.temperature())
        frame.info["potential_eV"] = float(dyn.potential_energy())
        last = dyn.last
        if last is not None and last.conservative is not None:
            frame.arrays["forces_conservative"] = last.conservative
        if last is not None and last.direct is not None:
            frame.arrays["forces_direct"] = last.direct
        difference = dyn.force_difference()
        if difference is not None:
            frame.arrays["force_difference"] = difference
        ase.io.write(self.stream, frame, format="extxyz")
        self.stream.flush()
        self.n_frames += 1
        self.last_step = int(dyn.nsteps)
        if self.topology is not None:
            self.topology(frame, frame.info["time_fs"])

    def close(self) -> None:
        """Close the file; the topology watch gets the last state if it was not
        written."""
        self.stream.close()
        if self.topology is not None and self.last_step != int(self.dyn.nsteps):
            from ase import units

            self.topology(self.dyn.atoms, self.dyn.get_time() / units.fs)


def plot_md(rows: List[Dict[str, float]], folder: Path, title: str, target=None):
    """Temperature and conserved energy against time; per-species temperatures."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    time = [r["time_fs"] / 1000 for r in rows]
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(6, 5))
    top.plot(time, [r["temperature_K"] for r in rows], lw=1)
    if target is not None:
        top.axhline(target, color="k", ls="--", lw=0.8, label="target")
        top.legend()
    top.set_ylabel("temperature (K)")
    top.set_title(title)
    first = rows[0]["conserved_eV"] if rows else 0.0
    bottom.plot(
        time, [r["conserved_eV"] - first for r in rows], lw=1, label="conserved"
    )
    bottom.plot(
        time, [r["total_eV"] - first for r in rows], lw=1, ls=":", label="Epot + Ekin"
    )
    bottom.set_ylabel("energy - initial (eV)")
    bottom.set_xlabel("time (ps)")
    bottom.legend()
    fig.tight_layout()
    fig.savefig(folder / FILES["temperature_figure"], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 3.5))
    keys = [k for k in (rows[0] if rows else {}) if k.startswith("temperature_")]
    for key in keys:
        label = key[len("temperature_") : -len("_K")] or "all atoms"
        ax.plot(time, [r[key] for r in rows], lw=1, label=label)
    if target is not None:
        ax.axhline(target, color="k", ls="--", lw=0.8, label="target")
    ax.set_xlabel("time (ps)")
    ax.set_ylabel("temperature (K)")
    ax.set_title("temperature per species")
    ax.legend()
    fig.tight_layout()
    fig.savefig(folder / FILES["species_figure"], dpi=110)
    plt.close(fig)


def read_log(path: Path) -> List[Dict[str, float]]:
    """Rows of an MD ``md_log.csv`` as floats (``nan`` for a missing value); none
    without the file."""
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return [{k: _float(v) for k, v in r.items()} for r in csv.DictReader(handle)]


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _count_frames(path: Path) -> Optional[int]:
    """Frames of an extended XYZ file of constant size, from its line count."""
    with open(path, "rb") as handle:
        first = handle.readline()
        try:
            n_atoms = int(first.split()[0])
        except (ValueError, IndexError):
            return None
        handle.seek(0)
        lines = sum(
            chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b"")
        )
    return None if lines % (n_atoms + 2) else lines // (n_atoms + 2)


def read_frames(path: Path, max_frames: Optional[int] = None) -> List[ase.Atoms]:
    """The frames of a trajectory; with ``max_frames`` (>= 2) at most that many,
    evenly spread, the last one kept (where a runaway stopped)."""
    count = _count_frames(path) if max_frames else None
    if count is None:  # every frame wanted, or frames of varying size
        frames = read_structures(path)
        if not max_frames:
            return frames
        step = max(1, math.ceil(len(frames) / (max_frames - 1)))
        return frames[::step] + ([frames[-1]] if (len(frames) - 1) % step else [])
    step = max(1, math.ceil(count / (max_frames - 1)))
    chosen = ase.io.read(path, f"::{step}")
    return chosen + ([ase.io.read(path, "-1")] if (count - 1) % step else [])


#: what the conserved energy change of a run's dataset is
CONSERVED = (
    "conserved energy minus its value at the start of the run (total energy in NVE; "
    "with the thermostat's work in NVT)"
)


def run_dataset(
    folder: Path,
    label: str = "mtt-nc md trajectory",
    max_frames: Optional[int] = None,
    atoms: bool = True,
) -> Dict[str, Any]:
    """The chemiscope dataset of the MD run in ``folder`` (its trajectory and log):
    per frame the time, temperatures (overall and per species), potential and
    kinetic energy and the change of the conserved energy (meV/atom); per atom
    |F_c - F_nc| (eV/A) with arrows when every frame has both forces. With
    ``max_frames``, at most that many frames, evenly spread (:func:`read_frames`);
    without ``atoms``, the frame properties only (no per-atom values or arrows).
    The run's ``trajectory.chemiscope.json.gz`` holds every frame; ``mtt-nc
    compare``'s viewer a few (:data:`~metatrain_nc.reports.viewer.MAX_FRAMES`)."""
    import chemiscope

    count = max_frames and max(2, max_frames)
    frames = read_frames(folder / FILES["trajectory"], count)
    log = {int(r["step"]): r for r in read_log(folder / FILES["log"])}
    rows = [log.get(int(frame.info.get("step", -1)), {}) for frame in frames]
    first = next(iter(log.values()), {})
    reference = first.get("conserved_eV", math.nan)

    def per_frame(key: str, fallback: Optional[str] = None) -> List[float]:
        values = []
        for frame, row in zip(frames, rows, strict=True):
            value = row.get(key, math.nan)
            if not math.isfinite(value) and fallback is not None:
                value = float(frame.info.get(fallback, math.nan))
            values.append(value)
        return values

    n_atoms = len(frames[0])
    conserved = [1000.0 * (v - reference) / n_atoms for v in per_frame("conserved_eV")]
    #: (name, values, units, description) of each property of the frames
    columns = [
        ("time", per_frame("time_fs", "time_fs"), "fs", None),
        ("temperature", per_frame("temperature_K", "temperature_K"), "K", None),
        ("conserved energy change", conserved, "meV/atom", CONSERVED),
        ("potential energy", per_frame("potential_eV", "potential_eV"), "eV", None),
        ("kinetic energy", per_frame("kinetic_eV"), "eV", None),
    ]
    for key in first:
        if key.startswith("temperature_") and key != "temperature_K":
            symbol = key[len("temperature_") : -len("_K")]
            about = f"temperature of the {symbol} atoms"
            columns.append((f"temperature {symbol}", per_frame(key), "K", about))
    properties: Dict[str, Any] = {
        name: {"target": "structure", "values": values, "units": units}
        | ({"description": about} if about else {})
        for name, values, units, about in columns
        if any(math.isfinite(v) for v in values)
    }
    extra: Dict[str, Any] = {}
    if atoms and all("force_difference" in f.arrays for f in frames):
        properties["|F_c - F_nc|"] = {
            "target": "atom",
            "values": np.concatenate([f.arrays["force_difference"] for f in frames]),
            "units": "eV/A",
            "description": "norm of conservative minus direct force",
        }
        for f in frames:
            f.arrays["difference_forces"] = (
                f.arrays["forces_conservative"] - f.arrays["forces_direct"]
            )
        extra["environments"] = chemiscope.all_atomic_environments(frames, 3.5)
        extra["shapes"] = {
            "difference_forces": chemiscope.ase_vectors_to_arrows(
                frames, "difference_forces", scale=1.0
            )
        }
    y = "conserved energy change" if "conserved energy change" in properties else "time"
    axes = {"x": "time", "y": y, "color": "temperature"}
    return chemiscope.create_input(
        structures=frames,
        properties=properties,
        settings={"map": {k: {"property": v} for k, v in axes.items()}},
        metadata={
            "name": label,
            "description": f"{len(frames)} frames of {folder.name} ({n_atoms} "
            "atoms)" + (", evenly spread over the run" if max_frames else ""),
        },
        **extra,
    )


def run_summary(
    model: Any,
    split: Any,
    view: Any,
    settings: Any,
    status: str,
    message: Optional[str],
    elapsed: float,
    calls: Dict[str, Optional[int]],
    monitor: Any,
    topology: Any = None,
    **identity: Any,
) -> Dict[str, Any]:
    """The ``summary.json`` of one MD run (or replica) of ``model``: ``status`` and
    ``message``, then ``identity`` (engine, replica), the model and its fast model,
    what ran (``view``: the integrator, or a replica's view), the model ``calls``, the
    wall time ``elapsed`` (s), and :func:`~.verdicts.assess` of the ``monitor``'s
    records and of the ``topology`` watch (a :class:`~.topology.TopologyWatch`, the
    trajectory writer's; ``None``: no check) (``settings``: the
    :class:`~.md.MDSettings` of the run)."""
    from ase import units

    from .verdicts import assess

    summary: Dict[str, Any] = {
        "status": status,
        "message": message,
        **identity,
        "model": model.source,
        "model_kind": model.kind,
        "model_dtype": model.dtype,
        "fast_model": split.describe()["fast"],
        "degrees_of_freedom": view.degrees_of_freedom,
        "n_atoms": len(view.atoms),
        # the species temperatures' corrections, for reading the run again
        # (:mod:`.reading`)
        "species_scale": dict(monitor.species_scale),
        "settings": dict(settings.__dict__),
        "velocity_source": view.velocity_source,
        "inner_timestep_fs": settings.timestep_fs / settings.stride,
        "outer_steps_done": int(view.nsteps),
        "simulated_time_ps": view.get_time() / units.fs / 1000.0,
        "wall_time_s": elapsed,
        **calls,
        "files": {k: v for k, v in FILES.items() if k != "relax_table"},
        "stride_scan": None,
    }
    summary.update(
        assess(
            monitor.rows,
            len(view.atoms),
            settings.forces,
            settings.ensemble,
            target_temperature(settings),
            monitor.species_scale,
            equilibration=settings.equilibration_fraction,
            topology=None if topology is None else topology.result(),
            tau_fs=settings.tau_fs,
        )
    )
    return summary


def target_temperature(settings: Any) -> Optional[float]:
    """The thermostat's target (K) of a run, ``None`` in NVE."""
    return settings.temperature_K if settings.ensemble != "nve" else None


def write_run(
    folder: Path,
    summary: Dict[str, Any],
    monitor: Any,
    settings: Any,
    title: str,
    frames: int,
) -> None:
    """The files of an MD run in ``folder``: its log, its figures (``title``), its
    chemiscope file (when the trajectory has ``frames``) and ``summary.json``."""
    from ..files import write_csv, write_json

    write_csv(folder / FILES["log"], monitor.columns, monitor.rows)
    if settings.plots and monitor.rows:
        plot_md(monitor.rows, folder, title, target_temperature(settings))
    if settings.chemiscope and frames:
        dataset = run_dataset(folder)
        with gzip.open(folder / FILES["chemiscope"], "wt", encoding="utf-8") as out:
            json.dump(dataset, out)
    write_json(folder / FILES["summary"], summary)
