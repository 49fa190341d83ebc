"""Restart points of MD runs: a run cut short (the end of a session, a cluster's wall
time, Ctrl-C, a killed process) continues where it stopped.

:func:`~.md.run_md` with ``restart_interval_s`` works in a staging folder of a fixed
name next to its output folder, ``.<name>.resumable`` (:class:`ResumableFolder`,
locked while a process works in it), and saves there a restart point
(:data:`RESTART_FILE`) at the end of an outer step, at most every
``restart_interval_s`` seconds of wall clock (:class:`RestartRecorder`, the last
observer of the run). A point holds what the rest of the run depends on: positions,
momenta and cell; the step; the thermostat's random-number state and the energy it
exchanged; the monitor's records; the trajectory writer's place in its file and its
census of molecules; the wall time and model calls so far. It also holds what the
run was started with (:func:`identity`: settings, models, atoms), which a run that
continues must match.

``run_md(..., resume=True)`` continues from the last point: frames written after it
are cut from the trajectory, the forces at the point are evaluated once more (one
model call per continuation, counted in the summary), and everything else goes on
as if the run had not stopped. In the same process the continuation is the
uninterrupted trajectory bit for bit; in a new process it agrees to round-off
(measured with ``mtt-nc md`` killed and continued: the kinetic energy 1e-15 eV off
a few steps after the point), and the chaos of MD separates the two trajectories
over picoseconds, as after any restart: the same statistics, not the same frames.
A point is written to a temporary file and renamed, so a process killed while
saving leaves the previous point whole.

Units: positions in A, momenta in ASE units (amu A / ASE time), times in the records
as in :data:`~.observer.COLUMNS`, wall time in s.
"""

import hashlib
import io
import json
import os
import shutil
import signal
import threading
import time
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

import numpy as np

from ..errors import UserInputError
from ..files import PathLike, StagedFolder, check_outdir, lock_folder

#: suffix of the staging folder of a run with restart points: ``.<name>.resumable``
STAGING_SUFFIX = ".resumable"
#: the restart point in the staging folder
RESTART_FILE = "restart.npz"
#: default wall-clock interval between restart points (s)
DEFAULT_INTERVAL_S = 300.0


def identity(settings: Any, split: Any, atoms: Any) -> Dict[str, Any]:
    """What a run is started with and a continuation must match (JSON-ready): the
    requested :class:`~.md.MDSettings` (before a stride scan resolves ``auto``), the
    force split's mode and model sources, and the atoms (formula, and a hash of the
    atomic numbers in order)."""
    described = split.describe()
    numbers = np.asarray(atoms.numbers, dtype=np.int64)
    data = {
        "settings": dict(settings.__dict__),
        "models": {k: described.get(k) for k in ("forces", "slow", "fast")},
        "atoms": {
            "formula": atoms.get_chemical_formula(),
            "numbers_sha1": hashlib.sha1(numbers.tobytes()).hexdigest()[:16],
        },
    }
    return json.loads(json.dumps(data))


def differences(saved: Dict[str, Any], wanted: Dict[str, Any]) -> List[str]:
    """Names of what differs between two :func:`identity` (``settings.<name>``,
    ``models.<role>``, ``atoms``)."""
    out = [
        f"settings.{key}"
        for key in sorted(set(saved["settings"]) | set(wanted["settings"]))
        if saved["settings"].get(key) != wanted["settings"].get(key)
    ]
    out += [
        f"models.{role}"
        for role in sorted(set(saved["models"]) | set(wanted["models"]))
        if saved["models"].get(role) != wanted["models"].get(role)
    ]
    if saved.get("atoms") != wanted.get("atoms"):
        out.append("atoms")
    return out


def finished_run(
    target: PathLike, wanted: Dict[str, Any], force: bool
) -> Optional[Dict[str, Any]]:
    """The summary of the run finished in ``target`` (a ``summary.json`` whose
    ``started_with`` is ``wanted``), with its ``output_dir`` and
    ``already_finished``; ``None`` when there is
    none, or (with ``force``) it was made otherwise.

    :raises UserInputError: without ``force``, ``target`` holds something else.
    """
    target = Path(target)
    if not target.exists():
        return None
    try:
        summary = json.loads((target / "summary.json").read_text())
        saved = summary["started_with"]
    except (OSError, ValueError, KeyError, TypeError):
        summary, saved = None, None
    if saved is not None and not differences(saved, wanted):
        summary["output_dir"] = str(target)
        summary["already_finished"] = True  # not in the file: this call ran nothing
        return summary
    if force:
        return None
    what = (
        f"a run started with other {differences(saved, wanted)}"
        if saved is not None
        else "no run that can be continued"
    )
    raise UserInputError(
        f"--resume: '{target}' holds {what}; resume with the same settings and "
        "models, replace it with --force, or choose another output folder"
    )


