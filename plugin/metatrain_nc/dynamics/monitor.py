"""Energy and temperature monitor for :class:`~.integrator.MultipleTimeStep`.

:class:`Monitor` is an ASE observer: ``dyn.attach(monitor, interval=k)`` records, every
``k`` outer steps, one row of :data:`COLUMNS` plus one temperature per species, and
stops a runaway run by raising :class:`RunawayError` (temperature above a bound, or any
non-finite value). :func:`summarise` fits straight lines to the records: the heating
rate (K/ps) and the drift of the conserved energy (meV/atom/ps).

Temperatures: total ``2 K / ((3N - 3) k_B)``; per species ``2 K_s / (3 N_s k_B)``.

:func:`diagnose` turns the records into warnings while a run's results are written
(``mtt-nc md`` prints them and puts them in ``summary.json``):

- with a thermostat, :func:`equipartition`: block-averaged means (:func:`block_average`,
  correlated samples) of the temperature of each species and of their differences
  over the last half of the run; a warning when two species differ beyond
  :data:`RESOLVED_SIGMA` standard errors, or the overall mean misses the target;
- in NVE, :func:`drift_verdict`: a drift of the conserved energy that a t test of
  the fitted slope resolves (Student t, ``n - 2`` degrees of freedom, p below
  :data:`DRIFT_P_VALUE`, from :data:`MIN_DRIFT_RECORDS` records on: short runs get a
  verdict too), above :data:`DRIFT_FLOOR_MEV_PER_ATOM_PS` and large enough against
  the kinetic energy's fluctuation (:func:`drift_ratio` of at least
  :data:`DRIFT_RATIO_FLOOR`): far above what the integrator allows.
"""

import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from ase import units
from ase.data import chemical_symbols

#: columns of every record (units in the names)
COLUMNS = [
    "step",
    "time_fs",
    "potential_eV",
    "kinetic_eV",
    "total_eV",
    "conserved_eV",
    "temperature_K",
]

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
#: ... and its :func:`drift_ratio` (energy it put in over the run / standard
#: deviation of the kinetic energy) at least this: below, a line through part of an
#: oscillation of the conserved energy (velocity Verlet of 8 ethanol molecules at
#: 0.5 fs: 12 steps fit 9 meV/atom/ps at t = 19 with a drift ratio of 0.01; at 1 fs,
#: 6 steps fit 35 meV/atom/ps at p = 8e-5 with 0.03; direct forces: 0.2-0.3 in 12
#: steps of 2 fs)
DRIFT_RATIO_FLOOR = 0.1


class RunawayError(RuntimeError):
    """The simulation ran away (too hot or non-finite); the message says why."""


