"""Module-level ``__getattr__`` that imports a package's public names on first use.

The tool packages (``antisymmetry``, ``dynamics``, ``compare``) import torch and
metatomic; loading them lazily keeps ``mtt-nc --help`` and the start-up hook fast.
"""

import importlib
from typing import Any, Callable, Dict, List, Tuple


def lazy_exports(
    package: str, exports: Dict[str, str]
) -> Tuple[List[str], Callable[[str], Any], Callable[[], List[str]]]:
    """``(__all__, __getattr__, __dir__)`` for ``package``.

    :param package: the package's ``__name__``.
    :param exports: public name -> sub-module (relative to ``package``) defining it.
    """
    names = sorted(exports)

    def __getattr__(name: str) -> Any:
        if name in exports:
            module = importlib.import_module(f".{exports[name]}", package)
            return getattr(module, name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> List[str]:
        return names

    return names, __getattr__, __dir__
