"""Command-line options naming a model, shared by every ``mtt-nc`` tool.

Imported by the command modules for ``--help``: no torch here.
"""

import argparse
from typing import Any

from .specs import DIRECT_PREFIX

MODEL_HELP = (
    "exported metatomic model (.pt), metatrain checkpoint (.ckpt), or "
    "module:callable returning an ASE calculator (importable from PYTHONPATH or the "
    "current folder)"
)


def add_models_argument(parser: argparse.ArgumentParser) -> None:
    """``MODEL [MODEL ...]``: the models a tool compares, side by side."""
    parser.add_argument(
        "models",
        nargs="+",
        metavar="MODEL",
        help=f"{MODEL_HELP}; '{DIRECT_PREFIX}module:callable' marks one ASE "
        "calculator's forces as direct",
    )


def add_model_arguments(
    parser: argparse.ArgumentParser, positional: bool = True, fast: bool = False
) -> None:
    """``MODEL`` (if ``positional``), ``--direct``, ``--float64``, ``--device`` and,
    with ``fast``, ``--fast MODEL``."""
    if positional:
        parser.add_argument("model", help=MODEL_HELP)
    parser.add_argument(
        "--direct",
        action="store_true",
        help="an ASE calculator's forces are direct (not -dE/dr); they count as "
        "conservative otherwise",
    )
    parser.add_argument(
        "--float64",
        action="store_true",
        help="evaluate a metatomic model in float64 (needs its .ckpt or a float64 "
        "export)",
    )
    parser.add_argument("--device", default="cpu", help="torch device (cpu)")
    if fast:
        parser.add_argument(
            "--fast",
            metavar="FAST_MODEL",
            default=None,
            help="--forces mts: a second model for the inner steps (its direct head "
            "if it has one, else its forces; any kind, as MODEL); the outer correction "
            "is F_MODEL - F_FAST",
        )
        parser.add_argument(
            "--fast-direct",
            action="store_true",
            help="FAST_MODEL is an ASE calculator whose forces are direct",
        )


def load_model_from_args(args: argparse.Namespace, model: Any = None) -> Any:
    """The :class:`~.base.ForceModel` named by ``args.model`` (or ``model``)."""
    from .loading import load_force_model

    return load_force_model(
        args.model if model is None else model,
        direct=bool(getattr(args, "direct", False)) or None,
        float64=bool(getattr(args, "float64", False)),
        device=getattr(args, "device", "cpu"),
    )


def load_fast_from_args(args: argparse.Namespace) -> Any:
    """The ``--fast`` model, or ``None``."""
    from .loading import load_force_model

    if getattr(args, "fast", None) is None:
        return None
    return load_force_model(
        args.fast,
        direct=bool(getattr(args, "fast_direct", False)) or None,
        float64=bool(getattr(args, "float64", False)),
        device=getattr(args, "device", "cpu"),
    )
