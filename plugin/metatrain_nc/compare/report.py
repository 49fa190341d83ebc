"""The comparison report: figures (PNG), ``report.md`` and ``report.html``.

The report is a list of blocks (headings, paragraphs, tables, figures) built once from
``report.json``'s content and rendered twice: Markdown (figures linked) and a single
HTML file (figures embedded as base64, so it can be mailed or attached).
"""

import base64
import html
import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..dynamics.outputs import FILES as MD_FILES
from .stages import read_log

Block = Tuple[str, ...]

FIGURES = {
    "nve": "nve_temperature.png",
    "nvt": "nvt_temperature.png",
    "pairs": "lambda_pairs.png",
}


def _fmt(value: Any, digits: int = 3) -> str:
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


def _pm(value: Optional[float], error: Optional[float]) -> str:
    if value is None:
        return "-"
    if error is None:
        return _fmt(value)
    return f"{_fmt(value)} ± {_fmt(error, 2)}"


# -- figures -------------------------------------------------------------------------
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


LINESTYLES = {"conservative": "-", "direct": "--", "mts": ":"}


def _md_runs(data: Dict[str, Any], section: str, outdir: Path):
    for name, model in data["models"].items():
        runs = model.get(section) or {}
        if "error" in runs:
            continue
        for mode, run in runs.items():
            log = outdir / run["folder"] / MD_FILES["log"]
            if log.is_file():
                yield name, mode, read_log(log)


def plot_nve(data: Dict[str, Any], outdir: Path) -> Optional[str]:
    """Temperature and conserved-energy change per atom against time, every NVE run."""
    runs = list(_md_runs(data, "nve", outdir))
    if not runs:
        return None
    plt = _plt()
    n_atoms = data["md_structure"]["n_atoms"]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    names = list(data["models"])
    for name, mode, rows in runs:
        color = f"C{names.index(name) % 10}"
        t = [r["time_fs"] / 1000 for r in rows]
        label = f"{name} ({mode})"
        style = LINESTYLES.get(mode, "-")
        top.plot(t, [r["temperature_K"] for r in rows], style, color=color, label=label)
        first = rows[0]["conserved_eV"]
        bottom.plot(
            t,
            [1000 * (r["conserved_eV"] - first) / n_atoms for r in rows],
            style,
            color=color,
            label=label,
        )
    top.set_ylabel("temperature (K)")
    top.set_title("NVE from the same start: conservative, direct and MTS forces")
    top.legend(fontsize=8)
    bottom.set_ylabel("total energy change (meV/atom)")
    bottom.set_xlabel("time (ps)")
    fig.tight_layout()
    fig.savefig(outdir / FIGURES["nve"], dpi=120)
    plt.close(fig)
    return FIGURES["nve"]


def plot_nvt(data: Dict[str, Any], outdir: Path) -> Optional[str]:
    """Temperature per species against time in the NVT (SVR) runs, one panel a run."""
    runs = list(_md_runs(data, "nvt", outdir))
    if not runs:
        return None
    plt = _plt()
    target = data["settings"]["temperature_K"]
    n = len(runs)
    cols = min(n, 3)
    rows_n = (n + cols - 1) // cols
    fig, axes = plt.subplots(
        rows_n, cols, figsize=(4 * cols, 3 * rows_n), sharey=True, squeeze=False
    )
    for ax, (name, mode, rows) in zip(axes.ravel(), runs, strict=False):
        t = [r["time_fs"] / 1000 for r in rows]
        keys = [
            k for k in rows[0] if k.startswith("temperature_") and k.count("_") == 2
        ]
        for key in keys:
            ax.plot(t, [r[key] for r in rows], lw=1, label=key.split("_")[1])
        ax.axhline(target, color="k", ls="--", lw=0.8)
        ax.set_title(f"{name} ({mode})", fontsize=9)
        ax.set_xlabel("time (ps)")
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    axes[0, 0].set_ylabel("temperature (K)")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(f"NVT (SVR thermostat at {target:g} K): temperature per species")
    fig.tight_layout()
    fig.savefig(outdir / FIGURES["nvt"], dpi=110)
    plt.close(fig)
    return FIGURES["nvt"]


