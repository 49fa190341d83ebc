"""Compare force models: accuracy, cost, antisymmetry, NVE/NVT dynamics, relaxations.

:func:`compare` runs every stage for every model and writes ``report.md``,
``report.html``, ``report.json``, figures and chemiscope datasets; the command line is
``mtt-nc compare``. Names are loaded on first access (``mtt-nc --help`` stays fast).
"""

from ..lazy_exports import lazy_exports

_EXPORTS = {
    "compare": "run",
    "CompareSettings": "settings",
    "STAGES": "settings",
    "ModelEntry": "models",
    "describe_model": "models",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
