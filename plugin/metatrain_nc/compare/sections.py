"""The content of the comparison report: one function per section.

Each section is a list of blocks (see :mod:`.render`) computed from the results dict
(``report.json``'s content): its heading, what it measures, a table of the results of
every model and, for a model whose section failed, a table of the failures.
"""

from typing import Any, Callable, Dict, List, Optional, Tuple

from .nvt_reading import nvt_runs, nvt_verdict, split_cells
from .render import Block, Row, figure_block, fmt, fmt_error, section_blocks, table
from .viewer import MAX_FRAMES, lambda_entries, md_entries, section_results


def failures(data: Dict[str, Any], section: str) -> List[Block]:
    """The table of the models whose ``section`` failed, with the reasons (or none)."""
    rows = []
    for name, model in data["models"].items():
        value = model.get(section)
        if isinstance(value, dict) and "error" in value:
            rows.append([name, value["error"]])
    return table(["model", "failed"], rows)


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
    return section_blocks(
        "Accuracy on the test structures", text, table(ACCURACY_HEADERS, rows)
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
    return section_blocks("Cost of one force evaluation", [text], table(headers, rows))


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
    return section_blocks(
        "How non-conservative: antisymmetry ratio and loop work",
        [text],
        table(ANTISYMMETRY_HEADERS, rows),
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
    return section_blocks(
        "NVE: energy conservation",
        [text],
        md_table(data, "nve"),
        figure_block(figures, "nve", caption),
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
    if any(isinstance(r.get("equipartition"), dict) for r in nvt_runs(data)):
        text += (
            " 'T split': the difference of two species' temperatures over the "
            "last part of the run (block averages: ± standard error, and how many "
            "standard errors from zero); 'vs conservative': that split minus the "
            "split of a conservative run from the same start (the model's own, "
            "else another model's), what the direct forces add to an "
            "equilibration that may still be going on."
        )
    return section_blocks(
        "NVT: does the thermostat hide the problem?",
        [text] + nvt_verdict(data),
        md_table(data, "nvt"),
        figure_block(figures, "nvt", "Temperature per species in NVT."),
    )


#: the per-species temperature deviations of an NVT run (``..._H_K``)
SPECIES_DEVIATION = "deviation_temperature_"


def _md_cells(section: str, run: Dict[str, Any], species: List[str]) -> Row:
    """The result cells of one MD run: rates (NVE) or temperature deviations (NVT)."""
    if section == "nvt":
        return [fmt(run.get(key)) for key in ["deviation_temperature_K"] + species]
    return [
        fmt_error(run["heating_rate_K_per_ps"], run["heating_rate_error_K_per_ps"]),
        fmt_error(
            run["drift_meV_per_atom_per_ps"], run["drift_error_meV_per_atom_per_ps"]
        ),
        fmt(run.get("drift_ratio")),
    ]


def md_table(data: Dict[str, Any], section: str) -> List[Block]:
    """The table of every run of the MD ``section`` (``nve`` or ``nvt``), or none."""
    runs = nvt_runs(data, section)
    species = list(
        dict.fromkeys(
            key
            for run in runs
            for key in run
            if key.startswith(SPECIES_DEVIATION) and key != "deviation_temperature_K"
        )
    )
    splits = section == "nvt" and any(
        isinstance(run.get("equipartition"), dict) for run in runs
    )
    rows = [
        [run["model"], run["mode"], run["status"]]
        + _md_cells(section, run, species)
        + (split_cells(runs, run) if splits else [])
        + [fmt(run["inner_steps_per_s"]), run["folder"]]
        for run in runs
    ]
    headers = ["model", "forces", "status"]
    if section == "nve":
        headers += ["heating (K/ps)", "drift (meV/atom/ps)", "drift ratio"]
    else:
        headers += ["ΔT (K)"]
        headers += [f"ΔT {k[len(SPECIES_DEVIATION) : -2]} (K)" for k in species]
        headers += ["T split", "vs conservative"] if splits else []
    return table(headers + ["steps/s", "run folder"], rows)


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
    return section_blocks("Geometry optimisation", [text], table(headers, rows))


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