def plot_pairs(data: Dict[str, Any], outdir: Path) -> Optional[str]:
    """lambda_ij against distance for every model and head (the paper's Figure 1)."""
    curves = []
    for name, model in data["models"].items():
        heads = model.get("antisymmetry") or {}
        if "error" in heads:
            continue
        for head, result in heads.items():
            bins = result.get("pair_bins")
            if bins and bins.get("r_center"):
                curves.append((name, head, bins))
    if not curves:
        return None
    plt = _plt()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    for k, (name, head, bins) in enumerate(curves):
        label = f"{name} ({head})"
        style = LINESTYLES.get(head, "-")
        color = f"C{k % 10}"
        block = [b if b > 0 else float("nan") for b in bins["mean_block_norm"]]
        top.plot(bins["r_center"], block, style, color=color, label=label)
        bottom.plot(bins["r_center"], bins["lambda"], style + "o", ms=3, color=color)
    top.set_yscale("log")
    top.set_ylabel(r"mean $|J_{ij}|$ (eV/$\AA^2$)")
    top.legend(fontsize=8)
    bottom.set_ylabel(r"$\lambda_{ij}$")
    bottom.set_xlabel(r"$r_{ij}$ ($\AA$)")
    bottom.set_ylim(-0.02, 1.02)
    top.set_title("Force Jacobian blocks against distance")
    fig.tight_layout()
    fig.savefig(outdir / FIGURES["pairs"], dpi=120)
    plt.close(fig)
    return FIGURES["pairs"]


# -- report blocks -------------------------------------------------------------------
def _error_rows(data, section: str) -> List[List[str]]:
    rows = []
    for name, model in data["models"].items():
        value = model.get(section)
        if isinstance(value, dict) and "error" in value:
            rows.append([name, value["error"]])
    return rows


