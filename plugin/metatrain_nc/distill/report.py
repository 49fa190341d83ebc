"""The report of ``mtt-nc distill``: which student, at which stride, how fast."""

import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

Block = Tuple[Any, ...]


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
    """``report.json``, ``report.md`` and ``report.html`` (one offline file, the
    renderer of ``mtt-nc compare``); returns the Markdown."""
    from ..reports.render import render_html, render_markdown

    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    blocks = report_blocks(report)
    markdown = render_markdown(blocks)
    (out / "report.md").write_text(markdown)
    (out / "report.html").write_text(render_html(blocks, out))
    return markdown


def _f(value, digits=2, unit=""):
    return "-" if value is None else f"{value:.{digits}f}{unit}"


def _pm(value, error, digits=2):
    if value is None or error is None:
        return _f(value, digits)
    return f"{value:.{digits}f} ± {error:.{digits}f}"


def _overrides(settings: Dict) -> str:
    names = {"learning_rate": "learning rate", "batch_size": "batch size"}
    return "".join(
        f", {label} {settings[key]:g}"
        for key, label in names.items()
        if settings.get(key) is not None
    )


def _drift(run: Dict) -> str:
    return _pm(run["drift_meV_per_atom_per_ps"], run["drift_error_meV_per_atom_per_ps"])


def _labels(data: Dict) -> str:
    """Who labelled a given reference set, from its frames' provenance: the student
    learns those labels, which are the teacher's only if the teacher made them."""
    found = data.get("labelled_by", [])
    if not found:
        return "labels of unrecorded provenance (no 'reference' in the frames)"
    return f"labelled by {', '.join(f'`{name}`' for name in found)} (their provenance)"


def _inputs(r: Dict) -> str:
    """What was distilled, from which data, how the students were measured."""
    settings, data, teacher = r["settings"], r["data"], r["teacher"]
    temperatures = ", ".join(f"{t:g}" for t in settings["temperatures"])
    data_text = (
        f"Data: {data['source']}: {data['train']} training frames, {data['test']} "
        f"test frames (a held-out trajectory), {_labels(data)}."
        if not data["source"].startswith("built")
        else f"Data: `mtt-nc reference` with the teacher: one Langevin trajectory "
        f"per temperature ({temperatures} K), {settings['frames_per_trajectory']} "
        f"frames each, labelled by the teacher; the {data['test']} frames of the "
        f"middle temperature are the test set, {data['train']} frames train."
    )
    return (
        f"Teacher: `{teacher['model']}` ({teacher['source']}), conservative forces "
        f"{teacher['ms_per_call']:.1f} ms per call on {data['atoms']} atoms (wall "
        f"clock, distinct configurations). {data_text} Students: `pet_nc` "
        f"({settings['epochs']} epochs of `mtt train`{_overrides(settings)}). Force "
        "error: direct forces against the teacher's on the test frames. Cost: "
        "wall-clock ms per force call on new positions, one thread, medians of "
        "interleaved calls in one process. Stride: the largest M whose NVE drift "
        "stays within 2x of the teacher's (+ 1 meV/atom/ps; `--stride auto`, inner "
        f"step {settings['inner_fs']:g} fs, segments of {settings['scan_fs']:g} fs). "
        "Predicted speed-up: teacher / (student + teacher / M), at the same inner "
        "step."
    )


def report_blocks(r: Dict) -> List[Block]:
    """The report as blocks (:mod:`metatrain_nc.reports.render`): the students,
    their NVE runs, the chosen one."""
    from ..reports.render import section_blocks, table

    settings, teacher = r["settings"], r["teacher"]
    blocks: List[Block] = [
        ("h1", "Distillation: a pet_nc student for multiple time stepping"),
        (
            "p",
            f"Run of {r['date']} ({'--quick, ' if r['quick'] else ''}"
            f"{r['cpu_time_min']:.1f} min of CPU time, {r['wall_time_min']:.1f} min "
            f"wall, {r['jobs']} jobs of one thread each).",
        ),
        ("p", _inputs(r)),
    ]
    headers = ["student", "parameters", "training CPU min", "F RMSE vs teacher "
               "(meV/Å)", "F MAE (meV/Å)", "ms per call", "teacher / student",
               "stride M", "predicted speed-up"]  # fmt: skip
    rows = [
        [
            f"{size}{' (chosen)' if size == r['chosen'] else ''}",
            s.get("parameters") or "-",
            f"{s['train_cpu_s'] / 60:.1f}",
            _f(s["force_rmse_meV_per_A"], 0),
            _f(s["force_mae_meV_per_A"], 0),
            f"{s['ms_per_call']:.1f}",
            f"{teacher['ms_per_call'] / s['ms_per_call']:.2f}x",
            s["stride"] or "-",
            _f(s.get("predicted_speedup"), 2, "x"),
        ]
        for size, s in r["students"].items()
    ]
    blocks += table(headers, rows)
    nve_rows = [
        [
            "teacher, conservative" if name == "teacher" else f"MTS, {name}",
            f"{run['outer_timestep_fs']:g}",
            _drift(run),
            _pm(run["heating_rate_K_per_ps"], run["heating_rate_error_K_per_ps"], 0),
            _f(run["mean_temperature_K"], 0),
            run["teacher_calls"],
            run["status"],
        ]
        for name, run in r["nve"].items()
    ]
    headers = ["dynamics", "outer step (fs)", "drift (meV/atom/ps)", "heating (K/ps)",
               "mean T (K)", "teacher calls", "status"]  # fmt: skip
    title = f"NVE, {settings['run_fs']:g} fs from the same start"
    blocks += section_blocks(title, [], table(headers, nve_rows))
    chosen = r["chosen"]
    if chosen is None:
        text = (
            "No student conserved energy at a stride above 1: train longer or a "
            "larger student (see the table), or sample more data."
        )
        return blocks + [("p", text)]
    timing, run = r["timing"], r["nve"][chosen]
    ms, student = timing["ms_per_step"], r["students"][chosen]
    result = [
        f"Chosen student: **{chosen}**, force error against the teacher "
        f"{student['force_rmse_meV_per_A']:.0f} meV/Å RMSE. Stride: **M = "
        f"{run['stride']}** (outer step {run['outer_timestep_fs']:g} fs, inner "
        f"{settings['inner_fs']:g} fs). NVE drift: {_drift(run)} meV/atom/ps with "
        f"the pair, {_drift(r['nve']['teacher'])} with the teacher's conservative "
        "forces.",
        f"Speed per simulated ps over the teacher's own MD at "
        f"{timing['teacher_timestep_fs']:g} fs: "
        f"**{timing['speedup_per_simulated_ps']:.2f}x** ({ms['teacher']:.1f} ms per "
        f"teacher step, {ms['mts']:.1f} ms per MTS inner step of "
        f"{timing['inner_timestep_fs']:g} fs; {timing['what']}).",
        f"Run it yourself: `mtt-nc md {teacher['model']} START --forces mts --fast "
        f"{student['model']} --stride {run['stride']} --timestep "
        f"{run['outer_timestep_fs']:g} -o md-pair/`.",
    ]
    result += [f"Note (`mtt-nc md`): {warning}" for warning in run["warnings"]]
    return blocks + section_blocks("Result", result)
