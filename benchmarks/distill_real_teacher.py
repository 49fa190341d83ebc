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
from typing import Dict, List, Optional

import ase.io
import numpy as np
import torch
from ase import units

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference_nve import (  # noqa: E402
    oo_rdf,
    save_chunk,
    snapshot,
    species_temperatures,
)

from metatrain_nc.dynamics.integrator import MultipleTimeStep  # noqa: E402
from metatrain_nc.dynamics.statistics import block_average, summarise  # noqa: E402
from metatrain_nc.dynamics.structures import thermalize_momenta  # noqa: E402
from metatrain_nc.force_models.loading import load_force_model  # noqa: E402
from metatrain_nc.reference_data.store import FrameLog  # noqa: E402

#: outer steps per committed chunk
CHUNK = 10
#: r range of the O-O g(r) comparison (A)
RDF_MAX = 6.0


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
    if not rows:
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


def _records(folder: Path) -> Optional[List[dict]]:
    path = folder / "records.jsonl"
    if not path.is_file():
        return None
    return [json.loads(line) for line in path.read_text().splitlines()]


def _frames(folder: Path) -> List[ase.Atoms]:
    path = folder / "trajectory.extxyz"
    return ase.io.read(path, ":") if path.is_file() else []


def analyse(folder: Path, n_atoms: int, target: Optional[float]) -> Optional[Dict]:
    rows = _records(folder)
    if not rows or len(rows) < 10:
        return None
    summary = summarise(rows, n_atoms, target)
    for key in [k for k in rows[0] if k.startswith("temperature")]:
        mean, error, _ = block_average([r[key] for r in rows[len(rows) // 5 :]])
        summary[f"equilibrated_{key}"] = [mean, error]
    state = folder / "trajectory.state.json"
    if state.is_file():
        saved = json.loads(state.read_text())
        summary["wall_s_per_outer_step"] = saved.get("wall_s", 0) / max(
            1, saved.get("step", 1)
        )
    return summary


def rdf_difference(frames: List[ase.Atoms], reference: List[ase.Atoms]) -> Dict:
    """Integrated |g - g_ref| over the integral of g_ref (O-O, 0-RDF_MAX A), both from
    the second half of their runs."""
    r, g = oo_rdf(frames[len(frames) // 2 :], r_max=RDF_MAX)
    _, g_ref = oo_rdf(reference[len(reference) // 2 :], r_max=RDF_MAX)
    dr = r[1] - r[0]
    value = float(np.abs(g - g_ref).sum() * dr / (g_ref.sum() * dr))
    return {"integrated_abs_difference": value, "r": r.tolist(), "g": g.tolist()}


def rdf_noise(reference: List[ase.Atoms]) -> float:
    """The same measure between the two halves of the teacher's analysed window (its
    third and fourth quarters): how far two g(r) of half the length differ by
    sampling alone (a full-window comparison is about sqrt(2) less noisy)."""
    n = len(reference)
    r, g_a = oo_rdf(reference[n // 2 : 3 * n // 4], r_max=RDF_MAX)
    _, g_b = oo_rdf(reference[3 * n // 4 :], r_max=RDF_MAX)
    return float(np.abs(g_a - g_b).sum() / g_b.sum())


def report(args, runs: Dict[str, Dict], teacher_spec: str) -> None:
    from metatrain_nc.distill.measure import md_step_ms
    from metatrain_nc.distill.settings import DistillSettings

    out = Path(args.out)
    atoms = start_atoms(args)
    n_atoms = len(atoms)
    results = {}
    for name, spec in runs.items():
        target = args.temperature if spec["ensemble"] == "langevin" else None
        results[name] = {**spec, "summary": analyse(out / name, n_atoms, target)}
    references = {e: _frames(out / f"teacher_{e}") for e in ("nve", "langevin")}
    for name, result in results.items():
        frames, reference = _frames(out / name), references[result["ensemble"]]
        if result["kind"] != "teacher" and frames and reference:
            result["oo_rdf"] = rdf_difference(frames, reference)
        elif result["kind"] == "teacher" and len(reference) >= 8:
            result["oo_rdf"] = {"noise_between_halves": rdf_noise(reference)}
    # speed: interleaved in one process, from the common start
    timing_dir = out / "timing"
    (timing_dir / "data").mkdir(parents=True, exist_ok=True)
    ase.io.write(timing_dir / "data" / "nve_start.extxyz", atoms, format="extxyz")
    settings = DistillSettings(
        inner_fs=args.inner_fs,
        teacher_timestep_fs=args.inner_fs,
        timing_repeats=args.timing_repeats,
        timing_inner_steps=max(args.strides) * 2,
    )
    speed = {}
    previous = {}
    if args.reuse_timing and (out / "report.json").is_file():
        previous = json.loads((out / "report.json").read_text()).get("speed", {})
    for m in sorted({*args.strides, *args.langevin_strides}):
        if str(m) in previous:
            speed[m] = previous[str(m)]
        else:
            speed[m] = md_step_ms(teacher_spec, args.student, m, settings, timing_dir)
        print(
            f"[timing] M={m}: {speed[m]['speedup_per_simulated_ps']:.2f}x per "
            "simulated ps",
            flush=True,
        )
    scan_path = out / "stride_scan.json"
    scan = json.loads(scan_path.read_text()) if scan_path.is_file() else None
    payload = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "teacher": teacher_spec,
        "student": args.student,
        "settings": {k: v for k, v in vars(args).items() if v is not None},
        "runs": results,
        "speed": {str(m): v for m, v in speed.items()},
        "stride_scan": scan,
    }
    (out / "report.json").write_text(json.dumps(payload, indent=2) + "\n")
    (out / "report.md").write_text(markdown(payload) + "\n")
    figure(payload, out / "speed_vs_drift.png")
    print(markdown(payload))


def _rdf_cell(run: Dict) -> str:
    """The O-O g(r) column: the difference from the teacher, or for the teacher the
    sampling noise (its two half-windows against each other)."""
    rdf = run.get("oo_rdf", {})
    if "integrated_abs_difference" in rdf:
        return f"{100 * rdf['integrated_abs_difference']:.1f}%"
    if "noise_between_halves" in rdf:
        return f"(noise {100 * rdf['noise_between_halves']:.1f}%)"
    return "-"


def _pm(pair, digits=1) -> str:
    if pair is None:
        return "-"
    mean, error = pair
    return f"{mean:.{digits}f} ± {error:.{digits}f}"


def markdown(payload: Dict) -> str:
    s = payload["settings"]
    lines = [
        f"# Distilling {payload['teacher']} into a pet_nc student",
        "",
        f"Student `{payload['student']}`; start `{s['start']}` frame "
        f"{s['start_index']}, Maxwell-Boltzmann velocities at {s['temperature']} K "
        f"(seed {s['seed']}), real masses; inner step {s['inner_fs']} fs (the "
        "teacher's own step). Speed-up: wall-clock per simulated ps against the "
        "teacher's velocity Verlet, interleaved in one process, one thread.",
        "",
        "## NVE",
        "",
        "| run | outer step (fs) | simulated ps | speed-up | drift (meV/atom/ps) "
        "| drift ratio | mean T (K) | O-O g(r) diff. |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in payload["runs"].items():
        if r["ensemble"] != "nve" or r["summary"] is None:
            continue
        x = r["summary"]
        m = r["stride"]
        speed = payload["speed"].get(str(m)) if r["kind"] == "mts" else None
        speedup = (
            f"{speed['speedup_per_simulated_ps']:.2f}x"
            if speed
            else ("1.00x" if r["kind"] == "teacher" else "-")
        )
        lines.append(
            f"| {name} | {m * s['inner_fs']:g} | {x['duration_ps']:.2f} | {speedup} "
            f"| {x['drift_meV_per_atom_per_ps']:.3f} ± "
            f"{x['drift_error_meV_per_atom_per_ps']:.3f} | {x['drift_ratio']:.3f} "
            f"| {x['mean_temperature_K']:.0f} "
            f"| {_rdf_cell(r)} |"
        )
    lines += [
        "",
        f"## Langevin, {s['temperature']} K, tau {s['tau']} fs",
        "",
        "| run | outer step (fs) | simulated ps | T (K) | T_H (K) | T_O (K) "
        "| O-O g(r) diff. |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in payload["runs"].items():
        if r["ensemble"] != "langevin" or r["summary"] is None:
            continue
        x = r["summary"]
        lines.append(
            f"| {name} | {r['stride'] * s['inner_fs']:g} | {x['duration_ps']:.2f} "
            f"| {_pm(x.get('equilibrated_temperature_K'))} "
            f"| {_pm(x.get('equilibrated_temperature_H_K'))} "
            f"| {_pm(x.get('equilibrated_temperature_O_K'))} "
            f"| {_rdf_cell(r)} |"
        )
    if payload.get("stride_scan"):
        scan = payload["stride_scan"]
        lines += ["", f"Stride finder (`--stride auto`): M = {scan.get('stride')}."]
    return "\n".join(lines)


def figure(payload: Dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.6))
    for r in payload["runs"].values():
        x = r["summary"]
        if r["ensemble"] != "nve" or x is None:
            continue
        if r["kind"] == "mts":
            speed = payload["speed"].get(str(r["stride"]))
            if not speed:
                continue
            s, label = speed["speedup_per_simulated_ps"], f"MTS M={r['stride']}"
        elif r["kind"] == "teacher":
            s, label = 1.0, "teacher VV"
        else:
            continue
        ax.errorbar(
            s,
            abs(x["drift_meV_per_atom_per_ps"]),
            yerr=x["drift_error_meV_per_atom_per_ps"],
            fmt="o",
            capsize=3,
        )
        ax.annotate(label, (s, abs(x["drift_meV_per_atom_per_ps"])), fontsize=8)
    ax.set_xlabel("speed-up per simulated ps (vs teacher VV)")
    ax.set_ylabel("|NVE drift| (meV/atom/ps)")
    ax.set_yscale("symlog", linthresh=0.1)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


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
        report(args, runs, teacher_spec)
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
