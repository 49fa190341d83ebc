"""Table 7 of the paper protocol (relaxations): success rates with Wilson 95%
intervals, each direct head's rate read against the conservative one (difference
with its Newcombe 95% interval, resolved only when it excludes 0), why failures
stopped, and how far a direct relaxation ends from a minimum of the energy."""

import statistics
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ...dynamics.relax import difference_interval, direct_endpoints
from ..render import Row, fmt
from . import paper_numbers


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
