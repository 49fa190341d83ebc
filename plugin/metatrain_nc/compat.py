"""Which metatrain this metatrain-nc works with, and a clear error otherwise.

The architectures call :func:`check_metatrain_version` before importing anything from
metatrain's internals (which they subclass and the start-up hook patches), so an
unsupported metatrain gives one sentence naming the supported versions and the pip
command that fixes it, not a traceback from deep inside metatrain. Import-light: only
``importlib.metadata``.
"""

import re
from importlib.metadata import PackageNotFoundError, version
from typing import Optional, Tuple

from . import SUPPORTED_METATRAIN


class UnsupportedMetatrainError(ImportError):
    """The installed metatrain is missing or outside :data:`SUPPORTED_METATRAIN`.

    An ``ImportError``, raised while importing ``metatrain_nc.pet_nc`` /
    ``metatrain_nc.pet_m``; the start-up hook shows it as is when metatrain's
    ``import_architecture`` would wrap it in a generic message.
    """


def _release(text: str) -> Tuple[int, ...]:
    """The leading release numbers of a version (``"2026.4.1rc1"`` -> (2026, 4, 1))."""
    numbers = []
    for part in text.strip().split("."):
        match = re.match(r"\d+", part)
        if match is None:
            break
        numbers.append(int(match.group()))
        if match.end() != len(part):  # pre-release, post-release or local tag
            break
    return tuple(numbers)


def metatrain_version() -> Optional[str]:
    """The installed metatrain version, or ``None`` if metatrain is not installed."""
    try:
        return version("metatrain")
    except PackageNotFoundError:
        return None


def is_supported(installed: Optional[str]) -> bool:
    """Whether the version ``installed`` lies in the range :data:`SUPPORTED_METATRAIN`.

    ``None`` (metatrain not installed) is not supported.
    """
    if installed is None:
        return False
    lowest, first_unsupported = (_release(v) for v in SUPPORTED_METATRAIN)
    return lowest <= _release(installed) < first_unsupported


def supported_range() -> str:
    """The supported range as a pip requirement (``metatrain>=A,<B``)."""
    lowest, first_unsupported = SUPPORTED_METATRAIN
    return f"metatrain>={lowest},<{first_unsupported}"


def unsupported_message(installed: Optional[str]) -> str:
    """The sentence telling a user that ``installed`` is unsupported, and the fix."""
    found = "is not installed" if installed is None else f"{installed} is installed"
    return (
        f"metatrain-nc needs {supported_range()}, but metatrain {found}. Fix it with "
        f"`pip install '{supported_range()}'`, or install the metatrain-nc release "
        "made for your metatrain."
    )


def check_metatrain_version() -> None:
    """Raise :class:`UnsupportedMetatrainError` unless the metatrain is supported.

    :raises UnsupportedMetatrainError: metatrain is missing or its version is outside
        :data:`metatrain_nc.SUPPORTED_METATRAIN`; the message names the supported
        versions and the pip command that installs one.
    """
    installed = metatrain_version()
    if not is_supported(installed):
        raise UnsupportedMetatrainError(unsupported_message(installed))
