"""The figures of both reports (PNG, matplotlib): NVE, NVT and lambda per pair
(standard), species deviations (Table 2) and relaxation success (Table 7) (paper).
Each ``plot_*`` function reads the results dict (and the MD logs it points to) and
writes one PNG into the report folder: its file name, ``None`` with nothing to plot.
"""

from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

from ..dynamics.outputs import FILES as MD_FILES
from ..dynamics.outputs import read_log
from .nvt_reading import md_runs, thermostat_label
from .results import section_results

#: file name of each figure in the report folder
FIGURES = {
    "nve": "nve_temperature.png",
    "nvt": "nvt_temperature.png",
    "pairs": "lambda_pairs.png",
    "deviations": "table2_deviations.png",
    "success": "table7_success.png",
}

#: line style of each force mode (or head)
LINESTYLES = {"conservative": "-", "direct": "--", "mts": ":"}


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, outdir: Path, key: str, dpi: int) -> str:
    """``fig`` as the figure ``key`` in ``outdir``; its file name."""
    fig.tight_layout()
    fig.savefig(outdir / FIGURES[key], dpi=dpi)
    pyplot().close(fig)
    return FIGURES[key]


def _bars(ax, labels: List[str], ylabel: str) -> None:
    """The labels of the groups of bars of ``ax`` (one per label) and its y label."""
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, fontsize=7)
    ax.set_ylabel(ylabel)


def _md_runs(
    data: Dict[str, Any], section: str, outdir: Path
) -> Iterator[Tuple[str, str, List[Dict[str, float]]]]:
    """``(model, mode, log rows)`` of every MD run of ``section`` with a log file."""
    for run in data.get("nvt", []) if section == "nvt" else md_runs(data, section):
        log = outdir / run["folder"] / MD_FILES["log"]
        if log.is_file():
            yield run["model"], run["mode"], read_log(log)


def _look(name: str, key: str, index: int) -> Tuple[str, Dict[str, str]]:
    """Line style (of the force mode or head ``key``), colour and label of a curve."""
    return LINESTYLES.get(key, "-"), {
        "color": f"C{index % 10}",
        "label": f"{name} ({key})",
    }


def plot_nve(data: Dict[str, Any], outdir: Path) -> Optional[str]:
    """Temperature and conserved-energy change per atom against time, every NVE run."""
    runs = list(_md_runs(data, "nve", outdir))
    names, n_atoms = list(data["models"]), data["md_structure"]["n_atoms"]
    if not runs:
        return None
    fig, (top, bottom) = pyplot().subplots(2, 1, figsize=(7, 6), sharex=True)
    for name, mode, rows in runs:
        style, look = _look(name, mode, names.index(name))
        t = [r["time_fs"] / 1000 for r in rows]
        top.plot(t, [r["temperature_K"] for r in rows], style, **look)
        first = rows[0]["conserved_eV"]
        energy = [1000 * (r["conserved_eV"] - first) / n_atoms for r in rows]
        bottom.plot(t, energy, style, **look)
    top.set_ylabel("temperature (K)")
    top.set_title("NVE from the same start: conservative, direct and MTS forces")
    top.legend(fontsize=8)
    bottom.set_ylabel("total energy change (meV/atom)")
    bottom.set_xlabel("time (ps)")
    return save(fig, outdir, "nve", dpi=120)


