"""The MD tables of the comparison report (:func:`md_table`) and what its NVT runs
resolve: each run's per-species temperature splits read against a conservative run
from the same start (its own model's, a teacher-student pair's teacher's, else the
first conservative model's), with their error bars, and the report's plain sentences
about them (:func:`nvt_verdict`).

Works on the results dict (``report.json``'s content), as :mod:`.sections` does.
"""

import math
from typing import Any, Dict, List, Optional, Tuple

from .render import Block, Row, fmt, fmt_error, table


def nvt_checks(data: Dict[str, Any]) -> List[Tuple[str, str, Dict[str, Any]]]:
    """``(model, mode, equipartition check)`` of every NVT run that has one."""
    from .sections import section_results  # sections imports this module

    out = []
    for name, runs in section_results(data, "nvt"):
        for mode, run in runs.items():
            if isinstance(run, dict) and isinstance(run.get("equipartition"), dict):
                out.append((name, mode, run["equipartition"]))
    return out


def reference_run(
    data: Dict[str, Any], name: str
) -> Optional[Tuple[str, Dict[str, Any]]]:
    """The conservative NVT run a run of ``name`` is read against: the model's own
    (a teacher-student pair's: its teacher's, when the teacher is compared too), else
    the first conservative run of another model (all start from the same structure,
    velocities and seed)."""
    conservative = [(n, c) for n, mode, c in nvt_checks(data) if mode == "conservative"]
    info = data.get("models", {}).get(name, {}).get("info", {})
    own = info.get("slow") or name
    for other, check in conservative:
        if other == own:
            return other, check
    return conservative[0] if conservative else None


def _excess(
    check: Dict[str, Any], reference: Dict[str, Any]
) -> Dict[str, Dict[str, Any]]:
    """Per species pair: the split of ``check`` minus that of ``reference``, its
    error (independent runs) and verdict (``resolved`` None: no error bar)."""
    threshold = check.get("sigma_threshold") or 4.0
    out = {}
    for pair, split in check.get("splits", {}).items():
        other = reference.get("splits", {}).get(pair)
        if other is None or split.get("difference") is None:
            continue
        difference = split["difference"] - other["difference"]
        errors = [split.get("error"), other.get("error")]
        entry: Dict[str, Any] = {"difference": difference, "error": None}
        entry.update(sigma=None, resolved=None)
        if split.get("resolved") is not None and other.get("resolved") is not None:
            if all(e is not None for e in errors):
                error = math.hypot(*errors)
                entry["error"] = error
                if error > 0:
                    entry["sigma"] = abs(difference) / error
                    entry["resolved"] = entry["sigma"] > threshold
                else:
                    entry["resolved"] = False
        out[pair] = entry
    return out


def _most_significant(
    splits: Dict[str, Dict[str, Any]],
) -> Optional[Tuple[str, Dict[str, Any]]]:
    """The pair whose split is the most standard errors from zero (else the
    largest)."""
    if not splits:
        return None
    return max(
        splits.items(),
        key=lambda item: (item[1].get("sigma") or 0.0, abs(item[1]["difference"])),
    )


def _split_text(pair: str, split: Dict[str, Any], inline: bool = False) -> str:
    """``H-O -50.3 ± 10.4 K (4.8σ)`` (``inline``: ``..., 4.8σ``); without an error
    bar ``H-O -50.3 K``."""
    text = f"{pair} {split['difference']:+.1f}"
    if split.get("error") is not None:
        text += f" ± {split['error']:.1f}"
    text += " K"
    if split.get("sigma") is not None:
        text += f", {split['sigma']:.1f}σ" if inline else f" ({split['sigma']:.1f}σ)"
    return text


def split_cells(data: Dict[str, Any], name: str, mode: str, run: Dict) -> Row:
    """The 'T split' and 'vs conservative' cells of one NVT run."""
    check = run.get("equipartition")
    if not isinstance(check, dict):
        return ["-", "-"]
    largest = _most_significant(check.get("splits", {}))
    cells = [_split_text(*largest) if largest else "-"]
    reference = reference_run(data, name) if mode != "conservative" else None
    excess = _most_significant(_excess(check, reference[1])) if reference else None
    if excess is None:
        return cells + ["-"]
    return cells + [f"{_split_text(*excess)} vs {reference[0]}"]


