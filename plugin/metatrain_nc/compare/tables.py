"""The paper protocol's tables, columns of :func:`.render.columns_table` with resolved
and unresolved marks: Table 2 (thermostats: species temperatures, their splits read
against the conservative run with :mod:`.nvt_reading`, diffusion and its slow-down)
and Table 7 (relaxations: success rates with Wilson 95% intervals, each direct head's
rate read against the conservative one with its Newcombe 95% interval, resolved only
when it excludes 0, why failures stopped, and how far a direct relaxation ends from a
minimum of the energy); the paper's numbers beside ours."""

import math
import statistics
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from ..dynamics.relax import difference_interval, direct_endpoints
from ..reports.render import Column, fmt, fmt_error
from .nvt_reading import (
    Run,
    has_verdict,
    largest_split,
    split_against_conservative,
    thermostat_label,
    verdict,
)

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


def paper_table_2(run: Run) -> Optional[str]:
    """The paper's deviations for a run, as ``"overall / H / O"`` (or ``None``)."""
    numbers = PAPER_TABLE_2.get((run["mode"], run["ensemble"], float(run["tau_fs"])))
    return None if numbers is None else " / ".join(f"{v:+.1f}" for v in numbers)


#: the paper's relaxation thresholds (eV/A) per phase
PAPER_FMAX = {"gas": 1e-5, "bulk": 1e-4}


def paper_table_7(head: str, record: Dict[str, Any], optimizer: str) -> Optional[str]:
    """The paper's L-BFGS success rate for a head and a set of relaxations (``None``
    for FIRE, or a threshold other than the paper's)."""
    phase = record["kind"]
    same = PAPER_FMAX.get(phase) == record["fmax_eV_per_A"] and optimizer == "LBFGS"
    value = PAPER_TABLE_7.get((head, phase)) if same else None
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


def _floor(record: Dict[str, Any], head: str) -> str:
    floor = fmt(record["round_off_floor_eV_per_A"].get(head))
    above = " (above fmax)" if record["floor_above_threshold"].get(head) else ""
    return f"{record['dtype'] or '-'}, {floor}{above}"


def _against(s: Dict[str, Any], reference: Optional[Tuple[Any, ...]]) -> str:
    if reference is None:
        return "-"
    difference, low, high, word = rate_difference(s, reference[2])
    return f"{_points(difference, low, high)} vs {reference[0]} {reference[1]}, {word}"


def _rate(s: Dict[str, Any]) -> str:
    low, high = s["interval_95"]
    return f"{100 * s['rate']:.0f}% [{100 * low:.0f}, {100 * high:.0f}]"


def _stops(s: Dict[str, Any]) -> str:
    failures = [f"{k} {v}" for k, v in s["stop_reasons"].items() if k != "converged"]
    return ", ".join(failures) or "-"


#: Table 7, a row per model, head, phase and optimiser (:func:`comparisons`):
#: successes, the rate with its Wilson 95% interval, a direct head's difference from
#: the conservative rate (95% interval, resolved or not), why the others stopped, the
#: round-off floor, the paper
TABLE_7: Tuple[Column, ...] = (
    ("model", lambda c: c[0]["model"]),
    ("forces", lambda c: c[1]),
    ("structures (fmax)", lambda c: f"{c[0]['kind']} ({c[0]['fmax_eV_per_A']:g} eV/Å)"),
    ("optimiser", lambda c: c[2]),
    ("converged", lambda c: f"{c[3]['successes']}/{c[3]['trials']}"),
    ("rate [95% CI]", lambda c: _rate(c[3])),
    ("direct - conservative (points) [95% CI]", lambda c: _against(c[3], c[4])),
    ("failures: why they stopped", lambda c: _stops(c[3])),
    (
        "conservative fmax where converged (median, eV/Å)",
        lambda c: fmt(conservative_fmax_where_converged(c[0], c[1], c[2])),
    ),
    ("mean steps", lambda c: fmt(c[3]["mean_steps"])),
    ("dtype, round-off floor (eV/Å)", lambda c: _floor(c[0], c[1])),
    ("paper (L-BFGS)", lambda c: paper_table_7(c[1], c[0], c[2]) or "-"),
)


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
    seen = (s for r in runs for s in (r.get("equipartition") or {}).get("species", {}))
    return list(dict.fromkeys(seen))


