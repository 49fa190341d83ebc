"""The content of the reports of both protocols: one function per section.

Each section is a list of blocks (see :mod:`.render`) computed from the results dict
(``report.json``'s content): its heading, what it measures, a table of the results of
every model and, for a model whose section failed, a table of the failures. The
paper protocol's sections are in :mod:`.paper_sections`.
"""

from typing import Any, Callable, Dict, List, Optional, Tuple

from ..dynamics.monitor import RESOLVED_SIGMA
from ..reports.render import (
    Block,
    Column,
    columns_table,
    figure_block,
    fmt,
    fmt_error,
    section_blocks,
    table,
)
from ..reports.viewer import MAX_FRAMES
from .nvt_reading import findings, md_runs
from .results import lambda_entries, md_entries, section_items, section_results
from .tables import TABLE_7, comparisons, relaxation_findings, table_2_columns

Figures = Dict[str, Optional[str]]


def failures(data: Dict[str, Any], section: str) -> List[Block]:
    """The table of the models whose ``section`` failed, with the reasons (or none)."""
    rows = [
        [name, model[section]["error"]]
        for name, model in data["models"].items()
        if isinstance(model.get(section), dict) and "error" in model[section]
    ]
    return table(["model", "failed"], rows)


def _rows(data: Dict[str, Any], section: str, *columns: Column) -> List[Block]:
    """The table of every ``(model, key, result)`` of ``section`` (a result per force
    head or mode), after the columns 'model' and 'forces'."""
    heads = (("model", lambda r: r[0]), ("forces", lambda r: r[1]))
    return columns_table(heads + columns, section_items(data, section))


# -- standard protocol ---------------------------------------------------------------
#: the columns of the table of the models, of ``(name, model)`` items
MODEL_COLUMNS: Tuple[Column, ...] = (
    ("model", lambda item: item[0]),
    ("architecture", lambda item: item[1]["info"].get("architecture") or "-"),
    ("kind", lambda item: item[1]["info"].get("kind", "-")),
    ("MD modes", lambda item: ", ".join(item[1]["info"].get("md_modes", []))),
    ("species", lambda item: " ".join(item[1]["info"].get("species", []))),
    ("energy unit", lambda item: item[1]["info"].get("units", {}).get("energy", "-")),
)


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
    return blocks + columns_table(MODEL_COLUMNS, data["models"].items())


def accuracy(data: Dict[str, Any], figures: Figures) -> List[Block]:
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
        for head in [] if "skipped" in acc else acc.get("heads", []):
            errors = (acc.get("energy") or {}, acc["forces"].get(head, {}))
            cells = [fmt(e.get(key)) for e in errors for key in ("mae", "rmse")]
            rows.append([name, head] + cells)
    units = (("E", "meV/atom"), ("F", "meV/Å"))
    headers = ["model", "forces"]
    headers += [f"{q} {k} ({unit})" for q, unit in units for k in ("MAE", "RMSE")]
    return section_blocks("Accuracy on the test structures", text, table(headers, rows))


def cost(data: Dict[str, Any], figures: Figures) -> List[Block]:
    """Milliseconds per force evaluation, per atom, and speed-ups, per model."""
    reference = data.get("cost_reference")
    speedup = (
        f" Speed-up: cost of '{reference}' conservative forces divided by "
        "the cost of the row."
        if reference
        else ""
    )
    text = (
        "Median wall-clock time of one evaluation on the MD structure, measured in "
        "this run, one process after the other; every timed call is made on a new "
        "configuration (displacements of 0.001 Å), so that no model or ASE "
        "calculator returns a stored result. Conservative forces need a "
        "backward pass through the network, direct forces only the forward "
        "pass. 'mts (per inner step)' is the average cost of an inner step of "
        "multiple time stepping: (both heads + (stride - 1) direct) / stride." + speedup
    )
    stride = data["settings"]["stride"]
    labels = {
        "both": "both heads, one call",
        "mts_per_inner_step": f"mts (per inner step, stride {stride})",
    }
    rows = [
        [
            name,
            labels.get(key, key),
            fmt(ms),
            fmt(result["ms_per_atom"][key], 3),
            fmt(result.get("speedup", {}).get(key)) + "x",
        ]
        for name, result in section_results(data, "cost")
        for key, ms in result["ms"].items()
    ]
    headers = ["model", "forces", "ms", "ms/atom", "speed-up"]
    return section_blocks("Cost of one force evaluation", [text], table(headers, rows))


def _milli(value: Optional[float]) -> str:
    return fmt(None if value is None else 1000 * value)


