"""Output folders shared by the tools: refuse to overwrite, write atomically.

A tool writes its results into a hidden temporary sibling of the requested folder
(:class:`StagedFolder`) and renames it at the end, so that an error never leaves a
partial folder and an existing folder is only replaced with ``--force``.
"""

import argparse
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Union

from .errors import UserInputError


def check_outdir(outdir: Union[str, os.PathLike], force: bool) -> Path:
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


class StagedFolder:
    """A temporary folder next to ``target`` that becomes ``target`` on
    :meth:`commit` and disappears on :meth:`discard`."""

    def __init__(self, target: Union[str, os.PathLike], force: bool):
        self.target = check_outdir(target, force)
        parent = self.target.resolve().parent
        parent.mkdir(parents=True, exist_ok=True)
        self.path = Path(
            tempfile.mkdtemp(prefix=f".{self.target.name}.partial-", dir=parent)
        )

    def commit(self) -> Path:
        if self.target.exists():
            shutil.rmtree(self.target)
        os.replace(self.path, self.target)
        return self.target

    def discard(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def clean_json(value: Any) -> Any:
    """JSON-safe copy: numpy to python, NaN/inf to None."""
    import numpy as np  # here: command modules import this file for --help

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
    return value


def add_output_dir_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``-o/--output-dir`` and ``--force`` options every tool shares; read them
    with :func:`check_outdir` / :class:`StagedFolder`."""
    parser.add_argument(
        "-o", "--output-dir", required=True, help="folder for the results (new)"
    )
    parser.add_argument(
        "--force", action="store_true", help="replace OUTPUT_DIR if it exists"
    )
