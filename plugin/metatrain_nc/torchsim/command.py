"""``mtt-nc md --engine torch-sim``: N replicas of the run in one torch-sim batch.

The options of ``mtt-nc md`` keep their meaning; ``--replicas N`` runs N copies of
the structure (velocities of seeds SEED, SEED+1, ...) on ``--device``. Each
replica's results land in ``OUTPUT_DIR/replica_XXX/`` (the files of the ASE path);
``OUTPUT_DIR/summary.json`` lists them with the batch's throughput. Import-light:
torch and torch-sim are imported by :func:`run`.
"""

import argparse

ENGINES = ("ase", "torch-sim")


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """``--engine`` and ``--replicas`` of ``mtt-nc md`` (``--device`` is the
    model's own option)."""
    group = parser.add_argument_group("engine")
    group.add_argument(
        "--engine",
        choices=ENGINES,
        default="ase",
        help="ase: one structure with the ASE integrator (default); torch-sim: "
        "--replicas copies in one batched torch-sim run on --device (needs "
        "pip install 'metatrain-nc[torchsim]')",
    )
    group.add_argument(
        "--replicas",
        type=int,
        default=1,
        help="--engine torch-sim: number of replicas, velocities of seeds SEED, "
        "SEED+1, ... (1); results in OUTPUT_DIR/replica_000, ...",
    )


def run(args: argparse.Namespace, settings) -> int:
    """Run ``mtt-nc md`` with the torch-sim engine (``settings``: its checked
    :class:`~metatrain_nc.dynamics.md.MDSettings`)."""
    import sys

    from tqdm import tqdm

    from ..errors import UserInputError
    from ..files import check_outdir, read_structure
    from ..force_models.arguments import load_fast_from_args, load_model_from_args
    from .runner import run_replicas
    from .splits import MetatomicSplit

    if args.replicas < 1:
        raise UserInputError(f"--replicas must be >= 1, got {args.replicas}")
    check_outdir(args.output_dir, args.force)
    atoms = read_structure(args.structure, args.index)
    model = load_model_from_args(args)
    fast = load_fast_from_args(args)
    model.check(atoms, f"structure {args.index} of '{args.structure}'")
    split = MetatomicSplit(model, fast, mode=settings.forces)
    total = settings.steps * args.replicas
    bar = tqdm(total=total, unit="step", desc=f"md {settings.forces} x{args.replicas}")
    steps = {}

    def progress(replica, row):
        steps[replica] = int(row["step"])
        bar.n = sum(steps.values())
        bar.refresh()

    try:
        top = run_replicas(
            None,
            atoms,
            args.output_dir,
            settings,
            replicas=args.replicas,
            force=args.force,
            device=args.device,
            progress=progress,
            split=split,
        )
    finally:
        bar.close()
    stopped = 0
    for summary in top["replica_summaries"]:
        print(
            f"replica {summary['replica']}: {summary['status']}: "
            f"{summary['outer_steps_done']} outer steps, "
            f"mean T {summary.get('mean_temperature_K', float('nan')):.1f} K, "
            f"drift {_fmt(summary.get('drift_meV_per_atom_per_ps'))} +- "
            f"{_fmt(summary.get('drift_error_meV_per_atom_per_ps'))} meV/atom/ps"
        )
        for warning in summary.get("warnings", []):
            print(
                f"mtt-nc md: warning: replica {summary['replica']}: "
                f"{warning['message']}",
                file=sys.stderr,
            )
        if summary["status"] != "completed":
            stopped += 1
            print(
                f"mtt-nc md: replica {summary['replica']} stopped: "
                f"{summary['message']}",
                file=sys.stderr,
            )
    rate = top.get("replica_steps_per_second")
    print(
        f"{top['n_replicas']} replicas, {_fmt(rate)} replica outer steps/s; results "
        f"in {top['output_dir']}"
    )
    return 3 if stopped else 0


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3g}"