@dataclass
class Monitor:
    """Records energies and temperatures; stops runaways.

    :param dyn: the dynamics (a :class:`~.integrator.MultipleTimeStep`).
    :param max_temperature_K: stop when the temperature exceeds it (``None``: no bound).
    :param callback: called with each new row (e.g. a progress bar update).
    """

    dyn: Any
    max_temperature_K: Optional[float] = None
    rows: List[Dict[str, float]] = field(default_factory=list)
    callback: Any = None

    def __post_init__(self):
        numbers = self.dyn.atoms.numbers
        self.species = [
            chemical_symbols[z] for z in sorted(set(int(z) for z in numbers))
        ]
        self._masks = {
            chemical_symbols[z]: numbers == z
            for z in sorted(set(int(z) for z in numbers))
        }
        #: kinetic degrees of freedom of each species (see
        #: :func:`species_degrees_of_freedom`)
        self.species_dof = species_degrees_of_freedom(
            self.dyn.atoms, getattr(self.dyn, "ensemble", "nve") != "langevin"
        )
        #: factors turning the recorded ``2 K_s / (3 N_s k_B)`` into the species
        #: temperature with its own degrees of freedom, for :func:`equipartition`
        self.species_scale = {
            symbol: (3.0 * float(mask.sum()) / self.species_dof[symbol])
            if self.species_dof[symbol] > 0
            else 0.0
            for symbol, mask in self._masks.items()
        }

    @property
    def columns(self) -> List[str]:
        """All column names: :data:`COLUMNS` then ``temperature_<X>_K`` per species."""
        return COLUMNS + [f"temperature_{s}_K" for s in self.species]

    def __call__(self) -> None:
        dyn = self.dyn
        atoms = dyn.atoms
        momenta = atoms.get_momenta()
        masses = atoms.get_masses()[:, None]
        per_atom_kinetic = 0.5 * np.sum(momenta**2 / masses, axis=1)
        row = {
            "step": int(dyn.nsteps),
            "time_fs": dyn.get_time() / units.fs,
            "potential_eV": dyn.potential_energy(),
            "kinetic_eV": dyn.kinetic_energy(),
        }
        row["total_eV"] = row["potential_eV"] + row["kinetic_eV"]
        row["conserved_eV"] = dyn.conserved_energy()
        row["temperature_K"] = dyn.temperature()
        for symbol, mask in self._masks.items():
            kinetic = float(per_atom_kinetic[mask].sum())
            row[f"temperature_{symbol}_K"] = 2.0 * kinetic / (3 * mask.sum() * units.kB)
        self.rows.append(row)
        if self.callback is not None:
            self.callback(row)
        bad = [k for k, v in row.items() if not math.isfinite(v)]
        if bad or not np.all(np.isfinite(atoms.positions)):
            raise RunawayError(
                f"non-finite values at step {row['step']} (t = {row['time_fs']:.1f} "
                f"fs): {bad or ['positions']}"
            )
        bound = self.max_temperature_K
        if bound is not None and row["temperature_K"] > bound:
            raise RunawayError(
                f"runaway: temperature {row['temperature_K']:.0f} K above the bound "
                f"{bound:.0f} K at step {row['step']} (t = {row['time_fs']:.1f} fs)"
            )


def species_degrees_of_freedom(
    atoms, momentum_conserved: bool = True
) -> Dict[str, float]:
    """Kinetic degrees of freedom of each species: ``3 N_s`` (free atoms: those not
    held by ``FixAtoms``) less the species' share of the centre-of-mass motion,
    ``3 M_s / M``, when the total momentum is conserved (NVE, SVR; ``FixCom``).

    Their sum is the ``3N - 3`` of the total temperature. Without the correction,
    a species of heavy atoms looks colder than the rest in a small system (8 waters
    at zero total momentum: oxygen 11% below the target).
    """
    from ase.constraints import FixAtoms, FixCom

    numbers = atoms.numbers
    free = np.ones(len(atoms), dtype=bool)
    com = momentum_conserved
    for constraint in atoms.constraints:
        if isinstance(constraint, FixAtoms):
            free[constraint.index] = False
            com = False  # pinned atoms take the momentum
    if any(isinstance(c, FixCom) for c in atoms.constraints):
        com = True
    masses = atoms.get_masses()
    total = float(masses[free].sum())
    dof = {}
    for z in sorted(set(int(z) for z in numbers)):
        mask = (numbers == z) & free
        value = 3.0 * float(mask.sum())
        if com and total > 0:
            value -= 3.0 * float(masses[mask].sum()) / total
        dof[chemical_symbols[z]] = value
    return dof


def block_average(
    values: Sequence[float], min_blocks: int = 8
) -> Tuple[float, float, int]:
    """Mean of correlated samples with its standard error, by blocking (Flyvbjerg and
    Petersen, J. Chem. Phys. 91, 461 (1989)).

    The series is halved repeatedly (neighbouring samples averaged) while at least
    ``min_blocks`` blocks remain; the error is taken at the first block size ``B``
    that satisfies ``B^3 > 2 n (s_B / s_1)^4`` (Lee et al., Phys. Rev. E 83, 066706
    (2011); ``s_B``: standard error with blocks of ``B``, ``n`` samples), where the
    blocks are longer than the correlation time. When no block size does (too short a
    series), the largest standard error of all levels is returned: the safe side.

    :return: ``(mean, error, n_blocks)``; ``error`` is ``nan`` with fewer than
        ``2 min_blocks`` samples (``n_blocks`` is then the number of samples).
    """
    x = np.asarray(values, dtype=float)
    n = len(x)
    if n == 0:
        return math.nan, math.nan, 0
    mean = float(x.mean())
    if n < 2 * min_blocks:
        return mean, math.nan, n
    levels = []  # (block size, number of blocks, standard error)
    data, size = x, 1
    while len(data) >= min_blocks:
        count = len(data)
        levels.append((size, count, float(np.std(data, ddof=1) / math.sqrt(count))))
        data = data[: count - count % 2]
        data = 0.5 * (data[0::2] + data[1::2])
        size *= 2
    first = levels[0][2]
    if first == 0.0:
        return mean, 0.0, n
    for size, count, error in levels:
        if size**3 > 2.0 * n * (error / first) ** 4:
            return mean, error, count
    size, count, error = max(levels, key=lambda level: level[2])
    return mean, error, count


