"""What the NVT runs of both reports resolve: per-species temperature splits with
their block-average error bars, read against a conservative run from the same start
(:func:`conservative_run`), the cells of both reports' tables and the plain
sentences of both reports (:func:`nvt_verdict`, :func:`findings`); the paper
protocol's Table 2: :mod:`.tables`.

A number is *resolved* when it lies beyond ``sigma`` standard errors from what it is
compared with (zero for a species split, the target temperature, 1 for a diffusion
ratio); otherwise it is within its error, and the report says so instead of reading
a difference into it. Runs are records as the paper protocol stores them (``model``,
``mode``, ``ensemble``, ``tau_fs``, ``status``, ``equipartition``, ...); the standard
report's runs are read into that form by :func:`nvt_runs`.
"""

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..reports.render import Row
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


def most_significant(splits: Dict[str, Dict[str, Any]]) -> Optional[Split]:
    """The pair whose split is the most standard errors from zero (else the
    largest)."""
    if not splits:
        return None
    return max(
        splits.items(),
        key=lambda item: (item[1].get("sigma") or 0.0, abs(item[1]["difference"])),
    )


def excess(run: Run, reference: Run) -> Dict[str, Dict[str, Any]]:
    """Per species pair: the split of ``run`` minus that of ``reference`` (what the
    direct forces add to an equilibration the conservative run shares), its error
    (independent runs), ``sigma`` and ``resolved`` (``None``: too few records for a
    verdict in either run)."""
    threshold = (run.get("equipartition") or {}).get("sigma_threshold") or 4.0
    out = {}
    for pair, split in _splits(run).items():
        other = _splits(reference).get(pair)
        if other is None or split.get("difference") is None:
            continue
        entry: Dict[str, Any] = {
            "difference": split["difference"] - other["difference"],
            "error": None,
            "sigma": None,
            "resolved": None,
        }
        if split.get("error") is not None and other.get("error") is not None:
            entry["error"] = math.hypot(split["error"], other["error"])
            if split.get("resolved") is not None and other.get("resolved") is not None:
                if entry["error"] > 0:
                    entry["sigma"] = abs(entry["difference"]) / entry["error"]
                entry["resolved"] = (entry["sigma"] or 0.0) > threshold
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


