"""What the NVT runs of both reports resolve: per-species temperature splits with
their block-average error bars, read against a conservative run from the same start
(:func:`conservative_run`), said in plain sentences (:func:`findings`); the table
of both reports: :func:`.tables.table_2_columns`.

A number is *resolved* when it lies beyond ``sigma`` standard errors from what it is
compared with (zero for a species split, the target temperature, 1 for a diffusion
ratio); otherwise it is within its error, and the report says so instead of reading
a difference into it. Runs are the records of ``report.json``'s ``nvt`` list (both
protocols): ``model``, ``mode``, ``ensemble``, ``tau_fs``, ``status``,
``equipartition``, ...
"""

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .results import section_items

Run = Dict[str, Any]
Split = Tuple[str, Dict[str, Any]]


# -- numbers -------------------------------------------------------------------------
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
    return f"{'resolved' if ratio > sigma else 'within error'} ({ratio:.1f}σ)"


def thermostat_label(ensemble: str, tau_fs: float) -> str:
    name = {"svr": "SVR", "langevin": "Langevin"}.get(ensemble, ensemble)
    return f"{name} τ={tau_fs:g} fs"


def split_text(pair: str, split: Dict[str, Any], inline: bool = False) -> str:
    """``H-O -50.3 ± 10.4 K (4.8σ)`` (``inline``: ``..., 4.8σ``); without an error
    bar ``H-O -50.3 K``."""
    text = f"{pair} {split['difference']:+.1f}"
    if split.get("error") is not None:
        text += f" ± {split['error']:.1f}"
    text += " K"
    if split.get("sigma") is not None:
        text += f", {split['sigma']:.1f}σ" if inline else f" ({split['sigma']:.1f}σ)"
    return text


def _splits(run: Run) -> Dict[str, Dict[str, Any]]:
    return (run.get("equipartition") or {}).get("splits", {})


def largest_split(run: Run) -> Optional[Split]:
    """``(pair, split)`` of the run's largest species split (``None`` if none)."""
    pair = (run.get("equipartition") or {}).get("max_split_pair")
    split = _splits(run).get(pair) if pair else None
    return (pair, split) if split else None


def excess(run: Run, reference: Run) -> Dict[str, Dict[str, Any]]:
    """Per species pair: the split of ``run`` minus that of ``reference`` (what the
    direct forces add to an equilibration the conservative run shares), its error
    (independent runs) and ``sigma`` (``None``: too few records for a verdict in
    either run, :func:`has_verdict`)."""
    out = {}
    for pair, split in _splits(run).items():
        other = _splits(reference).get(pair)
        if other is None or split.get("difference") is None:
            continue
        difference = split["difference"] - other["difference"]
        entry = dict(difference=difference, error=None, sigma=None)
        if split.get("error") is not None and other.get("error") is not None:
            entry["error"] = math.hypot(split["error"], other["error"])
            if has_verdict(split) and has_verdict(other) and entry["error"] > 0:
                entry["sigma"] = abs(entry["difference"]) / entry["error"]
        out[pair] = entry
    return out


def conservative_run(runs: Sequence[Run], run: Run) -> Optional[Run]:
    """The completed conservative run a direct or MTS run is read against: under the
    same thermostat, the same model's (a teacher-student pair's: its teacher's), else
    the first other model's (all start from the same structure, velocities and seed);
    ``None`` for a conservative run or when there is none."""
    if run["mode"] == "conservative":
        return None
    candidates = [
        r
        for r in runs
        if r["mode"] == "conservative"
        and (r["ensemble"], r["tau_fs"]) == (run["ensemble"], run["tau_fs"])
        and r.get("status") == "completed"
        and isinstance(r.get("equipartition"), dict)
    ]
    own = run.get("teacher") or run["model"]
    mine = [r for r in candidates if r["model"] == own]
    return (mine or candidates or [None])[0]


def md_runs(data: Dict[str, Any], section: str = "nve") -> List[Run]:
    """The runs of a per-model MD section of the standard report (``nve``) as run
    records; NVT runs are such records already (``data["nvt"]``, both protocols)."""
    return [
        dict(run, model=name, mode=mode)
        for name, mode, run in section_items(data, section)
    ]


# -- sentences -----------------------------------------------------------------------
def _item(run: Run, split: Split, against: str = "") -> str:
    """``"PET-M direct vs PET-C: H-O -52.0 ± 11.2 K, 4.7σ"``."""
    against = f" vs {against}" if against else ""
    return f"{run['model']} {run['mode']}{against}: {split_text(*split, inline=True)}"


def _listing(resolved: List[str], unresolved: List[str], how: str) -> str:
    """``"Resolved (how): a; b. Not resolved: c."``, or ``"Nothing is resolved (how):
    c."``."""
    if not resolved:
        return f"Nothing is resolved ({how}): " + "; ".join(unresolved) + "."
    text = f"Resolved ({how}): " + "; ".join(resolved) + "."
    return text + (
        " Not resolved: " + "; ".join(unresolved) + "." if unresolved else ""
    )


def _not_equilibrated(items: List[str], how: str) -> str:
    runs = "run of" if len(items) == 1 else "runs of"
    return (
        f"Not equilibrated: the conservative {runs} " + "; ".join(items) + f" ({how}). "
        "Conservative forces share the kinetic energy evenly at equilibrium, so these "
        "runs have not equilibrated (or the time step is too long): a split of a "
        "direct-force run says nothing by itself and is read against the conservative "
        "run from the same start."
    )


