"""The analysis and report of ``distill_real_teacher.py``: every run's drift,
temperatures and O-O g(r) against the teacher's, the speed of MTS per stride timed
interleaved with the teacher in one process, and ``report.md``, ``report.json`` and
``speed_vs_drift.png`` in the run folder.

Units: energies in meV/atom, temperatures in K, times in ps (records in fs).
"""

import json
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import ase
import ase.io
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference_nve import oo_rdf  # noqa: E402

from metatrain_nc.dynamics.statistics import block_average, summarise  # noqa: E402

#: the O-O g(r) is compared from 0 to this distance (A)
RDF_MAX = 6.0


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


def report(args, runs: Dict[str, Dict], teacher_spec: str, atoms: ase.Atoms) -> None:
    """Analyse every run of ``runs`` in ``args.out``, time the pair against the
    teacher from ``atoms`` (the common start) and write the report files."""
    from metatrain_nc.distill.measure import md_step_ms
    from metatrain_nc.distill.settings import DistillSettings

    out = Path(args.out)
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
    from metatrain_nc.reports.render import render_html, render_markdown

    content = blocks(payload)
    markdown = render_markdown(content)
    (out / "report.md").write_text(markdown)
    (out / "report.html").write_text(render_html(content, out))
    figure(payload, out / "speed_vs_drift.png")
    print(markdown)


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


def _speedup(payload: Dict, r: Dict) -> str:
    speed = payload["speed"].get(str(r["stride"])) if r["kind"] == "mts" else None
    if speed:
        return f"{speed['speedup_per_simulated_ps']:.2f}x"
    return "1.00x" if r["kind"] == "teacher" else "-"


def blocks(payload: Dict) -> list:
    """The report as blocks of :mod:`metatrain_nc.reports.render`."""
    from metatrain_nc.reports.render import section_blocks, table

    s, dt = payload["settings"], payload["settings"]["inner_fs"]
    runs = {e: [(n, r) for n, r in payload["runs"].items()
                if r["ensemble"] == e and r["summary"] is not None]
            for e in ("nve", "langevin")}  # fmt: skip
    nve = [
        [name, f"{r['stride'] * dt:g}", f"{x['duration_ps']:.2f}",
         _speedup(payload, r),
         f"{x['drift_meV_per_atom_per_ps']:.3f} ± "
         f"{x['drift_error_meV_per_atom_per_ps']:.3f}",
         f"{x['drift_ratio']:.3f}", f"{x['mean_temperature_K']:.0f}", _rdf_cell(r)]
        for name, r in runs["nve"] for x in [r["summary"]]
    ]  # fmt: skip
    langevin = [
        [name, f"{r['stride'] * dt:g}", f"{x['duration_ps']:.2f}"]
        + [_pm(x.get(f"equilibrated_temperature_{k}K")) for k in ("", "H_", "O_")]
        + [_rdf_cell(r)]
        for name, r in runs["langevin"] for x in [r["summary"]]
    ]  # fmt: skip
    rdf = "O-O g(r) diff."
    out = [
        ("h1", f"Distilling {payload['teacher']} into a pet_nc student"),
        ("p", f"Student `{payload['student']}`; start `{s['start']}` frame "
              f"{s['start_index']}, Maxwell-Boltzmann velocities at "
              f"{s['temperature']} K (seed {s['seed']}), real masses; inner step "
              f"{dt} fs (the teacher's own step). Speed-up: wall-clock per simulated "
              "ps against the teacher's velocity Verlet, interleaved in one "
              "process, one thread."),
    ]  # fmt: skip
    out += section_blocks("NVE", [], table(
        ["run", "outer step (fs)", "simulated ps", "speed-up", "drift (meV/atom/ps)",
         "drift ratio", "mean T (K)", rdf], nve))  # fmt: skip
    out += section_blocks(f"Langevin, {s['temperature']} K, tau {s['tau']} fs", [],
        table(["run", "outer step (fs)", "simulated ps", "T (K)", "T_H (K)",
               "T_O (K)", rdf], langevin))  # fmt: skip
    if payload.get("stride_scan"):
        stride = payload["stride_scan"].get("stride")
        out.append(("p", f"Stride finder (`--stride auto`): M = {stride}."))
    return out


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