def plot_nvt(data: Dict[str, Any], outdir: Path) -> Optional[str]:
    """Temperature per species against time in the NVT (SVR) runs, one panel a run."""
    runs = list(_md_runs(data, "nvt", outdir))
    if not runs:
        return None
    target = data["settings"]["temperature_K"]
    n = len(runs)
    cols = min(n, 3)
    rows_n = (n + cols - 1) // cols
    fig, axes = pyplot().subplots(
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
    return save(fig, outdir, "nvt", dpi=110)


def plot_pairs(data: Dict[str, Any], outdir: Path) -> Optional[str]:
    """lambda_ij against distance for every model and head (the paper's Figure 1)."""
    curves = []
    for name, heads in section_results(data, "antisymmetry"):
        for head, result in heads.items():
            bins = result.get("pair_bins")
            if bins and bins.get("r_center"):
                curves.append((name, head, bins))
    if not curves:
        return None
    fig, (top, bottom) = pyplot().subplots(2, 1, figsize=(7, 6), sharex=True)
    for k, (name, head, bins) in enumerate(curves):
        style, look = _look(name, head, k)
        block = [b if b > 0 else float("nan") for b in bins["mean_block_norm"]]
        top.plot(bins["r_center"], block, style, **look)
        r, lam = bins["r_center"], bins["lambda"]
        bottom.plot(r, lam, style + "o", ms=3, color=look["color"])
    top.set_yscale("log")
    top.set_ylabel(r"mean $|J_{ij}|$ (eV/$\AA^2$)")
    top.legend(fontsize=8)
    bottom.set_ylabel(r"$\lambda_{ij}$")
    bottom.set_xlabel(r"$r_{ij}$ ($\AA$)")
    bottom.set_ylim(-0.02, 1.02)
    top.set_title("Force Jacobian blocks against distance")
    return save(fig, outdir, "pairs", dpi=120)


def plot_deviations(data: Dict[str, Any], folder: Path) -> Optional[str]:
    """Per-species deviation from the target (K), with block-average error bars, one
    group of bars per completed NVT run of the paper protocol."""
    runs = [
        r
        for r in data["nvt"]
        if r.get("status") == "completed" and r.get("equipartition")
    ]
    if not runs:
        return None
    symbols = sorted({s for r in runs for s in r["equipartition"].get("species", {})})
    fig, ax = pyplot().subplots(figsize=(max(6.0, 0.9 * len(runs) + 2), 4.0))
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
    labels = [
        f"{r['model']}\n{r['mode']}\n{thermostat_label(r['ensemble'], r['tau_fs'])}"
        for r in runs
    ]
    _bars(ax, labels, "T_species - target (K)")
    ax.legend()
    return save(fig, folder, "deviations", dpi=110)


def plot_success(data: Dict[str, Any], folder: Path) -> Optional[str]:
    """Success rate (%) of every (model, head, phase, optimiser) of the paper
    protocol's relaxations, with its 95% interval."""
    bars = []
    for record in data["relax"]:
        for head, per in record["summary"].items():
            for optimizer, s in per.items():
                label = f"{record['model']} {head}\n{record['kind']} {optimizer}"
                bars.append((label, s["rate"], s["interval_95"]))
    if not bars:
        return None
    fig, ax = pyplot().subplots(figsize=(max(6.0, 0.8 * len(bars) + 2), 4.0))
    rates = [100 * b[1] for b in bars]
    low = [100 * (b[1] - b[2][0]) for b in bars]
    high = [100 * (b[2][1] - b[1]) for b in bars]
    ax.bar(range(len(bars)), rates, yerr=[low, high], capsize=3, color="tab:blue")
    _bars(ax, [b[0] for b in bars], "converged (%), 95% interval")
    ax.set_ylim(0, 105)
    return save(fig, folder, "success", dpi=110)


#: the figures of each protocol's report, in the order they are drawn
PLOTS = {
    "standard": (("nve", plot_nve), ("nvt", plot_nvt), ("pairs", plot_pairs)),
    "paper": (("deviations", plot_deviations), ("success", plot_success)),
}


def write_figures(
    data: Dict[str, Any], folder: Path, protocol: str
) -> Dict[str, Optional[str]]:
    """Every figure of ``protocol`` into ``folder``: file name per figure key, ``None``
    if not drawn.

    A figure that fails is recorded in ``data["notes"]`` and left out: a broken figure
    must not lose the report.
    """
    figures: Dict[str, Optional[str]] = {}
    for key, plot in PLOTS[protocol]:
        try:
            figures[key] = plot(data, folder)
        except Exception as error:
            data["notes"].append(f"figure '{key}' failed: {error}")
            figures[key] = None
    return figures