def build_blocks(data: Dict[str, Any], figures: Dict[str, Optional[str]]) -> List:
    """The report as a list of ``(kind, ...)`` blocks."""
    s = data["settings"]
    blocks: List = [("h1", "Comparison of force models")]
    blocks.append(
        (
            "p",
            f"Test structures: {data['structures']['path']} "
            f"({data['structures']['count']} structures). MD structure: "
            f"{data['md_structure']['n_atoms']} atoms "
            f"({data['md_structure']['formula']}). Made by `mtt-nc compare` "
            f"(metatrain-nc {data['versions']['metatrain-nc']}, "
            f"{data['elapsed_s'] / 60:.1f} min{', --quick' if data['quick'] else ''}).",
        )
    )
    for note in data["notes"]:
        blocks.append(("p", f"Note: {note}"))
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
    blocks.append(
        (
            "table",
            ["model", "architecture", "kind", "MD modes", "species", "energy unit"],
            rows,
        )
    )

    stages = s["stages"]
    if "accuracy" in stages:
        blocks.append(("h2", "Accuracy on the test structures"))
        blocks.append(
            (
                "p",
                "Errors against the reference labels, per force head: 'conservative' "
                "is -dE/dr of the energy head, 'direct' the forces predicted directly "
                "(the paper's Table 1). Energies per atom.",
            )
        )
        if data.get("accuracy_note"):
            blocks.append(("p", data["accuracy_note"]))
        rows = []
        for name, model in data["models"].items():
            acc = model.get("accuracy")
            if not acc or "error" in acc or "skipped" in acc:
                continue
            energy = acc.get("energy") or {}
            for head in acc.get("heads", []):
                forces = acc["forces"].get(head, {})
                rows.append(
                    [
                        name,
                        head,
                        _fmt(energy.get("mae")),
                        _fmt(energy.get("rmse")),
                        _fmt(forces.get("mae")),
                        _fmt(forces.get("rmse")),
                    ]
                )
        if rows:
            blocks.append(
                (
                    "table",
                    [
                        "model",
                        "forces",
                        "E MAE (meV/atom)",
                        "E RMSE (meV/atom)",
                        "F MAE (meV/Å)",
                        "F RMSE (meV/Å)",
                    ],
                    rows,
                )
            )
        blocks += _errors_block(data, "accuracy")

    if "cost" in stages:
        blocks.append(("h2", "Cost of one force evaluation"))
        reference = data.get("cost_reference")
        blocks.append(
            (
                "p",
                "Median wall time of one evaluation on the MD structure, measured in "
                "this run, one process after the other. Conservative forces need a "
                "backward pass through the network, direct forces only the forward "
                "pass. 'mts (per inner step)' is the average cost of an inner step of "
                "multiple time stepping: (both heads + (stride - 1) direct) / stride."
                + (
                    f" Speed-up: cost of '{reference}' conservative forces divided by "
                    "the cost of the row."
                    if reference
                    else ""
                ),
            )
        )
        rows = []
        labels = {
            "conservative": "conservative",
            "direct": "direct",
            "both": "both heads, one call",
            "mts_per_inner_step": f"mts (per inner step, stride {s['stride']})",
        }
        for name, model in data["models"].items():
            cost = model.get("cost")
            if not cost or "error" in cost:
                continue
            for key, ms in cost["ms"].items():
                rows.append(
                    [
                        name,
                        labels.get(key, key),
                        _fmt(ms),
                        _fmt(cost["ms_per_atom"][key], 3),
                        _fmt(cost.get("speedup", {}).get(key)) + "x",
                    ]
                )
        if rows:
            blocks.append(
                ("table", ["model", "forces", "ms", "ms/atom", "speed-up"], rows)
            )
        blocks += _errors_block(data, "cost")

    if "antisymmetry" in stages:
        blocks.append(("h2", "How non-conservative: antisymmetry ratio and loop work"))
        blocks.append(
            (
                "p",
                "lambda = ||(J - J^T)/2|| / ||J|| for the force Jacobian J = dF/dr: 0 "
                "for forces that are the gradient of an energy, larger when the forces "
                "have a rotational part that no energy can produce. |W| is the work "
                "done by the forces around small closed square loops in "
                f"configuration space (side {s['square_eps_A']} Å): zero for "
                "conservative forces; the "
                "force floor |W| / (4 eps N) is the smallest non-conservative force "
                "error consistent with it.",
            )
        )
        rows = []
        for name, model in data["models"].items():
            heads = model.get("antisymmetry")
            if not heads or "error" in heads:
                continue
            for head, r in heads.items():
                floor = r.get("loop_force_floor_max_eV_per_A")
                rows.append(
                    [
                        name,
                        head,
                        _fmt(r["lambda_mean"]),
                        _fmt(r["lambda_max"]),
                        r["method"],
                        _fmt(r.get("loop_work_mean_abs_eV")),
                        _fmt(None if floor is None else 1000 * floor),
                        r["folder"],
                    ]
                )
        if rows:
            blocks.append(
                (
                    "table",
                    [
                        "model",
                        "forces",
                        "lambda (mean)",
                        "lambda (max)",
                        "method",
                        "loop |W| (eV)",
                        "force floor (meV/Å)",
                        "details and chemiscope",
                    ],
                    rows,
                )
            )
        if figures.get("pairs"):
            blocks.append(
                (
                    "img",
                    figures["pairs"],
                    "Mean |J_ij| and lambda_ij against the pair distance.",
                )
            )
        blocks += _errors_block(data, "antisymmetry")

    if "nve" in stages:
        blocks.append(("h2", "NVE: energy conservation"))
        blocks.append(
            (
                "p",
                f"Microcanonical runs of {s['nve_time_fs'] / 1000:g} ps from the same "
                "start for all force modes of a model"
                + (
                    f" (the MD structure after {s['equilibration_fs']:g} fs of SVR "
                    "dynamics with the model's own forces)"
                    if s.get("equilibration_fs")
                    else ""
                )
                + f", inner step {s['timestep_fs']:g} fs; MTS applies the "
                f"conservative correction every {s['stride']} steps "
                f"({s['mts_outer_timestep_fs']:g} fs). Conservative forces keep the "
                "total energy constant; direct forces do work around closed paths, "
                "so the system heats (or cools) steadily; MTS removes that work "
                "at the outer step. Rates from linear fits (± standard error).",
            )
        )
        blocks += _md_table(data, "nve")
        if figures.get("nve"):
            blocks.append(
                ("img", figures["nve"], "Temperature and total-energy change in NVE.")
            )
        blocks += _errors_block(data, "nve")

    if "nvt" in stages:
        blocks.append(("h2", "NVT: does the thermostat hide the problem?"))
        blocks.append(
            (
                "p",
                f"Stochastic velocity rescaling (Bussi) at {s['temperature_K']:g} K, "
                f"tau {s['tau_fs']:g} fs, {s['nvt_time_fs'] / 1000:g} ps. A thermostat "
                "keeps the mean temperature but direct forces heat some degrees of "
                "freedom and the thermostat cools all of them: the species "
                "temperatures drift apart (the paper's Table 2). Deviations from the "
                "target in K.",
            )
        )
        blocks += _md_table(data, "nvt")
        if figures.get("nvt"):
            blocks.append(("img", figures["nvt"], "Temperature per species in NVT."))
        blocks += _errors_block(data, "nvt")

    if "relax" in stages:
        blocks.append(("h2", "Geometry optimisation"))
        blocks.append(
            (
                "p",
                f"Fraction of structures (displaced by {s['relax_sigma_A']} Å) "
                f"converged to fmax {s['relax_fmax']} eV/Å within {s['relax_steps']} "
                "steps (the paper's Table 7). Optimisers assume the forces are the "
                "gradient of an energy: with direct forces they can stall.",
            )
        )
        rows = []
        for name, model in data["models"].items():
            relax = model.get("relax")
            if not relax or "error" in relax:
                continue
            for mode, per in relax["fractions"].items():
                for opt, fraction in per.items():
                    rows.append(
                        [
                            name,
                            mode,
                            opt,
                            _fmt(fraction),
                            _fmt(relax["mean_steps"][mode][opt]),
                        ]
                    )
        if rows:
            blocks.append(
                (
                    "table",
                    ["model", "forces", "optimiser", "converged", "mean steps"],
                    rows,
                )
            )
        blocks += _errors_block(data, "relax")
    return blocks


