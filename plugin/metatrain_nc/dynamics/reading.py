"""Read finished MD runs again, over a part of their own choosing (``mtt-nc read``).

A run of ``mtt-nc md`` (or one of the MD runs in an ``mtt-nc compare`` report) keeps
its records (``md_log.csv``) and its settings (``summary.json``); its verdicts read a
fixed part, the last half by default. The warnings then say "run longer and read the
last part" (a split still building up), and one run's error bar can be too small for
slow swings that only independent runs show. This module:

- :func:`load_run`: a run folder's records, settings and species corrections;
- :func:`read_run`: the verdicts of :mod:`.verdicts` over a window ``[start, end]``
  (ps from the run's start; default: the part the run's own summary analysed, which it
  reproduces): mean and species temperatures with block-averaged errors, each
  species split with its significance and stationarity (thermostatted runs), heating
  rate, drift of the conserved energy and drift ratio (every run; the drift verdict in
  NVE);
- :func:`read_windows`: the same over consecutive windows of a given length;
- :func:`pool_readings`: several independent runs of the same model and settings
  (replicas, other seeds) read as one: error-weighted means of each split and of the
  mean temperature, with the error scaled up when the runs disagree beyond their
  own errors (the Particle Data Group's scale factor ``S = sqrt(chi2 / (n - 1))``).

Units: times in ps (records: fs), temperatures in K, drifts in meV/atom/ps.
"""

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from ..errors import UserInputError
from ..files import PathLike

#: settings that runs read together by :func:`pool_readings` must share (the seed,
#: the number of steps and the analysed part may differ)
SHARED_SETTINGS = (
    "forces",
    "timestep_fs",
    "stride",
    "ensemble",
    "temperature_K",
    "tau_fs",
)


@dataclass
class Run:
    """A finished MD run read back from its folder.

    :ivar folder: the run folder.
    :ivar summary: its ``summary.json``.
    :ivar rows: its ``md_log.csv`` records (floats; ``time_fs`` in fs).
    :ivar species_scale: per species, the factor from the recorded ``2 K_s / (3 N_s
        k_B)`` to the species temperature with its own degrees of freedom
        (:attr:`~.observer.Monitor.species_scale`).
    """

    folder: Path
    summary: Dict[str, Any]
    rows: List[Dict[str, float]]
    species_scale: Dict[str, float]

    @property
    def settings(self) -> Dict[str, Any]:
        return self.summary.get("settings") or {}

    @property
    def duration_ps(self) -> float:
        """Time from the first record to the last (ps)."""
        return (self.rows[-1]["time_fs"] - self.rows[0]["time_fs"]) / 1000.0

    @property
    def default_start_index(self) -> int:
        """First record of the part the run's own verdicts analysed."""
        from .verdicts import EQUILIBRATION_FRACTION

        fraction = self.settings.get("equilibration_fraction", EQUILIBRATION_FRACTION)
        return int(math.floor(float(fraction) * len(self.rows)))


def _species_scale(summary: Dict[str, Any], analysed: List[Dict[str, float]]):
    """The run's species corrections: stored by ``mtt-nc md`` since this command;
    for older runs recovered from their own equipartition check over the records it
    analysed, ``analysed`` (its species means are the recorded means times the
    factor); 1 when the run has neither (NVE: no species verdict)."""
    from .statistics import species_temperatures

    recorded = species_temperatures(analysed)  # unscaled, one series per species
    stored = summary.get("species_scale")
    if stored:
        return {s: float(stored[s]) for s in recorded}
    checked = (summary.get("equipartition") or {}).get("species") or {}
    scale = {}
    for symbol, series in recorded.items():
        mean = (checked.get(symbol) or {}).get("mean")
        raw_mean = float(series.mean()) if len(series) else math.nan
        if mean is not None and raw_mean and math.isfinite(raw_mean):
            scale[symbol] = float(mean) / raw_mean
        else:
            scale[symbol] = 1.0
    return scale


def load_run(folder: PathLike) -> Run:
    """The records and settings of the finished MD run in ``folder``.

    :raises UserInputError: not a folder, or no ``summary.json`` / ``md_log.csv`` (a
        run still going or cut short keeps its records in a hidden staging folder
        until it ends), or records without times.
    """
    from .outputs import FILES, read_log

    folder = Path(folder)
    fix = (
        "give the output folder of `mtt-nc md` (-o), or an MD run folder of an "
        "`mtt-nc compare` report"
    )
    if not folder.is_dir():
        what = "does not exist" if not folder.exists() else "is not a folder"
        raise UserInputError(f"run folder '{folder}' {what}: {fix}")
    summary_path, log_path = folder / FILES["summary"], folder / FILES["log"]
    missing = [p.name for p in (summary_path, log_path) if not p.is_file()]
    if missing:
        raise UserInputError(
            f"'{folder}' holds no finished MD run (no {' or '.join(missing)}): {fix}; "
            "a run still going or cut short writes them when it ends (continue it "
            "with `mtt-nc md ... --resume`)"
        )
    try:
        summary = json.loads(summary_path.read_text())
    except ValueError as error:
        raise UserInputError(
            f"'{summary_path}' is not valid JSON ({error}): {fix}"
        ) from None
    rows = read_log(log_path)
    if len(rows) < 2 or "time_fs" not in rows[0] or "temperature_K" not in rows[0]:
        raise UserInputError(
            f"'{log_path}' has {len(rows)} records"
            + ("" if len(rows) < 2 else " without time_fs / temperature_K columns")
            + f": nothing to read; {fix}"
        )
    run = Run(folder, summary, rows, {})
    run.species_scale = _species_scale(summary, rows[run.default_start_index :])
    return run


