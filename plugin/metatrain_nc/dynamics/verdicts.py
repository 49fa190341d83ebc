"""Verdicts on an MD run, each warning with its way out.

:func:`diagnose` turns the records of a :class:`~.observer.Monitor` into warnings
while a run's results are written (``mtt-nc md`` prints them and puts them in
``summary.json``):

- with a thermostat, :func:`equipartition`: block-averaged means
  (:func:`~.statistics.block_average`, correlated samples) of the temperature of each
  species and of their differences over the last half of the run; a warning when two
  species differ beyond :data:`RESOLVED_SIGMA` standard errors, when their
  difference still changes between the halves of that part (not stationary), or
  when the overall mean misses the target (the means' errors widened when the
  blocks are shorter than the thermostat keeps the temperature correlated:
  :func:`~.thermostats.correlation_time_fs`);
- in NVE, :func:`drift_verdict`: a drift of the conserved energy that a t test of
  the fitted slope resolves (Student t, ``n - 2`` degrees of freedom, p below
  :data:`DRIFT_P_VALUE`, from :data:`MIN_DRIFT_RECORDS` records on: short runs get a
  verdict too), above :data:`DRIFT_FLOOR_MEV_PER_ATOM_PS` and large enough against
  the kinetic energy's fluctuation (:func:`~.statistics.drift_ratio` of at least
  :data:`DRIFT_RATIO_FLOOR`): far above what the integrator allows;
- in every ensemble, given the run's bonded-topology check (the census of molecules
  of its trajectory frames, :mod:`.topology`): a warning when molecules broke or
  formed (:func:`~.topology.topology_warning`).

The check with which the monitor stops a run that ran away (too hot, or
non-finite) is :func:`~.observer.runaway_message`.
"""

import math
from typing import Any, Dict, List, Mapping, Optional

from .advice import (
    drift_advice,
    equipartition_advice,
    stationarity_advice,
    target_advice,
)
from .statistics import (
    block_average,
    canonical_temperature_error,
    finite,
    halves_change,
    record_interval_fs,
    species_temperatures,
    summarise,
    widen_for_correlation,
)
from .thermostats import correlation_time_fs

#: share of each run treated as equilibration by :func:`equipartition` (the first half)
EQUILIBRATION_FRACTION = 0.5
#: a difference counts as resolved beyond this many standard errors
RESOLVED_SIGMA = 4.0
#: fewest analysed records for an equipartition verdict (fewer: no warning,
#: ``resolved`` is None): block averages need many correlated samples
MIN_RECORDS = 32
#: NVE: fewest records for a drift verdict (a t test of a slope with 3 degrees of
#: freedom; a clear drift needs t > 28 there, t > 6 with 13 records)
MIN_DRIFT_RECORDS = 5
#: NVE: a drift warns when the two-sided p-value of its slope is below this ...
DRIFT_P_VALUE = 1e-4
#: ... the drift is above this magnitude (meV/atom/ps; ~4 K/ps of heating) ...
DRIFT_FLOOR_MEV_PER_ATOM_PS = 1.0
#: ... and its :func:`~.statistics.drift_ratio` (energy put in over the run / standard
#: deviation of the kinetic energy) at least this: below, a line through part of an
#: oscillation of the conserved energy (velocity Verlet of 8 ethanol molecules at
#: 0.5 fs: 12 steps fit 9 meV/atom/ps at t = 19 with a drift ratio of 0.01; at 1 fs,
#: 6 steps fit 35 meV/atom/ps at p = 8e-5 with 0.03; direct forces: 0.2-0.3 in 12
#: steps of 2 fs)
DRIFT_RATIO_FLOOR = 0.1


def widened_note(entry: Mapping[str, Any]) -> str:
    """``", error widened 1.8x for the thermostat's correlation time"`` when
    :func:`equipartition` widened the error of ``entry``, else ``""``."""
    factor = entry.get("error_widened_by") or 1.0
    if factor <= 1.0:
        return ""
    return f", error widened {factor:.1f}x for the thermostat's correlation time"