def nvt_verdict(data: Dict[str, Any]) -> List[str]:
    """What the NVT runs resolve, said plainly: the per-species temperature splits
    beyond ``sigma_threshold`` block-average standard errors (and which), read against
    a conservative run from the same start when there is one (a split of a
    conservative run means the run is too short to equilibrate), and the runs whose
    mean temperature misses the target."""
    checks = nvt_checks(data)
    if not checks:
        return []
    s = data["settings"]
    first = checks[0][2]
    threshold = first.get("sigma_threshold") or 4.0
    window = 1.0 - (first.get("equilibration_fraction") or 0.0)
    how = (
        f"beyond {threshold:g} standard errors of block averages over the last "
        f"{window:.0%} of each run"
    )
    longer = (
        f"these {s['nvt_time_fs'] / 1000:g} ps runs are too short; run longer "
        "(--nvt-time) to resolve the splits of the paper's Table 2"
    )
    if all(check.get("resolved") is None for _, _, check in checks):
        records = max(check.get("n_records", 0) for _, _, check in checks)
        return [
            "Verdict: nothing can be resolved: too few records for error bars "
            f"({records} analysed per run, at least 32 needed) or a single species; "
            + longer
            + "."
        ]
    paragraphs = []
    unequilibrated = [
        f"{name}: {_split_text(*_most_significant(check['splits']), inline=True)}"
        for name, mode, check in checks
        if mode == "conservative" and check.get("resolved")
    ]
    if unequilibrated:
        runs = "run of" if len(unequilibrated) == 1 else "runs of"
        paragraphs.append(
            f"Not equilibrated: the conservative {runs} "
            + "; ".join(unequilibrated)
            + f" ({how}). Conservative forces share the kinetic energy evenly at "
            "equilibrium, so these runs have not equilibrated: a split of a "
            "direct-force run says nothing by itself and is read against the "
            "conservative run from the same start."
        )
    resolved, unresolved = [], []
    for name, mode, check in checks:
        if mode == "conservative":
            continue
        reference = reference_run(data, name)
        if reference is not None:
            splits, against = _excess(check, reference[1]), f" vs {reference[0]}"
        else:
            splits, against = check.get("splits", {}), ""
        for pair, split in splits.items():
            if split.get("resolved") is None:
                continue
            text = f"{name} {mode}{against}: {_split_text(pair, split, inline=True)}"
            (resolved if split["resolved"] else unresolved).append(text)
    if resolved:
        paragraphs.append(
            f"Resolved ({how}): "
            + "; ".join(resolved)
            + "."
            + (" Not resolved: " + "; ".join(unresolved) + "." if unresolved else "")
        )
    elif not any(mode != "conservative" for _, mode, _ in checks):
        if not unequilibrated:
            paragraphs.append(
                "Verdict: nothing is resolved: the conservative runs share the "
                f"kinetic energy evenly between species ({how}), as they should."
            )
    elif unequilibrated:
        paragraphs.append(
            "Verdict: nothing that the direct forces add is resolved. Against the "
            "conservative run from the same start: "
            + ("; ".join(unresolved) if unresolved else "no error bars")
            + f", all within {threshold:g} standard errors. "
            + longer[0].upper()
            + longer[1:]
            + "."
        )
    else:
        paragraphs.append(
            "Verdict: nothing is resolved: no difference between species "
            f"temperatures {how}"
            + (" (" + "; ".join(unresolved) + ")" if unresolved else "")
            + ". "
            + longer[0].upper()
            + longer[1:]
            + "."
        )
    missed, modes = [], set()
    for name, mode, check in checks:
        overall = check.get("temperature") or {}
        if overall.get("resolved"):
            modes.add(mode)
            missed.append(
                f"{name} {mode}: {overall['mean']:.1f} ± {overall['error']:.1f} K, "
                f"{overall['deviation']:+.1f} K, {overall['sigma']:.1f}σ"
            )
    if missed:
        why = []
        if modes - {"conservative"}:
            why.append(
                "direct forces can heat faster than the thermostat takes the heat out"
            )
        if "conservative" in modes:
            why.append(
                "a conservative run off its target has not equilibrated (or its time "
                "step is too long)"
            )
        reason = "; ".join(why)
        paragraphs.append(
            f"Mean temperature off the {s['temperature_K']:g} K target ({how}): "
            + "; ".join(missed)
            + f". {reason[0].upper()}{reason[1:]}."
        )
    else:
        paragraphs.append(
            "Every run holds the target temperature within its error bar."
        )
    return paragraphs


# -- MD tables -----------------------------------------------------------------------
SPECIES_DEVIATION = "deviation_temperature_"


def _species_keys(data: Dict[str, Any], section: str) -> List[str]:
    """The per-species temperature deviations of any run of ``section``, in order."""
    keys: List[str] = []
    for model in data["models"].values():
        for run in (model.get(section) or {}).values():
            if not isinstance(run, dict):
                continue
            for key in run:
                if (
                    key.startswith(SPECIES_DEVIATION)
                    and key != "deviation_temperature_K"
                    and key not in keys
                ):
                    keys.append(key)
    return keys


def _md_row(section: str, run: Dict[str, Any], species_keys: List[str]) -> Row:
    """The result cells of one MD run: rates (NVE) or temperature deviations (NVT)."""
    if section == "nve":
        return [
            fmt_error(run["heating_rate_K_per_ps"], run["heating_rate_error_K_per_ps"]),
            fmt_error(
                run["drift_meV_per_atom_per_ps"],
                run["drift_error_meV_per_atom_per_ps"],
            ),
            fmt(run.get("drift_ratio")),
        ]
    return [fmt(run.get(key)) for key in ["deviation_temperature_K"] + species_keys]


def md_table(data: Dict[str, Any], section: str) -> List[Block]:
    """The table of every run of the MD ``section`` (``nve`` or ``nvt``), or none."""
    from .sections import section_results  # sections imports this module

    species_keys = _species_keys(data, section)
    rows = []
    splits = section == "nvt" and bool(nvt_checks(data))
    for name, runs in section_results(data, section):
        for mode, run in runs.items():
            cells = _md_row(section, run, species_keys)
            if splits:
                cells += split_cells(data, name, mode, run)
            rows.append(
                [name, mode, run["status"]]
                + cells
                + [fmt(run["inner_steps_per_s"]), run["folder"]]
            )
    headers = ["model", "forces", "status"]
    if section == "nve":
        headers += ["heating (K/ps)", "drift (meV/atom/ps)", "drift ratio"]
    else:
        headers += ["ΔT (K)"] + [
            f"ΔT {key[len(SPECIES_DEVIATION) : -2]} (K)" for key in species_keys
        ]
        if splits:
            headers += ["T split", "vs conservative"]
    return table(headers + ["steps/s", "run folder"], rows)
