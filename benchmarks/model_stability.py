"""Is a conservative model stable? NVE and two thermostats, long enough to tell.

Three ``mtt-nc md`` runs of MODEL from one structure (conservative forces, 0.5 fs):

- ``nve``: velocity Verlet over ``--time`` ps (10): drift of the total energy
  (meV/atom/ps, with its fit error) and the drift ratio of the public drift
  benchmarks (energy change over the run / standard deviation of the kinetic energy);
- ``langevin``: Langevin, tau 1000 fs, and ``svr``: SVR, tau 10 fs, each ``--time``
  ps at 300 K: mean temperature and each species' temperature over the second half,
  block-averaged errors, against the target.

A run whose ``summary.json`` is already in ``--out`` is not run again (resume after
an interruption by running the same command). Writes ``report.md`` and
``report.json`` into ``--out``:

    python benchmarks/model_stability.py MODEL.pt START.xyz --out docs/stability/pet_c

CPU: 3 x 20000 steps of the model (a demo-size PET: ~1 h per run on one core).
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

RUNS = {
    "nve": ["--ensemble", "nve"],
    "langevin": ["--ensemble", "langevin", "--tau", "1000"],
    "svr": ["--ensemble", "svr", "--tau", "10"],
}


def run_one(args, name: str) -> dict:
    folder = Path(args.out) / name
    summary = folder / "summary.json"
    if not summary.exists():
        steps = int(round(args.time * 1000.0 / args.timestep))
        command = [
            str(Path(sys.executable).parent / "mtt-nc"), "md", args.model,
            args.structure, "--index", str(args.index), "--forces", "conservative",
            "--timestep", str(args.timestep), "--stride", "1",
            "--steps", str(steps), "--temperature", str(args.temperature),
            "--velocities", "maxwell-boltzmann", "--seed", str(args.seed),
            "--log-every", str(args.log_every), "--trajectory-every", "200",
            "--no-chemiscope", "-o", str(folder), *RUNS[name],
        ]  # fmt: skip
        print("$", " ".join(command), flush=True)
        subprocess.run(command, check=False)
    if not summary.exists():
        raise SystemExit(f"`mtt-nc md` did not finish the {name} run")
    return json.loads(summary.read_text())


def _pm(value, error, digits=1) -> str:
    if value is None:
        return "-"
    if error is None:
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} +/- {error:.{digits}f}"


def report(args, runs: dict) -> str:
    lines = [
        f"# Stability of `{args.model}`",
        "",
        f"Conservative forces, {args.timestep} fs steps, {args.time} ps per run, from "
        f"frame {args.index} of `{args.structure}` with Maxwell-Boltzmann velocities "
        f"at {args.temperature} K (seed {args.seed}).",
        "",
        "| run | status | drift (meV/atom/ps) | drift ratio | mean T (K) "
        "| T of each species, second half (K) | verdicts |",
        "|---|---|---|---|---|---|---|",
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
            f"| {warnings} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("structure")
    parser.add_argument("--out", required=True)
    parser.add_argument("--index", type=int, default=0)
    parser.add_argument("--time", type=float, default=10.0, help="ps per run")
    parser.add_argument("--timestep", type=float, default=0.5, help="fs")
    parser.add_argument("--temperature", type=float, default=300.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log-every", type=int, default=4, help="steps")
    parser.add_argument("--only", action="append", choices=list(RUNS))
    args = parser.parse_args(argv)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    runs = {name: run_one(args, name) for name in (args.only or RUNS)}
    text = report(args, runs)
    (Path(args.out) / "report.md").write_text(text)
    (Path(args.out) / "report.json").write_text(json.dumps(runs, indent=2) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
