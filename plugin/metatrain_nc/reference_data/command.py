"""``mtt-nc reference``: sample and label a reference data set, resumably."""

import argparse

DESCRIPTION = (
    "build a reference data set: Langevin trajectories at several temperatures, "
    "frames strained and labelled by a real reference (energy, forces, stress), "
    "split by trajectory; resumable, parallel"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "reference",
        help="the labelling reference: module:callable returning an ASE calculator "
        "(e.g. metatrain_nc.references:chgnet; importable from PYTHONPATH or the "
        "current folder) or a model file (.pt/.ckpt); its conservative forces are used",
    )
    parser.add_argument("structures", help="starting structures (any format ASE reads)")
    parser.add_argument(
        "--out",
        required=True,
        help="work folder: created, or an interrupted build of the same settings to "
        "continue",
    )
    parser.add_argument(
        "--sampler",
        default=None,
        help="model whose Langevin MD samples the frames (any kind the tools take; "
        "default: the reference itself)",
    )
    parser.add_argument("--trajectories", type=int, default=8)
    parser.add_argument(
        "--temperatures",
        default="250:450",
        help="K: 'LOW:HIGH' spread over the trajectories, or one per trajectory "
        "'250,300,...' (250:450)",
    )
    parser.add_argument("--frames-per-trajectory", type=int, default=76)
    parser.add_argument(
        "--start-frames",
        default=None,
        help="frame of STRUCTURES each trajectory starts from, comma-separated "
        "(default: spread over the file)",
    )
    parser.add_argument(
        "--timestep", type=float, default=2.0, help="sampling step, fs (2.0)"
    )
    parser.add_argument(
        "--friction", type=float, default=0.02, help="Langevin friction, 1/fs (0.02)"
    )
    parser.add_argument(
        "--hydrogen-mass",
        type=float,
        default=4.0,
        help="H mass during sampling, amu (4.0): configurations do not depend on "
        "masses, a heavier H allows the longer step",
    )
    parser.add_argument("--equilibration-steps", type=int, default=50)
    parser.add_argument(
        "--interval-steps", type=int, default=8, help="steps between kept frames (8)"
    )
    parser.add_argument(
        "--max-strain",
        type=float,
        default=0.02,
        help="largest random strain component applied before labelling (0.02)",
    )
    parser.add_argument(
        "--validation-trajectories",
        default=None,
        help="trajectory numbers of the validation split (default: the one nearest "
        "the middle of the temperature range)",
    )
    parser.add_argument(
        "--test-trajectories",
        default=None,
        help="trajectory numbers of the test split (default: the one nearest 300 K)",
    )
    parser.add_argument(
        "--method", default="", help="what the reference computes, for provenance"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1, help="worker processes (1)")
    parser.add_argument(
        "--gzip", action="store_true", help="write the splits as .xyz.gz"
    )
    parser.add_argument(
        "--skip-failed",
        action="store_true",
        help="write the splits without the frames the reference failed on",
    )
    parser.add_argument(
        "--verify",
        type=int,
        default=0,
        metavar="N",
        help="after the build, relabel N random frames with the reference and print "
        "the largest differences from the stored labels",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


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
        workers=args.workers,
        skip_failed=args.skip_failed,
        gzip=args.gzip,
        progress=not args.no_progress,
        sampler=args.sampler,
        trajectories=args.trajectories,
        temperatures=args.temperatures,
        frames_per_trajectory=args.frames_per_trajectory,
        start_frames=start_frames,
        timestep=args.timestep,
        friction=args.friction,
        hydrogen_mass=args.hydrogen_mass,
        equilibration_steps=args.equilibration_steps,
        interval_steps=args.interval_steps,
        max_strain=args.max_strain,
        validation_trajectories=parse_split(
            args.validation_trajectories, n, "validation"
        ),
        test_trajectories=parse_split(args.test_trajectories, n, "test"),
        method=args.method,
        seed=args.seed,
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
