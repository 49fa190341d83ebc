"""The architecture a metatrain checkpoint was written by, read without loading it.

``torch.load`` of a checkpoint unpickles everything (model, optimizer and scheduler
states, twice each) to give one string. :func:`architecture_of` reads the pickle of
the checkpoint's zip archive with every class and tensor storage replaced by an inert
placeholder: no tensor data is read, nothing is imported (not even torch), and the
answer is kept per file (path, size, modification time), so each checkpoint is read
once per process however many checks ask. Checkpoints in torch's legacy (non-zip)
format fall back to ``torch.load``.
"""

import os
import pickle
import zipfile
from typing import Any, Dict, Optional, Tuple, Union

_NAMES: Dict[Tuple[str, int, int], Optional[str]] = {}

#: classes a checkpoint's skeleton may really contain (everything else is opaque)
_KEPT = {
    ("collections", "OrderedDict"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "slice"),
    ("builtins", "complex"),
}


class _Opaque:
    """Stands for any object of the pickle (model classes, tensors, storages)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def append(self, value: Any) -> None:
        pass

    def extend(self, values: Any) -> None:
        pass


class _SkeletonUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _KEPT:
            return super().find_class(module, name)
        return _Opaque

    def persistent_load(self, pid: Any) -> Any:  # tensor storages: not read
        return None


def _read(path: str) -> Optional[str]:
    if not zipfile.is_zipfile(path):
        import torch

        checkpoint = torch.load(path, weights_only=False, map_location="cpu")
    else:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.split("/")[-1] == "data.pkl"]
            if not names:
                return None
            with archive.open(min(names, key=len)) as data:
                checkpoint = _SkeletonUnpickler(data).load()
    if not isinstance(checkpoint, dict):
        return None
    name = checkpoint.get("architecture_name")
    return name if isinstance(name, str) else None


def architecture_of(path: Union[str, os.PathLike]) -> Optional[str]:
    """The ``architecture_name`` recorded in the checkpoint at ``path``.

    :param path: a metatrain checkpoint (``.ckpt``).
    :return: the name, or ``None`` if the file records none.
    :raises OSError: the file cannot be read.
    :raises Exception: whatever the unpickling raises for a file that is not a
        checkpoint (callers that leave the error to metatrain catch it).
    """
    path = os.path.abspath(os.fspath(path))
    stat = os.stat(path)
    key = (path, stat.st_size, stat.st_mtime_ns)
    if key not in _NAMES:
        _NAMES[key] = _read(path)
    return _NAMES[key]