def _window(run: Run, start_ps: Optional[float], end_ps: Optional[float]):
    """The records of ``[start_ps, end_ps]`` (from the run's first record; default:
    the part the run's own verdicts analysed, to its end)."""
    first = run.rows[0]["time_fs"]
    span = f"the run covers 0-{run.duration_ps:.3f} ps"
    if start_ps is not None and not (0.0 <= start_ps < run.duration_ps):
        raise UserInputError(
            f"--from {start_ps:g} ps is outside '{run.folder}' ({span}); choose a "
            "start within it"
        )
    if end_ps is not None and not (end_ps > (start_ps or 0.0)):
        raise UserInputError(
            f"--to {end_ps:g} ps must come after the start "
            f"({start_ps or 0.0:g} ps; {span})"
        )
    if start_ps is None:
        rows = run.rows[run.default_start_index :]
    else:
        rows = [r for r in run.rows if r["time_fs"] - first >= start_ps * 1000 - 1e-6]
    if end_ps is not None:
        rows = [r for r in rows if r["time_fs"] - first <= end_ps * 1000 + 1e-6]
    if len(rows) < 2:
        raise UserInputError(
            f"the window of '{run.folder}' holds {len(rows)} record(s) ({span}); "
            "choose a longer one"
        )
    return rows


def read_run(
    run: Run, start_ps: Optional[float] = None, end_ps: Optional[float] = None
) -> Dict[str, Any]:
    """The verdicts of ``run`` over ``[start_ps, end_ps]`` (ps from its first record;
    ``None``: the part its own summary analysed, to its end).

    :return: JSON-ready: ``folder``, ``model``, ``settings`` (as run), ``window_ps``
        (``[start, end]``), ``n_records``, ``summary`` (:func:`~.statistics.summarise`
        of the window: heating rate, drift and drift ratio, mean temperatures),
        ``equipartition`` (:func:`~.verdicts.equipartition` of the window, thermostatted
        runs; ``None`` in NVE) and ``drift_check`` (:func:`~.verdicts.drift_verdict`,
        NVE; ``None`` otherwise).
    """
    from .statistics import summarise
    from .thermostats import correlation_time_fs
    from .verdicts import drift_verdict, equipartition

    rows = _window(run, start_ps, end_ps)
    settings = run.settings
    ensemble = settings.get("ensemble", "nve")
    n_atoms = int(run.summary.get("n_atoms") or 0)
    target = settings.get("temperature_K") if ensemble != "nve" else None
    summary = summarise(rows, n_atoms, target)
    first = run.rows[0]["time_fs"]
    result: Dict[str, Any] = {
        "folder": str(run.folder),
        "model": run.summary.get("model"),
        "fast_model": run.summary.get("fast_model"),
        "replica": run.summary.get("replica"),
        "settings": settings,
        "window_ps": [
            (rows[0]["time_fs"] - first) / 1000.0,
            (rows[-1]["time_fs"] - first) / 1000.0,
        ],
        "n_records": len(rows),
        "summary": summary,
        "equipartition": None,
        "drift_check": None,
    }
    if ensemble == "nve":
        result["drift_check"] = drift_verdict(summary)
    else:
        result["equipartition"] = equipartition(
            rows,
            target,
            run.species_scale,
            equilibration=0.0,
            correlation_fs=correlation_time_fs(ensemble, settings.get("tau_fs")),
            # as the run's own verdicts (:func:`~.verdicts.assess`)
            degrees_of_freedom=3 * n_atoms,
        )
    return result


def read_windows(
    run: Run,
    width_ps: float,
    start_ps: Optional[float] = None,
    end_ps: Optional[float] = None,
) -> List[Dict[str, Any]]:
    """:func:`read_run` over consecutive windows of ``width_ps`` from ``start_ps``
    (default 0) to ``end_ps`` (default: the run's end); a last window shorter than
    half of ``width_ps`` is left out."""
    if not width_ps > 0:
        raise UserInputError(f"--windows must be a positive time in ps, got {width_ps}")
    start = 0.0 if start_ps is None else float(start_ps)
    end = run.duration_ps if end_ps is None else min(float(end_ps), run.duration_ps)
    out = []
    while end - start >= 0.5 * width_ps - 1e-9:
        out.append(read_run(run, start, min(start + width_ps, end)))
        start += width_ps
    if not out:
        raise UserInputError(
            f"--windows {width_ps:g} ps: no window fits in {start_ps or 0:g}-{end:g} "
            "ps; choose shorter windows"
        )
    return out