@dataclass
class RestartPoint:
    """One restart point: ``meta`` (JSON-ready: ``step``, ``identity``, the resolved
    ``run_settings``, ``stride_scan``, ``velocity_source``, ``rng`` state,
    ``thermostat_energy_eV``, ``columns`` of the records, the ``writer`` state,
    ``elapsed_s``, ``calls``, ``continued_at``) and the arrays: ``positions`` (A,
    (N, 3)), ``momenta`` ((N, 3)), ``cell`` (A, (3, 3)) and the monitor's ``rows``
    ((records, columns))."""

    meta: Dict[str, Any]
    positions: np.ndarray
    momenta: np.ndarray
    cell: np.ndarray
    rows: np.ndarray

    @property
    def step(self) -> int:
        """Outer steps done at the point."""
        return int(self.meta["step"])

    def records(self) -> List[Dict[str, float]]:
        """The monitor's records up to the point (``step`` an integer)."""
        columns = self.meta["columns"]
        out = []
        for values in self.rows:
            row = {c: float(v) for c, v in zip(columns, values, strict=True)}
            row["step"] = int(row["step"])
            out.append(row)
        return out

    def differences(self, wanted: Dict[str, Any]) -> List[str]:
        """What differs between the point's :func:`identity` and ``wanted``
        (:func:`differences`)."""
        return differences(self.meta["identity"], wanted)

    def describe(self) -> str:
        """``"step S (t = T ps)"``."""
        time_ps = self.step * self.meta["run_settings"]["timestep_fs"] / 1000.0
        return f"step {self.step} (t = {time_ps:g} ps)"


def capture(
    dyn: Any,
    monitor: Any,
    writer: Any,
    fixed: Dict[str, Any],
    elapsed_s: float,
    calls: Dict[str, Optional[int]],
) -> RestartPoint:
    """The restart point of the run now (after the observers of this step).

    :param fixed: the run's constant part of ``meta`` (``identity``,
        ``run_settings``, ``stride_scan``, ``velocity_source``, ``continued_at``).
    :param elapsed_s: wall time of the run so far (all its parts, s).
    :param calls: model calls of the run so far (all its parts).
    """
    atoms = dyn.atoms
    columns = monitor.columns
    rows = np.array(
        [[row[c] for c in columns] for row in monitor.rows], dtype=float
    ).reshape(-1, len(columns))
    meta = dict(
        fixed,
        step=int(dyn.nsteps),
        rng=dyn.rng.bit_generator.state,
        thermostat_energy_eV=float(dyn.thermostat_energy),
        columns=columns,
        writer=writer.state(),
        elapsed_s=float(elapsed_s),
        calls=dict(calls),
    )
    return RestartPoint(
        meta=meta,
        positions=atoms.get_positions(),
        momenta=atoms.get_momenta(),
        cell=np.asarray(atoms.cell[:], dtype=float),
        rows=rows,
    )


def save(folder: Path, point: RestartPoint) -> None:
    """Write ``point`` to ``folder``/:data:`RESTART_FILE` (whole or not at all)."""
    buffer = io.BytesIO()
    np.savez(
        buffer,
        meta=np.array(json.dumps(point.meta)),
        positions=point.positions,
        momenta=point.momenta,
        cell=point.cell,
        rows=point.rows,
    )
    partial = folder / f".{RESTART_FILE}.partial"
    partial.write_bytes(buffer.getvalue())
    os.replace(partial, folder / RESTART_FILE)


def load(folder: Path) -> Optional[RestartPoint]:
    """The restart point saved in ``folder`` (``None``: there is none).

    :raises UserInputError: the file is there but cannot be read."""
    path = folder / RESTART_FILE
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            return RestartPoint(
                meta=json.loads(str(data["meta"])),
                positions=data["positions"],
                momenta=data["momenta"],
                cell=data["cell"],
                rows=data["rows"],
            )
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
        raise UserInputError(
            f"the restart point '{path}' cannot be read ({error}); start the run "
            "again with --force (or delete that folder)"
        ) from None


def restore(point: RestartPoint, dyn: Any, monitor: Any) -> None:
    """Put the point's step, thermostat state and records into the dynamics ``dyn``
    (built at the point's positions and momenta) and its ``monitor``."""
    dyn.nsteps = point.step
    dyn.thermostat_energy = float(point.meta["thermostat_energy_eV"])
    dyn.rng.bit_generator.state = point.meta["rng"]
    monitor.rows = point.records()


class Stopped(KeyboardInterrupt):
    """The run was asked to stop (SIGTERM, Ctrl-C) and saved a restart point at the
    end of the step it was making; the message says where."""


