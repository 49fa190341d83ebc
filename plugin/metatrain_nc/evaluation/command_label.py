"""``mtt-nc label``: a model's energies, forces and stress as extended XYZ labels."""

import argparse

from ..force_models.arguments import add_model_arguments

DESCRIPTION = (
    "label structures with a model's energies, forces and stress (extended XYZ "
    "that mtt train reads): distillation, relabelling"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument(
        "structures", help="structures file (any format ASE reads; md trajectories)"
    )
    parser.add_argument(
        "-o", "--output", required=True, help="extended XYZ file to write (new)"
    )
    parser.add_argument(
        "--force", action="store_true", help="replace OUTPUT if it exists"
    )
    parser.add_argument(
        "--forces",
        dest="head",
        choices=["conservative", "direct"],
        default="conservative",
        help="the force head written as labels (conservative: -dE/dr)",
    )
    parser.add_argument(
        "--no-stress", action="store_true", help="do not label the stress"
    )
    parser.add_argument(
        "--index", default=":", help="frames of STRUCTURES to label (ASE index, ':')"
    )


def run(args: argparse.Namespace) -> int:
    import os

    from tqdm import tqdm

    from ..errors import UserInputError
    from ..files import read_structures
    from ..force_models.arguments import load_model_from_args
    from .labels import KEYS, label_structures, write_labels

    if os.path.exists(args.output) and not args.force:
        raise UserInputError(
            f"'{args.output}' already exists; choose another name or pass --force "
            "to replace it"
        )
    frames = read_structures(args.structures, args.index)
    model = load_model_from_args(args)
    bar = tqdm(total=len(frames), unit="structure", desc="label")
    try:
        labelled = label_structures(
            model,
            frames,
            forces=args.head,
            stress=False if args.no_stress else None,
            progress=bar.update,
            source=args.structures,
        )
    finally:
        bar.close()
    write_labels(args.output, labelled, force=args.force)
    written = [k for k in KEYS if k in labelled[0].calc.results]
    units = ", ".join(f"{k} ({KEYS[k]})" for k in written)
    print(
        f"labelled {len(labelled)} structures with '{model.source}' ({args.head} "
        f"forces): keys {units} in {args.output}; mtt train reads them as an "
        "'energy' target with key 'energy', forces key 'forces'"
        + (", stress key 'stress'" if "stress" in written else "")
    )
    return 0
