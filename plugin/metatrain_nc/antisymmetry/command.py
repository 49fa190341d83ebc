"""``mtt-nc antisymmetry MODEL STRUCTURES -o OUTDIR``: the evaluator's command line.

Import-light on purpose (torch is imported inside :func:`run`).
"""

import argparse

from ..cli_options import add_options, option, option_values, switch
from ..files import add_output_dir_arguments
from ..force_models.arguments import add_model_arguments

DESCRIPTION = (
    "how non-conservative are a model's forces: Jacobian antisymmetry ratio lambda "
    "(exact, finite-difference for ASE calculators, or stochastic; per structure, "
    "atom and pair) and closed-loop work"
)


OPTIONS = (
    option("structures", help="structures, any file ASE reads (A)"),
    option(
        "--output",
        default=None,
        choices=["non_conservative_force", "conservative"],
        help="force output to analyse: the direct head (default) or -dE/dr "
        "(control); an ASE calculator has one: its forces (conservative unless "
        "--direct)",
    ),
    option(
        "--index",
        default=":",
        help="ASE index of the structures to read (default ':')",
        field=False,
    ),
    switch(
        "--stochastic",
        "random-probe estimate with an error bar instead of the exact Jacobian",
    ),
    option(
        "--probes",
        default=64,
        help="probes of the stochastic estimator (the minimum with --target-error)",
    ),
    option(
        "--target-error",
        type=float,
        help="stochastic: add probes until the relative standard error of lambda is "
        "at most this fraction (e.g. 0.1)",
    ),
    option(
        "--max-probes",
        default=1024,
        help="probe budget per structure with --target-error",
    ),
    option(
        "--chunk-size",
        default=16,
        help="Jacobian rows (or probes) per batched backward pass; bounds memory",
    ),
    option(
        "--vjp-strategy",
        default="auto",
        choices=["auto", "loop", "batched"],
        help="rows of J by a loop of backward passes, batched passes, or whichever "
        "is faster on the first chunk (auto)",
        field="strategy",
    ),
    option(
        "--packing",
        default="auto",
        choices=["auto", "packed", "single"],
        help="structures of a model with gradients packed into one evaluation (one "
        "backward pass: one row of each), one at a time, or whichever is faster on "
        "the first chunk (auto)",
    ),
    option(
        "--pack-rows",
        default=3000,
        help="largest sum of 3N over the structures of one pack (bounds memory)",
    ),
    option(
        "--jvp",
        default="double-backward",
        choices=["double-backward", "finite-difference"],
        help="J v of the stochastic estimator: exact double backward, or central "
        "differences without a second-order graph (less memory for large systems)",
    ),
    option(
        "--max-exact-rows",
        default=3000,
        help="largest 3N accepted by the exact (and finite-difference) path",
    ),
    option(
        "--fd-step",
        type=float,
        default=None,
        help="ASE calculators: step (A) of the central differences that give their "
        "Jacobian (default 1e-3; their noise is estimated and reported)",
    ),
    option("--bin-width", default=0.25, help="pair distance bin width (A)"),
    switch(
        "--rotation-loop",
        "work along a full turn of one molecule inside its environment",
    ),
    option(
        "--loop-atom",
        default=0,
        help="the rotated molecule is the one holding this atom (default 0)",
    ),
    option("--loop-points", default=200, help="points on the rotation loop"),
    option(
        "--loop-deformation",
        default=0.1,
        help="deformation amplitude along the rotation loop (A)",
    ),
    option(
        "--square-loops",
        default=0,
        help="number of random square loops per structure (midpoint rule)",
    ),
    option("--square-eps", default=0.05, help="square loop side (A)"),
    option("--seed", default=0, help="random seed"),
    switch("--no-progress", "no progress bar", field=False),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    add_output_dir_arguments(parser)
    add_options(parser, OPTIONS)


def settings_from_args(args: argparse.Namespace):
    """The :class:`~.settings.AntisymmetrySettings` of the command line, checked."""
    from .settings import AntisymmetrySettings

    settings = AntisymmetrySettings(
        float64=args.float64,
        progress=not args.no_progress,
        **option_values(args, OPTIONS),
    )
    settings.check()
    return settings


def run(args: argparse.Namespace) -> int:
    from ..files import check_outdir, read_structures
    from ..force_models.arguments import load_model_from_args
    from .api import evaluate

    settings = settings_from_args(args)
    check_outdir(args.output_dir, args.force)
    frames = read_structures(args.structures, args.index)
    model = load_model_from_args(args)
    report = evaluate(frames, model, settings)
    path = report.write(args.output_dir, force=args.force)
    summary = report.summary()
    method = summary["settings"]["method"]
    step = summary["settings"]["fd_step_A"]
    how = method if step is None else f"{method}, step {step:g} A"
    packed = ""
    graphs = summary["settings"].get("forward_graphs")
    if graphs is not None and graphs < summary["n_structures"]:
        packed = f" packed into {graphs} model evaluation(s)"
    print(
        f"lambda ({report.output}, {how}) over {summary['n_structures']} "
        f"structure(s){packed}: mean {summary['lambda_mean']:.4g}, "
        f"max {summary['lambda_max']:.4g}"
    )
    for structure in report.structures:
        line = f"  structure {structure.index}: lambda = {structure.lambda_:.4g}"
        if structure.error is not None:
            line += f" +- {structure.error:.2g} ({structure.probes} probes)"
        if structure.fd_noise is not None:
            line += f" (finite-difference noise ~{structure.fd_noise:.2g}"
            if structure.lambda_ <= structure.fd_noise:
                line += ": below it, no measurable non-conservative part"
            line += ")"
        if structure.converged is False:
            line += (
                f", target error {structure.target_error:g} NOT reached within "
                "--max-probes"
            )
        if structure.rotation_loop is not None:
            line += f", rotation-loop W = {structure.rotation_loop['work_eV']:.4g} eV"
        if structure.square_loops is not None:
            line += (
                ", square-loop <|W|> = "
                f"{structure.square_loops['mean_abs_work_eV']:.3g} eV"
            )
        print(line)
    print(f"results written to {path}")
    return 0
