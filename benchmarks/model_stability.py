"""Is a model's dynamics stable? NVE and two thermostats, long enough to tell.

Three runs of MODEL from one structure (conservative forces at 0.5 fs by default;
``--forces direct``, or ``--forces mts --stride M``: M inner steps of ``--timestep``
per outer step with the conservative correction), each made of
``mtt-nc md`` segments of ``--segment`` ps (1) that continue one another (the last
frame of a segment, with its momenta, starts the next; thermostat seeds
``--seed + k``), so that a run interrupted at any point resumes from its last
finished segment (run the same command again):

- ``nve``: velocity Verlet over ``--time`` ps (10): drift of the total energy
  (meV/atom/ps, with its fit error) and the drift ratio of the public drift
  benchmarks (energy change over the run / standard deviation of the kinetic energy);
- ``langevin``: Langevin, tau 1000 fs, and ``svr``: SVR, tau 10 fs, each ``--time``
  ps at 300 K: mean temperature and each species' temperature (the package's
  equipartition check: block-averaged errors after the first fifth), against the
  target.

The records of the segments are joined (each segment's conserved energy continued
from the previous one's last value: a thermostat's work restarts at zero in every
segment) and analysed with the package's monitor (``summarise``, ``diagnose``);
the bonded topology (the census of molecules, ``metatrain_nc.dynamics.topology``)
of the start is compared with the last frame of each segment, and a change is one
of the verdicts (the column "molecules (end)": the census of the last frame).
Writes ``report.md`` and ``report.json`` into ``--out`` (and ``settings.json``: a
folder continues only with the same model, start and dynamics):

    python benchmarks/model_stability.py MODEL.pt START.xyz --out docs/stability/pet_c
    python benchmarks/model_stability.py PET_M.pt START.xyz --forces mts --stride 4 \
        --only svr --time 20 --out docs/stability/pet_m_mts4

CPU: 3 x 20000 steps of the model (a demo-size PET: ~1 h per run on one core).
"""

import argparse
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import ase.io

from metatrain_nc.dynamics.observer import species_degrees_of_freedom
from metatrain_nc.dynamics.outputs import read_log
from metatrain_nc.dynamics.topology import (
    BOND_FACTOR,
    TopologyWatch,
    describe,
    topology_warning,
)
from metatrain_nc.dynamics.verdicts import assess

RUNS = {
    "nve": ["--ensemble", "nve"],
    "langevin": ["--ensemble", "langevin", "--tau", "1000"],
    "svr": ["--ensemble", "svr", "--tau", "10"],
}


def segment_count(args) -> int:
    return max(1, int(round(args.time / args.segment)))