def equipartition(
    rows: List[Dict[str, float]],
    target_temperature_K: Optional[float] = None,
    species_scale: Optional[Mapping[str, float]] = None,
    equilibration: float = EQUILIBRATION_FRACTION,
    sigma: float = RESOLVED_SIGMA,
    min_records: int = MIN_RECORDS,
    correlation_fs: Optional[float] = None,
    degrees_of_freedom: Optional[int] = None,
) -> Dict[str, Any]:
    """Is the kinetic energy shared evenly between species (and is the target held)?

    The records after the first ``equilibration`` fraction of the run are analysed
    with :func:`~.statistics.block_average`: the overall temperature, each species'
    temperature (:func:`~.statistics.species_temperatures`) and, for every pair of
    species, the difference of their temperatures (its own series: the fluctuations
    both species share, such as a global thermostat's rescaling, cancel in it).

    :param rows: records of a :class:`~.observer.Monitor`.
    :param target_temperature_K: the thermostat target, if any.
    :param species_scale: :attr:`~.observer.Monitor.species_scale`: corrects each
        species' temperature for its share of the centre-of-mass motion (default: none).
    :param equilibration: fraction of the records left out at the start.
    :param sigma: a difference is resolved beyond ``sigma`` standard errors.
    :param min_records: fewest analysed records for a verdict.
    :param correlation_fs: how long the temperature itself stays correlated when the
        blocks cannot show it (the thermostat's energy relaxation time,
        :func:`~.thermostats.correlation_time_fs`; needs ``time_fs`` in the records):
        the errors of the mean temperature and of each species' mean are widened for
        it (:func:`~.statistics.widen_for_correlation`; ``error_widened_by`` says by how
        much; each species' by the overall temperature's factor, its slow part being
        shared), at most to what equilibrium fluctuations of ``degrees_of_freedom``
        give (:func:`~.statistics.canonical_temperature_error`): a run that heats is
        not excused. The splits are not widened: what both species share cancels.
    :param degrees_of_freedom: kinetic degrees of freedom of the system; without it
        (or ``correlation_fs``) nothing is widened.
    :return: a JSON-ready dictionary: ``temperature`` (``mean``, ``error``,
        ``n_blocks``, ``error_widened_by``, and with a target ``target``,
        ``deviation``, ``sigma``, ``resolved``), ``species`` (``{symbol: {mean,
        error, n_blocks, error_widened_by}}``),
        ``splits`` (``{"A-B": {difference, error, sigma, resolved}}``, ``T_A - T_B``),
        ``max_split_K`` / ``max_split_error_K`` / ``max_split_pair`` (the largest
        difference), ``resolved`` (some split is resolved; ``None`` when there are
        too few records or a single species), ``stationary`` (no split changes
        beyond ``sigma`` standard errors between the two halves of the analysed
        records, :func:`~.statistics.halves_change`; each split's ``change`` and
        ``stationary`` say which), ``n_records``,
        ``equilibration_fraction``, ``sigma_threshold``; temperatures in K.
    """
    start = int(math.floor(equilibration * len(rows)))
    analysed = rows[start:]
    result: Dict[str, Any] = {
        "equilibration_fraction": float(equilibration),
        "n_records": len(analysed),
        "sigma_threshold": float(sigma),
        "species": {},
        "splits": {},
        "max_split_K": None,
        "max_split_error_K": None,
        "max_split_pair": None,
        "resolved": None,
        "stationary": None,
    }
    enough = len(analysed) >= max(min_records, 2)

    def verdict(value: float, error: float) -> Dict[str, Any]:
        if not (enough and math.isfinite(error)):
            return {"sigma": None, "resolved": None}
        if error == 0.0:  # a constant series: nothing to resolve
            return {"sigma": None, "resolved": False}
        ratio = abs(value) / error
        return {"sigma": ratio, "resolved": bool(ratio > sigma)}

    mean, error, blocks = block_average([r["temperature_K"] for r in analysed])
    factor = 1.0
    window_fs = record_interval_fs(analysed) * len(analysed)
    if correlation_fs and degrees_of_freedom and blocks and math.isfinite(window_fs):
        ceiling = canonical_temperature_error(
            target_temperature_K or mean, degrees_of_freedom, window_fs, correlation_fs
        )
        error, factor = widen_for_correlation(
            error, blocks, window_fs / blocks, correlation_fs, ceiling
        )
    overall: Dict[str, Any] = {"mean": mean, "error": finite(error)}
    overall.update(n_blocks=blocks, error_widened_by=factor)
    if target_temperature_K is not None:
        deviation = mean - float(target_temperature_K)
        overall.update(target=float(target_temperature_K), deviation=deviation)
        overall.update(verdict(deviation, error))
    result["temperature"] = overall

    series = species_temperatures(analysed, species_scale)
    for symbol, values in series.items():
        mean, error, blocks = block_average(values)
        error *= factor
        result["species"][symbol] = {
            "mean": mean,
            "error": finite(error),
            "n_blocks": blocks,
            "error_widened_by": factor,
        }
    symbols = list(series)
    largest = None
    for i, first in enumerate(symbols):
        for second in symbols[i + 1 :]:
            difference, error, blocks = block_average(series[first] - series[second])
            entry = {"difference": difference, "error": finite(error)}
            entry["n_blocks"] = blocks
            entry.update(verdict(difference, error))
            change, change_error = halves_change(series[first] - series[second])
            moved = verdict(change, change_error)["resolved"]
            entry["change"] = {"value": change, "error": finite(change_error)}
            entry["stationary"] = None if moved is None else not moved
            pair = f"{first}-{second}"
            result["splits"][pair] = entry
            if largest is None or abs(difference) > abs(largest[1]["difference"]):
                largest = (pair, entry)
    if largest is not None:
        pair, entry = largest
        result["max_split_K"] = abs(entry["difference"])
        result["max_split_error_K"] = entry["error"]
        result["max_split_pair"] = pair
        verdicts = [e["resolved"] for e in result["splits"].values()]
        if all(v is not None for v in verdicts):
            result["resolved"] = any(verdicts)
        steady = [e["stationary"] for e in result["splits"].values()]
        if all(v is not None for v in steady):
            result["stationary"] = all(steady)
    return result


