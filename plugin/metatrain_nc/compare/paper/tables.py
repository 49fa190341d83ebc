"""The paper protocol's tables, with resolved and unresolved marks: Table 2
(thermostats: species temperatures, their splits read against the conservative run
with :mod:`..nvt_reading`, diffusion and its slow-down) and Table 7 (relaxations:
success rates with Wilson 95% intervals, each direct head's rate read against the
conservative one with its Newcombe 95% interval, resolved only when it excludes 0,
why failures stopped, and how far a direct relaxation ends from a minimum of the
energy); the paper's numbers beside ours."""

import math
import statistics
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from ...dynamics.relax import difference_interval, direct_endpoints
from ..nvt_reading import (
    Run,
    largest_split,
    split_against_conservative,
    thermostat_label,
    verdict,
)
from ..render import Row, fmt, fmt_error

# -- the published numbers set beside ours (Bigi, Langer, Ceriotti, ICML 2025) -----
#: Table 2 (bulk water, 300 K): (mode, ensemble, tau in fs) -> deviation of the mean
#: temperature from the target in K, (overall, H, O); conservative forces are PET-C's,
#: direct PET-NC's, ``mts`` PET-M's with multiple time stepping (M = 8)
PAPER_TABLE_2: Dict[Tuple[str, str, float], Tuple[float, float, float]] = {
    ("conservative", "langevin", 100.0): (0.1, 0.0, 0.3),
    ("direct", "langevin", 1000.0): (12.8, 11.2, 16.2),
    ("direct", "langevin", 100.0): (1.4, 1.3, 1.6),
    ("direct", "langevin", 10.0): (0.1, 0.0, 0.2),
    ("conservative", "svr", 10.0): (0.1, -0.4, 1.0),
    ("direct", "svr", 10.0): (0.3, -4.4, 9.9),
    ("mts", "svr", 10.0): (0.0, -0.1, 0.1),
}
#: Table 7: (head, phase) -> per cent of L-BFGS relaxations converged within 1000
#: steps (1e-5 eV/A for the gas phase, 1e-4 eV/A for the liquid)
PAPER_TABLE_7: Dict[Tuple[str, str], float] = {
    ("direct", "gas"): 75.0,
    ("conservative", "gas"): 83.0,
    ("direct", "bulk"): 52.0,
    ("conservative", "bulk"): 58.0,
}


def paper_table_2(mode: str, ensemble: str, tau_fs: float) -> Optional[str]:
    """The paper's deviations for a run, as ``"overall / H / O"`` (or ``None``)."""
    numbers = PAPER_TABLE_2.get((mode, ensemble, float(tau_fs)))
    return None if numbers is None else " / ".join(f"{v:+.1f}" for v in numbers)


def paper_table_7(head: str, phase: str, optimizer: str) -> Optional[str]:
    """The paper's L-BFGS success rate for a head and phase (``None`` for FIRE)."""
    value = PAPER_TABLE_7.get((head, phase)) if optimizer == "LBFGS" else None
    return None if value is None else f"{value:.0f}%"


# -- Table 7 -----------------------------------------------------------------------


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
    """Median conservative fmax (eV/A) where ``head`` converged with ``optimizer``
    (:func:`~metatrain_nc.dynamics.relax.direct_endpoints`); ``None`` for a
    conservative head, a model without a trained conservative head (``pet_nc``: its
    -dE/dr is not a force model), or no convergence."""
    if head == "conservative" or "conservative" not in record["summary"]:
        return None
    values = direct_endpoints(record.get("records", []), head, optimizer)
    return statistics.median(values) if values else None


def comparisons(sets: Sequence[Dict[str, Any]]) -> Iterator[Tuple[Any, ...]]:
    """``(record, head, optimizer, summary, reference)`` of every head and optimiser
    of every set; ``reference``: ``(model, head, summary)`` of the conservative
    relaxations a direct head's are read against, or ``None``."""
    for record in sets:
        for head, per in record["summary"].items():
            found = relaxation_reference(sets, record, head)
            for optimizer, s in per.items():
                other = found and found[0]["summary"][found[1]].get(optimizer)
                reference = (found[0]["model"], found[1], other) if other else None
                yield record, head, optimizer, s, reference


