"""A real teacher distilled into a fast student: MTS against the teacher's own MD
(issue 24, item 3).

The teacher is a slow conservative potential (default: CHGNet, the reference of the
shipped water set, ~1.3 s per call on 192 atoms); the student a ``pet_nc`` trained on
the teacher's labels (``recipes/water_chgnet/pet_nc.yaml``). From the same start (a
frame of the teacher's own liquid, Maxwell-Boltzmann velocities at 300 K, seed 0,
real masses) every run advances with the same inner step (the teacher's own stable
step, 0.5 fs):

- ``teacher_nve``: velocity Verlet with the teacher (reuse an existing run with
  ``--teacher-nve DIR``: ``benchmarks/reference_nve.py`` writes the same records);
- ``student_nve``: velocity Verlet with the student's direct forces alone;
- ``mts_nve_M<M>``: the teacher every M inner steps, the student inside (one run per
  stride of ``--strides``);
- ``teacher_langevin``, ``student_langevin``, ``mts_langevin_M<M>``: the same under
  Langevin at 300 K (``--tau`` fs), MTS at each stride of ``--langevin-strides``.

``--scan`` runs the package's stride finder (``mtt-nc md --stride auto``:
:func:`metatrain_nc.dynamics.stride.find_stride`) for the pair and records its
choice. Every run is resumable: run the same command again after an interruption and
it continues from its last committed chunk (positions, momenta, the thermostat's
random state). ``--report`` (after the runs) times the teacher's velocity Verlet and
MTS at each stride interleaved in one process
(:func:`metatrain_nc.distill.measure.md_step_ms`), and writes ``report.md``,
``report.json`` and ``speed_vs_drift.png`` with:

- speed-up per simulated ps over the teacher's own MD, per stride;
- NVE drift (meV/atom/ps, with its error) and drift ratio;
- mean and per-species temperatures under Langevin (block-averaged errors);
- O-O g(r) against the teacher's: integrated absolute difference over the integral of
  the teacher's g(r) (0-6 A).

    python benchmarks/distill_real_teacher.py --student STUDENT.pt \\
        --start docs/reference_nve/start.xyz --teacher-nve docs/reference_nve \\
        --out docs/distill_real [--only mts_nve_M8] [--scan] [--report]
"""

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Dict

import ase.io
import numpy as np
import torch
from ase import units

sys.path.insert(0, str(Path(__file__).resolve().parent))
from distill_real_report import report  # noqa: E402
from reference_nve import (  # noqa: E402
    save_chunk,
    snapshot,
    species_temperatures,
)

from metatrain_nc.dynamics.integrator import MultipleTimeStep  # noqa: E402
from metatrain_nc.dynamics.structures import thermalize_momenta  # noqa: E402
from metatrain_nc.force_models.loading import load_force_model  # noqa: E402
from metatrain_nc.reference_data.store import FrameLog  # noqa: E402

#: outer steps per committed chunk
CHUNK = 10


def plan(args) -> Dict[str, Dict]:
    """Every run: kind (teacher / student / mts), ensemble, stride."""
    runs = {
        "teacher_nve": {"kind": "teacher", "ensemble": "nve", "stride": 1},
        "student_nve": {"kind": "student", "ensemble": "nve", "stride": 1},
    }
    for m in args.strides:
        runs[f"mts_nve_M{m}"] = {"kind": "mts", "ensemble": "nve", "stride": m}
    runs["teacher_langevin"] = {"kind": "teacher", "ensemble": "langevin", "stride": 1}
    runs["student_langevin"] = {"kind": "student", "ensemble": "langevin", "stride": 1}
    for m in args.langevin_strides:
        spec = {"kind": "mts", "ensemble": "langevin", "stride": m}
        runs[f"mts_langevin_M{m}"] = spec
    return runs


def start_atoms(args) -> ase.Atoms:
    """The common start: positions of ``--start``, Maxwell-Boltzmann velocities at
    300 K (seed ``--seed``), zero total momentum, real masses (as reference_nve.py)."""
    atoms = ase.io.read(args.start, args.start_index)
    atoms.calc = None
    atoms.set_constraint()
    atoms.set_masses()
    thermalize_momenta(atoms, args.temperature, rng=np.random.default_rng(args.seed))
    atoms.set_momenta(atoms.get_momenta() - atoms.get_momenta().mean(0))
    return atoms


def dynamics(atoms, spec, teacher, student, args, rng) -> MultipleTimeStep:
    h = args.inner_fs * units.fs
    thermostat = {}
    if spec["ensemble"] == "langevin":
        thermostat = dict(
            ensemble="langevin",
            temperature_K=args.temperature,
            tau=args.tau * units.fs,
            rng=rng,
        )
    if spec["kind"] == "teacher":
        return MultipleTimeStep(
            atoms, h, teacher, forces="conservative", stride=1, **thermostat
        )
    if spec["kind"] == "student":
        return MultipleTimeStep(
            atoms, h, student, forces="direct", stride=1, **thermostat
        )
    m = spec["stride"]
    return MultipleTimeStep(
        atoms, m * h, teacher, forces="mts", stride=m, fast=student, **thermostat
    )


def mts_record(dyn: MultipleTimeStep, atoms, time_fs: float) -> dict:
    """One record, in reference_nve.py's fields (the integrator's energies)."""
    potential = float(dyn.potential_energy())
    kinetic = float(atoms.get_kinetic_energy())
    row = {
        "time_fs": time_fs,
        "potential_eV": potential,
        "kinetic_eV": kinetic,
        "total_eV": potential + kinetic,
        "conserved_eV": float(dyn.conserved_energy()),
        "temperature_K": float(atoms.get_temperature()),
    }
    for symbol, value in species_temperatures(atoms).items():
        row[f"temperature_{symbol}_K"] = value
    return row


