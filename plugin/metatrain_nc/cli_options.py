"""Command-line options as declarative tables, shared by the ``mtt-nc`` commands,
the scripts and the benchmarks.

A command lists its options once (:func:`option`: the flags and the keywords of
``argparse``'s ``add_argument``, and the settings field the value fills);
:func:`add_options` adds them to a parser, :func:`option_values` reads the parsed
values back as ``{field: value}``, ready for a settings class.

Imported by the command modules for ``--help``: no torch here.
"""

import argparse
from typing import Any, Dict, Iterable, NamedTuple, Tuple, Union


class Option(NamedTuple):
    """One ``add_argument`` call, and the settings field its value fills."""

    flags: Tuple[str, ...]
    keywords: Dict[str, Any]
    field: Union[str, bool] = True

    @property
    def dest(self) -> str:
        """The attribute of the parsed namespace, as ``argparse`` names it."""
        if "dest" in self.keywords:
            return self.keywords["dest"]
        long = [f for f in self.flags if f.startswith("--")]
        return (long or list(self.flags))[0].lstrip("-").replace("-", "_")


def option(
    *flags: str, field: Union[str, bool, None] = None, **keywords: Any
) -> Option:
    """An option: ``flags`` and ``keywords`` as ``add_argument`` takes them.

    ``field`` names the settings field its value fills: ``True`` the field of the
    option's own name, ``False`` none; by default ``True`` for an optional argument,
    ``False`` for a positional one. Without a ``type``, the value has the type of a
    number ``default`` (``int`` or ``float``).
    """
    default = keywords.get("default")
    if "type" not in keywords and type(default) in (int, float):
        keywords["type"] = type(default)
    if field is None:
        field = flags[0].startswith("-")
    return Option(tuple(flags), keywords, field)


def switch(flag: str, help: str, field: Union[str, bool, None] = None) -> Option:
    """A ``store_true`` flag."""
    return option(flag, action="store_true", help=help, field=field)


def add_options(parser: argparse.ArgumentParser, options: Iterable[Option]) -> None:
    """Add ``options`` to ``parser``, in order."""
    for entry in options:
        parser.add_argument(*entry.flags, **entry.keywords)


def option_values(
    args: argparse.Namespace, options: Iterable[Option], skip_none: bool = False
) -> Dict[str, Any]:
    """``{field: value}`` of the ``options`` that fill a settings field (with
    ``skip_none``, only those given a value)."""
    values = {}
    for entry in options:
        if entry.field is False:
            continue
        value = getattr(args, entry.dest)
        if value is not None or not skip_none:
            values[entry.dest if entry.field is True else entry.field] = value
    return values
