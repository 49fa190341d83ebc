"""Re-read the Langevin runs of a finished ``mtt-nc compare`` folder with the current
verdicts, without running them again.

The errors of mean temperatures under weak thermostats now allow for the
thermostat's correlation time (``metatrain_nc.dynamics.statistics.
widen_for_correlation``); units run before that change keep the old, too small errors
in their ``units/*.json`` and ``runs/.../summary.json``. This recomputes both from
each run's own ``md_log.csv`` and settings (the same records, analysed part and
target), so that one report does not mix the two. Then refresh the report with the
same ``compare --resume`` command (or let a running one do it after its next unit).

    python scripts/reanalyse_nvt_units.py docs/paper_run_chgnet_langevin
"""

import argparse
import json
import sys
from pathlib import Path

from metatrain_nc.dynamics.outputs import read_log
from metatrain_nc.dynamics.verdicts import assess
from metatrain_nc.unit_store import write_atomic


def reanalyse(unit_path: Path, root: Path) -> str:
    """Recompute the verdicts of one unit; returns what changed, for the log."""
    unit = json.loads(unit_path.read_text())
    if unit.get("ensemble") != "langevin" or unit.get("status") != "completed":
        return ""
    folder = Path(unit["folder"])
    if not folder.is_absolute() and not folder.exists():
        folder = root / "runs" / "nvt" / folder.name
    summary_path = folder / "summary.json"
    summary = json.loads(summary_path.read_text())
    settings = summary["settings"]
    rows = read_log(folder / "md_log.csv")
    species = sorted(
        key[len("temperature_") : -len("_K")]
        for key in rows[0]
        if key.startswith("temperature_") and key != "temperature_K"
    )
    # Langevin acts on every atom: no momentum is conserved, each species keeps its
    # 3 N_s degrees of freedom (scale 1), as the run's monitor had it
    result = assess(
        rows,
        summary["n_atoms"],
        settings["forces"],
        settings["ensemble"],
        settings["temperature_K"],
        {symbol: 1.0 for symbol in species},
        equilibration=settings["equilibration_fraction"],
        topology=summary.get("topology"),
        tau_fs=settings["tau_fs"],
    )
    before = unit["equipartition"]["temperature"]
    after = result["equipartition"]["temperature"]
    for data in (summary, unit):
        data["equipartition"] = result["equipartition"]
        data["warnings"] = result["warnings"]
    write_atomic(summary_path, summary)
    write_atomic(unit_path, unit)
    return (
        f"{unit_path.name}: T {before['mean']:.1f} +- {before['error']:.1f} K -> "
        f"{after['mean']:.1f} +- {after['error']:.1f} K "
        f"(widened {after.get('error_widened_by', 1.0):.2f}x)"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="a compare output folder")
    args = parser.parse_args(argv)
    units = sorted((args.folder / "units").glob("nvt-*.json"))
    if not units:
        print(f"error: no NVT units in {args.folder / 'units'}", file=sys.stderr)
        return 2
    for path in units:
        changed = reanalyse(path, args.folder)
        if changed:
            print(changed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