def run_one(name: str, spec: Dict, args, teacher, student) -> None:
    out = Path(args.out) / name
    out.mkdir(parents=True, exist_ok=True)
    log = FrameLog(out, "trajectory").open()
    rows_path = out / "records.jsonl"
    duration_ps = args.nve_ps if spec["ensemble"] == "nve" else args.langevin_ps
    outer_fs = spec["stride"] * args.inner_fs
    n_outer = int(np.ceil(duration_ps * 1000.0 / outer_fs))
    frame_every = max(1, int(round(args.frame_fs / outer_fs)))
    atoms = start_atoms(args)
    rng = np.random.default_rng(args.seed + 1)
    state = log.state
    if "step" in state:
        step = int(state["step"])
        atoms.positions = np.array(state["positions"])
        atoms.set_momenta(np.array(state["momenta"]))
        if "rng" in state:  # (NVE runs of reference_nve.py have none)
            rng.bit_generator.state = state["rng"]
        rows = [json.loads(line) for line in rows_path.read_text().splitlines()]
        rows = rows[: int(state["records"])]
        wall = float(state.get("wall_s", 0.0))
    else:
        step, rows, wall = 0, [], 0.0
    dyn = dynamics(atoms, spec, teacher, student, args, rng)
    if rows:  # the energy the thermostat took so far: the conserved energy goes on
        total = rows[-1]["total_eV"]
        dyn.thermostat_energy = rows[-1].get("conserved_eV", total) - total
    else:
        rows.append(mts_record(dyn, atoms, 0.0))
    while step < n_outer:
        chunk = min(CHUNK, n_outer - step)
        frames, began = [], time.perf_counter()
        for _ in range(chunk):
            dyn.run(1)
            step += 1
            rows.append(mts_record(dyn, atoms, step * outer_fs))
            if step % frame_every == 0:
                frames.append(snapshot(atoms, step * outer_fs))
        wall += time.perf_counter() - began
        save_chunk(
            log,
            rows_path,
            rows,
            frames,
            atoms,
            step,
            rng=rng.bit_generator.state,
            wall_s=wall,
        )
        print(
            f"[{name}] {step}/{n_outer} outer steps  T {rows[-1]['temperature_K']:.0f}"
            f" K  conserved {rows[-1]['conserved_eV']:.4f} eV  "
            f"{wall / step:.2f} s/outer step",
            flush=True,
        )


def scan(args, teacher, student) -> None:
    """The package's stride finder (``mtt-nc md --stride auto``) for the pair."""
    from metatrain_nc.dynamics.stride import STRIDES, find_stride

    result = find_stride(
        teacher,
        start_atoms(args),
        inner_timestep_fs=args.inner_fs,
        strides=[m for m in STRIDES if m <= args.max_stride],
        segment_fs=args.scan_fs,
        fast=student,
        progress=lambda row: print(row, flush=True),
    )
    data = result.to_dict()
    (Path(args.out) / "stride_scan.json").write_text(json.dumps(data, indent=2) + "\n")
    print(result.table())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--teacher", default="metatrain_nc.references:chgnet")
    parser.add_argument("--student", required=True, help="exported pet_nc (.pt)")
    parser.add_argument("--start", required=True)
    parser.add_argument("--start-index", type=int, default=0)
    parser.add_argument("--out", required=True)
    parser.add_argument("--teacher-nve", help="an existing reference_nve.py folder")
    parser.add_argument("--inner-fs", type=float, default=0.5)
    parser.add_argument("--strides", default="4,6,8,12")
    parser.add_argument("--langevin-strides", default="4,8")
    parser.add_argument("--nve-ps", type=float, default=2.0)
    parser.add_argument("--langevin-ps", type=float, default=1.0)
    parser.add_argument("--tau", type=float, default=100.0, help="fs")
    parser.add_argument("--temperature", type=float, default=300.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--frame-fs", type=float, default=10.0)
    parser.add_argument("--scan-fs", type=float, default=200.0)
    parser.add_argument("--max-stride", type=int, default=16)
    parser.add_argument("--timing-repeats", type=int, default=3)
    parser.add_argument("--only", action="append", help="run only these")
    parser.add_argument("--scan", action="store_true", help="run the stride finder")
    parser.add_argument("--report", action="store_true")
    parser.add_argument(
        "--reuse-timing",
        action="store_true",
        help="--report: keep the speed of the strides report.json already has",
    )
    args = parser.parse_args(argv)
    args.strides = [int(m) for m in args.strides.split(",")]
    args.langevin_strides = [int(m) for m in args.langevin_strides.split(",")]
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = plan(args)
    if args.teacher_nve and not (out / "teacher_nve").exists():
        shutil.copytree(args.teacher_nve, out / "teacher_nve")
    teacher_spec = args.teacher
    if args.report:
        report(args, runs, teacher_spec, start_atoms(args))
        return 0
    teacher = load_force_model(teacher_spec)
    student = load_force_model(args.student)
    if args.scan:
        scan(args, teacher, student)
        return 0
    for name in args.only or list(runs):
        if name not in runs:
            raise SystemExit(f"unknown run {name}: choose from {list(runs)}")
        run_one(name, runs[name], args, teacher, student)
    return 0


if __name__ == "__main__":
    sys.exit(main())
