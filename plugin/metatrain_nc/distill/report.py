"""The report of ``mtt-nc distill``: which student, at which stride, how fast."""

import json
from pathlib import Path
from typing import Dict, List, Optional


def choose(students: Dict[str, Dict], teacher_ms: float) -> Optional[str]:
    """The student with the best predicted MTS speed-up at its stride,
    ``teacher / (student + teacher / M)`` at the same inner step; ``None`` if no
    stride above 1 was accepted. Sets ``predicted_speedup`` of each."""
    best, best_speedup = None, 1.0
    for size, s in students.items():
        stride = s["stride"]
        if stride is None or stride < 2:
            continue
        speedup = teacher_ms / (s["ms_per_call"] + teacher_ms / stride)
        s["predicted_speedup"] = speedup
        if speedup > best_speedup:
            best, best_speedup = size, speedup
    return best


def md_numbers(summary: Dict) -> Dict[str, object]:
    """What the report keeps of an ``mtt-nc md`` summary."""
    keys = ("status", "outer_steps_done", "simulated_time_ps",
            "drift_meV_per_atom_per_ps", "drift_error_meV_per_atom_per_ps",
            "heating_rate_K_per_ps", "heating_rate_error_K_per_ps",
            "mean_temperature_K", "model_backward_passes",
            "fast_model_forward_passes")  # fmt: skip
    data = {k: summary.get(k) for k in keys}
    # the teacher's conservative-force calls: backward passes of a torch model, plain
    # calls of an ASE calculator (whose forces need no backward pass of ours)
    backward = summary.get("model_backward_passes") or 0
    data["teacher_calls"] = backward or summary.get("model_forward_passes")
    data["stride"] = summary["settings"]["stride"]
    data["outer_timestep_fs"] = summary["settings"]["timestep_fs"]
    data["warnings"] = [w["message"] for w in summary.get("warnings", [])]
    return data


def write_report(report: Dict, out: Path) -> str:
    """``report.json`` and ``report.md``; returns the markdown."""
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = _markdown(report)
    (out / "report.md").write_text("\n".join(lines) + "\n")
    return "\n".join(lines)


def _f(value, digits=2, unit=""):
    if value is None:
        return "-"
    return f"{value:.{digits}f}{unit}"


def _pm(value, error, digits=2):
    if value is None:
        return "-"
    if error is None:
        return _f(value, digits)
    return f"{value:.{digits}f} ± {error:.{digits}f}"


def _overrides(settings: Dict) -> str:
    names = {"learning_rate": "learning rate", "batch_size": "batch size"}
    return "".join(
        f", {label} {settings[key]:g}"
        for key, label in names.items()
        if settings.get(key) is not None
    )


