"""The report of the benchmark: markdown tables and a figure, rebuilt from the
stored results into the generated part of a markdown file (:func:`write_report`)."""

import os
from pathlib import Path
from typing import List, Optional

import numpy as np

from .plan import DATASETS
from .results import (
    METRICS,
    conservative_curve,
    cost_summary,
    epoch_table,
    load_results,
    mean_curve,
    strategy_label,
    strategy_values,
    summarise,
)
from .training import write_json

BEGIN = "<!-- pretrain_finetune.py: begin of the generated part -->"
END = "<!-- pretrain_finetune.py: end of the generated part -->"


def format_range(value: Optional[dict], digits: int = 1) -> str:
    if value is None:
        return "-"
    if value["min"] == value["max"]:
        return f"{value['mean']:.{digits}f}"
    return (
        f"{value['mean']:.{digits}f} ({value['min']:.{digits}f}-"
        f"{value['max']:.{digits}f})"
    )


def format_ratio(tta: Optional[dict]) -> str:
    if tta is None:
        return "-"
    text = f"{tta['ratio']:.2f}" if tta["reached"] else f"> {tta['ratio']:.2f}"
    finite = [r for r in tta["per_seed"] if r is not None]
    if len(tta["per_seed"]) > 1:
        if not finite:
            text += " (never)"
        else:
            high = (
                f"{max(finite):.2f}" if len(finite) == len(tta["per_seed"]) else "never"
            )
            text += f" ({min(finite):.2f}-{high})"
    return text


def markdown(summary: dict, settings: dict, cost: dict, epochs: List[dict], figure):
    """The generated part of the report."""
    lines = [
        f"Settings: budgets {', '.join(f'{b:g}' for b in settings['budgets_min'])} "
        f"min; f = {', '.join(f'{f:g}' for f in settings['fractions'])}; seeds "
        f"{', '.join(str(s) for s in settings['seeds'])}; fine-tuned as "
        f"{' and '.join(settings['finetune'])}; {settings['threads']} thread(s) per "
        f"`mtt train`, one at a time; learning rate {settings['learning_rate']:g} "
        f"(fine-tuning {settings['finetune_learning_rate']:g}, constant after a "
        f"1-epoch warm-up); pet_m's `direct_forces_weight` "
        f"{settings['direct_forces_weight']:g} (conservative forces weight 1).",
        "",
        f"CPU time of these results: {cost['cpu_s'] / 3600:.2f} h "
        f"({cost['training_cpu_s'] / 3600:.2f} h in {cost['runs']} `mtt train` "
        f"runs, {cost['evaluation_cpu_s'] / 60:.1f} min for {cost['evaluations']} "
        f"checkpoint evaluations); wall time {cost['wall_s'] / 3600:.2f} h on "
        f"{os.cpu_count()} cores."
        + (
            ""
            if cost["load_max"] is None
            else f" 1-minute load average when the runs started: median "
            f"{cost['load_median']:.1f}, max {cost['load_max']:.1f}"
            + (
                " (other work shared the cores: the times are inflated)."
                if cost["load_max"] > (os.cpu_count() or 1) - settings["threads"] + 1
                else "."
            )
        ),
        "",
        "Test-set errors of the conservative forces (-dE/dr) and energies at each "
        "wall-clock budget: seed mean (min-max over seeds). Time-to-accuracy: the "
        "wall time conservative training (a) needs to reach the error strategy (b) "
        "reaches within the budget, divided by the budget (from the seed-mean "
        "curves; in brackets per seed). Above 1, pre-training pays: (a) needs that "
        "many times the budget; '> x' means (a) did not reach it within its whole "
        "run.",
        "",
    ]
    if figure is not None:
        lines += [f"![error against wall-clock time]({figure.name})", ""]
    for name, data in summary.items():
        lines += [
            f"### {DATASETS[name].description}",
            "",
            "| budget min | strategy | force RMSE meV/A | energy MAE meV/atom | "
            "energy RMSE meV/atom | seeds | time-to-accuracy, forces | "
            "time-to-accuracy, energy |",
            "|---:|---|---:|---:|---:|---:|---:|---:|",
        ]
        for row in data["rows"]:
            lines.append(
                f"| {row['budget_min']:g} | "
                f"{strategy_label(row['arch'], row['fraction'])} | "
                f"{format_range(row['force_rmse'])} | "
                f"{format_range(row['energy_mae'], 2)} | "
                f"{format_range(row['energy_rmse'], 2)} | {len(row['seeds'])} | "
                f"{format_ratio(row.get('tta_force_rmse'))} | "
                f"{format_ratio(row.get('tta_energy_mae'))} |"
            )
        lines.append("")
        for arch, best in data["best"].items():
            per_budget = ", ".join(
                f"{f:g} at {b:g} min" for b, f in best["per_budget"].items()
            )
            if best["overall"] is not None:
                relative = ", ".join(
                    f"f {f:g}: {v:.2f}"
                    for f, v in sorted(best["relative_force_rmse"].items())
                )
                lines.append(
                    f"- {arch}: best f overall **{best['overall']:g}** (force RMSE "
                    f"relative to (a), mean over budgets: {relative}); per budget: "
                    f"{per_budget or '-'}."
                )
            else:
                lines.append(f"- {arch}: best f per budget: {per_budget or '-'}.")
        lines.append("")
    if epochs:
        lines += [
            "Cost of an epoch (median over runs, with a checkpoint every epoch) and "
            "time from the start of `mtt train` to its first checkpoint (start-up "
            "and one epoch):",
            "",
            "| dataset | run | s per epoch | first checkpoint s |",
            "|---|---|---:|---:|",
        ]
        for row in epochs:
            spe = row["seconds_per_epoch"]
            first = row["first_checkpoint_s"]
            lines.append(
                f"| {row['dataset']} | {row['run']} | "
                f"{'-' if spe is None else f'{spe:.2f}'} | "
                f"{'-' if first is None else f'{first:.1f}'} |"
            )
        lines.append("")
    return "\n".join(lines)


