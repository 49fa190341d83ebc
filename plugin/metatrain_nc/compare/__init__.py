"""Compare force models: accuracy, cost, antisymmetry, NVE/NVT dynamics, relaxations.

:func:`compare` runs every stage for every model and writes ``report.md``,
``report.html``, ``report.json``, figures and chemiscope datasets; the command line is
``mtt-nc compare``. Names are loaded on first access (``mtt-nc --help`` stays fast).
"""

import importlib
from typing import Any

_EXPORTS = {
    "compare": "run",
    "CompareSettings": "settings",
    "STAGES": "settings",
    "ModelEntry": "models",
    "describe_model": "models",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = importlib.import_module(f".{_EXPORTS[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return __all__