def antisymmetry(data: Dict[str, Any], figures: Figures) -> List[Block]:
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
    rows = _rows(
        data,
        "antisymmetry",
        ("lambda (mean)", lambda r: fmt(r[2]["lambda_mean"])),
        ("lambda (max)", lambda r: fmt(r[2]["lambda_max"])),
        ("method", lambda r: r[2]["method"]),
        ("loop |W| (eV)", lambda r: fmt(r[2].get("loop_work_mean_abs_eV"))),
        (
            "force floor (meV/Å)",
            lambda r: _milli(r[2].get("loop_force_floor_max_eV_per_A")),
        ),
        ("details and chemiscope", lambda r: r[2]["folder"]),
    )
    return section_blocks(
        "How non-conservative: antisymmetry ratio and loop work",
        [text],
        rows,
        figure_block(
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


def nve(data: Dict[str, Any], figures: Figures) -> List[Block]:
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
    return section_blocks(
        "NVE: energy conservation",
        [text],
        columns_table(list(NVE_COLUMNS) + RUN_COLUMNS, md_runs(data, "nve")),
        figure_block(figures, "nve", caption),
    )


def nvt_findings(data: Dict[str, Any]) -> List[str]:
    """What the standard report's NVT runs resolve (:func:`.nvt_reading.findings`),
    with the advice to run longer where nothing is."""
    s = data["settings"]
    time_ps = s["nvt_time_fs"] / 1000
    longer = f"; these {time_ps:g} ps runs are too short: run longer (--nvt-time)"
    return findings(data.get("nvt", []), s.get("sigma", RESOLVED_SIGMA), longer)


def nvt(data: Dict[str, Any], figures: Figures) -> List[Block]:
    """Deviations of the mean and per-species temperatures and their splits, with
    what of them is resolved beyond the error bars (the paper's Table 2)."""
    s = data["settings"]
    text = (
        f"Stochastic velocity rescaling (Bussi) at {s['temperature_K']:g} K, "
        f"tau {s['tau_fs']:g} fs, {s['nvt_time_fs'] / 1000:g} ps. A thermostat "
        "keeps the mean temperature but direct forces heat some degrees of "
        "freedom and the thermostat cools all of them: the species "
        "temperatures drift apart (the paper's Table 2). Temperatures: block "
        "averages over the last part of the run, ± standard error; 'split - "
        "conservative split': what the direct forces add to the split of a "
        "conservative run from the same start (the model's own, else another "
        "model's)."
    )
    runs = data.get("nvt", [])
    columns = table_2_columns(runs, s.get("sigma", RESOLVED_SIGMA)) + RUN_COLUMNS
    return section_blocks(
        "NVT: does the thermostat hide the problem?",
        [text] + nvt_findings(data),
        columns_table(columns, runs),
        figure_block(figures, "nvt", "Temperature per species in NVT."),
    )


def _error_column(header: str, key: str, error: str) -> Column:
    return header, lambda run: fmt_error(run[key], run[error])


#: the columns of an NVE run: status, rates from linear fits
NVE_COLUMNS: Tuple[Column, ...] = (
    ("model", lambda run: run["model"]),
    ("forces", lambda run: run["mode"]),
    ("status", lambda run: run["status"]),
    _error_column(
        "heating (K/ps)", "heating_rate_K_per_ps", "heating_rate_error_K_per_ps"
    ),
    _error_column(
        "drift (meV/atom/ps)",
        "drift_meV_per_atom_per_ps",
        "drift_error_meV_per_atom_per_ps",
    ),
    ("drift ratio", lambda run: fmt(run.get("drift_ratio"))),
)
#: the last columns of both MD tables
RUN_COLUMNS: List[Column] = [
    ("steps/s", lambda run: fmt(run["inner_steps_per_s"])),
    ("run folder", lambda run: run["folder"]),
]


def relax(data: Dict[str, Any], figures: Figures) -> List[Block]:
    """Relaxations converged per head and optimiser, with their 95% intervals, each
    direct head against the conservative one (the paper's Table 7)."""
    s = data["settings"]
    text = (
        f"Test structures displaced by {s['relax_sigma_A']} Å, relaxed to fmax "
        f"{s['relax_fmax']} eV/Å within {s['relax_steps']} steps (the paper's "
        "Table 7, which relaxes to 1e-4 eV/Å: `--protocol paper`). Optimisers "
        "assume the forces are the gradient of an energy: with direct forces they "
        "can stall."
    )
    sets = data.get("relax", [])
    return section_blocks(
        "Geometry optimisation",
        [text] + relaxation_findings(sets),
        columns_table(TABLE_7, comparisons(sets)),
    )


Section = Callable[[Dict[str, Any], Figures], List[Block]]

#: the sections of the standard report, in order, by the stage they report
SECTIONS: Tuple[Tuple[str, Section], ...] = (
    ("accuracy", accuracy),
    ("cost", cost),
    ("antisymmetry", antisymmetry),
    ("nve", nve),
    ("nvt", nvt),
    ("relax", relax),
)


def build_blocks(data: Dict[str, Any], figures: Figures) -> List[Block]:
    """The report as a list of blocks: the introduction and every stage that ran (a
    paper protocol's results, whose settings have ``parts``:
    :func:`.paper_sections.paper_blocks`).

    ``figures`` maps the figure keys to file names in the report folder (``None`` for
    a figure that was not drawn).
    """
    if "parts" in data["settings"]:
        from .paper_sections import paper_blocks

        return paper_blocks(data, figures)
    blocks = introduction(data)
    stages = data["settings"]["stages"]
    last_md = [st for st, _ in SECTIONS if st in stages and st in ("nve", "nvt")][-1:]
    for stage, section in SECTIONS:
        if stage in stages:
            blocks += section(data, figures) + failures(data, stage)
            if [stage] == last_md:
                blocks += trajectories(data)
    return blocks