def _off_target(runs: Sequence[Run], sigma: float) -> Optional[str]:
    """Which runs miss the target temperature beyond ``sigma`` errors, and why that
    can be; ``None`` when every run with an error bar holds it."""
    missed, modes = [], set()
    for run in runs:
        overall = run["equipartition"].get("temperature") or {}
        error = overall.get("error")
        if overall.get("sigma") is None or not error or overall.get("target") is None:
            continue
        if abs(overall["deviation"]) > sigma * error:
            modes.add(run["mode"])
            deviation = overall["deviation"]
            missed.append(
                f"{run['model']} {run['mode']}: {overall['mean']:.1f} ± {error:.1f} "
                f"K, {deviation:+.1f} K, {abs(deviation) / error:.1f}σ"
            )
    if not missed:
        return None
    why = []
    if modes - {"conservative"}:
        why.append(
            "the direct forces of a direct or MTS run do work faster than the "
            "thermostat restores the target"
        )
    if "conservative" in modes:
        why.append(
            "a conservative run off its target has not equilibrated (or its time "
            "step is too long)"
        )
    reason = "; ".join(why)
    return (
        f"Mean temperature off the target: {'; '.join(missed)}. "
        f"{reason[0].upper()}{reason[1:]}."
    )


def change_text(split: Dict[str, Any]) -> Optional[str]:
    """``changed by +43.3 ± 9.8 K`` for a split that is not stationary (it changes
    between the halves of the analysed part beyond its error), else ``None``."""
    change = split.get("change") or {}
    if split.get("stationary") is not False or change.get("error") is None:
        return None
    return f"changed by {change['value']:+.1f} ± {change['error']:.1f} K"


def unsteady(runs: Sequence[Run]) -> Optional[str]:
    """A sentence naming the runs whose species split still changes between the
    halves of the analysed part (``stationary`` false in their equipartition check):
    their means mix a transient with what follows; ``None`` when there are none."""
    items = [
        f"{run['model']} {run['mode']}: {pair} {text}"
        for run in runs
        for pair, split in _splits(run).items()
        if (text := change_text(split))
    ]
    if not items:
        return None
    return (
        "Not stationary (a split that changes between the halves of the analysed "
        "part beyond its error: its mean mixes a transient with what follows; run "
        "longer and read the last part): " + "; ".join(items) + "."
    )


def has_verdict(split: Dict[str, Any]) -> bool:
    """A split with an error bar from enough records for a verdict (the
    equipartition check leaves ``resolved`` ``None`` when there are too few)."""
    return split.get("error") is not None and split.get("resolved", False) is not None


def _beyond(split: Dict[str, Any], sigma: float) -> bool:
    return abs(split["difference"]) > sigma * split["error"]


def _group_findings(group: Sequence[Run], sigma: float, longer: str) -> List[str]:
    """The sentences of the runs under one thermostat (:func:`findings`)."""
    how = f"beyond {sigma:g} standard errors"
    readable = [
        (run, s) for run in group if (s := largest_split(run)) and has_verdict(s[1])
    ]
    if not readable:
        records = max(r["equipartition"].get("n_records", 0) for r in group)
        return [
            "Nothing can be resolved: too few records for error bars "
            f"({records} analysed per run) or a single species{longer}."
        ]
    resolved, unresolved, unequilibrated = [], [], []
    for run, split in readable:
        is_resolved = _beyond(split[1], sigma)
        (resolved if is_resolved else unresolved).append(_item(run, split))
        if is_resolved and run["mode"] == "conservative":
            unequilibrated.append(f"{run['model']}: {split_text(*split, True)}")
    sentences = [_listing(resolved, unresolved, how)]
    if unequilibrated:
        sentences = [_not_equilibrated(unequilibrated, how)]
        resolved, unresolved = [], []
        for run in group:
            against = split_against_conservative(group, run)
            if against is not None:
                pair, entry, reference = against
                item = _item(run, (pair, entry), reference["model"])
                (resolved if _beyond(entry, sigma) else unresolved).append(item)
        if resolved or unresolved:
            sentences.append(
                "Against the conservative run from the same start: "
                + _listing(resolved, unresolved, how)
            )
    direct = any(run["mode"] != "conservative" for run, _ in readable)
    if longer and not resolved and direct:
        sentences[-1] = sentences[-1][:-1] + longer + "."
    changing, off = unsteady(group), _off_target(group, sigma)
    return sentences + [text for text in (changing, off) if text]


def findings(runs: Sequence[Run], sigma: float, longer: str = "") -> List[str]:
    """What the NVT runs resolve, per thermostat, in plain sentences (both reports):
    the largest species split of each run, resolved beyond ``sigma`` standard errors
    or not; a resolved split of a conservative run means the runs are not
    equilibrated (or the time step is too long), and the direct and MTS runs are then
    read against the conservative run from the same start; splits that still change;
    runs off the target temperature. ``longer`` (``"; run longer ..."``) is added
    where nothing a direct force does is resolved."""
    groups: Dict[str, List[Run]] = {}
    for run in runs:
        if run.get("status") == "completed" and isinstance(
            run.get("equipartition"), dict
        ):
            label = thermostat_label(run["ensemble"], run["tau_fs"])
            groups.setdefault(label, []).append(run)
    return [
        f"{label}: {sentence}"
        for label, group in groups.items()
        for sentence in _group_findings(group, sigma, longer)
    ]


def split_against_conservative(
    runs: Sequence[Run], run: Run
) -> Optional[Tuple[str, Dict[str, Any], Run]]:
    """``(pair, excess, conservative run)`` of the run's largest split (with an
    error), or ``None``."""
    reference = conservative_run(runs, run)
    mine = largest_split(run)
    if reference is None or mine is None:
        return None
    entry = excess(run, reference).get(mine[0])
    if entry is None or entry["error"] is None:
        return None
    return mine[0], entry, reference