def _pool(values: Sequence[Optional[float]], errors: Sequence[Optional[float]]):
    """Error-weighted mean of independent estimates, with the Particle Data Group's
    scale factor: ``{mean, error, chi2, dof, scale}``; ``error`` is the weighted
    error times ``scale = max(1, sqrt(chi2 / dof))`` (estimates that scatter beyond
    their errors widen it). ``None`` when an estimate has no finite positive error."""
    pairs = [(v, e) for v, e in zip(values, errors, strict=True)]
    if not pairs or any(
        v is None or e is None or not math.isfinite(v) or not (e > 0) for v, e in pairs
    ):
        return None
    weights = [1.0 / (e * e) for _, e in pairs]
    total = sum(weights)
    mean = sum(w * v for w, (v, _) in zip(weights, pairs, strict=True)) / total
    chi2 = sum(w * (v - mean) ** 2 for w, (v, _) in zip(weights, pairs, strict=True))
    dof = len(pairs) - 1
    scale = max(1.0, math.sqrt(chi2 / dof)) if dof > 0 else 1.0
    return {
        "mean": mean,
        "error": scale / math.sqrt(total),
        "chi2": chi2,
        "dof": dof,
        "scale": scale,
    }


def settings_differences(readings: Sequence[Dict[str, Any]]) -> List[str]:
    """What keeps readings from being pooled: the :data:`SHARED_SETTINGS` and
    species that differ between them (empty: they may be pooled). Model files are
    not compared: one model is often exported or copied to several places (the
    pooled reading lists them)."""
    first = readings[0]
    out = [
        key
        for key in SHARED_SETTINGS
        if any(r["settings"].get(key) != first["settings"].get(key) for r in readings)
    ]
    species = [sorted((r["equipartition"] or {}).get("species", {})) for r in readings]
    if any(s != species[0] for s in species):
        out.append("species")
    return out


def pool_readings(
    readings: Sequence[Dict[str, Any]], sigma: Optional[float] = None
) -> Dict[str, Any]:
    """Independent runs of one model and settings (:func:`read_run` of each) read as
    one: per species split and for the mean temperature's deviation from the
    target, the error-weighted mean over the runs, its error widened by the scale
    factor when the runs disagree (``chi2 / dof > 1``), and whether it is resolved
    beyond ``sigma`` standard errors (default :data:`~.verdicts.RESOLVED_SIGMA`).

    Pooling asks for runs whose starts are independent (other seeds); runs that share
    their thermostat's random numbers are not.

    :return: ``{"n_runs", "seeds", "replicas", "models", "differences", "temperature",
        "splits", "sigma_threshold", "independent"}`` (``models``: the distinct
        model files; ``independent``: no two runs share a seed and replica, as
        runs from one start must not); with ``differences`` (settings that differ, see
        :func:`settings_differences`) or NVE runs, ``temperature`` and ``splits``
        are ``None``.
    """
    from .verdicts import RESOLVED_SIGMA

    threshold = RESOLVED_SIGMA if sigma is None else float(sigma)
    out: Dict[str, Any] = {
        "n_runs": len(readings),
        "seeds": [r["settings"].get("seed") for r in readings],
        "replicas": [r.get("replica") for r in readings],
        "models": sorted({str(r.get("model")) for r in readings}),
        "differences": settings_differences(readings) if readings else [],
        "temperature": None,
        "splits": None,
        "sigma_threshold": threshold,
    }
    keys = list(zip(out["seeds"], out["replicas"], strict=True))
    out["independent"] = len(set(keys)) == len(keys)
    if (
        len(readings) < 2
        or out["differences"]
        or any(r["equipartition"] is None for r in readings)
    ):
        return out

    def verdict(pooled):
        if pooled is None:
            return None
        ratio = abs(pooled["mean"]) / pooled["error"]
        return dict(pooled, sigma=ratio, resolved=bool(ratio > threshold))

    checks = [r["equipartition"] for r in readings]
    overall = [c["temperature"] for c in checks]
    out["temperature"] = verdict(
        _pool([t.get("deviation") for t in overall], [t.get("error") for t in overall])
    )
    out["splits"] = {
        pair: verdict(
            _pool(
                [c["splits"][pair]["difference"] for c in checks],
                [c["splits"][pair]["error"] for c in checks],
            )
        )
        for pair in checks[0]["splits"]
    }
    return out
