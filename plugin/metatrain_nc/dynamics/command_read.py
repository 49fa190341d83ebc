"""``mtt-nc read``: read finished MD runs again over a chosen part, in windows, or
several independent runs as one (:mod:`.reading`)."""

import argparse
import math
from typing import Any, Dict, List, Optional

DESCRIPTION = (
    "read finished MD runs again (mtt-nc md or compare run folders): temperatures, "
    "species splits and drift over a chosen part, in windows, or several "
    "independent runs (other seeds) pooled"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "runs",
        nargs="+",
        metavar="RUN",
        help="run folders (mtt-nc md -o, or an MD run folder of a compare report)",
    )
    parser.add_argument(
        "--from",
        dest="start_ps",
        metavar="PS",
        type=float,
        default=None,
        help="start of the part read, ps from the run's start (default: the part the "
        "run's own verdicts read, its last half unless --equilibration said otherwise)",
    )
    parser.add_argument(
        "--to",
        dest="end_ps",
        metavar="PS",
        type=float,
        default=None,
        help="end of the part read, ps (default: the run's end)",
    )
    parser.add_argument(
        "--windows",
        type=float,
        default=None,
        metavar="PS",
        help="also read consecutive windows of PS ps (from --from, or 0) and print "
        "the split in each: shows when a split sets in and how much it swings",
    )
    parser.add_argument(
        "--json", default=None, help="also write the readings to this JSON file (new)"
    )
    parser.add_argument(
        "--force", action="store_true", help="replace the --json file if it exists"
    )


def _pm(value: Optional[float], error: Optional[float], digits: int = 1) -> str:
    if value is None:
        return "n/a"
    if error is None or not math.isfinite(error):
        return f"{value:+.{digits}f}"
    return f"{value:+.{digits}f} +- {error:.{digits}f}"


def _sigma(entry: Dict[str, Any]) -> str:
    sigma = entry.get("sigma")
    if sigma is None:
        return "too few records for a verdict"
    word = "resolved" if entry.get("resolved") else "within error"
    return f"{sigma:.1f} sigma, {word}"


def describe(reading: Dict[str, Any]) -> List[str]:
    """The lines printed for one reading."""
    settings = reading["settings"]
    ensemble = settings.get("ensemble", "nve")
    how = f"{settings.get('forces')}"
    if settings.get("forces") == "mts":
        how += f" stride {settings.get('stride')}"
    if ensemble == "nve":
        how += ", NVE"
    else:
        how += (
            f", {ensemble} tau {settings.get('tau_fs'):g} fs, "
            f"{settings.get('temperature_K'):g} K"
        )
    start, end = reading["window_ps"]
    lines = [
        f"{reading['folder']} ({how}, seed {settings.get('seed')}): "
        f"{start:.2f}-{end:.2f} ps, {reading['n_records']} records"
    ]
    summary = reading["summary"]
    check = reading["equipartition"]
    if check is not None:
        overall = check["temperature"]
        line = f"  T {overall['mean']:.1f} +- {overall['error'] or math.nan:.1f} K"
        if overall.get("deviation") is not None:
            line += f" ({_pm(overall['deviation'], None)} K from the target, "
            line += _sigma(overall) + ")"
        lines.append(line)
        lines.append(
            "  "
            + ", ".join(
                f"T_{s} {v['mean']:.1f} +- {v['error'] or math.nan:.1f} K"
                for s, v in check["species"].items()
            )
        )
        for pair, split in check["splits"].items():
            change = split["change"]
            steady = {True: "stationary", False: "not stationary", None: "n/a"}[
                split["stationary"]
            ]
            lines.append(
                f"  {pair} split {_pm(split['difference'], split['error'])} K "
                f"({_sigma(split)}); between the halves "
                f"{_pm(change['value'], change['error'])} K ({steady})"
            )
    drift = summary.get("drift_meV_per_atom_per_ps")
    if drift is not None:
        ratio = summary.get("drift_ratio")
        line = (
            f"  conserved-energy drift "
            f"{_pm(drift, summary.get('drift_error_meV_per_atom_per_ps'), 3)} "
            f"meV/atom/ps, drift ratio {'n/a' if ratio is None else f'{ratio:.3g}'}"
        )
        verdict = reading.get("drift_check")
        if verdict is not None and verdict.get("resolved") is not None:
            line += ": " + ("resolved" if verdict["resolved"] else "no resolved drift")
        lines.append(line)
    return lines


