"""The content of the comparison report: one function per section.

Each section is a list of blocks (see :mod:`.render`) computed from the results dict
(``report.json``'s content): its heading, what it measures, a table of the results of
every model and, for a model whose section failed, a table of the failures.
"""

import math
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from .render import Block
from .viewer import MAX_FRAMES, lambda_entries, md_entries

Row = List[str]


# -- cells ---------------------------------------------------------------------------
def fmt(value: Any, digits: int = 3) -> str:
    """A table cell: ``-`` for a missing or non-finite number, ``digits`` digits."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int,)) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return "-"
        if value != 0 and (abs(value) < 10 ** -(digits - 1) or abs(value) >= 1e5):
            return f"{value:.{digits - 1}e}"
        return f"{value:.{digits}g}" if abs(value) < 1 else f"{value:.{digits - 2}f}"
    return str(value)


def fmt_error(value: Optional[float], error: Optional[float]) -> str:
    """``value ± error`` (or ``value`` alone without an error) as a table cell."""
    if value is None:
        return "-"
    if error is None:
        return fmt(value)
    return f"{fmt(value)} ± {fmt(error, 2)}"


# -- results -------------------------------------------------------------------------
def section_results(data: Dict[str, Any], section: str) -> Iterator[Tuple[str, Any]]:
    """``(model name, result)`` of every model with a non-empty, successful result."""
    for name, model in data["models"].items():
        result = model.get(section)
        if result and "error" not in result:
            yield name, result


def _table(headers: Sequence[str], rows: List[Row]) -> List[Block]:
    return [("table", list(headers), rows)] if rows else []


def _figure(figures: Dict[str, Optional[str]], key: str, caption: str) -> List[Block]:
    return [("img", figures[key], caption)] if figures.get(key) else []


def _section(title: str, text: Sequence[str], *parts: List[Block]) -> List[Block]:
    """A section: its heading, its paragraphs, then its parts (tables, figures)."""
    blocks: List[Block] = [("h2", title)] + [("p", paragraph) for paragraph in text]
    for part in parts:
        blocks += part
    return blocks


def failures(data: Dict[str, Any], section: str) -> List[Block]:
    """The table of the models whose ``section`` failed, with the reasons (or none)."""
    rows = []
    for name, model in data["models"].items():
        value = model.get(section)
        if isinstance(value, dict) and "error" in value:
            rows.append([name, value["error"]])
    return _table(["model", "failed"], rows)


# -- sections ------------------------------------------------------------------------
def introduction(data: Dict[str, Any]) -> List[Block]:
    """Title, inputs and provenance, notes, and the table of the models."""
    quick = ", --quick" if data["quick"] else ""
    blocks: List[Block] = [
        ("h1", "Comparison of force models"),
        (
            "p",
            f"Test structures: {data['structures']['path']} "
            f"({data['structures']['count']} structures). MD structure: "
            f"{data['md_structure']['n_atoms']} atoms "
            f"({data['md_structure']['formula']}). Made by `mtt-nc compare` "
            f"(metatrain-nc {data['versions']['metatrain-nc']}, "
            f"{data['elapsed_s'] / 60:.1f} min{quick}).",
        ),
    ]
    blocks += [("p", f"Note: {note}") for note in data["notes"]]
    blocks.append(("h2", "Models"))
    rows = []
    for name, model in data["models"].items():
        info = model["info"]
        rows.append(
            [
                name,
                info.get("architecture") or "-",
                info.get("kind", "-"),
                ", ".join(info.get("md_modes", [])),
                " ".join(info.get("species", [])),
                info.get("units", {}).get("energy", "-"),
            ]
        )
    headers = ["model", "architecture", "kind", "MD modes", "species", "energy unit"]
    return blocks + [("table", headers, rows)]


ACCURACY_HEADERS = [
    "model",
    "forces",
    "E MAE (meV/atom)",
    "E RMSE (meV/atom)",
    "F MAE (meV/Å)",
    "F RMSE (meV/Å)",
]


def accuracy(data: Dict[str, Any], figures: Dict[str, Optional[str]]) -> List[Block]:
    """Energy and force errors per model and force head (the paper's Table 1)."""
    text = [
        "Errors against the reference labels, per force head: 'conservative' "
        "is -dE/dr of the energy head, 'direct' the forces predicted directly "
        "(the paper's Table 1). Energies per atom."
    ]
    if data.get("accuracy_note"):
        text.append(data["accuracy_note"])
    rows = []
    for name, acc in section_results(data, "accuracy"):
        if "skipped" in acc:
            continue
        energy = acc.get("energy") or {}
        for head in acc.get("heads", []):
            forces = acc["forces"].get(head, {})
            errors = [energy.get("mae"), energy.get("rmse")]
            errors += [forces.get("mae"), forces.get("rmse")]
            rows.append([name, head] + [fmt(value) for value in errors])
    return _section(
        "Accuracy on the test structures", text, _table(ACCURACY_HEADERS, rows)
    )


def cost(data: Dict[str, Any], figures: Dict[str, Optional[str]]) -> List[Block]:
    """Milliseconds per force evaluation, per atom, and speed-ups, per model."""
    reference = data.get("cost_reference")
    speedup = (
        f" Speed-up: cost of '{reference}' conservative forces divided by "
        "the cost of the row."
        if reference
        else ""
    )
    text = (
        "Median wall time of one evaluation on the MD structure, measured in "
        "this run, one process after the other. Conservative forces need a "
        "backward pass through the network, direct forces only the forward "
        "pass. 'mts (per inner step)' is the average cost of an inner step of "
        "multiple time stepping: (both heads + (stride - 1) direct) / stride." + speedup
    )
    stride = data["settings"]["stride"]
    labels = {
        "conservative": "conservative",
        "direct": "direct",
        "both": "both heads, one call",
        "mts_per_inner_step": f"mts (per inner step, stride {stride})",
    }
    rows = []
    for name, result in section_results(data, "cost"):
        for key, ms in result["ms"].items():
            rows.append(
                [
                    name,
                    labels.get(key, key),
                    fmt(ms),
                    fmt(result["ms_per_atom"][key], 3),
                    fmt(result.get("speedup", {}).get(key)) + "x",
                ]
            )
    headers = ["model", "forces", "ms", "ms/atom", "speed-up"]
    return _section("Cost of one force evaluation", [text], _table(headers, rows))


ANTISYMMETRY_HEADERS = [
    "model",
    "forces",
    "lambda (mean)",
    "lambda (max)",
    "method",
    "loop |W| (eV)",
    "force floor (meV/Å)",
    "details and chemiscope",
]


def antisymmetry(
    data: Dict[str, Any], figures: Dict[str, Optional[str]]
) -> List[Block]:
    """lambda per model and head, loop work and force floor, lambda against distance."""
    text = (
        "lambda = ||(J - J^T)/2|| / ||J|| for the force Jacobian J = dF/dr: 0 "
        "for forces that are the gradient of an energy, larger when the forces "
        "have a rotational part that no energy can produce. |W| is the work "
        "done by the forces around small closed square loops in "
        f"configuration space (side {data['settings']['square_eps_A']} Å): zero "
        "for conservative forces; the force floor |W| / (4 eps N) is the smallest "
        "non-conservative force error consistent with it."
    )
    rows = []
    for name, heads in section_results(data, "antisymmetry"):
        for head, r in heads.items():
            floor = r.get("loop_force_floor_max_eV_per_A")
            rows.append(
                [
                    name,
                    head,
                    fmt(r["lambda_mean"]),
                    fmt(r["lambda_max"]),
                    r["method"],
                    fmt(r.get("loop_work_mean_abs_eV")),
                    fmt(None if floor is None else 1000 * floor),
                    r["folder"],
                ]
            )
    return _section(
        "How non-conservative: antisymmetry ratio and loop work",
        [text],
        _table(ANTISYMMETRY_HEADERS, rows),
        _figure(
            figures, "pairs", "Mean |J_ij| and lambda_ij against the pair distance."
        ),
        _viewer(
            "lambda",
            "Interactive view of lambda per atom: the map shows lambda_i of every "
            "atom against its atomic number; click a point to see its atom in the "
            "structure, whose settings (top right) show the force arrows.",
            lambda_entries(data),
        ),
    )


def _viewer(key: str, caption: str, entries) -> List[Block]:
    """A chemiscope viewer block (see :mod:`.viewer`), or none without datasets."""
    return [("chemiscope", key, caption, entries)] if entries else []


def trajectories(data: Dict[str, Any]) -> List[Block]:
    """The chemiscope viewer of the MD runs (after the last MD section)."""
    return _viewer(
        "md",
        f"Interactive view of the MD runs: up to {MAX_FRAMES} frames of each run, "
        "the map "
        "shows the change of the conserved energy against time, coloured by the "
        "temperature; the play button under the structure runs the frames.",
        md_entries(data),
    )


def nve(data: Dict[str, Any], figures: Dict[str, Optional[str]]) -> List[Block]:
    """Heating rate and energy drift of every NVE run (the paper's Figure 3)."""
    s = data["settings"]
    equilibration = (
        f" (the MD structure after {s['equilibration_fs']:g} fs of SVR "
        "dynamics with the model's own forces)"
        if s.get("equilibration_fs")
        else ""
    )
    text = (
        f"Microcanonical runs of {s['nve_time_fs'] / 1000:g} ps from the same "
        "start for all force modes of a model"
        + equilibration
        + f", inner step {s['timestep_fs']:g} fs; MTS applies the "
        f"conservative correction every {s['stride']} steps "
        f"({s['mts_outer_timestep_fs']:g} fs). Conservative forces keep the "
        "total energy constant; direct forces do work around closed paths, "
        "so the system heats (or cools) steadily; MTS removes that work "
        "at the outer step. Rates from linear fits (± standard error)."
    )
    caption = "Temperature and total-energy change in NVE."
    return _section(
        "NVE: energy conservation",
        [text],
        md_table(data, "nve"),
        _figure(figures, "nve", caption),
    )


def nvt(data: Dict[str, Any], figures: Dict[str, Optional[str]]) -> List[Block]:
    """Deviations of the mean and per-species temperatures (the paper's Table 2),
    and what of them is resolved beyond the error bars (:func:`nvt_verdict`)."""
    s = data["settings"]
    text = (
        f"Stochastic velocity rescaling (Bussi) at {s['temperature_K']:g} K, "
        f"tau {s['tau_fs']:g} fs, {s['nvt_time_fs'] / 1000:g} ps. A thermostat "
        "keeps the mean temperature but direct forces heat some degrees of "
        "freedom and the thermostat cools all of them: the species "
        "temperatures drift apart (the paper's Table 2). Deviations from the "
        "target in K, averaged over the run."
    )
    if _checks(data):
        text += (
            " 'T split': the difference of two species' temperatures over the "
            "last part of the run (block averages: ± standard error, and how many "
            "standard errors from zero); 'vs conservative': that split minus the "
            "split of a conservative run from the same start (the model's own, "
            "else another model's), what the direct forces add to an "
            "equilibration that may still be going on."
        )
    return _section(
        "NVT: does the thermostat hide the problem?",
        [text] + nvt_verdict(data),
        md_table(data, "nvt"),
        _figure(figures, "nvt", "Temperature per species in NVT."),
    )


# -- NVT: what is resolved -----------------------------------------------------------
def _checks(data: Dict[str, Any]) -> List[Tuple[str, str, Dict[str, Any]]]:
    """``(model, mode, equipartition check)`` of every NVT run that has one."""
    out = []
    for name, runs in section_results(data, "nvt"):
        for mode, run in runs.items():
            if isinstance(run, dict) and isinstance(run.get("equipartition"), dict):
                out.append((name, mode, run["equipartition"]))
    return out


def _reference(data: Dict[str, Any], name: str) -> Optional[Tuple[str, Dict[str, Any]]]:
    """The conservative NVT run a run of ``name`` is read against: the model's own
    (a teacher-student pair's: its teacher's, when the teacher is compared too), else
    the first conservative run of another model (all start from the same structure,
    velocities and seed)."""
    conservative = [(n, c) for n, mode, c in _checks(data) if mode == "conservative"]
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


def _split_cells(data: Dict[str, Any], name: str, mode: str, run: Dict) -> Row:
    """The 'T split' and 'vs conservative' cells of one NVT run."""
    check = run.get("equipartition")
    if not isinstance(check, dict):
        return ["-", "-"]
    largest = _most_significant(check.get("splits", {}))
    cells = [_split_text(*largest) if largest else "-"]
    reference = _reference(data, name) if mode != "conservative" else None
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
    checks = _checks(data)
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
        reference = _reference(data, name)
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


def relax(data: Dict[str, Any], figures: Dict[str, Optional[str]]) -> List[Block]:
    """Fraction of converged relaxations per force mode and optimiser (Table 7)."""
    s = data["settings"]
    text = (
        f"Fraction of structures (displaced by {s['relax_sigma_A']} Å) "
        f"converged to fmax {s['relax_fmax']} eV/Å within {s['relax_steps']} "
        "steps (the paper's Table 7). Optimisers assume the forces are the "
        "gradient of an energy: with direct forces they can stall."
    )
    rows = []
    for name, result in section_results(data, "relax"):
        for mode, per in result["fractions"].items():
            for opt, fraction in per.items():
                steps = result["mean_steps"][mode][opt]
                rows.append([name, mode, opt, fmt(fraction), fmt(steps)])
    headers = ["model", "forces", "optimiser", "converged", "mean steps"]
    return _section("Geometry optimisation", [text], _table(headers, rows))


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
        ]
    return [fmt(run.get(key)) for key in ["deviation_temperature_K"] + species_keys]