def run_segment(args, name: str, k: int) -> Path:
    """Segment ``k`` of run ``name`` (skipped if its summary exists)."""
    folder = Path(args.out) / name / f"segment_{k:03d}"
    if (folder / "summary.json").exists():
        return folder
    outer = args.timestep * args.stride  # fs per outer step
    steps = int(round(args.segment * 1000.0 / outer))
    if k == 0:
        start = ["--index", str(args.index), "--velocities", "maxwell-boltzmann"]
        structure = args.structure
    else:
        previous = Path(args.out) / name / f"segment_{k - 1:03d}"
        structure = str(previous / "trajectory.extxyz")
        start = ["--index", "-1", "--velocities", "structure"]
    if folder.exists():  # cut short by an interruption: run it again
        shutil.rmtree(folder)
    command = [
        str(Path(sys.executable).parent / "mtt-nc"), "md", args.model, structure,
        *start, "--forces", args.forces,
        "--timestep", f"{outer:g}", "--stride", str(args.stride),
        "--steps", str(steps), "--temperature", str(args.temperature),
        "--seed", str(args.seed + k),
        "--log-every", str(max(1, args.log_every // args.stride)),
        "--trajectory-every", str(steps), "--no-chemiscope",
        "--resume",  # a segment cut short continues from its last restart point
        "-o", str(folder), *RUNS[name],
    ]  # fmt: skip
    print("$", " ".join(command), flush=True)
    subprocess.run(command, check=False)
    if _status(folder) != "completed":
        print(f"[{name}] segment {k}: {_status(folder)}", flush=True)
    return folder


def joined_records(folders) -> list:
    """The segments' records as one run: the first record of a segment is the state
    the previous one ended in (dropped); times and the conserved energy continue."""
    rows = []
    for folder in folders:
        part = read_log(folder / "md_log.csv")
        offset, t0 = 0.0, 0.0
        if rows:
            offset = rows[-1]["conserved_eV"] - part[0]["conserved_eV"]
            t0 = rows[-1]["time_fs"]
            part = part[1:]
        for r in part:
            rows.append({**r, "time_fs": r["time_fs"] + t0,
                         "conserved_eV": r["conserved_eV"] + offset})  # fmt: skip
    return rows


def _status(folder: Path) -> str:
    summary = folder / "summary.json"
    return json.loads(summary.read_text())["status"] if summary.exists() else "failed"


def topology_check(start: ase.Atoms, folders) -> dict:
    """The bonded-topology check of a run (``TopologyWatch.result()``): the census
    of molecules of ``start`` against that of the last frame of each segment, at
    the run's time (fs: each segment's times continue the previous one's)."""
    watch = TopologyWatch(start)
    t0 = 0.0
    for folder in folders:
        path = folder / "trajectory.extxyz"
        if not path.exists():
            continue
        frame = ase.io.read(path, -1)
        watch(frame, t0 + frame.info["time_fs"])
        t0 += frame.info["time_fs"]
    return watch.result()


def run_one(args, name: str) -> dict:
    folders = []
    atoms = ase.io.read(args.structure, args.index)
    for k in range(segment_count(args)):
        folder = run_segment(args, name, k)
        folders.append(folder)
        status = _status(folder)
        if status != "completed":
            topology = topology_check(atoms, folders)
            warning = topology_warning(topology)
            return {
                "status": f"{status} in segment {k}",
                "segments": k + 1,
                "topology": topology,
                "warnings": [warning] if warning else [],
            }
    rows = joined_records(folders)
    ensemble = RUNS[name][1]
    dof = species_degrees_of_freedom(atoms, ensemble != "langevin")
    symbols = atoms.get_chemical_symbols()
    scale = {s: 3.0 * symbols.count(s) / dof[s] for s in dof}
    target = None if name == "nve" else args.temperature
    summary = {"status": "completed", "segments": len(folders)}
    topology = topology_check(atoms, folders)
    tau = float(RUNS[name][3]) if len(RUNS[name]) > 3 else None
    summary.update(
        assess(rows, len(atoms), args.forces, ensemble, target, scale,
               topology=topology, tau_fs=tau)
    )  # fmt: skip
    return summary


def _molecules(topology) -> str:
    """The "molecules (end)" cell: the census of the last frame."""
    if not topology:
        return "-"
    if not topology["checked"]:
        return "not checked (extended)"
    return describe(topology["final"])


def _pm(value, error, digits=1) -> str:
    if value is None:
        return "-"
    if error is None:
        return f"{value:.{digits}f}"
    if 0 < abs(error) < 10**-digits:  # show the error's first significant digit
        digits = min(6, -int(math.floor(math.log10(abs(error)))))
    return f"{value:.{digits}f} +/- {error:.{digits}f}"


def dynamics_text(args) -> str:
    """The forces and steps of the runs, in words."""
    if args.forces == "mts":
        return (
            f"Multiple time stepping (direct forces every {args.timestep} fs, the "
            f"conservative correction every {args.timestep * args.stride:g} fs: "
            f"stride {args.stride})"
        )
    return f"{args.forces.capitalize()} forces, {args.timestep} fs steps"


#: what a stability folder must keep to continue (settings.json)
FIXED = ("model", "structure", "index", "forces", "stride", "timestep", "segment",
         "temperature", "seed", "log_every")  # fmt: skip


def check_settings(args) -> None:
    """Write ``settings.json`` into a new ``--out``; exit with a message if the
    folder was started with other settings (its segments would not continue)."""
    path = Path(args.out) / "settings.json"
    wanted = {key: getattr(args, key) for key in FIXED}
    if path.exists():
        saved = json.loads(path.read_text())
        differ = [k for k in FIXED if saved.get(k) != wanted[k]]
        if differ:
            sys.exit(
                f"'{args.out}' holds runs made with other {', '.join(differ)} "
                f"({', '.join(f'{k} {saved.get(k)!r}' for k in differ)}): continue "
                "with the same settings or choose another --out"
            )
        return
    legacy = any((Path(args.out) / name).is_dir() for name in RUNS)
    if legacy and args.forces != "conservative":
        # folders written before settings.json held conservative runs only
        sys.exit(
            f"'{args.out}' holds conservative runs: choose another --out for "
            f"--forces {args.forces}"
        )
    path.write_text(json.dumps(wanted, indent=2) + "\n")


def report(args, runs: dict) -> str:
    start = next(
        (describe(s["topology"]["start"]) for s in runs.values() if s.get("topology")),
        "-",
    )
    lines = [
        f"# Stability of `{args.model}`",
        "",
        f"{dynamics_text(args)}, {args.time} ps per run, from "
        f"frame {args.index} of `{args.structure}` with Maxwell-Boltzmann velocities "
        f"at {args.temperature} K (seed {args.seed}).",
        "",
        f"Molecules: the census of the last frame (bonds closer than "
        f"{BOND_FACTOR} x the sum of covalent radii) against the start's, "
        f"{start}.",
        "",
        "| run | status | drift (meV/atom/ps) | drift ratio | mean T (K) "
        "| T of each species, second half (K) | molecules (end) | verdicts |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, s in runs.items():
        eq = s.get("equipartition") or {}
        species = ", ".join(
            f"{k} {_pm(v['mean'], v['error'])}"
            for k, v in (eq.get("species") or {}).items()
        )
        overall = eq.get("temperature") or {"mean": s.get("mean_temperature_K")}
        drift = _pm(
            s.get("drift_meV_per_atom_per_ps"),
            s.get("drift_error_meV_per_atom_per_ps"),
            3,
        )
        ratio = s.get("drift_ratio")
        warnings = "; ".join(w["message"] for w in s.get("warnings", [])) or "none"
        lines.append(
            f"| {name} | {s['status']} | {drift if name == 'nve' else '-'} "
            f"| {f'{ratio:.3f}' if ratio is not None and name == 'nve' else '-'} "
            f"| {_pm(overall.get('mean'), overall.get('error'))} | {species} "
            f"| {_molecules(s.get('topology'))} | {warnings} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("structure")
    parser.add_argument("--out", required=True)
    parser.add_argument("--index", type=int, default=0)
    parser.add_argument("--time", type=float, default=10.0, help="ps per run")
    parser.add_argument("--segment", type=float, default=1.0, help="ps per segment")
    parser.add_argument(
        "--timestep", type=float, default=0.5, help="fs (MTS: the inner step)"
    )
    parser.add_argument(
        "--forces", choices=("conservative", "direct", "mts"), default="conservative"
    )
    parser.add_argument(
        "--stride", type=int, default=1, help="MTS: inner steps per outer step"
    )
    parser.add_argument("--temperature", type=float, default=300.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log-every", type=int, default=4, help="steps")
    parser.add_argument("--only", action="append", choices=list(RUNS))
    args = parser.parse_args(argv)
    if args.stride < 1 or (args.stride > 1) != (args.forces == "mts"):
        parser.error("--stride M > 1 goes with --forces mts (and only with it)")
    per_segment = args.segment * 1000.0 / (args.timestep * args.stride)
    if abs(per_segment - round(per_segment)) > 1e-6:
        parser.error(
            f"--segment {args.segment} ps is not a whole number of outer steps of "
            f"{args.timestep * args.stride:g} fs"
        )
    Path(args.out).mkdir(parents=True, exist_ok=True)
    check_settings(args)
    # the runs not chosen with --only keep what the last report said of them
    previous = Path(args.out) / "report.json"
    runs = json.loads(previous.read_text()) if previous.exists() else {}
    runs.update({name: run_one(args, name) for name in (args.only or RUNS)})
    runs = {name: runs[name] for name in RUNS if name in runs}
    text = report(args, runs)
    (Path(args.out) / "report.md").write_text(text)
    (Path(args.out) / "report.json").write_text(json.dumps(runs, indent=2) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
