"""Physics of a distilled teacher-student pair: long NVE with the teacher's
conservative forces vs multiple time stepping with the student (issue 12).

Takes the output folder of ``mtt-nc distill`` (teacher, chosen student,
its stride, the teacher's equilibrated 300 K frame) and runs, for each replica, two
NVE trajectories of ``--time-ps`` (>= 2 ps) from the same start with the same inner
step: velocity Verlet with the teacher's conservative forces, and MTS with the
student's direct forces at the inner steps and the teacher's correction every M
steps. Replica 0 starts with the frame's own velocities, replica k > 0 with
Maxwell-Boltzmann velocities at 300 K (seed k). Replicas run in parallel processes
(``--jobs``), one thread each.

Rates (drift of the conserved energy in meV/atom/ps, heating in K/ps) come from
linear fits over the whole run; their error bars from the spread of the slopes of
``--blocks`` consecutive blocks of every run, pooled over replicas (standard error of
the mean block slope: the fit errors of one run ignore the time correlation of the
temperature). Verdicts:

- drift: ``|drift_MTS| <= 2 |drift_teacher| + 1 meV/atom/ps`` (the stride finder's
  criterion; without the 1 meV/atom/ps floor a near-zero teacher drift would reject
  everything) and the strict ``|drift_MTS| <= 2 |drift_teacher|``;
- heating: indistinguishable when ``|heating_MTS - heating_teacher|`` is within 2
  combined standard errors.

Wall-clock time per inner step of each run is recorded too (the package's timing
module; separate processes run side by side, one thread each: a rough ratio;
``mtt-nc distill`` measures the speed-up interleaved in one process).

    python benchmarks/distill_physics.py DISTILL_DIR [--time-ps 2] [--replicas 2]
        [--blocks 4] [--jobs 2] [--json out.json]
"""

import argparse
import json
import math
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Dict, List

import numpy as np


def _slope(t: np.ndarray, y: np.ndarray) -> float:
    tc = t - t.mean()
    return float(tc @ (y - y.mean()) / (tc @ tc))


def rates(rows: List[Dict[str, float]], n_atoms: int, blocks: int) -> Dict:
    """Whole-run slopes and the slopes of ``blocks`` consecutive blocks."""
    t = np.array([r["time_fs"] for r in rows]) / 1000.0
    temperature = np.array([r["temperature_K"] for r in rows])
    conserved = np.array([r["conserved_eV"] for r in rows]) * 1000.0 / n_atoms
    edges = np.linspace(0, len(t), blocks + 1).astype(int)
    parts = [slice(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True)]
    return {
        "heating_K_per_ps": _slope(t, temperature),
        "drift_meV_per_atom_per_ps": _slope(t, conserved),
        "block_heating_K_per_ps": [_slope(t[p], temperature[p]) for p in parts],
        "block_drift_meV_per_atom_per_ps": [_slope(t[p], conserved[p]) for p in parts],
        "mean_temperature_K": float(temperature.mean()),
        "duration_ps": float(t[-1] - t[0]),
    }


