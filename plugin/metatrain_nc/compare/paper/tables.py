"""Table 2 and Table 7 of the paper protocol, with resolved and unresolved marks.

A number is *resolved* when it lies beyond ``sigma`` standard errors from what it is
compared with (the target temperature, zero for a species split, 1 for a diffusion
ratio); otherwise it is marked as within its error, and the report says so instead of
reading a difference into it.
"""

import math
from typing import Any, Dict, List, Optional, Sequence

from ..sections import fmt, fmt_error
from . import paper_numbers

Row = List[str]


def verdict(value: Optional[float], error: Optional[float], sigma: float) -> str:
    """``"resolved (4.1σ)"``, ``"within error (0.8σ)"`` or ``"-"``."""
    if value is None or error is None or not math.isfinite(error):
        return "-"
    if error == 0:
        return "resolved" if value != 0 else "within error"
    ratio = abs(value) / error
    word = "resolved" if ratio > sigma else "within error"
    return f"{word} ({ratio:.1f}σ)"


def thermostat_label(ensemble: str, tau_fs: float) -> str:
    name = {"svr": "SVR", "langevin": "Langevin"}.get(ensemble, ensemble)
    return f"{name} τ={tau_fs:g} fs"


def species_of(runs: Sequence[Dict[str, Any]]) -> List[str]:
    """Species symbols seen in the runs' equipartition results, in order."""
    seen: List[str] = []
    for run in runs:
        for symbol in (run.get("equipartition") or {}).get("species", {}):
            if symbol not in seen:
                seen.append(symbol)
    return seen


def diffusion_ratio(
    run: Dict[str, Any], reference: Optional[Dict[str, Any]], symbol: str
) -> Optional[Dict[str, float]]:
    """``D_reference / D`` for one species with its propagated error."""
    if reference is None or reference is run:
        return None
    mine = (run.get("diffusion") or {}).get(symbol)
    ref = (reference.get("diffusion") or {}).get(symbol)
    if not mine or not ref or mine["D_A2_per_ps"] <= 0 or ref["D_A2_per_ps"] <= 0:
        return None
    ratio = ref["D_A2_per_ps"] / mine["D_A2_per_ps"]
    relative = math.hypot(
        ref["error_A2_per_ps"] / ref["D_A2_per_ps"],
        mine["error_A2_per_ps"] / mine["D_A2_per_ps"],
    )
    return {"ratio": ratio, "error": ratio * relative}


def reference_run(
    runs: Sequence[Dict[str, Any]], run: Dict[str, Any]
) -> Optional[Dict[str, Any]]:
    """The run that diffusion is compared with: the same model and force mode under
    the global (SVR) thermostat, which leaves the dynamics alone."""
    for other in runs:
        if (
            other["model"] == run["model"]
            and other["mode"] == run["mode"]
            and other["ensemble"] == "svr"
            and other.get("diffusion")
        ):
            return other
    return None


def table_2_rows(runs: Sequence[Dict[str, Any]], sigma: float) -> List[Row]:
    """One row per NVT run: deviations from the target (overall and per species) with
    block-average errors, the largest species split and its verdict, diffusion per
    species and its slow-down against the SVR run, and the paper's numbers."""
    symbols = species_of(runs)
    rows = []
    for run in runs:
        eq = run.get("equipartition") or {}
        overall = eq.get("temperature") or {}
        if run.get("status") != "completed":
            status = run.get("status", "-")
            rows.append(
                [
                    run["model"],
                    run["mode"],
                    thermostat_label(run["ensemble"], run["tau_fs"]),
                ]
                + [status] * (len(symbols) + 3)
                + ["-"] * (2 * len(symbols))
                + [
                    paper_numbers.table_2(run["mode"], run["ensemble"], run["tau_fs"])
                    or "-"
                ]
            )
            continue
        row = [
            run["model"],
            run["mode"],
            thermostat_label(run["ensemble"], run["tau_fs"]),
            fmt_error(overall.get("deviation"), overall.get("error")),
        ]
        target = overall.get("target")
        for symbol in symbols:
            species = eq.get("species", {}).get(symbol)
            if not species or target is None:
                row.append("-")
                continue
            row.append(fmt_error(species["mean"] - target, species.get("error")))
        pair = eq.get("max_split_pair")
        split = eq.get("splits", {}).get(pair) if pair else None
        if split:
            row.append(f"{pair}: {fmt_error(split['difference'], split.get('error'))}")
            row.append(verdict(split["difference"], split.get("error"), sigma))
        else:
            row += ["-", "-"]
        reference = reference_run(runs, run)
        for symbol in symbols:
            d = (run.get("diffusion") or {}).get(symbol)
            row.append(fmt_error(d["D_A2_per_ps"], d["error_A2_per_ps"]) if d else "-")
        for symbol in symbols:
            ratio = diffusion_ratio(run, reference, symbol)
            if ratio is None:
                row.append("-")
            else:
                mark = verdict(ratio["ratio"] - 1.0, ratio["error"], sigma)
                row.append(f"{fmt_error(ratio['ratio'], ratio['error'])}x, {mark}")
        row.append(
            paper_numbers.table_2(run["mode"], run["ensemble"], run["tau_fs"]) or "-"
        )
        rows.append(row)
    return rows