def _linear_fit(x: np.ndarray, y: np.ndarray) -> Dict[str, Optional[float]]:
    """Least-squares line of y(x) (:func:`scipy.stats.linregress`): its slope, the
    slope's standard error, the two-sided p-value of the slope (t test, ``n - 2``
    degrees of freedom, against no slope) and the residual standard deviation."""
    from scipy.stats import linregress

    if len(x) < 3 or np.ptp(x) == 0:
        return {
            "slope": None,
            "slope_error": None,
            "p_value": None,
            "residual_std": None,
        }
    fit = linregress(x, y)
    residuals = y - (fit.intercept + fit.slope * x)
    sigma2 = float(residuals @ residuals) / (len(x) - 2)
    return {
        "slope": float(fit.slope),
        "slope_error": float(fit.stderr),
        "p_value": float(fit.pvalue),
        "residual_std": math.sqrt(sigma2),
    }


def drift_ratio(
    rows: List[Dict[str, float]], drift: Optional[float], n_atoms: int
) -> Optional[float]:
    """The drift ratio of the public drift benchmarks (mlipaudit, ml-peg): the
    energy change over the run from the fitted drift, over the standard deviation of
    the kinetic energy (dimensionless; ``None`` when either is undefined).

    :param drift: fitted drift of the conserved energy (meV/atom/ps).
    """
    if drift is None or len(rows) < 3:
        return None
    kinetic = np.array([r["kinetic_eV"] for r in rows])
    spread = float(kinetic.std(ddof=1))
    if not spread > 0:
        return None
    duration_ps = (rows[-1]["time_fs"] - rows[0]["time_fs"]) / 1000.0
    change_eV = abs(drift) * duration_ps * n_atoms / 1000.0
    return change_eV / spread


def summarise(
    rows: List[Dict[str, float]],
    n_atoms: int,
    target_temperature_K: Optional[float] = None,
) -> Dict[str, Any]:
    """Heating rate, energy drift and mean temperatures from monitor rows.

    :param rows: records of a :class:`Monitor`.
    :param n_atoms: number of atoms (for per-atom drifts).
    :param target_temperature_K: thermostat target, if any (deviations are reported).
    :return: a JSON-ready dictionary: ``heating_rate_K_per_ps`` (+ ``_error``),
        ``drift_meV_per_atom_per_ps`` (+ ``_error``, + ``drift_p_value``: the t
        test of its slope) of the conserved energy and its :func:`drift_ratio`,
        ``total_energy_drift_meV_per_atom_per_ps``,
        ``conserved_fluctuation_meV_per_atom`` (residual std about the fit),
        ``mean_temperature_K``, ``mean_temperature_<X>_K`` and, with a target,
        ``deviation_..._K``.
    """
    summary: Dict[str, Any] = {"n_records": len(rows)}
    if not rows:
        return summary
    time_ps = np.array([r["time_fs"] for r in rows]) / 1000.0
    summary["duration_ps"] = float(time_ps[-1] - time_ps[0])
    temperature = _linear_fit(time_ps, np.array([r["temperature_K"] for r in rows]))
    summary["heating_rate_K_per_ps"] = temperature["slope"]
    summary["heating_rate_error_K_per_ps"] = temperature["slope_error"]
    per_atom = 1000.0 / n_atoms
    conserved = _linear_fit(
        time_ps, np.array([r["conserved_eV"] for r in rows]) * per_atom
    )
    total = _linear_fit(time_ps, np.array([r["total_eV"] for r in rows]) * per_atom)
    summary["drift_meV_per_atom_per_ps"] = conserved["slope"]
    summary["drift_error_meV_per_atom_per_ps"] = conserved["slope_error"]
    summary["drift_p_value"] = conserved["p_value"]
    summary["conserved_fluctuation_meV_per_atom"] = conserved["residual_std"]
    summary["total_energy_drift_meV_per_atom_per_ps"] = total["slope"]
    summary["drift_ratio"] = drift_ratio(rows, conserved["slope"], n_atoms)
    keys = [k for k in rows[0] if k.startswith("temperature")]
    for key in keys:
        mean = float(np.mean([r[key] for r in rows]))
        summary[f"mean_{key}"] = mean
        if target_temperature_K is not None:
            summary[f"deviation_{key}"] = mean - float(target_temperature_K)
    return summary