def diagnose(
    rows: List[Dict[str, float]],
    summary: Mapping[str, Any],
    forces: str,
    ensemble: str,
    target_temperature_K: Optional[float] = None,
    species_scale: Optional[Mapping[str, float]] = None,
    equilibration: float = EQUILIBRATION_FRACTION,
    topology: Optional[Mapping[str, Any]] = None,
    tau_fs: Optional[float] = None,
    degrees_of_freedom: Optional[int] = None,
) -> Dict[str, Any]:
    """Warnings about a run, each with its way out.

    - thermostat (``svr``, ``langevin``): :func:`equipartition`; a warning when a
      species split is resolved, one when a split still changes between the halves
      of the analysed records, and one when the overall mean temperature misses the
      target beyond :data:`RESOLVED_SIGMA` standard errors;
    - ``nve``: a warning when :func:`drift_verdict` resolves a drift of the
      conserved energy;
    - ``topology`` given: :func:`~.topology.topology_warning`.

    :param rows: records of a :class:`~.observer.Monitor`.
    :param summary: what :func:`~.statistics.summarise` returned for them.
    :param forces: ``"conservative"``, ``"direct"`` or ``"mts"``.
    :param ensemble: ``"nve"``, ``"svr"`` or ``"langevin"``.
    :param target_temperature_K: the thermostat target.
    :param species_scale: :attr:`~.observer.Monitor.species_scale`.
    :param equilibration: fraction of the records :func:`equipartition` leaves out.
    :param topology: the run's bonded-topology check,
        :meth:`~.topology.TopologyWatch.result` (``None``: not checked).
    :param tau_fs: the thermostat's time constant (fs); with ``degrees_of_freedom``
        the mean temperatures' errors allow for the correlation it implies
        (:func:`~.thermostats.correlation_time_fs`, :func:`equipartition`).
    :param degrees_of_freedom: the system's kinetic degrees of freedom (:func:`assess`
        passes ``3 N``).
    :return: ``{"equipartition": ... or None, "drift": ... or None (NVE:
        :func:`drift_verdict`), "warnings": [{"kind", "message"}]}``; kinds:
        ``"equipartition"``, ``"not_stationary"``, ``"thermostat_target"``,
        ``"energy_drift"``, ``"topology"``.
    """
    warnings: List[Dict[str, str]] = []
    check = None
    if ensemble != "nve" and rows:
        check = equipartition(
            rows,
            target_temperature_K,
            species_scale,
            equilibration=equilibration,
            correlation_fs=correlation_time_fs(ensemble, tau_fs),
            degrees_of_freedom=degrees_of_freedom,
        )
        if check["resolved"]:
            resolved = [
                (pair, entry)
                for pair, entry in check["splits"].items()
                if entry["resolved"]
            ]
            pair, entry = max(resolved, key=lambda item: item[1]["sigma"] or 0.0)
            species = ", ".join(
                f"{symbol} {value['mean']:.1f} +- {value['error']:.1f} K"
                for symbol, value in check["species"].items()
            )
            warnings.append(
                {
                    "kind": "equipartition",
                    "message": (
                        "equipartition broken: species temperatures differ beyond "
                        f"their error ({species}; {pair} "
                        f"{entry['difference']:+.1f} +- {entry['error']:.1f} K, "
                        f"{entry['sigma']:.1f} standard errors, last "
                        f"{1 - check['equilibration_fraction']:.0%} of the run): "
                        + equipartition_advice(forces, ensemble)
                    ),
                }
            )
        if check["stationary"] is False:
            pair, entry = max(
                check["splits"].items(),
                key=lambda item: abs(item[1]["change"]["value"]),
            )
            change = entry["change"]
            warnings.append(
                {
                    "kind": "not_stationary",
                    "message": (
                        f"the species temperatures are still changing: the {pair} "
                        f"split changed by {change['value']:+.1f} +- "
                        f"{change['error']:.1f} K between the halves of the last "
                        f"{1 - check['equilibration_fraction']:.0%} of the run: "
                        + stationarity_advice()
                    ),
                }
            )
        overall = check["temperature"]
        if overall.get("resolved"):
            warnings.append(
                {
                    "kind": "thermostat_target",
                    "message": (
                        "the thermostat misses its target: mean temperature "
                        f"{overall['mean']:.1f} +- {overall['error']:.1f} K against "
                        f"{overall['target']:.1f} K ({overall['sigma']:.1f} standard "
                        f"errors{widened_note(overall)}): " + target_advice(forces)
                    ),
                }
            )
    drift_check = None
    if ensemble == "nve":
        drift_check = drift_verdict(summary)
        if drift_check["resolved"]:
            drift = summary["drift_meV_per_atom_per_ps"]
            error = summary["drift_error_meV_per_atom_per_ps"]
            ratio = drift_check["drift_ratio"]
            ratio = "n/a" if ratio is None else f"{ratio:.2g}"
            warnings.append(
                {
                    "kind": "energy_drift",
                    "message": (
                        f"the conserved energy drifts by {drift:.3g} +- {error:.2g} "
                        f"meV/atom/ps (t = {drift_check['t']:.1f}, p = "
                        f"{drift_check['p_value']:.1g} over "
                        f"{drift_check['n_records']} records; drift ratio "
                        f"{ratio}), far above what the "
                        "integrator allows: " + drift_advice(forces)
                    ),
                }
            )
    from .topology import topology_warning

    changed = topology_warning(topology)
    if changed is not None:
        warnings.append(changed)
    return {"equipartition": check, "drift": drift_check, "warnings": warnings}


