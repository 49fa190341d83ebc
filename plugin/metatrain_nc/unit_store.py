"""A resumable store of units of work, for jobs that run for hours (``mtt-nc
compare``, ``mtt-nc distill``).

Layout of the output folder::

    protocol.json     what the job was started with (inputs and settings)
    units/<id>.json   the record of each finished unit
    .running          the process id of the run working in the folder (a note for
                      messages; the lock is held on the folder itself)

A unit is one piece of work cached by its id (a stage of one model, an NVT run, the
training of the students, ...). :func:`run_units` runs the units not stored yet,
stores each one when it finishes and publishes the results: an interrupted job
continues with ``--resume`` from the units that finished; a unit that failed runs
again. Hidden staging folders (``.*.partial-*``) of work cut short are removed when
the folder is opened again.
"""

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

from .errors import UserInputError
from .files import clean_json, lock_folder, write_json

#: a unit: its id and the function that makes its record
Unit = Tuple[str, Callable[[], Dict[str, Any]]]
#: the records of units by id (``None``: not finished)
Records = Dict[str, Optional[Dict[str, Any]]]
#: the file naming the process that works in a folder
OWNER_FILE = ".running"


def unit_id(*parts: Any) -> str:
    """The id of a unit (a file name) from its key."""
    text = "-".join(str(p) for p in parts)
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


def write_atomic(path: Path, content: Any) -> None:
    """``content`` (text, or data as JSON) at ``path``, written whole then renamed."""
    partial = path.with_name(f".{path.name}.partial")
    if isinstance(content, str):
        partial.write_text(content, encoding="utf-8")
    else:
        write_json(partial, content)
    partial.replace(path)


def check_target(outdir: Path, resume: bool, force: bool) -> None:
    """Refuse, before any work, an output folder that exists without ``resume`` or
    ``force`` (or a file)."""
    if outdir.exists() and not outdir.is_dir():
        raise UserInputError(f"'{outdir}' exists and is not a folder")
    if outdir.exists() and not (resume or force):
        raise UserInputError(
            f"output folder '{outdir}' already exists; continue it with --resume, "
            "replace it with --force, or choose another -o"
        )


