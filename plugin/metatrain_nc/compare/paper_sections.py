"""The paper protocol's report (:func:`paper_blocks`): Table 2 (thermostats) and
Table 7 (relaxations), rewritten after every unit, so that a protocol that runs for
hours shows what it has so far, pending units listed.
"""

from typing import Any, Dict, List, Optional

from ..reports.render import Block, columns_table, figure_block, section_blocks, table
from .nvt_reading import findings
from .tables import TABLE_7, comparisons, relaxation_findings, table_2_columns

Figures = Dict[str, Optional[str]]

#: what the thermostat section measures (``str.format`` of the settings)
THERMOSTATS = (
    "{equilibration_fs:g} fs of equilibration, then {production_fs:g} fs analysed, "
    "at {temperature_K:g} K; inner step {timestep_fs:g} fs for every mode, MTS outer "
    "step {mts_outer_timestep_fs:g} fs (stride {stride}). Temperatures: block "
    "averages of the production part with their standard errors (correlated "
    "samples). A split (T_A - T_B, analysed as its own series) or a slow-down is "
    "'resolved' beyond {sigma:g} standard errors, else 'within error'. Diffusion: "
    "Einstein relation on the production part, lags 10-30% of it, error from "
    "{diffusion_segments} blocks of time origins; slow-down = D of the same model "
    "and forces under SVR divided by D of the row."
)
#: what the relaxation section measures (``str.format`` of the settings)
RELAXATIONS = (
    "Gas phase: molecules cut out of the test structures, displaced by "
    "{gas_sigma_A:g} Å, to {gas_fmax:g} eV/Å; bulk: test structures (displaced by "
    "{bulk_sigma_A:g} Å) to {bulk_fmax:g} eV/Å; at most {relax_steps} steps. Rates "
    "with Wilson 95% intervals; a failure says why it stopped (energy_rising, "
    "step_collapse, force_stalled, step_limit). The round-off floor is the largest "
    "force change under a rigid translation: a threshold below it cannot be met "
    "reliably. For a model with both heads, the conservative forces' fmax where the "
    "direct head converged shows how far a direct relaxation ends from a minimum of "
    "the energy."
)


def paper_introduction(data: Dict[str, Any]) -> List[Block]:
    """Title, provenance and progress, pending units, notes."""
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
        pending = "; ".join(data["pending"])
        text = f"Pending (run the same command with --resume to continue): {pending}."
        blocks.append(("p", text))
    return blocks + [("p", f"Note: {n}") for n in data.get("notes", [])]


def paper_blocks(data: Dict[str, Any], figures: Figures) -> List[Block]:
    """The paper protocol's report: Table 2 (what the NVT runs resolve, a row per
    run), Table 7 (success rates, direct heads against conservative ones), the
    failed units."""
    s, runs, sets = data["settings"], data["nvt"], data["relax"]
    blocks = paper_introduction(data) + section_blocks(
        "Thermostats (Table 2)",
        [THERMOSTATS.format(**s)] + findings(runs, s["sigma"]),
        columns_table(table_2_columns(runs, s["sigma"]), runs),
        figure_block(
            figures, "deviations", "Species temperature minus target, ± error."
        ),
    )
    blocks += section_blocks(
        "Relaxations (Table 7)",
        [RELAXATIONS.format(**s)] + relaxation_findings(sets),
        columns_table(TABLE_7, comparisons(sets)),
        figure_block(figures, "success", "Relaxations converged, 95% CI."),
    )
    failed = [list(failure) for failure in data["failures"]]
    if failed:
        blocks += section_blocks("Failures", [], table(["unit", "error"], failed))
    return blocks