def make_figure(results: dict, settings: dict, path: Path) -> Optional[Path]:
    """Error against wall-clock minutes, one curve per strategy, seed min-max."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    names = [n for n in settings["datasets"] if n in results]
    if not names:
        return None
    metrics = ["force_rmse", "energy_mae"]
    figure, axes = plt.subplots(
        len(names), 2, figsize=(11, 4.2 * len(names)), squeeze=False
    )
    colours = plt.cm.viridis(np.linspace(0.15, 0.85, len(settings["fractions"])))
    styles = {"pet_m": ("-", "o"), "pet": ("--", "s")}
    budgets = settings["budgets_min"]
    for row, name in enumerate(names):
        seeds = results[name]
        for column, metric in enumerate(metrics):
            axis = axes[row][column]
            curves = conservative_curve(seeds, metric)
            if curves:
                times, mean = mean_curve(curves)
                stack = np.array([c[1] for c in curves.values()], dtype=float)
                minutes = np.array(times) / 60.0
                axis.plot(minutes, mean, color="black", label=strategy_label("", None))
                if len(curves) > 1:
                    axis.fill_between(
                        minutes,
                        np.nanmin(stack, axis=0),
                        np.nanmax(stack, axis=0),
                        color="black",
                        alpha=0.15,
                        linewidth=0,
                    )
            offsets = np.linspace(-0.02, 0.02, len(settings["fractions"]) * 2)
            for a, arch in enumerate(settings["finetune"]):
                line, marker = styles[arch]
                for k, fraction in enumerate(settings["fractions"]):
                    xs, ys, low, high = [], [], [], []
                    for budget in budgets:
                        values = strategy_values(seeds, arch, fraction, budget)
                        data = [v[metric] for v in values.values()]
                        if not data:
                            continue
                        shift = 1 + offsets[a * len(settings["fractions"]) + k]
                        xs.append(budget * shift)
                        ys.append(np.mean(data))
                        low.append(np.mean(data) - np.min(data))
                        high.append(np.max(data) - np.mean(data))
                    if xs:
                        axis.errorbar(
                            xs,
                            ys,
                            yerr=[low, high],
                            linestyle=line,
                            marker=marker,
                            color=colours[k],
                            capsize=3,
                            label=strategy_label(arch, fraction),
                        )
            label, unit = METRICS[metric]
            axis.set_xlabel("wall-clock time (min), start-up included")
            axis.set_ylabel(f"test {label} ({unit})")
            axis.set_yscale("log")
            if max(budgets) >= 2 * min(budgets):
                axis.set_xscale("log")
                axis.xaxis.set_major_locator(
                    ticker.FixedLocator([0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120])
                )
                axis.xaxis.set_minor_formatter(ticker.NullFormatter())
            axis.xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
            axis.yaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
            axis.yaxis.set_minor_formatter(ticker.FormatStrFormatter("%g"))
            axis.tick_params(which="minor", labelsize=7)
            axis.set_title(f"{name}: conservative {label}")
            axis.grid(alpha=0.3, which="both")
            if row == 0 and column == 0:
                axis.legend(fontsize=7, loc="lower left")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def write_report(out: Path, settings: dict, doc: Path) -> str:
    """Rebuild the tables and the figure from stored results into ``doc``; return
    the generated markdown."""
    results = load_results(out, settings)
    summary = summarise(results, settings)
    cost = cost_summary(results)
    figure = make_figure(results, settings, doc.with_suffix(".png"))
    text = markdown(summary, settings, cost, epoch_table(results), figure)
    write_json(out / "summary.json", {"summary": summary, "cost": cost})
    block = f"{BEGIN}\n\n{text}\n{END}"
    if doc.exists():
        old = doc.read_text()
        if BEGIN in old and END in old:
            head, rest = old.split(BEGIN, 1)
            tail = rest.split(END, 1)[1]
            new = head + block + tail
        else:
            new = old.rstrip("\n") + "\n\n" + block + "\n"
    else:
        new = (
            "# Does direct pre-training pay?\n\n"
            "Time-to-accuracy of pet_nc -> pet_m (and stock pet) fine-tuning "
            "against conservative training at equal wall-clock budgets, from "
            "`benchmarks/pretrain_finetune.py` (its docstring says how the times "
            f"are measured). Results folder: `{out}`.\n\n{block}\n\n"
            "## Discussion\n\n(to be written)\n"
        )
    doc.write_text(new)
    return text