class UnitStore:
    """The output folder of a job, opened (created, replaced with ``force`` or
    reopened with ``resume``) and locked by this process from then to the end of its
    ``with`` block.

    :param protocol: what the job is started with (JSON-ready); resuming needs the
        same, but for ``settings`` named in ``resumable``, settings missing from an
        older folder that had the value ``legacy`` gives them, and ``models`` (more
        may be added; those run must stay).
    :param tool: the command, for messages (``"mtt-nc compare"``).
    :param option: its output-folder option, for messages (``"-o"``).
    """

    def __init__(
        self,
        outdir: Path,
        protocol: Dict[str, Any],
        resume: bool,
        force: bool,
        *,
        tool: str = "mtt-nc compare",
        option: str = "-o",
        resumable: Sequence[str] = (),
        legacy: Optional[Dict[str, Any]] = None,
    ):
        self.path = Path(outdir)
        self.tool, self.option = tool, option
        self.resumable, self.legacy = resumable, legacy or {}
        check_target(self.path, resume, force)
        self.replaced: Optional[Path] = None
        self.lock: Optional[int] = None
        if self.path.exists():
            # refuse before anything is read or moved if another run works here
            self.lock = self._lock()
        try:
            if self.path.exists() and resume:
                self._check_resume(protocol)
            elif self.path.exists():
                self.replaced = Path(
                    tempfile.mkdtemp(
                        prefix=f".{self.path.name}.old-", dir=self.path.parent
                    )
                )
                os.replace(self.path, self.replaced / "old")
            if self.replaced is not None or self.lock is None:
                self._create_and_lock()
        except BaseException:
            self._release()
            if self.replaced is not None and not self.path.exists():
                os.replace(self.replaced / "old", self.path)  # put it back
                self.replaced.rmdir()
            raise
        write_atomic(self.path / OWNER_FILE, str(os.getpid()))
        write_atomic(self.path / "protocol.json", protocol)
        self.units = self.path / "units"
        self.units.mkdir(exist_ok=True)
        for leftover in list(self.path.rglob(".*.partial-*")):  # runs cut short
            shutil.rmtree(leftover, ignore_errors=True)

    def _create_and_lock(self) -> None:
        """Create the folder (the one replaced has moved away) and lock it, releasing
        the lock held on the folder it replaces."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise UserInputError(
                f"cannot create the output folder '{self.path}': "
                f"{error.strerror or error}; choose a folder you can write to "
                f"({self.option})"
            ) from error
        old, self.lock = self.lock, self._lock()
        if old is not None:
            os.close(old)

    def _check_resume(self, protocol: Dict[str, Any]) -> None:
        saved_path = self.path / "protocol.json"
        if not saved_path.is_file():
            raise UserInputError(
                f"'{self.path}' is not a folder of `{self.tool}` (no "
                f"protocol.json): nothing to resume; choose another {self.option}"
            )
        saved = json.loads(saved_path.read_text())
        differences = [
            key
            for key in protocol
            if key not in ("settings", "models") and saved.get(key) != protocol[key]
        ]
        # models may be added to a comparison; the ones already run stay as they were
        old_models, new_models = saved.get("models", {}), protocol.get("models", {})
        if any(new_models.get(name) != path for name, path in old_models.items()):
            differences.append("models")
        fixed = saved["settings"]
        differences += [
            f"settings.{k}"
            for k, v in protocol["settings"].items()
            if k not in self.resumable and fixed.get(k, self.legacy.get(k)) != v
        ]
        if differences:
            may = ", ".join(self.resumable)
            raise UserInputError(
                f"--resume: '{self.path}' was started with other {differences} than "
                "given now; resume with the same inputs and settings"
                + (f" (only {may} may change)" if may else "")
                + f", or choose another {self.option}"
            )

    def _lock(self) -> int:
        """An exclusive lock on the folder itself while this process works in it
        (released when the process ends, whatever happens to the files inside): two
        runs in one folder would remove each other's unfinished MD runs, and a
        ``--force`` would move a running job's folder away. Returns the folder's
        descriptor, which holds the lock."""
        descriptor = lock_folder(self.path)
        if descriptor is None:
            try:
                owner = (self.path / OWNER_FILE).read_text().strip() or "?"
            except OSError:
                owner = "?"
            raise UserInputError(
                f"another `{self.tool}` (process {owner}) is working in "
                f"'{self.path}'; wait for it to finish, or stop it and --resume"
            ) from None
        return descriptor

    def _release(self) -> None:
        if self.lock is not None:
            os.close(self.lock)
            self.lock = None

    def load(self, uid: str) -> Optional[Dict[str, Any]]:
        """The record of unit ``uid``, ``None`` if it has not finished."""
        path = self.units / f"{uid}.json"
        return json.loads(path.read_text()) if path.is_file() else None

    def save(self, uid: str, record: Dict[str, Any]) -> None:
        write_atomic(self.units / f"{uid}.json", record)

    def records(self, uids: Sequence[str]) -> Records:
        """The records of ``uids`` (``None``: not finished), then those of every
        other stored unit (earlier parts of this comparison)."""
        out = {uid: self.load(uid) for uid in uids}
        for path in sorted(self.units.glob("*.json")):
            out.setdefault(path.stem, json.loads(path.read_text()))
        return out

    def __enter__(self) -> "UnitStore":
        return self

    def __exit__(self, error_type, *_) -> None:
        """Release the lock; without an error, remove the folder this one replaced."""
        self._release()
        if error_type is None and self.replaced is not None:
            shutil.rmtree(self.replaced, ignore_errors=True)


def run_units(
    units: Sequence[Unit],
    store: UnitStore,
    collect: Callable[[Records, Dict[str, str]], Dict[str, Any]],
    publish: Callable[[Dict[str, Any], Path], None],
    *,
    live: bool = False,
    fatal: Tuple[type, ...] = (),
    progress: bool = True,
    log: Callable[[str], None] = print,
    desc: str = "compare",
) -> Dict[str, Any]:
    """Run the units not stored yet, each on its own, and store their records (with
    ``unit_wall_time_s``); then ``publish(results, folder)`` the results
    ``collect(records, failed)`` (``failed``: ``uid -> message``), also after every
    unit with ``live``.

    :param fatal: exceptions that stop the job (any other one fails its unit only).
    :return: the results and ``output_dir``.
    """
    from tqdm.auto import tqdm

    failed: Dict[str, str] = {}
    data: Dict[str, Any] = {}

    def write() -> None:
        data.clear()
        records = store.records([uid for uid, _ in units])
        data.update(clean_json(collect(records, failed)))
        publish(data, store.path)

    bar = tqdm(total=len(units), desc=desc, unit="unit", disable=not progress)
    try:
        for uid, work in units:
            bar.set_postfix_str(uid)
            if store.load(uid) is None:
                start = time.perf_counter()
                try:
                    record = work()
                except fatal:
                    raise
                except UserInputError as error:
                    failed[uid] = str(error)
                except Exception as error:  # one unit must not lose the others
                    failed[uid] = f"{type(error).__name__}: {error}"
                if uid in failed:
                    log(f"[{desc}] {uid} failed: {failed[uid]}")
                else:
                    record["unit_wall_time_s"] = time.perf_counter() - start
                    store.save(uid, record)
                    if live:
                        write()
            bar.update()
    finally:
        bar.close()
    write()
    return dict(data, output_dir=str(store.path))