def equipartition(
    rows: List[Dict[str, float]],
    target_temperature_K: Optional[float] = None,
    species_scale: Optional[Mapping[str, float]] = None,
    equilibration: float = EQUILIBRATION_FRACTION,
    sigma: float = RESOLVED_SIGMA,
    min_records: int = MIN_RECORDS,
) -> Dict[str, Any]:
    """Is the kinetic energy shared evenly between species (and is the target held)?

    The records after the first ``equilibration`` fraction of the run are analysed
    with :func:`block_average`: the overall temperature, each species' temperature
    and, for every pair of species, the difference of their temperatures (its own
    series: the fluctuations both species share, such as a global thermostat's
    rescaling, cancel in it).

    :param rows: records of a :class:`Monitor`.
    :param target_temperature_K: the thermostat target, if any.
    :param species_scale: :attr:`Monitor.species_scale`: corrects each species'
        temperature for its share of the centre-of-mass motion (default: none).
    :param equilibration: fraction of the records left out at the start.
    :param sigma: a difference is resolved beyond ``sigma`` standard errors.
    :param min_records: fewest analysed records for a verdict.
    :return: a JSON-ready dictionary: ``temperature`` (``mean``, ``error``,
        ``n_blocks``, and with a target ``target``, ``deviation``, ``sigma``,
        ``resolved``), ``species`` (``{symbol: {mean, error, n_blocks}}``),
        ``splits`` (``{"A-B": {difference, error, sigma, resolved}}``, ``T_A - T_B``),
        ``max_split_K`` / ``max_split_error_K`` / ``max_split_pair`` (the largest
        difference), ``resolved`` (some split is resolved; ``None`` when there are
        too few records or a single species), ``n_records``,
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
    overall: Dict[str, Any] = {"mean": mean, "error": _finite(error)}
    overall["n_blocks"] = blocks
    if target_temperature_K is not None:
        deviation = mean - float(target_temperature_K)
        overall.update(target=float(target_temperature_K), deviation=deviation)
        overall.update(verdict(deviation, error))
    result["temperature"] = overall

    series: Dict[str, np.ndarray] = {}
    for key in analysed[0] if analysed else []:
        if not (key.startswith("temperature_") and key != "temperature_K"):
            continue
        symbol = key[len("temperature_") : -len("_K")]
        scale = 1.0 if species_scale is None else species_scale.get(symbol, 1.0)
        if scale <= 0:
            continue  # no free atoms of this species
        series[symbol] = scale * np.array([r[key] for r in analysed])
        mean, error, blocks = block_average(series[symbol])
        result["species"][symbol] = {
            "mean": mean,
            "error": _finite(error),
            "n_blocks": blocks,
        }
    symbols = list(series)
    largest = None
    for i, first in enumerate(symbols):
        for second in symbols[i + 1 :]:
            difference, error, blocks = block_average(series[first] - series[second])
            entry = {"difference": difference, "error": _finite(error)}
            entry["n_blocks"] = blocks
            entry.update(verdict(difference, error))
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
    return result


def diagnose(
    rows: List[Dict[str, float]],
    summary: Mapping[str, Any],
    forces: str,
    ensemble: str,
    target_temperature_K: Optional[float] = None,
    species_scale: Optional[Mapping[str, float]] = None,
    equilibration: float = EQUILIBRATION_FRACTION,
) -> Dict[str, Any]:
    """Warnings about a run, each with its way out.

    - thermostat (``svr``, ``langevin``): :func:`equipartition`; a warning when a
      species split is resolved, and another when the overall mean temperature
      misses the target beyond :data:`RESOLVED_SIGMA` standard errors;
    - ``nve``: a warning when :func:`drift_verdict` resolves a drift of the
      conserved energy.

    :param rows: records of a :class:`Monitor`.
    :param summary: what :func:`summarise` returned for them.
    :param forces: ``"conservative"``, ``"direct"`` or ``"mts"``.
    :param ensemble: ``"nve"``, ``"svr"`` or ``"langevin"``.
    :param target_temperature_K: the thermostat target.
    :param species_scale: :attr:`Monitor.species_scale`.
    :param equilibration: fraction of the records :func:`equipartition` leaves out.
    :return: ``{"equipartition": ... or None, "drift": ... or None (NVE:
        :func:`drift_verdict`), "warnings": [{"kind", "message"}]}``; kinds:
        ``"equipartition"``, ``"thermostat_target"``, ``"energy_drift"``.
    """
    warnings: List[Dict[str, str]] = []
    check = None
    if ensemble != "nve" and rows:
        check = equipartition(
            rows, target_temperature_K, species_scale, equilibration=equilibration
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
                        + _equipartition_advice(forces, ensemble)
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
                        "errors): " + _target_advice(forces)
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
                        "integrator allows: " + _drift_advice(forces)
                    ),
                }
            )
    return {"equipartition": check, "drift": drift_check, "warnings": warnings}


def drift_verdict(
    summary: Mapping[str, Any],
    p_value: float = DRIFT_P_VALUE,
    floor: float = DRIFT_FLOOR_MEV_PER_ATOM_PS,
    ratio_floor: float = DRIFT_RATIO_FLOOR,
    min_records: int = MIN_DRIFT_RECORDS,
) -> Dict[str, Any]:
    """Does the conserved energy of an NVE run drift? From :func:`summarise`'s fit.

    A drift is *resolved* when all of these hold:

    - at least ``min_records`` records (the t test below has ``n - 2`` degrees of
      freedom, so a short run needs a larger t: 5.9 with 13 records, 28 with 5);
    - the slope of the least-squares line of the conserved energy against time is
      significant: its two-sided p-value (t = slope / standard error, Student t with
      ``n - 2`` degrees of freedom) is below ``p_value``;
    - the drift is above ``floor`` (meV/atom/ps): a tiny drift resolved over a long
      run is not worth a warning;
    - the energy the drift put in over the run is at least ``ratio_floor`` standard
      deviations of the kinetic energy (:func:`drift_ratio`): the conserved energy
      of a sound integrator oscillates about its mean, and over a run shorter than
      an oscillation a straight line through it has a large t but puts in a
      negligible energy.

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