def run_replica(args) -> Dict:
    """Both trajectories of one replica (in a worker process, one thread)."""
    import ase.io
    import torch
    from ase import units

    from metatrain_nc.dynamics.integrator import MultipleTimeStep
    from metatrain_nc.dynamics.observer import Monitor
    from metatrain_nc.dynamics.structures import maxwell_boltzmann
    from metatrain_nc.force_models import load_force_model
    from metatrain_nc.force_models.timing import wall_seconds

    replica, teacher, student, stride, start_file, inner_fs, time_ps, blocks = args
    torch.set_num_threads(1)
    start = ase.io.read(start_file)
    if replica > 0:
        maxwell_boltzmann(start, 300.0, seed=replica)
    slow, fast = load_force_model(teacher), load_force_model(student)
    inner_steps = int(round(time_ps * 1000.0 / inner_fs))
    out = {"replica": replica}
    for mode in ("conservative", "mts"):
        m = 1 if mode == "conservative" else stride
        atoms = start.copy()
        dyn = MultipleTimeStep(
            atoms,
            m * inner_fs * units.fs,
            slow,
            forces=mode,
            stride=m,
            fast=None if mode == "conservative" else fast,
        )
        monitor = Monitor(dyn, max_temperature_K=None)
        dyn.attach(monitor, interval=1)
        seconds = wall_seconds(lambda dyn=dyn, m=m: dyn.run(inner_steps // m))
        out[mode] = rates(monitor.rows, len(atoms), blocks)
        out[mode]["wall_ms_per_inner_step"] = 1000.0 * seconds / inner_steps
        out[mode]["outer_steps"] = inner_steps // m
    return out


def pooled(replicas: List[Dict], mode: str, key: str) -> Dict[str, float]:
    """Mean of the whole-run rates over replicas, error from the pooled block slopes."""
    whole = [r[mode][key] for r in replicas]
    block = [s for r in replicas for s in r[mode][f"block_{key}"]]
    error = statistics.stdev(block) / math.sqrt(len(block)) if len(block) > 1 else None
    return {"value": statistics.mean(whole), "error": error, "runs": whole}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("distill", help="output folder of mtt-nc distill")
    parser.add_argument("--time-ps", type=float, default=2.0)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--blocks", type=int, default=4)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--stride", type=int, help="default: the recipe's choice")
    parser.add_argument("--student", help="size label (default: the recipe's choice)")
    parser.add_argument(
        "--inner-fs", type=float, help="inner time step (default: the recipe's)"
    )
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()

    folder = Path(args.distill)
    report = json.loads((folder / "report.json").read_text())
    chosen = args.student or report["chosen"]
    if chosen is None:
        sys.exit("the recipe chose no student: pass --student and --stride")
    student = report["students"][chosen]
    stride = args.stride or student["stride"]
    teacher = report["teacher"]["model"]
    settings = report.get("settings") or report["plan"]  # older runs: "plan"
    inner_fs = args.inner_fs or settings["inner_fs"]
    start = folder / "data" / "nve_start.extxyz"
    print(
        f"teacher {teacher}\nstudent {chosen}: {student['model']}\nstride {stride}, "
        f"inner step {inner_fs} fs, {args.time_ps} ps x {args.replicas} replicas",
        flush=True,
    )
    os.environ["OMP_NUM_THREADS"] = "1"
    tasks = [
        (k, teacher, student["model"], stride, str(start), inner_fs, args.time_ps,
         args.blocks)
        for k in range(args.replicas)
    ]  # fmt: skip
    began = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(min(args.jobs, len(tasks))) as pool:
        replicas = pool.map(run_replica, tasks)
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "distill_report": str(folder / "report.json"),
        "teacher": teacher,
        "student": chosen,
        "student_model": student["model"],
        "stride": stride,
        "inner_timestep_fs": inner_fs,
        "time_ps": args.time_ps,
        "blocks": args.blocks,
        "wall_time_min": (time.perf_counter() - began) / 60,
        "replicas": replicas,
    }
    for mode in ("conservative", "mts"):
        result[mode] = {
            "drift_meV_per_atom_per_ps": pooled(
                replicas, mode, "drift_meV_per_atom_per_ps"
            ),
            "heating_K_per_ps": pooled(replicas, mode, "heating_K_per_ps"),
            "wall_ms_per_inner_step": statistics.mean(
                r[mode]["wall_ms_per_inner_step"] for r in replicas
            ),
            "mean_temperature_K": statistics.mean(
                r[mode]["mean_temperature_K"] for r in replicas
            ),
        }
    c, m = result["conservative"], result["mts"]
    dc = c["drift_meV_per_atom_per_ps"]["value"]
    dm = m["drift_meV_per_atom_per_ps"]["value"]
    hc, hm = c["heating_K_per_ps"], m["heating_K_per_ps"]
    sigma = math.hypot(hc["error"] or 0.0, hm["error"] or 0.0)
    result["verdict"] = {
        "drift_within_2x_plus_1": abs(dm) <= 2 * abs(dc) + 1.0,
        "drift_within_2x_strict": abs(dm) <= 2 * abs(dc),
        "heating_difference_K_per_ps": hm["value"] - hc["value"],
        "heating_difference_sigma": (
            abs(hm["value"] - hc["value"]) / sigma if sigma > 0 else None
        ),
        "heating_indistinguishable": sigma > 0
        and abs(hm["value"] - hc["value"]) <= 2 * sigma,
        "wall_ratio_conservative_over_mts": c["wall_ms_per_inner_step"]
        / m["wall_ms_per_inner_step"],
    }
    for mode, label in (("conservative", "teacher, conservative"),
                        ("mts", f"MTS, {chosen}, M = {stride}")):  # fmt: skip
        r = result[mode]
        d, h = r["drift_meV_per_atom_per_ps"], r["heating_K_per_ps"]
        print(
            f"{label:<32} drift {d['value']:8.3f} +- {d['error']:.3f} meV/atom/ps  "
            f"heating {h['value']:7.1f} +- {h['error']:.1f} K/ps  "
            f"<T> {r['mean_temperature_K']:.0f} K  "
            f"{r['wall_ms_per_inner_step']:.1f} ms/step"
        )
    print(json.dumps(result["verdict"], indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
