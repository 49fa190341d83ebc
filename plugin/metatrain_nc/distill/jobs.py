"""Commands of a distillation run (``mtt train``, ``mtt-nc md``...), a few at a time.

Every command runs in the folder the user ran ``mtt-nc distill`` from, with that
folder on ``PYTHONPATH`` and one thread, so that a ``module:callable`` teacher found
there is found by every step; all paths are absolute. Logs go to ``<out>/logs/``.
"""

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from ..errors import UserInputError


@dataclass
class Job:
    """One command: its log, and its CPU and wall time (s) once done."""

    name: str
    command: List[str]
    log: Path
    cpu_s: float = 0.0
    wall_s: float = 0.0

    def as_dict(self) -> Dict[str, object]:
        """JSON-ready: name, command, log, CPU and wall time (s)."""
        return {"name": self.name, "command": self.command, "log": str(self.log),
                "cpu_s": self.cpu_s, "wall_s": self.wall_s}  # fmt: skip


def tool(name: str) -> str:
    """A console script of this interpreter's environment (``mtt``, ``mtt-nc``)."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


class Runner:
    """Runs commands (at most ``jobs`` at a time) and sums their CPU time."""

    def __init__(self, out: Path, jobs: int, cwd: Path):
        self.logs = out / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.jobs = max(1, jobs)
        self.cwd = cwd
        self.done: List[Job] = []
        path = os.environ.get("PYTHONPATH", "")
        self.env = dict(
            os.environ,
            OMP_NUM_THREADS="1",
            PYTHONUNBUFFERED="1",
            PYTHONPATH=os.pathsep.join(p for p in (str(cwd), path) if p),
        )

    def run(self, batch: Sequence[tuple], cwd=None) -> List[Job]:
        """Run ``(name, command)`` or ``(name, command, folder)`` jobs, each in its
        folder, else in ``cwd``, else in the user's folder.

        :raises UserInputError: a command failed (the others are stopped); the
            message names its log and ends with its last lines.
        """
        pending = [
            (
                Job(item[0], [str(c) for c in item[1]], self.logs / f"{item[0]}.log"),
                item[2] if len(item) > 2 else (cwd or self.cwd),
            )
            for item in batch
        ]
        running: Dict[int, Tuple[Job, subprocess.Popen, float]] = {}
        finished: List[Job] = []
        while pending or running:
            while pending and len(running) < self.jobs:
                job, folder = pending.pop(0)
                print(f"[distill] $ {' '.join(_short(c) for c in job.command)}")
                with open(job.log, "w") as handle:
                    process = subprocess.Popen(
                        job.command,
                        cwd=folder,
                        stdout=handle,
                        stderr=subprocess.STDOUT,
                        env=self.env,
                    )
                running[process.pid] = (job, process, time.perf_counter())
            pid, status, usage = os.wait4(-1, 0)
            if pid not in running:
                continue
            job, process, began = running.pop(pid)
            process.returncode = os.waitstatus_to_exitcode(status)
            job.cpu_s = usage.ru_utime + usage.ru_stime
            job.wall_s = time.perf_counter() - began
            if process.returncode != 0:
                for _, other, _ in running.values():
                    other.kill()
                raise UserInputError(
                    f"step '{job.name}' failed (exit {process.returncode}): see "
                    f"{job.log}\n{_tail(job.log)}"
                )
            finished.append(job)
            self.done.append(job)
        return finished


def _short(text: str) -> str:
    try:
        return os.path.relpath(text) if os.path.isabs(text) else text
    except ValueError:
        return text


def _tail(path: Path, lines: int = 15) -> str:
    text = path.read_text(errors="replace").replace("\r", "\n").splitlines()
    return "\n".join(text[-lines:])