def describe_windows(windows: List[Dict[str, Any]]) -> List[str]:
    """A table of the windows: mean temperature, species temperatures, splits."""
    first = windows[0]["equipartition"]
    if first is None:
        header = "  window (ps)    T (K)   drift (meV/atom/ps)"
        lines = [header]
        for w in windows:
            start, end = w["window_ps"]
            drift = w["summary"].get("drift_meV_per_atom_per_ps")
            lines.append(
                f"  {start:5.2f}-{end:5.2f}  {w['summary']['mean_temperature_K']:7.1f}"
                f"   {'n/a' if drift is None else f'{drift:+.3f}'}"
            )
        return lines
    species, pairs = list(first["species"]), list(first["splits"])
    header = "  window (ps)    T (K) " + "".join(f"{'T_' + s:>8}" for s in species)
    header += "".join(f"{p + ' split':>20}" for p in pairs)
    lines = [header]
    for w in windows:
        check = w["equipartition"]
        start, end = w["window_ps"]
        line = f"  {start:5.2f}-{end:5.2f}  {check['temperature']['mean']:7.1f}"
        line += "".join(f"{check['species'][s]['mean']:8.1f}" for s in species)
        for pair in pairs:
            split = check["splits"][pair]
            line += f"{_pm(split['difference'], split['error']):>20}"
        lines.append(line)
    return lines


def describe_pool(pooled: Dict[str, Any]) -> List[str]:
    """The lines of the pooled reading of several runs."""
    n = pooled["n_runs"]
    seeds = ", ".join(
        str(s) if r is None else f"{s} replica {r}"
        for s, r in zip(pooled["seeds"], pooled["replicas"], strict=True)
    )
    if pooled["differences"]:
        return [
            f"not pooled: the {n} runs differ in {', '.join(pooled['differences'])} "
            "(only runs of one model and settings, other seeds, are read as one)"
        ]
    if pooled["splits"] is None:
        return [f"not pooled: NVE runs ({n}) have no species split to pool"]
    lines = [f"pooled over {n} runs (seeds {seeds}), error-weighted:"]
    if not pooled["independent"]:
        lines.append(
            "  (some runs share their seed: runs from one start with one seed follow "
            "the same trajectory and are not independent; pool runs of other seeds)"
        )
    if len(pooled["models"]) > 1:
        lines.append(
            "  (model files: "
            + ", ".join(pooled["models"])
            + ": pool runs of one model only)"
        )
    entries = [("T - target", pooled["temperature"])] + [
        (f"{pair} split", entry) for pair, entry in pooled["splits"].items()
    ]
    for name, entry in entries:
        if entry is None:
            lines.append(f"  {name}: n/a (a run has no error for it)")
            continue
        line = f"  {name} {_pm(entry['mean'], entry['error'])} K ({_sigma(entry)})"
        if entry["scale"] > 1.0:
            line += (
                f"; error widened {entry['scale']:.1f}x: the runs disagree beyond "
                f"their own errors (chi2 {entry['chi2']:.1f} for {entry['dof']} "
                "degrees of freedom)"
            )
        lines.append(line)
    return lines


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..errors import UserInputError
    from ..unit_store import write_atomic
    from .reading import load_run, pool_readings, read_run, read_windows

    target = Path(args.json) if args.json else None
    if target is not None:
        if target.is_dir():
            raise UserInputError(f"--json '{target}' is a folder; name a file")
        if target.exists() and not args.force:
            raise UserInputError(
                f"--json file '{target}' already exists; replace it with --force, or "
                "choose another name"
            )
    runs = [load_run(folder) for folder in args.runs]  # every folder checked first
    readings = [read_run(r, args.start_ps, args.end_ps) for r in runs]
    windows = (
        [read_windows(r, args.windows, args.start_ps, args.end_ps) for r in runs]
        if args.windows is not None
        else None
    )
    for i, reading in enumerate(readings):
        print("\n".join(describe(reading)))
        if windows is not None:
            print(f"  in windows of {args.windows:g} ps:")
            print("\n".join(describe_windows(windows[i])))
    pooled = pool_readings(readings) if len(readings) > 1 else None
    if pooled is not None:
        print("\n".join(describe_pool(pooled)))
    if target is not None:
        # written whole, then renamed: an interrupted write leaves no partial file
        write_atomic(target, {"runs": readings, "windows": windows, "pooled": pooled})
    return 0
