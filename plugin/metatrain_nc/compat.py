"""Which metatrain this metatrain-nc works with, and a clear error otherwise."""

from importlib.metadata import PackageNotFoundError, version
from typing import Optional, Tuple

from . import SUPPORTED_METATRAIN


def _parse(text: str) -> Tuple[int, ...]:
    numbers = []
    for part in text.split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        if not digits:
            break
        numbers.append(int(digits))
        if digits != part:  # pre-release or local tag: stop here
            break
    return tuple(numbers)


def metatrain_version() -> Optional[str]:
    """The installed metatrain version, or ``None`` if metatrain is missing."""
    try:
        return version("metatrain")
    except PackageNotFoundError:
        return None


def is_supported(installed: Optional[str]) -> bool:
    """Whether ``installed`` lies in the range of ``SUPPORTED_METATRAIN``."""
    if installed is None:
        return False
    lowest, first_unsupported = (_parse(v) for v in SUPPORTED_METATRAIN)
    return lowest <= _parse(installed) < first_unsupported


def supported_range() -> str:
    """The supported range as a pip requirement (``metatrain>=A,<B``)."""
    lowest, first_unsupported = SUPPORTED_METATRAIN
    return f"metatrain>={lowest},<{first_unsupported}"


def check_metatrain_version() -> None:
    """Raise ``ImportError`` naming the supported versions if metatrain is not one.

    Called when ``pet_nc`` / ``pet_m`` are imported, before anything from metatrain's
    internals (which the architectures subclass and the start-up hook patches).
    """
    installed = metatrain_version()
    if is_supported(installed):
        return
    found = "is not installed" if installed is None else f"{installed} is installed"
    raise ImportError(
        f"metatrain-nc needs {supported_range()}, but metatrain {found}. Fix it with "
        f"`pip install '{supported_range()}'`, or install a metatrain-nc release made "
        "for your metatrain."
    )