def assess(
    rows: List[Dict[str, float]],
    n_atoms: int,
    forces: str,
    ensemble: str,
    target_temperature_K: Optional[float] = None,
    species_scale: Optional[Mapping[str, float]] = None,
    equilibration: float = EQUILIBRATION_FRACTION,
    topology: Optional[Mapping[str, Any]] = None,
    tau_fs: Optional[float] = None,
) -> Dict[str, Any]:
    """What a run's ``summary.json`` says of its records: :func:`~.statistics.summarise`
    and, from :func:`diagnose`, ``equipartition``, ``drift_check`` and ``warnings``
    (the arguments as theirs); ``topology``: the bonded-topology check as given
    (:meth:`~.topology.TopologyWatch.result`, or ``None``)."""
    summary = summarise(rows, n_atoms, target_temperature_K)
    checks = diagnose(
        rows,
        summary,
        forces,
        ensemble,
        target_temperature_K,
        species_scale,
        equilibration=equilibration,
        topology=topology,
        tau_fs=tau_fs,
        degrees_of_freedom=3 * n_atoms,
    )
    summary["equipartition"] = checks["equipartition"]
    summary["drift_check"] = checks["drift"]
    summary["topology"] = None if topology is None else dict(topology)
    summary["warnings"] = checks["warnings"]
    return summary