def nvt_runs(data: Dict[str, Any], section: str = "nvt") -> List[Run]:
    """The standard report's NVT runs (SVR; or those of another MD ``section``) as
    records of the paper protocol."""
    tau = data.get("settings", {}).get("tau_fs")
    teachers = {k: m.get("info", {}).get("slow") for k, m in data["models"].items()}
    return [
        dict(
            run,
            model=name,
            mode=mode,
            teacher=teachers[name],
            ensemble="svr",
            tau_fs=tau,
        )
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


def _off_target(runs: Sequence[Run], target: float, how: str) -> str:
    """Which runs miss the target temperature, and why that can be."""
    missed, modes = [], set()
    for run in runs:
        overall = run["equipartition"].get("temperature") or {}
        if overall.get("resolved"):
            modes.add(run["mode"])
            missed.append(
                f"{run['model']} {run['mode']}: {overall['mean']:.1f} ± "
                f"{overall['error']:.1f} K, {overall['deviation']:+.1f} K, "
                f"{overall['sigma']:.1f}σ"
            )
    if not missed:
        return "Every run holds the target temperature within its error bar."
    why = []
    if modes - {"conservative"}:
        why.append(
            "direct forces can heat faster than the thermostat takes the heat out"
        )
    if "conservative" in modes:
        why.append(
            "a conservative run off its target has not equilibrated (or its time "
            "step is too long)"
        )
    reason = "; ".join(why)
    return (
        f"Mean temperature off the {target:g} K target ({how}): "
        + "; ".join(missed)
        + f". {reason[0].upper()}{reason[1:]}."
    )


def nvt_verdict(data: Dict[str, Any]) -> List[str]:
    """What the NVT runs of the standard report resolve, said plainly: the
    per-species temperature splits beyond ``sigma_threshold`` block-average standard
    errors (and which), read against a conservative run from the same start when
    there is one (a split of a conservative run means the run is too short to
    equilibrate), and the runs whose mean temperature misses the target."""
    runs = [r for r in nvt_runs(data) if isinstance(r.get("equipartition"), dict)]
    if not runs:
        return []
    s = data["settings"]
    first = runs[0]["equipartition"]
    threshold = first.get("sigma_threshold") or 4.0
    window = 1.0 - (first.get("equilibration_fraction") or 0.0)
    how = (
        f"beyond {threshold:g} standard errors of block averages over the last "
        f"{window:.0%} of each run"
    )
    longer = (
        f"These {s['nvt_time_fs'] / 1000:g} ps runs are too short; run longer "
        "(--nvt-time) to resolve the splits of the paper's Table 2."
    )
    if all(r["equipartition"].get("resolved") is None for r in runs):
        records = max(r["equipartition"].get("n_records", 0) for r in runs)
        return [
            "Verdict: nothing can be resolved: too few records for error bars "
            f"({records} analysed per run, at least 32 needed) or a single species; "
            + longer[0].lower()
            + longer[1:]
        ]
    conservative = [r for r in runs if r["mode"] == "conservative"]
    unequilibrated = [
        f"{r['model']}: {split_text(*most_significant(_splits(r)), inline=True)}"
        for r in conservative
        if r["equipartition"].get("resolved")
    ]
    paragraphs = [_not_equilibrated(unequilibrated, how)] if unequilibrated else []
    resolved, unresolved = [], []
    for run in runs:
        if run["mode"] == "conservative":
            continue
        reference = conservative_run(runs, run)
        splits = excess(run, reference) if reference else _splits(run)
        for pair, split in splits.items():
            if split.get("resolved") is not None:
                text = _item(run, (pair, split), reference and reference["model"])
                (resolved if split["resolved"] else unresolved).append(text)
    if resolved:
        paragraphs.append(_listing(resolved, unresolved, how))
    elif len(conservative) == len(runs):
        if not unequilibrated:
            paragraphs.append(
                "Verdict: nothing is resolved: the conservative runs share the "
                f"kinetic energy evenly between species ({how}), as they should."
            )
    elif unequilibrated:
        paragraphs.append(
            "Verdict: nothing that the direct forces add is resolved. Against the "
            "conservative run from the same start: "
            + ("; ".join(unresolved) if unresolved else "no error bars")
            + f", all within {threshold:g} standard errors. {longer}"
        )
    else:
        listed = " (" + "; ".join(unresolved) + ")" if unresolved else ""
        paragraphs.append(
            "Verdict: nothing is resolved: no difference between species "
            f"temperatures {how}{listed}. {longer}"
        )
    changing = unsteady(runs)
    paragraphs += [changing] if changing else []
    return paragraphs + [_off_target(runs, s["temperature_K"], how)]


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


def _beyond(split: Dict[str, Any], sigma: float) -> bool:
    return abs(split["difference"]) > sigma * split["error"]


def findings(runs: Sequence[Run], sigma: float) -> List[str]:
    """The paper protocol's sentences, per thermostat: which largest species splits
    are resolved; a resolved split of a conservative run means the runs are not
    equilibrated, and the direct and MTS runs are then read against it."""
    how = f"beyond {sigma:g} standard errors"
    groups: Dict[str, List[Run]] = {}
    for run in runs:
        if run.get("status") == "completed":
            label = thermostat_label(run["ensemble"], run["tau_fs"])
            groups.setdefault(label, []).append(run)
    sentences = []
    for label, group in groups.items():
        resolved, unresolved, unequilibrated = [], [], []
        for run in group:
            split = largest_split(run)
            if split is None or split[1].get("error") is None:
                continue
            is_resolved = _beyond(split[1], sigma)
            (resolved if is_resolved else unresolved).append(_item(run, split))
            if is_resolved and run["mode"] == "conservative":
                unequilibrated.append(f"{run['model']}: {split_text(*split, True)}")
        if not unequilibrated:
            sentences.append(f"{label}: {_listing(resolved, unresolved, how)}")
            continue
        sentences.append(f"{label}: {_not_equilibrated(unequilibrated, how)}")
        resolved, unresolved = [], []
        for run in group:
            against = split_against_conservative(group, run)
            if against is not None:
                pair, entry, reference = against
                item = _item(run, (pair, entry), reference["model"])
                (resolved if _beyond(entry, sigma) else unresolved).append(item)
        if resolved or unresolved:
            against = f"{label}, against the conservative run from the same start: "
            sentences.append(against + _listing(resolved, unresolved, how))
    for label, group in groups.items():
        changing = unsteady(group)
        if changing:
            sentences.append(f"{label}: {changing}")
    return sentences


# -- tables --------------------------------------------------------------------------
def split_cells(runs: Sequence[Run], run: Run) -> Row:
    """The standard NVT table's 'T split' and 'vs conservative' cells of a run."""
    if not isinstance(run.get("equipartition"), dict):
        return ["-", "-"]
    largest = most_significant(_splits(run))
    reference = conservative_run(runs, run)
    against = most_significant(excess(run, reference)) if reference else None
    return [
        split_text(*largest) if largest else "-",
        f"{split_text(*against)} vs {reference['model']}" if against else "-",
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
