"""``mtt-nc accuracy``: energy and force errors of exported models, per force head."""

import argparse
from pathlib import Path

DESCRIPTION = (
    "energy and force errors of exported models on labelled structures, for each "
    "force head (conservative -dE/dr and direct non_conservative_force)"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("models", nargs="+", help="exported models (model.pt)")
    parser.add_argument(
        "--structures",
        required=True,
        help="labelled structures, any file ASE reads (energy in eV, forces in eV/A)",
    )
    parser.add_argument("--energy-key", default="energy", help="energy label name")
    parser.add_argument("--forces-key", default="forces", help="forces label name")
    parser.add_argument("--json", help="also write the numbers to this JSON file")


def format_table(results: list) -> str:
    """A plain-text table: one row per model and force head."""
    lines = [
        f"{'model':<28} {'head':<13} {'E MAE':>9} {'F MAE':>9} {'F RMSE':>9}",
        f"{'':<28} {'':<13} {'meV/atom':>9} {'meV/A':>9} {'meV/A':>9}",
    ]
    for result in results:
        name = Path(result.model).name
        energy = f"{result.energy.mae:9.2f}" if result.energy else f"{'-':>9}"
        for head in result.heads:
            errors = result.forces.get(head)
            mae = f"{errors.mae:9.1f}" if errors else f"{'-':>9}"
            rmse = f"{errors.rmse:9.1f}" if errors else f"{'-':>9}"
            lines.append(f"{name:<28} {head:<13} {energy} {mae} {rmse}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from ..files import read_structures, write_json
    from .accuracy import model_accuracy

    frames = read_structures(args.structures)
    results = [
        model_accuracy(
            model, frames, energy_key=args.energy_key, forces_key=args.forces_key
        )
        for model in args.models
    ]
    print(format_table(results))
    if args.json:
        write_json(args.json, [r.as_dict() for r in results])
    return 0
