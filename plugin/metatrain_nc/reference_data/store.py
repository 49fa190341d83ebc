"""Append-only extended XYZ files that survive an interruption.

A build appends frames one at a time, for hours. :class:`FrameLog` keeps, next to each
``.extxyz`` file, a small JSON state (written atomically after every append) with the
file's size at the last complete frame and anything the writer needs to resume (for a
sampling trajectory: the dynamics state). When a process is killed in the middle of
an append, the next :meth:`FrameLog.open` cuts the file back to the last committed
size: no half-written frame is ever read.
"""

import io
import json
import os
from pathlib import Path
from typing import Any, Dict, Iterable, List

import ase
import ase.io


class FrameLog:
    """``<stem>.extxyz`` and ``<stem>.state.json`` in ``folder``.

    :ivar state: the resume state (``state["frames"]`` frames committed,
        ``state["size"]`` bytes of the file at that point, plus the writer's own keys).
    """

    def __init__(self, folder: Path, stem: str):
        self.path = Path(folder) / f"{stem}.extxyz"
        self.state_path = Path(folder) / f"{stem}.state.json"
        self.state: Dict[str, Any] = {"frames": 0, "size": 0}

    def open(self) -> "FrameLog":
        """Load the state and cut the file back to its last committed frame."""
        if self.state_path.exists():
            self.state = json.loads(self.state_path.read_text())
        size = int(self.state.get("size", 0))
        if self.path.exists():
            if self.path.stat().st_size != size:
                with open(self.path, "r+b") as stream:
                    stream.truncate(size)
        elif size:
            raise RuntimeError(
                f"'{self.state_path}' records {size} bytes of '{self.path}', which is "
                "missing: the work folder was changed by hand; start in a new --out "
                "folder"
            )
        return self

    @property
    def n_frames(self) -> int:
        return int(self.state.get("frames", 0))

    def append(self, frames: Iterable[ase.Atoms], **state: Any) -> None:
        """Append ``frames`` and commit them together with ``state`` updates."""
        frames = list(frames)
        text = io.StringIO()
        if frames:
            ase.io.write(text, frames, format="extxyz")
        data = text.getvalue().encode()
        with open(self.path, "ab") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        self.state.update(state)
        self.state["frames"] = self.n_frames + len(frames)
        self.state["size"] = int(self.state.get("size", 0)) + len(data)
        partial = Path(f"{self.state_path}.partial")
        partial.write_text(json.dumps(self.state) + "\n")
        os.replace(partial, self.state_path)

    def read(self) -> List[ase.Atoms]:
        """The committed frames."""
        if not self.path.exists() or self.n_frames == 0:
            return []
        frames = ase.io.read(self.path, ":", format="extxyz")
        return list(frames)[: self.n_frames]
