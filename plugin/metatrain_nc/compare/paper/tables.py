"""Table 2 and Table 7 of the paper protocol, with resolved and unresolved marks.

A number is *resolved* when it lies beyond ``sigma`` standard errors from what it is
compared with (the target temperature, zero for a species split, 1 for a diffusion
ratio); otherwise it is marked as within its error, and the report says so instead of
reading a difference into it.
"""

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

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


def relaxation_reference(
    sets: Sequence[Dict[str, Any]], record: Dict[str, Any], head: str
) -> Optional[Tuple[Dict[str, Any], str]]:
    """The conservative relaxations a direct head's are read against: the same
    model's conservative head if it has one, else the first model with a conservative
    head in the same phase; ``None`` for a conservative head or without one."""
    if head == "conservative":
        return None
    if "conservative" in record["summary"]:
        return record, "conservative"
    for other in sets:
        if other["kind"] == record["kind"] and "conservative" in other["summary"]:
            return other, "conservative"
    return None


def rate_difference(
    s: Dict[str, Any], reference: Dict[str, Any]
) -> Tuple[float, float, float, str]:
    """``(difference, low, high, verdict)`` of two success rates (fractions; Newcombe
    95% interval): 'resolved' when the interval excludes 0."""
    from ...dynamics.relax import difference_interval

    difference, low, high = difference_interval(
        s["successes"], s["trials"], reference["successes"], reference["trials"]
    )
    word = "resolved" if low > 0 or high < 0 else "within error"
    return difference, low, high, word


def _points(difference: float, low: float, high: float) -> str:
    return f"{100 * difference:+.0f} [{100 * low:+.0f}, {100 * high:+.0f}]"


def conservative_fmax_where_converged(
    record: Dict[str, Any], head: str, optimizer: str
) -> Optional[float]:
    """Median of the conservative forces' fmax (eV/A) at the points where ``head``
    converged with ``optimizer``: how far a direct head's stationary points are from
    the energy's. ``None`` for a conservative head, a model without a trained
    conservative head (``pet_nc``: its -dE/dr is not a force model), or no
    convergence."""
    if head == "conservative" or "conservative" not in record["summary"]:
        return None
    values = [
        r["conservative_fmax_final"]
        for r in record.get("records", [])
        if r["forces"] == head
        and r["optimizer"] == optimizer
        and r["converged"]
        and r.get("conservative_fmax_final") is not None
    ]
    if not values:
        return None
    values.sort()
    middle = len(values) // 2
    if len(values) % 2:
        return float(values[middle])
    return 0.5 * float(values[middle - 1] + values[middle])


def table_7_rows(sets: Sequence[Dict[str, Any]]) -> List[Row]:
    """One row per model, head, phase and optimiser: successes, the rate with its
    Wilson 95% interval, a direct head's difference from the conservative rate (with
    its 95% interval and whether it is resolved), why the others stopped, the
    round-off floor, the paper."""
    rows = []
    for record in sets:
        for head, per in record["summary"].items():
            floor = record["round_off_floor_eV_per_A"].get(head)
            above = record["floor_above_threshold"].get(head)
            floor_cell = fmt(floor)
            if above:
                floor_cell += " (above fmax)"
            reference = relaxation_reference(sets, record, head)
            for optimizer, s in per.items():
                low, high = s["interval_95"]
                failures = {
                    k: v for k, v in s["stop_reasons"].items() if k != "converged"
                }
                against = "-"
                if reference is not None and optimizer in reference[0]["summary"].get(
                    reference[1], {}
                ):
                    ref = reference[0]["summary"][reference[1]][optimizer]
                    difference, d_low, d_high, word = rate_difference(s, ref)
                    against = (
                        f"{_points(difference, d_low, d_high)} vs "
                        f"{reference[0]['model']} {reference[1]}, {word}"
                    )
                rows.append(
                    [
                        record["model"],
                        head,
                        f"{record['kind']} ({record['fmax_eV_per_A']:g} eV/Å)",
                        optimizer,
                        f"{s['successes']}/{s['trials']}",
                        f"{100 * s['rate']:.0f}% [{100 * low:.0f}, {100 * high:.0f}]",
                        against,
                        ", ".join(f"{k} {v}" for k, v in failures.items()) or "-",
                        fmt(conservative_fmax_where_converged(record, head, optimizer)),
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
    "direct - conservative (points) [95% CI]",
    "failures: why they stopped",
    "conservative fmax where converged (median, eV/Å)",
    "mean steps",
    "dtype, round-off floor (eV/Å)",
    "paper (L-BFGS)",
]


def relaxation_findings(sets: Sequence[Dict[str, Any]]) -> List[str]:
    """One sentence per phase and optimiser: each direct head's success rate against
    its conservative reference, resolved only when the 95% interval of the
    difference excludes 0 (and how many trials would resolve it otherwise)."""
    sentences = []
    kinds = []
    for record in sets:
        if record["kind"] not in kinds:
            kinds.append(record["kind"])
    for kind in kinds:
        optimizers: List[str] = []
        for record in sets:
            if record["kind"] != kind:
                continue
            for per in record["summary"].values():
                optimizers += [o for o in per if o not in optimizers]
        for optimizer in optimizers:
            parts = []
            for record in sets:
                if record["kind"] != kind:
                    continue
                for head, per in record["summary"].items():
                    reference = relaxation_reference(sets, record, head)
                    if reference is None or optimizer not in per:
                        continue
                    ref = reference[0]["summary"][reference[1]].get(optimizer)
                    if ref is None:
                        continue
                    s = per[optimizer]
                    difference, low, high, word = rate_difference(s, ref)
                    parts.append(
                        f"{record['model']} {head} {100 * s['rate']:.0f}% against "
                        f"{reference[0]['model']} {reference[1]} "
                        f"{100 * ref['rate']:.0f}%: "
                        f"{_points(difference, low, high)} points, {word}"
                    )
            if parts:
                sentences.append(
                    f"{kind.capitalize()} phase, {optimizer} (difference of success "
                    "rates with its 95% interval; resolved when it excludes 0): "
                    + "; ".join(parts)
                    + "."
                )
    return sentences


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