def md_table(data: Dict[str, Any], section: str) -> List[Block]:
    """The table of every run of the MD ``section`` (``nve`` or ``nvt``), or none."""
    species_keys = _species_keys(data, section)
    rows = []
    splits = section == "nvt" and bool(_checks(data))
    for name, runs in section_results(data, section):
        for mode, run in runs.items():
            cells = _md_row(section, run, species_keys)
            if splits:
                cells += _split_cells(data, name, mode, run)
            rows.append(
                [name, mode, run["status"]]
                + cells
                + [fmt(run["inner_steps_per_s"]), run["folder"]]
            )
    headers = ["model", "forces", "status"]
    if section == "nve":
        headers += ["heating (K/ps)", "drift (meV/atom/ps)"]
    else:
        headers += ["ΔT (K)"] + [
            f"ΔT {key[len(SPECIES_DEVIATION) : -2]} (K)" for key in species_keys
        ]
        if splits:
            headers += ["T split", "vs conservative"]
    return _table(headers + ["steps/s", "run folder"], rows)


# -- the report ----------------------------------------------------------------------
Section = Callable[[Dict[str, Any], Dict[str, Optional[str]]], List[Block]]

#: the sections of the report, in order, by the stage they report
SECTIONS: Tuple[Tuple[str, Section], ...] = (
    ("accuracy", accuracy),
    ("cost", cost),
    ("antisymmetry", antisymmetry),
    ("nve", nve),
    ("nvt", nvt),
    ("relax", relax),
)


def build_blocks(
    data: Dict[str, Any], figures: Dict[str, Optional[str]]
) -> List[Block]:
    """The report as a list of blocks: the introduction and every stage that ran.

    ``figures`` maps the figure keys to file names in the report folder (``None`` for
    a figure that was not drawn).
    """
    blocks = introduction(data)
    stages = data["settings"]["stages"]
    last_md = [st for st, _ in SECTIONS if st in stages and st in ("nve", "nvt")][-1:]
    for stage, section in SECTIONS:
        if stage in stages:
            blocks += section(data, figures) + failures(data, stage)
            if [stage] == last_md:
                blocks += trajectories(data)
    return blocks
