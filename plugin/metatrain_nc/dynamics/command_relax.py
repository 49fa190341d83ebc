"""``mtt-nc relax``: fraction of structures converged per force mode and optimiser."""

import argparse
import statistics

from ..cli_options import add_options, option
from ..files import add_output_dir_arguments
from ..force_models.arguments import add_model_arguments

DESCRIPTION = (
    "geometry-optimisation check: fraction converged within N steps with "
    "conservative and direct forces, L-BFGS and FIRE"
)


OPTIONS = (
    option("structures", help="structures file (any format ASE reads)"),
    option(
        "--forces",
        default="auto",
        help="comma-separated force modes among conservative,direct (default: every "
        "force head of the model)",
    ),
    option("--optimizers", default="LBFGS,FIRE", help="comma-separated (LBFGS,FIRE)"),
    option("--fmax", default=1e-3, help="convergence threshold, eV/A (1e-3)"),
    option("--steps", default=1000, help="maximum steps per relaxation (1000)"),
    option(
        "--sigma",
        default=0.0,
        help="random displacement of the starting positions, A (0)",
    ),
    option("--seed", default=0, help="random seed (0)"),
    option("--index", default=":", help="frames of STRUCTURES to use (ASE index, ':')"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    add_output_dir_arguments(parser)
    add_options(parser, OPTIONS)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..files import (
        StagedFolder,
        check_outdir,
        read_structures,
        write_csv,
        write_json,
    )
    from ..force_models.arguments import load_model_from_args
    from .outputs import FILES
    from .relax import relaxation_check

    check_outdir(args.output_dir, args.force)
    frames = read_structures(args.structures, args.index)
    model = load_model_from_args(args)
    if args.forces == "auto":
        modes = list(model.heads)
    else:
        modes = [m.strip() for m in args.forces.split(",") if m.strip()]
    optimizers = [o.strip() for o in args.optimizers.split(",") if o.strip()]
    # validation before any work: an empty run raises the same errors
    relaxation_check(model, frames[:1], modes, optimizers, args.fmax, 1, args.sigma)
    bar = tqdm(total=len(frames) * len(modes) * len(optimizers), unit="relax")
    try:
        result = relaxation_check(
            model,
            frames,
            modes,
            optimizers,
            fmax=args.fmax,
            steps=args.steps,
            sigma=args.sigma,
            seed=args.seed,
            progress=bar.update,
        )
    finally:
        bar.close()
    folder = StagedFolder(args.output_dir, args.force)
    try:
        columns = list(result["records"][0].keys())
        write_csv(folder.path / FILES["relax_table"], columns, result["records"])
        summary = {
            "model": model.source,
            "structures": args.structures,
            "n_structures": len(frames),
            "settings": {
                "forces": modes,
                "optimizers": optimizers,
                "fmax_eV_per_A": args.fmax,
                "max_steps": args.steps,
                "sigma_A": args.sigma,
                "seed": args.seed,
            },
            "fraction_converged": result["fractions"],
            "fraction_interval_95": result["intervals_95"],
            "stop_reasons": result["stop_reasons"],
            "round_off_floor_eV_per_A": result["round_off_floor_eV_per_A"],
            "files": {"table": FILES["relax_table"], "summary": FILES["summary"]},
        }
        write_json(folder.path / FILES["summary"], summary)
        target = folder.commit()
    except BaseException:
        folder.discard()
        raise
    print(
        f"fraction converged within {args.steps} steps (fmax {args.fmax} eV/A), "
        f"with its 95% interval ({len(frames)} structures):"
    )
    print(f"{'forces':<14}" + "".join(f"{o:>22}" for o in optimizers))
    for mode in modes:
        cells = []
        for name in optimizers:
            low, high = result["intervals_95"][mode][name]
            value = result["fractions"][mode][name]
            cells.append(f"{value:.2f} [{low:.2f}, {high:.2f}]".rjust(22))
        print(f"{mode:<14}" + "".join(cells))
    stalled = [
        (mode, name, counts)
        for mode, by_optimizer in result["stop_reasons"].items()
        for name, counts in by_optimizer.items()
        if set(counts) - {"converged"}
    ]
    if stalled:
        print("why the others stopped (per relaxation; see docs/dynamics.md):")
        for mode, name, counts in stalled:
            text = ", ".join(
                f"{count} {reason}"
                for reason, count in counts.items()
                if reason != "converged"
            )
            print(f"  {mode:<14}{name:<7}{text}")
    for line in _direct_endpoints(result["records"], model.heads):
        print(line)
    for mode, floor in result["round_off_floor_eV_per_A"].items():
        if floor is not None and floor > args.fmax:
            print(
                f"note: the {mode} forces change by up to {floor:.2g} eV/A under a "
                f"rigid translation ({model.dtype} round-off), more than --fmax "
                f"{args.fmax}: that threshold cannot be met reliably; use a larger "
                "--fmax or a float64 model (--float64)"
            )
    print(f"results in {target}")
    return 0


def _direct_endpoints(records, heads) -> list:
    """Lines on where direct relaxations ended, for a model with a trained
    conservative head: the conservative fmax (eV/A) at the points where the direct
    head converged (a ``pet_nc`` model's -dE/dr is not a force model: none)."""
    from .relax import direct_endpoints

    if "conservative" not in heads:
        return []
    lines = []
    for mode in heads:
        if mode == "conservative":
            continue
        for name in sorted({r["optimizer"] for r in records if r["forces"] == mode}):
            values = direct_endpoints(records, mode, name)
            if not values:
                continue
            lines.append(
                f"where {mode} forces converged ({name}, {len(values)} runs), the "
                f"conservative forces reach fmax {statistics.median(values):.3g} eV/A "
                f"(median; largest {values[-1]:.3g}): not a minimum of the energy "
                "unless that is small; finish with --forces conservative"
            )
    return lines