def _md_table(data: Dict[str, Any], section: str) -> List:
    rows = []
    species_keys: List[str] = []
    for model in data["models"].values():
        for run in (model.get(section) or {}).values():
            if isinstance(run, dict):
                for key in run:
                    if (
                        key.startswith("deviation_temperature_")
                        and key != "deviation_temperature_K"
                        and key not in species_keys
                    ):
                        species_keys.append(key)
    for name, model in data["models"].items():
        runs = model.get(section)
        if not runs or "error" in runs:
            continue
        for mode, run in runs.items():
            row = [name, mode, run["status"]]
            if section == "nve":
                row += [
                    _pm(
                        run["heating_rate_K_per_ps"], run["heating_rate_error_K_per_ps"]
                    ),
                    _pm(
                        run["drift_meV_per_atom_per_ps"],
                        run["drift_error_meV_per_atom_per_ps"],
                    ),
                ]
            else:
                row += [_fmt(run.get("deviation_temperature_K"))]
                row += [_fmt(run.get(key)) for key in species_keys]
            row += [_fmt(run["inner_steps_per_s"]), run["folder"]]
            rows.append(row)
    if not rows:
        return []
    headers = ["model", "forces", "status"]
    if section == "nve":
        headers += ["heating (K/ps)", "drift (meV/atom/ps)"]
    else:
        headers += ["ΔT (K)"] + [
            f"ΔT {key[len('deviation_temperature_') : -2]} (K)" for key in species_keys
        ]
    headers += ["steps/s", "run folder"]
    return [("table", headers, rows)]


def _errors_block(data: Dict[str, Any], section: str) -> List:
    rows = _error_rows(data, section)
    return [("table", ["model", "failed"], rows)] if rows else []


# -- rendering -----------------------------------------------------------------------
def render_markdown(blocks: Sequence) -> str:
    out: List[str] = []
    for block in blocks:
        kind = block[0]
        if kind == "h1":
            out.append(f"# {block[1]}\n")
        elif kind == "h2":
            out.append(f"## {block[1]}\n")
        elif kind == "p":
            out.append(f"{block[1]}\n")
        elif kind == "table":
            headers, rows = block[1], block[2]
            out.append("| " + " | ".join(headers) + " |")
            out.append("|" + "|".join("---" for _ in headers) + "|")
            for row in rows:
                cells = [str(c).replace("|", "/").replace("\n", " ") for c in row]
                out.append("| " + " | ".join(cells) + " |")
            out.append("")
        elif kind == "img":
            out.append(f"![{block[2]}]({block[1]})\n")
    return "\n".join(out) + "\n"


STYLE = """
body { font-family: sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; }
th { background: #f0f0f0; }
img { max-width: 100%; }
figcaption { font-size: 0.85em; color: #555; }
"""


def render_html(blocks: Sequence, folder: Path) -> str:
    out = [
        "<!DOCTYPE html>",
        "<html><head><meta charset='utf-8'><title>mtt-nc compare</title>",
        f"<style>{STYLE}</style></head><body>",
    ]
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2"):
            out.append(f"<{kind}>{html.escape(block[1])}</{kind}>")
        elif kind == "p":
            out.append(f"<p>{html.escape(block[1])}</p>")
        elif kind == "table":
            out.append("<table><tr>")
            out += [f"<th>{html.escape(str(h))}</th>" for h in block[1]]
            out.append("</tr>")
            for row in block[2]:
                cells = "".join(f"<td>{html.escape(str(c))}</td>" for c in row)
                out.append(f"<tr>{cells}</tr>")
            out.append("</table>")
        elif kind == "img":
            encoded = base64.b64encode((folder / block[1]).read_bytes()).decode()
            out.append(
                f"<figure><img alt='{html.escape(block[2])}' "
                f"src='data:image/png;base64,{encoded}'>"
                f"<figcaption>{html.escape(block[2])}</figcaption></figure>"
            )
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write_report(data: Dict[str, Any], folder: Path) -> Dict[str, Optional[str]]:
    """Figures, ``report.md`` and ``report.html`` in ``folder``; returns the figures."""
    figures = {}
    for key, plot in (("nve", plot_nve), ("nvt", plot_nvt), ("pairs", plot_pairs)):
        try:
            figures[key] = plot(data, folder)
        except Exception as error:  # a broken figure must not lose the report
            data["notes"].append(f"figure '{key}' failed: {error}")
            figures[key] = None
    blocks = build_blocks(data, figures)
    (folder / "report.md").write_text(render_markdown(blocks))
    (folder / "report.html").write_text(render_html(blocks, folder))
    return figures
