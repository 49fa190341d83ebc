"""The ``mtt-nc`` command line.

Sub-commands are small modules that follow one contract (the same one evaluators from
other packages follow, see below):

- ``DESCRIPTION``: one line shown by ``mtt-nc --help``;
- ``add_arguments(parser: argparse.ArgumentParser) -> None``;
- ``run(args: argparse.Namespace) -> int``: the exit code.

Built-in tools are listed in :data:`BUILTIN_COMMANDS`. Evaluators are found through the
entry-point group ``metatrain.evaluators`` (name -> module), so a third-party package
adds its own evaluator to ``mtt-nc`` by declaring an entry point, nothing else.
Modules must stay import-light at top level (import torch inside ``run``) so that
``mtt-nc --help`` stays fast.
"""

import argparse
import importlib
import sys
from importlib.metadata import entry_points
from types import ModuleType
from typing import Dict, List, Optional, Tuple

from . import __version__
from .errors import UserInputError

#: sub-command name -> module implementing the contract above
BUILTIN_COMMANDS: Dict[str, str] = {
    "accuracy": "metatrain_nc.evaluation.command",
    "compare": "metatrain_nc.compare.command",
    "distill": "metatrain_nc.distill.command",
    "doctor": "metatrain_nc.doctor",
    "label": "metatrain_nc.evaluation.command_label",
    "md": "metatrain_nc.dynamics.command_md",
    "read": "metatrain_nc.dynamics.command_read",
    "reference": "metatrain_nc.reference_data.command",
    "relax": "metatrain_nc.dynamics.command_relax",
}

EVALUATOR_GROUP = "metatrain.evaluators"


def evaluator_entry_points() -> Dict[str, str]:
    """Evaluators registered in the ``metatrain.evaluators`` entry-point group.

    :return: mapping evaluator name -> module path, sorted by name.
    """
    found = {ep.name: ep.value for ep in entry_points(group=EVALUATOR_GROUP)}
    return dict(sorted(found.items()))


def _all_commands() -> Dict[str, str]:
    commands = dict(BUILTIN_COMMANDS)
    for name, module in evaluator_entry_points().items():
        # built-in names win: an evaluator cannot hide `mtt-nc doctor`
        commands.setdefault(name, module)
    return commands


def _load(module_name: str) -> Tuple[Optional[ModuleType], str]:
    """The command's module, or ``None`` and why it cannot be imported."""
    try:
        return importlib.import_module(module_name), ""
    except Exception as error:  # a broken plugin must not break the others
        return None, f"{type(error).__name__}: {error}"


def _unavailable(name: str, module_name: str, reason: str):
    def run(args: argparse.Namespace) -> int:
        raise UserInputError(
            f"this command is unavailable: its module '{module_name}' cannot be "
            f"imported ({reason}); reinstall the package that provides it, or run "
            "`mtt-nc doctor`"
        )

    return run


def build_parser() -> argparse.ArgumentParser:
    """The full ``mtt-nc`` parser, one sub-parser per available command."""
    parser = argparse.ArgumentParser(
        prog="mtt-nc",
        description=(
            "Tools for non-conservative (direct) force models trained with metatrain: "
            "registration check, antisymmetry evaluators, dynamics and comparisons."
        ),
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    evaluators = evaluator_entry_points()
    for name, module_name in _all_commands().items():
        module, reason = _load(module_name)
        if module is None:
            sub = subparsers.add_parser(
                name,
                help=f"unavailable: cannot import {module_name} ({reason})",
                prefix_chars="\0",  # every argument lands in `arguments`
                add_help=False,
            )
            sub.add_argument("arguments", nargs=argparse.REMAINDER)
            sub.set_defaults(_run=_unavailable(name, module_name, reason))
            continue
        kind = " (evaluator)" if name in evaluators else ""
        sub = subparsers.add_parser(
            name,
            help=getattr(module, "DESCRIPTION", "") + kind,
            description=getattr(module, "DESCRIPTION", None),
        )
        module.add_arguments(sub)
        sub.set_defaults(_run=module.run)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of the ``mtt-nc`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        return int(args._run(args) or 0)
    except UserInputError as error:
        print(f"mtt-nc {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as interrupt:
        print(
            f"interrupted{f': {interrupt}' if str(interrupt) else ''}", file=sys.stderr
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
