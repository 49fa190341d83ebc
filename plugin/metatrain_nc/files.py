"""Files every tool reads and writes: structures in, CSV and JSON out, output folders.

- :func:`read_structures`, :func:`read_structure`: any file ASE reads, with errors
  that name the file and what is wrong with it (:class:`~.errors.UserInputError`);
- :func:`write_csv`, :func:`write_json`, :func:`clean_json`: tables and JSON
  (``.json.gz`` compressed), numpy values and NaN/inf made JSON-safe;
- :func:`add_output_dir_arguments`, :func:`check_outdir`, :class:`StagedFolder`: a tool
  writes its results into a hidden temporary sibling of the requested folder and
  renames it at the end, so that an error never leaves a partial folder and an
  existing folder is only replaced with ``--force``.

Import-light on purpose (the command modules import it for ``--help``): ASE and numpy
are imported inside the functions that need them.
"""

import argparse
import csv
import gzip
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, List, Mapping, Sequence, Union

from .errors import UserInputError

if TYPE_CHECKING:
    import ase

PathLike = Union[str, os.PathLike]


# --- structures -----------------------------------------------------------------------


def read_structures(path: PathLike, index: str = ":") -> List["ase.Atoms"]:
    """All frames ``index`` (an ASE index: ``":"``, ``"0"``, ``"::2"``...) of ``path``
    (any format ASE reads).

    :raises UserInputError: missing, empty or unreadable file, a folder; no frame
        selected; a frame without atoms.
    """
    import ase
    import ase.io

    path = os.fspath(path)
    if not os.path.exists(path):
        raise UserInputError(f"structure file '{path}' does not exist")
    if os.path.isdir(path):
        raise UserInputError(f"'{path}' is a folder, not a structure file")
    if os.path.getsize(path) == 0:
        raise UserInputError(f"structure file '{path}' is empty")
    try:
        frames = ase.io.read(path, index)
    except StopIteration:
        frames = []
    except Exception as error:  # ASE raises many kinds for unreadable files
        raise UserInputError(
            f"cannot read structures from '{path}': {error}"
        ) from error
    if isinstance(frames, ase.Atoms):
        frames = [frames]
    frames = list(frames)
    if not frames:
        raise UserInputError(f"no structures in '{path}' (index '{index}')")
    for i, atoms in enumerate(frames):
        if len(atoms) == 0:
            raise UserInputError(f"structure {i} of '{path}' has no atoms")
    return frames


def read_structure(path: PathLike, index: int = 0) -> "ase.Atoms":
    """Frame ``index`` of ``path`` (see :func:`read_structures`).

    :raises UserInputError: as :func:`read_structures`, or no frame ``index``.
    """
    frames = read_structures(path, ":")
    if not -len(frames) <= index < len(frames):
        raise UserInputError(
            f"'{os.fspath(path)}' has {len(frames)} frame(s); frame {index} does not "
            "exist"
        )
    return frames[index]


# --- CSV and JSON ---------------------------------------------------------------------


def write_csv(
    path: PathLike,
    columns: Sequence[str],
    rows: Sequence[Union[Mapping[str, Any], Sequence[Any]]],
) -> None:
    """A CSV table: a header ``columns``, then one line per row.

    A row is either a mapping (its values under ``columns``; a missing column is
    left empty) or a sequence of values in the order of ``columns``.
    """
    columns = list(columns)
    with open(path, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(columns)
        for row in rows:
            if isinstance(row, Mapping):
                writer.writerow([row.get(k, "") for k in columns])
            else:
                writer.writerow(row)


def clean_json(value: Any) -> Any:
    """JSON-safe copy: numpy to python, NaN/inf to None."""
    import numpy as np

    if isinstance(value, dict):
        return {str(k): clean_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean_json(v) for v in value]
    if isinstance(value, np.ndarray):
        return clean_json(value.tolist())
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def write_json(
    path: PathLike, data: Any, *, indent: Union[int, None] = 2, clean: bool = True
) -> None:
    """``data`` as JSON (through :func:`clean_json` unless ``clean`` is false); a
    ``path`` ending in ``.gz`` is gzip-compressed."""
    if clean:
        data = clean_json(data)
    text = json.dumps(data, indent=indent) + "\n"
    if os.fspath(path).endswith(".gz"):
        with gzip.open(path, "wt", encoding="utf-8") as stream:
            stream.write(text)
    else:
        Path(path).write_text(text)


# --- output folders -------------------------------------------------------------------


def add_output_dir_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``-o/--output-dir`` and ``--force`` options every tool shares; read them
    with :func:`check_outdir` / :class:`StagedFolder`."""
    parser.add_argument(
        "-o", "--output-dir", required=True, help="folder for the results (new)"
    )
    parser.add_argument(
        "--force", action="store_true", help="replace OUTPUT_DIR if it exists"
    )


def check_outdir(outdir: PathLike, force: bool) -> Path:
    """Refuse an existing ``outdir`` unless ``force``."""
    path = Path(outdir)
    if path.exists() and not force:
        raise UserInputError(
            f"output folder '{path}' already exists; choose another one or pass "
            "--force (force=True in Python) to replace it"
        )
    if path.exists() and not path.is_dir():
        raise UserInputError(f"'{path}' exists and is not a folder")
    return path


def lock_folder(path: PathLike) -> "int | None":
    """An exclusive ``flock`` on the folder ``path`` itself, held by the returned
    descriptor until it is closed or the process ends (whatever happens to the files
    inside); ``None`` when another process holds it."""
    import fcntl

    descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(descriptor)
        return None
    return descriptor


class StagedFolder:
    """A hidden temporary folder next to ``target`` (write into :attr:`path`) that
    becomes ``target`` on :meth:`commit` and disappears on :meth:`discard`.

    As a context manager, it is discarded when the block raises (or ends without
    :meth:`commit`)::

        with StagedFolder(outdir, force) as folder:
            write_json(folder.path / "summary.json", summary)
            folder.commit()

    :raises UserInputError: ``target`` exists and not ``force`` (see
        :func:`check_outdir`), or the folder cannot be created.
    """

    def __init__(self, target: PathLike, force: bool):
        self.target = check_outdir(target, force)
        self.committed = False
        parent = self.target.resolve().parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
            self.path = Path(
                tempfile.mkdtemp(prefix=f".{self.target.name}.partial-", dir=parent)
            )
        except OSError as error:
            raise UserInputError(
                f"cannot create the output folder '{self.target}': "
                f"{error.strerror or error}; choose a folder you can write to (-o)"
            ) from error

    def commit(self) -> Path:
        """Rename the staging folder to ``target``; an existing ``target`` is moved
        aside first and deleted only once the new one is in place."""
        parent = self.path.parent
        if self.target.exists():
            backup = Path(
                tempfile.mkdtemp(prefix=f".{self.target.name}.old-", dir=parent)
            )
            os.replace(self.target, backup / "old")
            try:
                os.replace(self.path, self.target)
            except BaseException:
                os.replace(backup / "old", self.target)
                shutil.rmtree(backup, ignore_errors=True)
                raise
            shutil.rmtree(backup, ignore_errors=True)
        else:
            os.replace(self.path, self.target)
        self.committed = True
        return self.target

    def discard(self) -> None:
        """Delete the staging folder (nothing is left behind)."""
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> "StagedFolder":
        return self

    def __exit__(self, *exc_info) -> None:
        if not self.committed:
            self.discard()
