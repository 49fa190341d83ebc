"""``mtt-nc accuracy``: energy and force errors of force models, per force head."""

import argparse
from typing import List, Optional, Sequence

from ..force_models.arguments import add_model_arguments, add_models_argument

DESCRIPTION = (
    "energy and force errors of force models (exported models, checkpoints, ASE "
    "calculators) on labelled structures, for each force head (conservative -dE/dr "
    "and direct forces)"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_models_argument(parser)
    parser.add_argument(
        "--structures",
        required=True,
        help="labelled structures, any file ASE reads (energy in eV, forces in eV/A)",
    )
    parser.add_argument("--energy-key", default="energy", help="energy label name")
    parser.add_argument("--forces-key", default="forces", help="forces label name")
    parser.add_argument("--json", help="also write the numbers to this JSON file")
    add_model_arguments(parser, positional=False)


def format_table(results: list, labels: Optional[Sequence[str]] = None) -> str:
    """A plain-text table: one row per model and force head, then what is absent.

    :param labels: names of the models (default: their sources); the command line
        shows them as given.
    """
    names = list(labels) if labels else [str(r.model) for r in results]
    width = max([28] + [len(n) for n in names])
    lines = [
        f"{'model':<{width}} {'head':<13} {'E MAE':>9} {'F MAE':>9} {'F RMSE':>9}",
        f"{'':<{width}} {'':<13} {'meV/atom':>9} {'meV/A':>9} {'meV/A':>9}",
    ]
    for name, result in zip(names, results, strict=True):
        energy = f"{result.energy.mae:9.2f}" if result.energy else f"{'-':>9}"
        for head in result.heads or ["(none)"]:
            errors = result.forces.get(head)
            mae = f"{errors.mae:9.1f}" if errors else f"{'-':>9}"
            rmse = f"{errors.rmse:9.1f}" if errors else f"{'-':>9}"
            lines.append(f"{name:<{width}} {head:<13} {energy} {mae} {rmse}")
    return "\n".join(lines + label_notes(results))


def label_notes(results: list) -> List[str]:
    """What the labels leave out (``-`` in the table), from the first result."""
    if not results or not results[0].labels:
        return []
    counts, total = results[0].labels, results[0].n_structures
    notes = []
    for what, errors in (("energy", "energy errors"), ("forces", "force errors")):
        if counts.get(what, 0) == 0:
            notes.append(f"no {what} labels in the structures: {errors} are absent (-)")
        elif counts[what] < total:
            notes.append(
                f"{what} labels in {counts[what]} of {total} structures: {errors} "
                "over those only"
            )
    return notes


def run(args: argparse.Namespace) -> int:
    from ..files import read_structures, write_json
    from .accuracy import check_labels, model_accuracy

    frames = read_structures(args.structures)
    check_labels(
        frames, args.energy_key, args.forces_key, how="--energy-key / --forces-key"
    )
    results = [
        model_accuracy(
            model,
            frames,
            energy_key=args.energy_key,
            forces_key=args.forces_key,
            direct=args.direct,
            float64=args.float64,
            device=args.device,
        )
        for model in args.models
    ]
    print(format_table(results, args.models))
    if args.json:
        write_json(args.json, [r.as_dict() for r in results])
    return 0
