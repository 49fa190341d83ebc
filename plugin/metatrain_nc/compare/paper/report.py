"""The paper protocol's report: figures, ``report.md`` and ``report.html``.

Written after every unit, so a protocol that runs for hours shows what it has so
far (units still to run are listed as pending).
"""

from pathlib import Path
from typing import Any, Dict, List, Optional

from ..figures import pyplot, save
from ..nvt_reading import findings, thermostat_label
from ..render import Block
from .tables import (
    TABLE_7_HEADERS,
    relaxation_findings,
    table_2_headers,
    table_2_rows,
    table_7_rows,
)


def plot_deviations(runs: List[Dict[str, Any]], folder: Path) -> Optional[str]:
    """Per-species deviation from the target, with block-average error bars, one group
    of bars per run."""
    runs = [
        r for r in runs if r.get("status") == "completed" and r.get("equipartition")
    ]
    if not runs:
        return None
    plt = pyplot()
    symbols = sorted({s for r in runs for s in r["equipartition"].get("species", {})})
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(runs) + 2), 4.0))
    width = 0.8 / max(1, len(symbols))
    for k, symbol in enumerate(symbols):
        values, errors = [], []
        for run in runs:
            eq = run["equipartition"]
            species = eq["species"].get(symbol, {})
            target = eq["temperature"].get("target", 0.0)
            values.append(species.get("mean", float("nan")) - target)
            errors.append(species.get("error") or 0.0)
        x = [i + (k - (len(symbols) - 1) / 2) * width for i in range(len(runs))]
        ax.bar(x, values, width, yerr=errors, capsize=3, label=symbol)
    ax.axhline(0.0, color="k", lw=0.8)
    ax.set_xticks(range(len(runs)))
    ax.set_xticklabels(
        [
            f"{r['model']}\n{r['mode']}\n{thermostat_label(r['ensemble'], r['tau_fs'])}"
            for r in runs
        ],
        fontsize=7,
    )
    ax.set_ylabel("T_species - target (K)")
    ax.legend()
    return save(plt, fig, folder, "deviations", dpi=110)


def plot_success(sets: List[Dict[str, Any]], folder: Path) -> Optional[str]:
    """Success rate of every (model, head, phase, optimiser) with its 95% interval."""
    bars = []
    for record in sets:
        for head, per in record["summary"].items():
            for optimizer, s in per.items():
                label = f"{record['model']} {head}\n{record['kind']} {optimizer}"
                bars.append((label, s["rate"], s["interval_95"]))
    if not bars:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(6.0, 0.8 * len(bars) + 2), 4.0))
    rates = [100 * b[1] for b in bars]
    low = [100 * (b[1] - b[2][0]) for b in bars]
    high = [100 * (b[2][1] - b[1]) for b in bars]
    ax.bar(range(len(bars)), rates, yerr=[low, high], capsize=3, color="tab:blue")
    ax.set_xticks(range(len(bars)))
    ax.set_xticklabels([b[0] for b in bars], fontsize=7)
    ax.set_ylabel("converged (%), 95% interval")
    ax.set_ylim(0, 105)
    return save(plt, fig, folder, "success", dpi=110)


def build_blocks(
    data: Dict[str, Any], figures: Dict[str, Optional[str]]
) -> List[Block]:
    s = data["settings"]
    sigma = s["sigma"]
    runs = data["nvt"]
    sets = data["relax"]
    blocks: List[Block] = [
        ("h1", "The paper's protocol: thermostats (Table 2) and relaxations (Table 7)"),
        (
            "p",
            f"Models: {', '.join(data['models'])}. MD structure: "
            f"{data['md_structure']['n_atoms']} atoms "
            f"({data['md_structure']['formula']}). Made by `mtt-nc compare "
            f"--protocol paper` (metatrain-nc {data['versions']['metatrain-nc']}); "
            f"{data['done_units']} of {data['total_units']} units done, "
            f"{data['cpu_hours']:.2f} h of wall time in all, last update "
            f"{data['updated']}.",
        ),
    ]
    if data["pending"]:
        blocks.append(
            (
                "p",
                "Pending (run the same command with --resume to continue): "
                + "; ".join(data["pending"])
                + ".",
            )
        )
    blocks += [("p", f"Note: {n}") for n in data.get("notes", [])]
    blocks.append(("h2", "Thermostats (Table 2)"))
    blocks.append(
        (
            "p",
            f"{s['equilibration_fs']:g} fs of equilibration, then "
            f"{s['production_fs']:g} fs analysed, at {s['temperature_K']:g} K; inner "
            f"step {s['timestep_fs']:g} fs for every mode, MTS outer step "
            f"{s['mts_outer_timestep_fs']:g} fs (stride {s['stride']}). Temperatures: "
            "block averages of the production part with their standard errors "
            "(correlated samples). A split (T_A - T_B, analysed as its own series) or "
            f"a slow-down is 'resolved' beyond {sigma:g} standard errors, else "
            "'within error'. Diffusion: Einstein relation on the production part, "
            "lags 10-30% of it, error from "
            f"{s['diffusion_segments']} blocks of time origins; slow-down = "
            "D of the same model and forces under SVR divided by D of the row.",
        )
    )
    blocks += [("p", sentence) for sentence in findings(runs, sigma)]
    if runs:
        blocks.append(("table", table_2_headers(runs), table_2_rows(runs, sigma)))
    if figures.get("deviations"):
        blocks.append(
            ("img", figures["deviations"], "Species temperature minus target, ± error.")
        )
    blocks.append(("h2", "Relaxations (Table 7)"))
    blocks.append(
        (
            "p",
            f"Gas phase: molecules cut out of the test structures, displaced by "
            f"{s['gas_sigma_A']:g} Å, to {s['gas_fmax']:g} eV/Å; bulk: test "
            f"structures (displaced by {s['bulk_sigma_A']:g} Å) to "
            f"{s['bulk_fmax']:g} eV/Å; at most {s['relax_steps']} steps. Rates with "
            "Wilson 95% intervals; a failure says why it stopped (energy_rising, "
            "step_collapse, force_stalled, step_limit). The round-off floor is the "
            "largest force change under a rigid translation: a threshold below it "
            "cannot be met reliably. For a model with both heads, the conservative "
            "forces' fmax where the direct head converged shows how far a direct "
            "relaxation ends from a minimum of the energy.",
        )
    )
    blocks += [("p", sentence) for sentence in relaxation_findings(sets)]
    if sets:
        blocks.append(("table", TABLE_7_HEADERS, table_7_rows(sets)))
    if figures.get("success"):
        blocks.append(("img", figures["success"], "Relaxations converged, 95% CI."))
    if data["failures"]:
        blocks.append(("h2", "Failures"))
        blocks.append(("table", ["unit", "error"], [list(f) for f in data["failures"]]))
    return blocks


def write_report(data: Dict[str, Any], folder: Path) -> Dict[str, Optional[str]]:
    """Figures, ``report.md`` and ``report.html`` in ``folder`` (written whole, then
    renamed, so a reader never sees half a file)."""
    figures = {
        "deviations": plot_deviations(data["nvt"], folder),
        "success": plot_success(data["relax"], folder),
    }
    from ..report import write_pages

    write_pages(build_blocks(data, figures), folder)
    return figures