def _markdown(r: Dict) -> List[str]:
    settings, data, teacher = r["settings"], r["data"], r["teacher"]
    temperatures = ", ".join(f"{t:g}" for t in settings["temperatures"])
    data_line = (
        f"- Data: {data['source']}: {data['train']} training frames, {data['test']} "
        "test frames (a held-out trajectory), labelled by the teacher."
        if not data["source"].startswith("built")
        else f"- Data: `mtt-nc reference` with the teacher: one Langevin trajectory "
        f"per temperature ({temperatures} K), {settings['frames_per_trajectory']} "
        f"frames each, labelled by the teacher; the {data['test']} frames of the "
        f"middle temperature are the test set, {data['train']} frames train."
    )
    lines = [
        "# Distillation: a pet_nc student for multiple time stepping",
        "",
        f"Run of {r['date']} ({'--quick, ' if r['quick'] else ''}"
        f"{r['cpu_time_min']:.1f} min of CPU time, {r['wall_time_min']:.1f} min "
        f"wall, {r['jobs']} jobs of one thread each).",
        "",
        f"- Teacher: `{teacher['model']}` ({teacher['source']}), conservative "
        f"forces {teacher['ms_per_call']:.1f} ms per call on {data['atoms']} atoms "
        "(wall clock, distinct configurations).",
        data_line,
        f"- Students: `pet_nc` ({settings['epochs']} epochs of `mtt train`"
        f"{_overrides(settings)}). Force error: direct forces against the "
        "teacher's on the test frames. Cost: wall-clock ms per force call on new "
        "positions, one thread, medians of interleaved calls in one process. "
        "Stride: the largest M whose NVE drift stays within 2x of the teacher's "
        f"(+ 1 meV/atom/ps; `--stride auto`, inner step {settings['inner_fs']:g} fs, "
        f"segments of {settings['scan_fs']:g} fs). Predicted speed-up: teacher / "
        "(student + teacher / M), at the same inner step.",
        "",
        "| student | parameters | training CPU min | F RMSE vs teacher (meV/Å) "
        "| F MAE (meV/Å) | ms per call | teacher / student | stride M "
        "| predicted speed-up |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for size, s in r["students"].items():
        lines.append(
            f"| {size}{' (chosen)' if size == r['chosen'] else ''} "
            f"| {s.get('parameters') or '-'} | {s['train_cpu_s'] / 60:.1f} "
            f"| {_f(s['force_rmse_meV_per_A'], 0)} "
            f"| {_f(s['force_mae_meV_per_A'], 0)} | {s['ms_per_call']:.1f} "
            f"| {teacher['ms_per_call'] / s['ms_per_call']:.2f}x "
            f"| {s['stride'] if s['stride'] else '-'} "
            f"| {_f(s.get('predicted_speedup'), 2, 'x')} |"
        )
    lines += [
        "",
        f"## NVE, {settings['run_fs']:g} fs from the same start",
        "",
        "| dynamics | outer step (fs) | drift (meV/atom/ps) | heating (K/ps) "
        "| mean T (K) | teacher calls | status |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, run in r["nve"].items():
        label = "teacher, conservative" if name == "teacher" else f"MTS, {name}"
        drift = _pm(
            run["drift_meV_per_atom_per_ps"], run["drift_error_meV_per_atom_per_ps"]
        )
        heating = _pm(
            run["heating_rate_K_per_ps"], run["heating_rate_error_K_per_ps"], 0
        )
        lines.append(
            f"| {label} | {run['outer_timestep_fs']:g} | {drift} | {heating} "
            f"| {_f(run['mean_temperature_K'], 0)} "
            f"| {run['teacher_calls']} | {run['status']} |"
        )
    chosen = r["chosen"]
    lines.append("")
    if chosen is None:
        lines.append(
            "No student conserved energy at a stride above 1: train longer or a "
            "larger student (see the table), or sample more data."
        )
        return lines
    timing = r["timing"]
    run = r["nve"][chosen]
    teacher_run = r["nve"]["teacher"]
    ms = timing["ms_per_step"]
    lines += [
        "## Result",
        "",
        f"- Chosen student: **{chosen}**, force error against the teacher "
        f"{r['students'][chosen]['force_rmse_meV_per_A']:.0f} meV/Å RMSE.",
        f"- Stride: **M = {run['stride']}** (outer step {run['outer_timestep_fs']:g} "
        f"fs, inner {settings['inner_fs']:g} fs).",
        f"- NVE drift: {_pm(run['drift_meV_per_atom_per_ps'], run['drift_error_meV_per_atom_per_ps'])} "  # noqa: E501
        f"meV/atom/ps with the pair, {_pm(teacher_run['drift_meV_per_atom_per_ps'], teacher_run['drift_error_meV_per_atom_per_ps'])} "  # noqa: E501
        "with the teacher's conservative forces.",
        f"- Speed per simulated ps over the teacher's own MD at "
        f"{timing['teacher_timestep_fs']:g} fs: **{timing['speedup_per_simulated_ps']:.2f}x** "  # noqa: E501
        f"({ms['teacher']:.1f} ms per teacher step, {ms['mts']:.1f} ms per MTS inner "
        f"step of {timing['inner_timestep_fs']:g} fs; {timing['what']}).",
        "",
        f"Run it yourself: `mtt-nc md {teacher['model']} START --forces mts --fast "
        f"{r['students'][chosen]['model']} --stride {run['stride']} "
        f"--timestep {run['outer_timestep_fs']:g} -o md-pair/`.",
    ]
    for warning in run["warnings"]:
        lines.append(f"\nNote (`mtt-nc md`): {warning}")
    return lines