def _equipartition_advice(forces: str, ensemble: str) -> str:
    if forces == "direct":
        advice = (
            "direct forces are not the gradient of an energy, and the thermostat "
            "hides their heating but not its uneven share between species: run with "
            "--forces mts (or conservative)"
        )
        if ensemble == "langevin":
            advice += "; a shorter --tau narrows the split but slows the dynamics"
        else:
            advice += "; a global thermostat (svr) cannot restore equipartition"
        return advice
    if forces == "mts":
        return (
            "the outer step may be too long for this model (try --stride auto or a "
            "shorter --timestep), or the run too short to equilibrate (run longer)"
        )
    return (
        "conservative forces share energy evenly at equilibrium: the run is too "
        "short to equilibrate (run longer), or the time step too long"
    )


def _target_advice(forces: str) -> str:
    if forces == "direct":
        return (
            "direct forces heat the system faster than the thermostat takes the heat "
            "out: run with --forces mts (or conservative), or use a shorter --tau"
        )
    if forces == "mts":
        return (
            "the outer step may be too long for this model (try --stride auto or a "
            "shorter --timestep), or the run too short to equilibrate"
        )
    return "the time step may be too long, or the run too short to equilibrate"


def _drift_advice(forces: str) -> str:
    if forces == "direct":
        return "direct forces do not conserve energy: use --forces mts"
    if forces == "mts":
        return (
            "the outer step is too long for this model: try --stride auto or a "
            "shorter --timestep"
        )
    return (
        "the time step is too long for this model: try a shorter --timestep or a "
        "larger --stride"
    )


def _finite(value: float) -> Optional[float]:
    return float(value) if math.isfinite(value) else None