def _completed(cell: Callable[[Run], str], status: bool = False):
    """``cell`` of a completed run; else the run's status (``status``) or ``-``."""
    return lambda run: (
        cell(run)
        if run.get("status") == "completed"
        else run.get("status", "-")
        if status
        else "-"
    )


def _deviation(run: Run, symbol: Optional[str] = None) -> str:
    """The run's (or a species') mean temperature minus the target, ± error."""
    eq = run.get("equipartition") or {}
    overall = eq.get("temperature") or {}
    if symbol is None:
        return fmt_error(overall.get("deviation"), overall.get("error"))
    species, target = eq.get("species", {}).get(symbol), overall.get("target")
    if not species or target is None:
        return "-"
    return fmt_error(species["mean"] - target, species.get("error"))


def _split_cells(run: Run, sigma: float) -> Tuple[str, str]:
    """The largest species split of a run, ± error, and its verdict."""
    split = largest_split(run)
    if not split:
        return "-", "-"
    pair, s = split
    difference, error = s["difference"], s.get("error")
    few = error is not None and not has_verdict(s)
    reading = "too few records" if few else verdict(difference, error, sigma)
    return f"{pair}: {fmt_error(difference, error)}", reading


def _excess_cell(runs: Sequence[Run], run: Run, sigma: float) -> str:
    against = split_against_conservative(runs, run)
    if against is None:
        return "-"
    _, entry, reference = against
    value, error = entry["difference"], entry["error"]
    return (
        f"{fmt_error(value, error)} (vs {reference['model']} conservative), "
        f"{verdict(value, error, sigma)}"
    )


def _diffusion_cell(run: Run, symbol: str) -> str:
    d = (run.get("diffusion") or {}).get(symbol)
    return fmt_error(d["D_A2_per_ps"], d["error_A2_per_ps"]) if d else "-"


def _slow_down_cell(runs: Sequence[Run], run: Run, symbol: str, sigma: float) -> str:
    ratio = diffusion_ratio(run, svr_run(runs, run), symbol)
    if ratio is None:
        return "-"
    return f"{fmt_error(*ratio)}x, {verdict(ratio[0] - 1.0, ratio[1], sigma)}"


def table_2_columns(runs: Sequence[Run], sigma: float) -> List[Column]:
    """Table 2, a row per NVT run: deviations from the target (overall and per
    species) with block-average errors, the largest species split and its verdict,
    what it adds to the conservative run's, diffusion per species and its slow-down
    against the SVR run (when the runs have it), and the paper's numbers. A run that
    did not complete shows its status."""
    symbols = species_of(runs)
    diffusion = symbols if any(run.get("diffusion") for run in runs) else []
    return [
        ("model", lambda run: run["model"]),
        ("forces", lambda run: run["mode"]),
        ("thermostat", lambda run: thermostat_label(run["ensemble"], run["tau_fs"])),
        ("T - target (K)", _completed(_deviation, True)),
        *[
            (f"T_{s} - target (K)", _completed(lambda r, s=s: _deviation(r, s), True))
            for s in symbols
        ],
        ("largest split (K)", _completed(lambda r: _split_cells(r, sigma)[0], True)),
        ("split", _completed(lambda r: _split_cells(r, sigma)[1], True)),
        (
            "split - conservative split (K)",
            _completed(lambda r: _excess_cell(runs, r, sigma)),
        ),
        *[
            (f"D_{s} (Å²/ps)", _completed(lambda r, s=s: _diffusion_cell(r, s)))
            for s in diffusion
        ],
        *[
            (
                f"slow-down of D_{s} vs SVR",
                _completed(lambda r, s=s: _slow_down_cell(runs, r, s, sigma)),
            )
            for s in diffusion
        ],
        ("paper: all / H / O (K)", lambda run: paper_table_2(run) or "-"),
    ]
