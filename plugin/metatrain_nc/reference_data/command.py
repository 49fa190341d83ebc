"""``mtt-nc reference``: sample and label a reference data set, resumably."""

import argparse

from ..cli_options import add_options, option, option_values, switch

DESCRIPTION = (
    "build a reference data set: Langevin trajectories at several temperatures, "
    "frames strained and labelled by a real reference (energy, forces, stress), "
    "split by trajectory; resumable, parallel"
)


OPTIONS = (
    option(
        "reference",
        help="the labelling reference: module:callable returning an ASE calculator "
        "(e.g. metatrain_nc.references:chgnet; importable from PYTHONPATH or the "
        "current folder) or a model file (.pt/.ckpt); its conservative forces are used",
    ),
    option("structures", help="starting structures (any format ASE reads)"),
    option(
        "--out",
        required=True,
        help="work folder: created, or an interrupted build of the same settings to "
        "continue",
        field=False,
    ),
    option(
        "--sampler",
        default=None,
        help="model whose Langevin MD samples the frames (any kind the tools take; "
        "default: the reference itself)",
    ),
    option("--trajectories", default=8),
    option(
        "--temperatures",
        default="250:450",
        help="K: 'LOW:HIGH' spread over the trajectories, or one per trajectory "
        "'250,300,...' (250:450)",
    ),
    option("--frames-per-trajectory", default=76),
    option(
        "--start-frames",
        default=None,
        help="frame of STRUCTURES each trajectory starts from, comma-separated "
        "(default: spread over the file)",
        field=False,
    ),
    option("--timestep", default=2.0, help="sampling step, fs (2.0)"),
    option("--friction", default=0.02, help="Langevin friction, 1/fs (0.02)"),
    option(
        "--hydrogen-mass",
        default=4.0,
        help="H mass during sampling, amu (4.0): configurations do not depend on "
        "masses, a heavier H allows the longer step",
    ),
    option("--equilibration-steps", default=50),
    option("--interval-steps", default=8, help="steps between kept frames (8)"),
    option(
        "--max-strain",
        default=0.02,
        help="largest random strain component applied before labelling (0.02)",
    ),
    option(
        "--validation-trajectories",
        default=None,
        help="trajectory numbers of the validation split (default: the one nearest "
        "the middle of the temperature range)",
        field=False,
    ),
    option(
        "--test-trajectories",
        default=None,
        help="trajectory numbers of the test split (default: the one nearest 300 K)",
        field=False,
    ),
    option("--method", default="", help="what the reference computes, for provenance"),
    option("--seed", default=0),
    option("--workers", default=1, help="worker processes (1)"),
    switch("--gzip", "write the splits as .xyz.gz"),
    switch(
        "--skip-failed", "write the splits without the frames the reference failed on"
    ),
    option(
        "--verify",
        default=0,
        metavar="N",
        help="after the build, relabel N random frames with the reference and print "
        "the largest differences from the stored labels",
        field=False,
    ),
    switch("--no-progress", "no progress bars", field=False),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, OPTIONS)


def run(args: argparse.Namespace) -> int:
    import sys

    from ..errors import UserInputError
    from .build import build_reference_set
    from .plan import parse_split, parse_temperatures

    n = len(parse_temperatures(args.temperatures, args.trajectories))
    start_frames = None
    if args.start_frames is not None:
        try:
            start_frames = [int(v) for v in args.start_frames.split(",") if v.strip()]
        except ValueError as error:
            raise UserInputError(
                f"--start-frames '{args.start_frames}': give frame numbers, e.g. "
                "'0,10,20'"
            ) from error
    summary = build_reference_set(
        args.reference,
        args.structures,
        args.out,
        progress=not args.no_progress,
        start_frames=start_frames,
        validation_trajectories=parse_split(
            args.validation_trajectories, n, "validation"
        ),
        test_trajectories=parse_split(args.test_trajectories, n, "test"),
        **option_values(args, OPTIONS),
    )
    if summary.sampling_seconds_per_step is not None:
        print(
            f"sampling: {summary.sampling_seconds_per_step:.3g} s per step per "
            "worker (wall clock, this run)"
        )
    if summary.labelling_seconds_per_frame is not None:
        print(
            f"labelling: {summary.labelling_seconds_per_frame:.3g} s per frame per "
            "worker (wall clock, this run)"
        )
    if summary.failures and not args.skip_failed:
        print(
            f"mtt-nc reference: error: the reference failed on "
            f"{len(summary.failures)} frame(s) (listed in "
            f"{summary.out / 'failures.json'}), e.g. {summary.failures[0]}; nothing "
            "was split. Run again to retry them, or pass --skip-failed to write the "
            "splits without them",
            file=sys.stderr,
        )
        return 1
    files = ", ".join(
        f"{split} {summary.frames[split]} frames ({path})"
        for split, path in summary.files.items()
    )
    print(f"reference set in {summary.out}: {files}")
    if summary.failures:
        print(f"left out {len(summary.failures)} frame(s) the reference failed on")
    if args.verify > 0:
        from .verify import verify_labels

        check = verify_labels(
            list(summary.files.values()), args.reference, count=args.verify
        )
        stress = check["max_stress_difference"]
        print(
            f"relabelled {', '.join(check['frames'])} with {args.reference}: largest "
            f"differences from the stored labels: forces "
            f"{check['max_force_difference']:.2e} eV/A, energy "
            f"{check['max_energy_difference']:.2e} eV"
            + (f", stress {stress:.2e} eV/A^3" if stress is not None else "")
        )
    return 0