def drift_verdict(
    summary: Mapping[str, Any],
    p_value: float = DRIFT_P_VALUE,
    floor: float = DRIFT_FLOOR_MEV_PER_ATOM_PS,
    ratio_floor: float = DRIFT_RATIO_FLOOR,
    min_records: int = MIN_DRIFT_RECORDS,
) -> Dict[str, Any]:
    """Does the conserved energy of an NVE run drift? From the fit of
    :func:`~.statistics.summarise`.

    A drift is *resolved* when all of these hold:

    - at least ``min_records`` records (the t test below has ``n - 2`` degrees of
      freedom, so a short run needs a larger t: 5.9 with 13 records, 28 with 5);
    - the slope of the least-squares line of the conserved energy against time is
      significant: its two-sided p-value (t = slope / standard error, Student t with
      ``n - 2`` degrees of freedom) is below ``p_value``;
    - the drift is above ``floor`` (meV/atom/ps): a tiny drift resolved over a long
      run is not worth a warning;
    - the energy the drift put in over the run is at least ``ratio_floor`` standard
      deviations of the kinetic energy (:func:`~.statistics.drift_ratio`): the
      conserved energy of a sound integrator oscillates about its mean, and over a
      run shorter than an oscillation a straight line through it has a large t but
      puts in a negligible energy.

    :return: ``{"resolved": bool or None (too few records or no fit), "t",
        "p_value", "n_records", "drift_ratio", "p_value_threshold",
        "floor_meV_per_atom_per_ps", "drift_ratio_floor", "min_records"}``.
    """
    drift = summary.get("drift_meV_per_atom_per_ps")
    error = summary.get("drift_error_meV_per_atom_per_ps")
    p = summary.get("drift_p_value")
    n = int(summary.get("n_records", 0))
    ratio = summary.get("drift_ratio")
    verdict: Dict[str, Any] = {
        "resolved": None,
        "t": None,
        "p_value": p,
        "n_records": n,
        "drift_ratio": ratio,
        "p_value_threshold": float(p_value),
        "floor_meV_per_atom_per_ps": float(floor),
        "drift_ratio_floor": float(ratio_floor),
        "min_records": int(min_records),
    }
    if drift is None or error is None or p is None or n < min_records:
        return verdict
    verdict["t"] = abs(drift) / error if error > 0 else math.inf
    verdict["resolved"] = bool(
        p < p_value and abs(drift) > floor and (ratio is None or ratio >= ratio_floor)
    )
    return verdict