def table_2_headers(runs: Sequence[Dict[str, Any]]) -> List[str]:
    symbols = species_of(runs)
    return (
        ["model", "forces", "thermostat", "T - target (K)"]
        + [f"T_{s} - target (K)" for s in symbols]
        + ["largest split (K)", "split"]
        + [f"D_{s} (Å²/ps)" for s in symbols]
        + [f"slow-down of D_{s} vs SVR" for s in symbols]
        + ["paper: all / H / O (K)"]
    )


def table_7_rows(sets: Sequence[Dict[str, Any]]) -> List[Row]:
    """One row per model, head, phase and optimiser: successes, the rate with its
    Wilson 95% interval, why the others stopped, the round-off floor, the paper."""
    rows = []
    for record in sets:
        for head, per in record["summary"].items():
            floor = record["round_off_floor_eV_per_A"].get(head)
            above = record["floor_above_threshold"].get(head)
            floor_cell = fmt(floor)
            if above:
                floor_cell += " (above fmax)"
            for optimizer, s in per.items():
                low, high = s["interval_95"]
                failures = {
                    k: v for k, v in s["stop_reasons"].items() if k != "converged"
                }
                rows.append(
                    [
                        record["model"],
                        head,
                        f"{record['kind']} ({record['fmax_eV_per_A']:g} eV/Å)",
                        optimizer,
                        f"{s['successes']}/{s['trials']}",
                        f"{100 * s['rate']:.0f}% [{100 * low:.0f}, {100 * high:.0f}]",
                        ", ".join(f"{k} {v}" for k, v in failures.items()) or "-",
                        fmt(s["mean_steps"]),
                        f"{record['dtype']}, {floor_cell}",
                        paper_numbers.table_7(head, record["kind"], optimizer) or "-",
                    ]
                )
    return rows


TABLE_7_HEADERS = [
    "model",
    "forces",
    "structures (fmax)",
    "optimiser",
    "converged",
    "rate [95% CI]",
    "failures: why they stopped",
    "mean steps",
    "dtype, round-off floor (eV/Å)",
    "paper (L-BFGS)",
]


def findings(runs: Sequence[Dict[str, Any]], sigma: float) -> List[str]:
    """Plain sentences: which species splits are resolved, per thermostat."""
    sentences = []
    by_thermostat: Dict[str, List[Dict[str, Any]]] = {}
    for run in runs:
        if run.get("status") == "completed":
            key = thermostat_label(run["ensemble"], run["tau_fs"])
            by_thermostat.setdefault(key, []).append(run)
    for label, group in by_thermostat.items():
        resolved, unresolved = [], []
        for run in group:
            eq = run.get("equipartition") or {}
            pair = eq.get("max_split_pair")
            split = eq.get("splits", {}).get(pair) if pair else None
            if not split or split.get("error") is None:
                continue
            name = f"{run['model']} {run['mode']}"
            text = f"{name} ({pair} {fmt_error(split['difference'], split['error'])} K)"
            if abs(split["difference"]) > sigma * split["error"]:
                resolved.append(text)
            else:
                unresolved.append(text)
        if not resolved:
            sentences.append(
                f"{label}: no species split is resolved beyond {sigma:g} standard "
                "errors: " + "; ".join(unresolved) + "."
            )
        else:
            sentences.append(
                f"{label}: resolved splits (beyond {sigma:g} standard errors): "
                + "; ".join(resolved)
                + (
                    ". Within error: " + "; ".join(unresolved) + "."
                    if unresolved
                    else "."
                )
            )
    return sentences
