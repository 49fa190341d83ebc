"""``mtt-nc md``: molecular dynamics with conservative, direct or MTS forces."""

import argparse

from ..cli_options import add_options, option, option_values, switch
from ..files import add_output_dir_arguments
from ..force_models.arguments import add_model_arguments

DESCRIPTION = (
    "molecular dynamics with conservative, direct or multiple-time-step forces, "
    "with energy-drift and temperature monitors"
)


def _stride(text: str):
    """``--stride``: a positive integer or ``auto``."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an integer or 'auto', got '{text}'"
        ) from None


OPTIONS = (
    option("structure", help="structure file (any format ASE reads)"),
    option(
        "--forces",
        choices=["conservative", "direct", "mts"],
        default="mts",
        help="forces driving the atoms: -dE/dr, the direct head, or multiple time "
        "stepping (inner direct, outer conservative correction); default mts",
    ),
    option(
        "--timestep",
        default=4.0,
        help="outer time step in fs (default 4); inner step = TIMESTEP / STRIDE in "
        "every force mode. The defaults (4 fs, M = 8) are the paper's, validated for "
        "its PET-M; the demo PET-M of recipes/demo needs --timestep 1 --stride 4: "
        "find your model's with --stride auto",
        field="timestep_fs",
    ),
    option(
        "--stride",
        type=_stride,
        default=8,
        help="M, inner steps per outer step (8), or 'auto' (--forces mts): scan "
        "strides 1, 2, 4, ... at a fixed inner step with short NVE runs from the same "
        "start and run with the largest whose energy drift stays within 2x of the "
        "conservative run's (+ 1 meV/atom/ps); the run keeps the duration "
        "STEPS x TIMESTEP",
    ),
    option(
        "--inner-timestep",
        type=float,
        default=None,
        help="--stride auto: the inner step in fs, fixed while the outer step grows "
        "(default TIMESTEP / 8)",
        field="inner_timestep_fs",
    ),
    option(
        "--max-stride", default=32, help="--stride auto: the largest stride tried (32)"
    ),
    option(
        "--scan-time",
        default=200.0,
        help="--stride auto: simulated time of each NVE segment of the scan, fs (200)",
        field="scan_time_fs",
    ),
    option("--steps", default=100, help="number of outer steps (100)"),
    option("--ensemble", choices=["nve", "svr", "langevin"], default="nve"),
    option(
        "--temperature",
        default=300.0,
        help="K: thermostat target and Maxwell-Boltzmann velocities (300)",
        field="temperature_K",
    ),
    option(
        "--tau",
        default=100.0,
        help="thermostat time constant in fs (100)",
        field="tau_fs",
    ),
    option(
        "--velocities",
        choices=["auto", "structure", "maxwell-boltzmann"],
        default="auto",
        help="initial velocities: from the structure if it has momenta (auto), or "
        "Maxwell-Boltzmann at --temperature with --seed",
    ),
    option("--seed", default=0, help="random seed (0)"),
    option(
        "--index", default=0, help="frame of STRUCTURE to start from (0)", field=False
    ),
    option("--log-every", default=1, help="monitor every K outer steps (1)"),
    option(
        "--trajectory-every", default=10, help="write a frame every K outer steps (10)"
    ),
    option(
        "--max-temperature",
        default=5000.0,
        help="stop the run above this temperature in K (5000; 0 disables)",
        field=False,
    ),
    option(
        "--equilibration",
        default=0.5,
        help="with a thermostat: fraction of the run left out of the equipartition "
        "check (0.5: the check uses the second half)",
        field="equilibration_fraction",
    ),
    switch("--no-chemiscope", "skip the chemiscope dataset", field=False),
    option(
        "--restart-interval",
        default=300.0,
        help="save a restart point at most every S seconds of wall clock (300; 0: "
        "every step; negative: none), so that a run cut short (killed, Ctrl-C, a "
        "wall-time limit) continues with --resume",
        field=False,
    ),
    switch(
        "--resume",
        "continue the run cut short in OUTPUT_DIR from its last restart point (same "
        "model, structure and settings; the trajectory is the one the uninterrupted "
        "run gives), or report the run finished there; without one, run",
        field=False,
    ),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser, fast=True)
    add_output_dir_arguments(parser)
    add_options(parser, OPTIONS)
    from ..torchsim.command import add_engine_arguments

    add_engine_arguments(parser)


def run(args: argparse.Namespace) -> int:
    import sys

    from tqdm import tqdm

    from ..files import check_outdir, read_structure
    from ..force_models.arguments import load_fast_from_args, load_model_from_args
    from .md import MDSettings, run_md, scan_stride

    settings = MDSettings(
        max_temperature_K=args.max_temperature or None,
        chemiscope=not args.no_chemiscope,
        **option_values(args, OPTIONS),
    )
    settings.check()
    if args.fast is not None and settings.forces != "mts":
        from ..errors import UserInputError

        raise UserInputError(
            "--fast names the model of the inner steps of multiple time stepping: "
            f"use it with --forces mts (got --forces {settings.forces})"
        )
    stride = settings.stride
    if settings.forces != "mts" and isinstance(stride, int) and stride > 1:
        print(  # the same inner step as an MTS run's, not TIMESTEP
            f"note: --forces {settings.forces} with --stride {stride}: the atoms "
            f"move in inner steps of {settings.timestep_fs / stride:g} fs (TIMESTEP "
            f"/ STRIDE, as an MTS run's); pass --stride 1 to step by --timestep "
            f"{settings.timestep_fs:g} fs",
            file=sys.stderr,
        )
    if args.engine == "torch-sim":
        from ..torchsim.command import run as run_torchsim

        if args.resume:
            from ..errors import UserInputError

            raise UserInputError(
                "--resume continues runs of the ASE engine; a torch-sim run has no "
                "restart points: run it again (--force)"
            )
        return run_torchsim(args, settings)
    interval = args.restart_interval if args.restart_interval >= 0 else None
    if args.resume and interval is None:
        from ..errors import UserInputError

        raise UserInputError(
            "--resume needs restart points: drop the negative --restart-interval"
        )
    if not args.resume:
        check_outdir(args.output_dir, args.force)
    atoms = read_structure(args.structure, args.index)
    model = load_model_from_args(args)
    fast = load_fast_from_args(args)
    model.check(atoms, f"structure {args.index} of '{args.structure}'")

    scan = None
    if settings.stride == "auto" and not _continuing(args):  # that keeps its own
        strides = settings.scan_strides
        scan_bar = tqdm(total=len(strides), unit="stride", desc="stride scan")
        try:
            scan = scan_stride(
                model, atoms, settings, fast=fast, progress=lambda _: scan_bar.update()
            )
        finally:
            scan_bar.close()
        print(scan.table())
    bar = tqdm(total=_total_steps(args, settings, scan), unit="step")
    bar.set_description(f"md {settings.forces}")

    def progress(row):
        bar.n = int(row["step"])
        bar.set_postfix(T=f"{row['temperature_K']:.0f}K", refresh=False)
        bar.refresh()

    try:
        summary = run_md(
            model,
            atoms,
            args.output_dir,
            settings,
            args.force,
            progress=progress,
            fast=fast,
            stride_scan=scan,
            restart_interval_s=interval,
            resume=args.resume,
        )
    finally:
        bar.close()
    if summary.get("already_finished"):
        print(f"the run in {summary['output_dir']} had finished: nothing to run")
    elif summary.get("continued_at_steps"):
        steps = ", ".join(map(str, summary["continued_at_steps"]))
        print(f"continued from step {steps} (restart points)")
    drift = summary.get("drift_meV_per_atom_per_ps")
    heating = summary.get("heating_rate_K_per_ps")
    print(
        f"{summary['status']}: {summary['outer_steps_done']} outer steps, "
        f"{summary['simulated_time_ps']:.3f} ps, "
        f"mean T {summary.get('mean_temperature_K', float('nan')):.1f} K, "
        f"heating {_fmt(heating)} K/ps, drift {_fmt(drift)} meV/atom/ps "
        f"(drift ratio {_fmt(summary.get('drift_ratio'))}); "
        f"results in {summary['output_dir']}"
    )
    check = summary.get("equipartition")
    if check is not None and check["species"]:
        species = ", ".join(
            f"{symbol} {value['mean']:.1f} +- {_fmt(value['error'])} K"
            for symbol, value in check["species"].items()
        )
        verdict = {True: "resolved", False: "not resolved", None: "no verdict"}
        print(
            f"species temperatures (last {1 - check['equilibration_fraction']:.0%}, "
            f"block-averaged): {species}; largest split "
            f"{_fmt(check['max_split_K'])} +- {_fmt(check['max_split_error_K'])} K "
            f"({verdict[check['resolved']]})"
        )
    topology = summary.get("topology")
    if topology and not (topology["checked"] and topology["changed"]):
        # a change is a warning below
        print(
            topology["message"]
            if topology["checked"]
            else f"the bonded topology is not checked: {topology['reason']}"
        )
    for warning in summary.get("warnings", []):
        print(f"mtt-nc md: warning: {warning['message']}", file=sys.stderr)
    if summary["status"] != "completed":
        print(
            f"mtt-nc md: stopped: {summary['message']} (trajectory kept in "
            f"{summary['output_dir']})",
            file=sys.stderr,
        )
        return 3
    return 0


def _continuing(args) -> bool:
    """``--resume`` finds a run to continue or a finished one in OUTPUT_DIR."""
    from pathlib import Path

    from .restart import RESTART_FILE, staging_folder

    if not args.resume:
        return False
    out = Path(args.output_dir)
    return (staging_folder(out) / RESTART_FILE).is_file() or (
        out / "summary.json"
    ).is_file()


def _total_steps(args, settings, scan) -> int:
    """Outer steps of the run for the progress bar: the stride scan's choice, or a
    continued run's own."""
    from .restart import load, staging_folder

    if scan is not None:
        return settings.with_stride(scan.stride, scan.inner_timestep_fs).steps
    staging = staging_folder(args.output_dir)
    point = load(staging) if args.resume and staging.is_dir() else None
    return settings.steps if point is None else point.meta["run_settings"]["steps"]


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3g}"