def table_7_rows(sets: Sequence[Dict[str, Any]]) -> List[Row]:
    """One row per model, head, phase and optimiser: successes, the rate with its
    Wilson 95% interval, a direct head's difference from the conservative rate (with
    its 95% interval and whether it is resolved), why the others stopped, the
    round-off floor, the paper."""
    rows = []
    for record, head, optimizer, s, reference in comparisons(sets):
        floor = fmt(record["round_off_floor_eV_per_A"].get(head))
        if record["floor_above_threshold"].get(head):
            floor += " (above fmax)"
        low, high = s["interval_95"]
        failures = [
            f"{k} {v}" for k, v in s["stop_reasons"].items() if k != "converged"
        ]
        against = "-"
        if reference is not None:
            difference, d_low, d_high, word = rate_difference(s, reference[2])
            against = (
                f"{_points(difference, d_low, d_high)} vs {reference[0]} "
                f"{reference[1]}, {word}"
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
                ", ".join(failures) or "-",
                fmt(conservative_fmax_where_converged(record, head, optimizer)),
                fmt(s["mean_steps"]),
                f"{record['dtype']}, {floor}",
                paper_table_7(head, record["kind"], optimizer) or "-",
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
    difference excludes 0."""
    kinds = list(dict.fromkeys(record["kind"] for record in sets))
    parts: Dict[Tuple[str, str], List[str]] = {}
    for record, head, optimizer, s, reference in comparisons(sets):
        found = parts.setdefault((record["kind"], optimizer), [])
        if reference is not None:
            difference, low, high, word = rate_difference(s, reference[2])
            found.append(
                f"{record['model']} {head} {100 * s['rate']:.0f}% against "
                f"{reference[0]} {reference[1]} {100 * reference[2]['rate']:.0f}%: "
                f"{_points(difference, low, high)} points, {word}"
            )
    return [
        f"{kind.capitalize()} phase, {optimizer} (difference of success rates with "
        "its 95% interval; resolved when it excludes 0): " + "; ".join(found) + "."
        for (kind, optimizer), found in sorted(
            parts.items(), key=lambda item: kinds.index(item[0][0])
        )
        if found
    ]


# -- Table 2 -----------------------------------------------------------------------
def diffusion_ratio(
    run: Run, reference: Optional[Run], symbol: str
) -> Optional[Tuple[float, float]]:
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
    return ratio, ratio * relative


def svr_run(runs: Sequence[Run], run: Run) -> Optional[Run]:
    """The run that diffusion is compared with: the same model and force mode under
    the global (SVR) thermostat, which leaves the dynamics alone."""
    for other in runs:
        if (other["model"], other["mode"]) == (run["model"], run["mode"]):
            if other["ensemble"] == "svr" and other.get("diffusion"):
                return other
    return None


def species_of(runs: Sequence[Run]) -> List[str]:
    """Species symbols seen in the runs' equipartition results, in order."""
    seen: List[str] = []
    for run in runs:
        for symbol in (run.get("equipartition") or {}).get("species", {}):
            if symbol not in seen:
                seen.append(symbol)
    return seen


def table_2_headers(runs: Sequence[Run]) -> List[str]:
    symbols = species_of(runs)
    return (
        ["model", "forces", "thermostat", "T - target (K)"]
        + [f"T_{s} - target (K)" for s in symbols]
        + ["largest split (K)", "split", "split - conservative split (K)"]
        + [f"D_{s} (Å²/ps)" for s in symbols]
        + [f"slow-down of D_{s} vs SVR" for s in symbols]
        + ["paper: all / H / O (K)"]
    )


def table_2_rows(runs: Sequence[Run], sigma: float) -> List[Row]:
    """One row per NVT run: deviations from the target (overall and per species) with
    block-average errors, the largest species split and its verdict, what it adds to
    the conservative run's, diffusion per species and its slow-down against the SVR
    run, and the paper's numbers."""
    symbols = species_of(runs)
    rows = []
    for run in runs:
        row = [
            run["model"],
            run["mode"],
            thermostat_label(run["ensemble"], run["tau_fs"]),
        ]
        paper = paper_table_2(run["mode"], run["ensemble"], run["tau_fs"])
        if run.get("status") != "completed":
            status = run.get("status", "-")
            rows.append(
                row
                + [status] * (len(symbols) + 3)
                + ["-"] * (2 * len(symbols) + 1)
                + [paper or "-"]
            )
            continue
        eq = run.get("equipartition") or {}
        overall = eq.get("temperature") or {}
        row.append(fmt_error(overall.get("deviation"), overall.get("error")))
        target = overall.get("target")
        for symbol in symbols:
            species = eq.get("species", {}).get(symbol)
            if not species or target is None:
                row.append("-")
            else:
                row.append(fmt_error(species["mean"] - target, species.get("error")))
        split = largest_split(run)
        if split:
            pair, s = split
            row.append(f"{pair}: {fmt_error(s['difference'], s.get('error'))}")
            row.append(verdict(s["difference"], s.get("error"), sigma))
        else:
            row += ["-", "-"]
        against = split_against_conservative(runs, run)
        if against is None:
            row.append("-")
        else:
            _, entry, reference = against
            value, error = entry["difference"], entry["error"]
            row.append(
                f"{fmt_error(value, error)} (vs {reference['model']} conservative), "
                f"{verdict(value, error, sigma)}"
            )
        for symbol in symbols:
            d = (run.get("diffusion") or {}).get(symbol)
            row.append(fmt_error(d["D_A2_per_ps"], d["error_A2_per_ps"]) if d else "-")
        reference = svr_run(runs, run)
        for symbol in symbols:
            ratio = diffusion_ratio(run, reference, symbol)
            if ratio is None:
                row.append("-")
            else:
                mark = verdict(ratio[0] - 1.0, ratio[1], sigma)
                row.append(f"{fmt_error(*ratio)}x, {mark}")
        rows.append(row + [paper or "-"])
    return rows
