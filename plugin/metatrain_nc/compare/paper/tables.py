"""Table 2 of the paper protocol (thermostats), with resolved and unresolved marks
(Table 7, relaxations: :mod:`.relaxation_tables`).

A number is *resolved* when it lies beyond ``sigma`` standard errors from what it is
compared with (the target temperature, zero for a species split, 1 for a diffusion
ratio); otherwise it is marked as within its error, and the report says so instead of
reading a difference into it.
"""

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..render import Row, fmt_error
from . import paper_numbers


def verdict(value: Optional[float], error: Optional[float], sigma: float) -> str:
    """``"resolved (4.1σ)"``, ``"within error (0.8σ)"``, ``"-"`` (no number or no
    error) or ``"nan"`` (a non-finite one: computed and wrong, not missing)."""
    if value is None or error is None:
        return "-"
    if not (math.isfinite(value) and math.isfinite(error)):
        return "nan"
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


def largest_split(run: Dict[str, Any]) -> Optional[Tuple[str, Dict[str, Any]]]:
    """``(pair, split)`` of the run's largest species split (``None`` if none)."""
    eq = run.get("equipartition") or {}
    pair = eq.get("max_split_pair")
    split = eq.get("splits", {}).get(pair) if pair else None
    return (pair, split) if split else None


def conservative_run(
    runs: Sequence[Dict[str, Any]], run: Dict[str, Any]
) -> Optional[Dict[str, Any]]:
    """The conservative run a direct or MTS run is read against: the same model's
    under the same thermostat, else another model's (``None`` for a conservative run
    or when there is none)."""
    if run["mode"] == "conservative":
        return None
    candidates = [
        r
        for r in runs
        if r["mode"] == "conservative"
        and r["ensemble"] == run["ensemble"]
        and r["tau_fs"] == run["tau_fs"]
        and r.get("status") == "completed"
    ]
    for other in candidates:
        if other["model"] == run["model"]:
            return other
    return candidates[0] if candidates else None


def split_against_conservative(
    runs: Sequence[Dict[str, Any]], run: Dict[str, Any]
) -> Optional[Dict[str, Any]]:
    """The run's split minus the conservative run's split of the same pair, with the
    errors combined: what the direct forces add, once a slow equilibration that the
    conservative run shares is taken out."""
    reference = conservative_run(runs, run)
    mine = largest_split(run)
    if reference is None or mine is None:
        return None
    pair, split = mine
    other = (reference.get("equipartition") or {}).get("splits", {}).get(pair)
    if not other or split.get("error") is None or other.get("error") is None:
        return None
    return {
        "pair": pair,
        "reference": f"{reference['model']} conservative",
        "difference": split["difference"] - other["difference"],
        "error": math.hypot(split["error"], other["error"]),
    }


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
                + ["-"] * (2 * len(symbols) + 1)
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
        against = split_against_conservative(runs, run)
        if against is None:
            row.append("-")
        else:
            mark = verdict(against["difference"], against["error"], sigma)
            row.append(
                f"{fmt_error(against['difference'], against['error'])} "
                f"(vs {against['reference']}), {mark}"
            )
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
        + ["largest split (K)", "split", "split - conservative split (K)"]
        + [f"D_{s} (Å²/ps)" for s in symbols]
        + [f"slow-down of D_{s} vs SVR" for s in symbols]
        + ["paper: all / H / O (K)"]
    )


def findings(runs: Sequence[Dict[str, Any]], sigma: float) -> List[str]:
    """Plain sentences: which species splits are resolved, per thermostat; a resolved
    split of a conservative run means the runs are not equilibrated (or the step is
    too long), and the direct and MTS runs are then also read against it."""
    sentences = []
    by_thermostat: Dict[str, List[Dict[str, Any]]] = {}
    for run in runs:
        if run.get("status") == "completed":
            key = thermostat_label(run["ensemble"], run["tau_fs"])
            by_thermostat.setdefault(key, []).append(run)
    for label, group in by_thermostat.items():
        resolved, unresolved = [], []
        for run, text in zip(group, _texts(group), strict=True):
            if text is None:
                continue
            split = largest_split(run)[1]
            if abs(split["difference"]) > sigma * split["error"]:
                resolved.append(text)
            else:
                unresolved.append(text)
        conservative = [
            text
            for run, text in zip(group, _texts(group), strict=True)
            if run["mode"] == "conservative" and text in resolved
        ]
        if conservative:
            sentences.append(
                f"{label}: the conservative run(s) {'; '.join(conservative)} have a "
                "resolved split, which exact conservative dynamics cannot have at "
                "equilibrium: these runs are not equilibrated (or the time step is "
                "too long), so a direct run's split counts only beyond the "
                "conservative one ('split - conservative split')."
            )
            added = []
            for run in group:
                against = split_against_conservative(group, run)
                if against is not None:
                    added.append(
                        f"{run['model']} {run['mode']} "
                        f"{fmt_error(against['difference'], against['error'])} K, "
                        f"{verdict(against['difference'], against['error'], sigma)}"
                    )
            if added:
                sentences.append(
                    f"{label}, against the conservative split: "
                    + "; ".join(added)
                    + "."
                )
            continue
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


def _texts(group: Sequence[Dict[str, Any]]) -> List[Optional[str]]:
    """``"model mode (A-B difference ± error K)"`` per run (``None`` without error)."""
    texts: List[Optional[str]] = []
    for run in group:
        found = largest_split(run)
        if found is None or found[1].get("error") is None:
            texts.append(None)
            continue
        pair, split = found
        value = fmt_error(split["difference"], split["error"])
        texts.append(f"{run['model']} {run['mode']} ({pair} {value} K)")
    return texts