class RestartRecorder:
    """ASE observer (attach it last, ``interval=1``) saving a restart point into
    ``folder`` when ``interval_s`` seconds of wall clock have passed since the last
    one; ``snapshot()`` makes the point.

    Within :meth:`stopping_on_signals`, SIGTERM and SIGINT (Ctrl-C) do not stop the
    run in the middle of a step: the step ends, a point is saved and :class:`Stopped`
    is raised, so a run stopped that way continues from where it stopped."""

    def __init__(
        self, folder: Path, interval_s: float, snapshot: Callable[[], RestartPoint]
    ):
        self.folder = folder
        self.interval_s = float(interval_s)
        self.snapshot = snapshot
        self.last = time.monotonic()
        self.saved = 0
        self.stop_requested: Optional[str] = None

    def __call__(self) -> None:
        now = time.monotonic()
        if self.stop_requested or now - self.last >= self.interval_s:
            point = self.snapshot()
            save(self.folder, point)
            self.saved += 1
            self.last = now
            if self.stop_requested:
                raise Stopped(
                    f"{self.stop_requested}: stopped at {point.describe()}, restart "
                    f"point saved in '{self.folder}'; continue with --resume"
                )

    @contextmanager
    def stopping_on_signals(self) -> Iterator[None]:
        """Turn SIGTERM and SIGINT into a stop at the end of the current step
        (in the main thread only; elsewhere nothing changes)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def request(signum, frame) -> None:
            if self.stop_requested:  # asked twice: stop now, from the last point
                raise KeyboardInterrupt
            self.stop_requested = signal.Signals(signum).name

        previous = {
            s: signal.signal(s, request) for s in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            yield
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)


def staging_folder(target: PathLike) -> Path:
    """The staging folder of a run with restart points into ``target``."""
    target = Path(target)
    return target.resolve().parent / f".{target.name}{STAGING_SUFFIX}"


class ResumableFolder(StagedFolder):
    """The staging folder of a run with restart points, ``.<name>.resumable`` next to
    ``target`` (write into :attr:`path`), locked by this process: :meth:`commit`
    makes it ``target`` (without the restart point), :meth:`discard` deletes it, and
    :meth:`keep` leaves a run cut short for a continuation.

    :param wanted: the :func:`identity` of the run.
    :param resume: continue the run cut short there (:attr:`point`: its restart
        point; ``None`` if it saved none, and the run starts again in it).
    :param force: replace ``target``, and start again over a run cut short (also
        one started otherwise, when resuming).
    :raises UserInputError: ``target`` exists and not ``force``; a run cut short is
        there and neither ``resume`` nor ``force``, or with ``resume`` but started
        otherwise and without ``force``; another process works in it. The run cut
        short is left as it was.
    """

    def __init__(
        self, target: PathLike, wanted: Dict[str, Any], force: bool, resume: bool
    ):
        self.target = check_outdir(target, force)
        self.path = staging_folder(target)
        self.committed = False
        self.point: Optional[RestartPoint] = None
        self.lock: Optional[int] = None
        if self.path.exists():
            self._lock()
            try:
                self.point = load(self.path)
            except UserInputError:
                if not force:
                    self._release()
                    raise
                self.point = None  # unreadable: --force starts again
            where = "" if self.point is None else f" at {self.point.describe()}"
            if not (resume or force):
                self._release()
                raise UserInputError(
                    f"'{self.target}' has a run cut short{where} in '{self.path}': "
                    "continue it with --resume (resume=True in Python) and the same "
                    "settings, or start again with --force"
                )
            changed = [] if self.point is None else self.point.differences(wanted)
            if resume and changed and not force:
                self._release()
                raise UserInputError(
                    f"--resume: the run cut short{where} in '{self.path}' was started "
                    f"with other {changed}; resume with the same settings and "
                    "models, or start again with --force"
                )
            if resume and self.point is not None and not changed:
                return
            self.point = None
            shutil.rmtree(self.path)
            self._release()
        try:
            self.path.mkdir(parents=True)
        except OSError as error:
            raise UserInputError(
                f"cannot create the output folder '{self.target}': "
                f"{error.strerror or error}; choose a folder you can write to (-o)"
            ) from error
        self._lock()

    def _lock(self) -> None:
        self.lock = lock_folder(self.path)
        if self.lock is None:
            raise UserInputError(
                f"another run is writing '{self.target}' (its folder '{self.path}' "
                "is locked); wait for it to finish, or stop it and --resume"
            )

    def _release(self) -> None:
        if self.lock is not None:
            os.close(self.lock)
            self.lock = None

    def commit(self) -> Path:
        """Make the staging folder ``target`` (an existing ``target`` replaced)."""
        (self.path / RESTART_FILE).unlink(missing_ok=True)
        try:
            return super().commit()
        finally:
            self._release()

    def discard(self) -> None:
        """Delete the staging folder."""
        super().discard()
        self._release()

    def keep(self) -> None:
        """Leave the staging folder for a continuation when it holds a restart
        point (else delete it)."""
        if (self.path / RESTART_FILE).is_file():
            self._release()
        else:
            self.discard()
