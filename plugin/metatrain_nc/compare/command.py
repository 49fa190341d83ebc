"""``mtt-nc compare``: one report comparing conservative, direct and hybrid models
(exported models, checkpoints and ASE calculators side by side)."""

import argparse

from ..cli_options import add_options, option, option_values
from ..files import add_output_dir_arguments
from ..force_models.arguments import add_model_arguments, add_models_argument

DESCRIPTION = (
    "compare models (conservative, pet_nc, pet_m, ASE calculators, ...): accuracy, "
    "cost, lambda, NVE/NVT dynamics and relaxations in one report"
)


#: the options that set a :class:`~.settings.CompareSettings` field (when given)
SETTINGS = (
    option(
        "--timestep", type=float, help="inner MD step in fs (0.5)", field="timestep_fs"
    ),
    option("--stride", type=int, help="MTS stride M (4)"),
    option(
        "--nve-time", type=float, help="NVE length in fs (1000)", field="nve_time_fs"
    ),
    option(
        "--nvt-time", type=float, help="NVT length in fs (500)", field="nvt_time_fs"
    ),
    option(
        "--equilibration",
        type=float,
        help="SVR equilibration before NVE in fs (100; 0 with --quick)",
        field="equilibration_fs",
    ),
    option(
        "--temperature",
        type=float,
        help="temperature in K (300)",
        field="temperature_K",
    ),
    option("--tau", type=float, help="SVR time constant in fs (50)", field="tau_fs"),
    option("--lambda-structures", type=int, help="structures analysed for lambda (2)"),
    option("--relax-structures", type=int, help="structures relaxed per head (2)"),
    option("--relax-steps", type=int, help="optimiser steps (300)"),
    option(
        "--fmax", type=float, help="relaxation fmax in eV/A (0.05)", field="relax_fmax"
    ),
    option("--seed", type=int, help="seed of velocities and noise (0)"),
)
#: the options of the paper protocol only (``--thermostats`` and ``--parts`` are
#: parsed by :func:`settings_from_args`)
PAPER = (
    option(
        "--thermostats",
        help="paper protocol: comma-separated ENSEMBLE:TAU_FS (default "
        "svr:10,langevin:1000,langevin:100,langevin:10)",
        field=False,
    ),
    option(
        "--parts",
        help="paper protocol: comma-separated subset of nvt, gas, bulk (relax = "
        "gas,bulk; default: all)",
        field=False,
    ),
    option(
        "--equilibration-thermostat",
        help="paper protocol: thermostat of the equilibration, ENSEMBLE:TAU_FS or "
        "'same' (the run's own; default langevin:100, which brings every species "
        "to the target before the run's thermostat takes over)",
    ),
    option(
        "--gas-structures",
        type=int,
        help="paper protocol: molecules relaxed in the gas phase (20)",
    ),
)
#: the options of one protocol only
ONLY = {
    "standard": ("stages", "nve_time", "tau", "lambda_structures", "fmax"),
    "paper": tuple(entry.dest for entry in PAPER),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_models_argument(parser)
    parser.add_argument(
        "--structures",
        required=True,
        help="test structures, any file ASE reads (labels: energy in eV, forces "
        "in eV/A; without labels the accuracy section is skipped)",
    )
    add_output_dir_arguments(parser)
    parser.add_argument("--names", help="comma-separated labels of the models")
    parser.add_argument(
        "--md-structure", help="start of the MD runs (default: --structures)"
    )
    parser.add_argument(
        "--md-index", type=int, default=0, help="frame of the MD structure (0)"
    )
    parser.add_argument(
        "--pair",
        action="append",
        default=[],
        metavar="SLOW+FAST",
        help="a teacher-student pair for multiple time stepping, e.g. "
        "pet_c.pt+student.pt (a side may be the name of a compared MODEL): one more "
        "mts row in the cost, NVE and NVT sections; repeatable",
    )
    parser.add_argument(
        "--quick", action="store_true", help="short runs: a first look in minutes"
    )
    parser.add_argument(
        "--stages",
        help="comma-separated subset of accuracy,cost,antisymmetry,nve,nvt,relax",
    )
    parser.add_argument(
        "--modes",
        help="comma-separated MD force modes to run, of conservative,direct,mts "
        "(default: every mode each model has); e.g. --modes mts --stride 4 --resume "
        "adds MTS runs without running the others again",
    )
    add_options(parser, SETTINGS)
    paper = parser.add_argument_group(
        "the paper's protocol (--protocol paper): Table 2 thermostats, Table 7 "
        "relaxations; hours of CPU, resumable"
    )
    paper.add_argument(
        "--protocol",
        choices=("standard", "paper"),
        default="standard",
        help="'paper': NVT under Langevin tau 10/100/1000 fs and SVR tau 10 fs for "
        "every force mode (per-species temperatures and diffusion with error bars), "
        "relaxations at 1e-5 (gas) / 1e-4 (bulk) eV/A with L-BFGS and FIRE "
        "(success rates with 95%% intervals); --nvt-time is the analysed part "
        "(1000 fs), --equilibration the part before it (250 fs)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue an output folder from the units that finished (same models, "
        "structures and settings; other stages, parts, thermostats or modes)",
    )
    add_options(paper, PAPER)
    parser.add_argument("--energy-key", default="energy", help="energy label name")
    parser.add_argument("--forces-key", default="forces", help="forces label name")
    add_model_arguments(parser, positional=False)


def parse_thermostats(text: str):
    """``"svr:10,langevin:100"`` -> ``(("svr", 10.0), ("langevin", 100.0))``."""
    from ..errors import UserInputError
    from .settings import parse_thermostat

    out = tuple(
        parse_thermostat(t, "--thermostats") for t in text.split(",") if t.strip()
    )
    if not out:
        raise UserInputError("--thermostats lists no thermostat")
    return out


def _stages(text: str, parts: bool):
    """``--stages``, or ``--parts`` (the paper's stages, ``relax``: ``gas,bulk``)."""
    out = []
    for stage in (s.strip() for s in text.split(",")):
        out += (
            ["gas", "bulk"] if parts and stage == "relax" else [stage] if stage else []
        )
    return tuple(out)


def settings_from_args(args: argparse.Namespace):
    """The settings of ``args.protocol`` (its preset, quick with ``--quick``) with
    the options given; an option of the other protocol is refused."""
    from ..errors import UserInputError
    from .settings import CompareSettings

    protocol = args.protocol
    other = "paper" if protocol == "standard" else "standard"
    given = [o for o in ONLY[other] if getattr(args, o, None) is not None]
    if given:
        options = ["--" + o.replace("_", "-") for o in given]
        raise UserInputError(
            f"--protocol paper does not use {options} (its thermostats, lengths and "
            "thresholds are the paper's; see --help)"
            if protocol == "paper"
            else f"{options} belong to the paper protocol: add --protocol paper"
        )
    overrides = option_values(args, SETTINGS + PAPER, skip_none=True)
    if args.thermostats:
        overrides["thermostats"] = parse_thermostats(args.thermostats)
    if args.modes:
        modes = args.modes.replace(" ", "").split(",")
        overrides["modes"] = tuple(mode for mode in modes if mode)
    if args.stages or args.parts:
        overrides["stages"] = _stages(args.parts or args.stages, bool(args.parts))
    if protocol == "standard" and getattr(args, "float64", False):
        overrides["float64"] = True
    return CompareSettings.preset(protocol, args.quick, **overrides)


def run(args: argparse.Namespace) -> int:
    import sys

    from .run import compare

    settings = settings_from_args(args)
    names = [n.strip() for n in args.names.split(",")] if args.names else None
    given = "md_structure md_index energy_key forces_key force resume quick direct"
    options = {key: getattr(args, key) for key in given.split()}
    result = compare(
        args.models,
        args.structures,
        args.output_dir,
        settings,
        names=names,
        device=args.device,
        pairs=args.pair,
        **options,
    )
    out, failures = result["output_dir"], result["failures"]
    if settings.protocol == "paper":
        done = f"; {result['done_units']} of {result['total_units']} units done"
        print(f"report: {out}/report.md (also report.html, report.json){done}")
        failures = [f"{uid}: {message}" for uid, message in failures]
        what = "unit(s) failed (run again with --resume to retry them)"
    else:
        print(f"report: {out}/report.md (also report.html, report.json)")
        what = "section(s) failed (the others are in the report)"
    if failures:
        print(f"mtt-nc compare: {len(failures)} {what}:", file=sys.stderr)
        for failure in failures:
            print(f"  {failure}", file=sys.stderr)
        return 1
    return 0
