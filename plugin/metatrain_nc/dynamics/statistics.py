"""Statistics of an MD run's records (the rows of :class:`~.observer.Monitor`).

- :func:`block_average`: the mean of correlated samples with its standard error;
- :func:`widen_for_correlation`: that error when the blocks are shorter than a
  correlation time known from elsewhere (a thermostat's);
- :func:`halves_change`: how much that mean changes between a series' two halves;
- :func:`linear_fit`: a least-squares line with the t test of its slope
  (:func:`scipy.stats.linregress`);
- :func:`summarise`: heating rate (K/ps), drift of the conserved energy
  (meV/atom/ps) with its :func:`drift_ratio`, and mean temperatures;
- :func:`species_temperatures`: the temperature series of each species.

What they mean for a run (warnings) is decided in :mod:`.verdicts`.
"""

import math
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np


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


def widen_for_correlation(
    error: float,
    n_blocks: int,
    block_fs: float,
    correlation_fs: Optional[float],
    ceiling: Optional[float] = None,
) -> Tuple[float, float]:
    """Standard error of a mean whose series is known to stay correlated over
    ``correlation_fs``, from a :func:`block_average` error with ``n_blocks`` blocks of
    ``block_fs``: ``(error, factor)``.

    Blocks shorter than about twice the correlation time look independent when they
    are not, and a window only a few correlation times long shows less of the slow
    variance than there is: :func:`block_average` is then too sure. For a series
    whose slow part is exponentially correlated with time ``tau`` the expected
    variance of the means over a length ``t`` is ``var g(t / tau)`` with
    ``g(x) = 2 (x - 1 + exp(-x)) / x^2``; the block means' sample variance then
    estimates ``var (g(L / tau) - g(T / tau))`` (``L`` block, ``T = n L`` window),
    and the error of the mean is ``sqrt(var g(T / tau))``: the block error times
    ``factor = sqrt((n - 1) g(T / tau) / (g(L / tau) - g(T / tau)))``. Applied when
    ``L < 2 tau`` (a run of 5 ps under a Langevin thermostat of tau 1 ps, blocks of
    ~0.5 ps: ``factor`` ~2.2); ``factor`` is 1 otherwise, or when a time is unknown.
    The model holds for fluctuations about a steady mean, not for a run that heats
    or cools: ``ceiling``, the largest error equilibrium fluctuations can give
    (:func:`canonical_temperature_error`), bounds the widened error (never below
    ``error``), so that a trend is not read as noise.

    :param error: standard error from :func:`block_average` (same unit as returned).
    :param n_blocks: the number of blocks it used (at least 2).
    :param block_fs: length of its blocks (fs).
    :param correlation_fs: slowest relaxation time the series is known to have (fs),
        or ``None``.
    :param ceiling: the most the widened error may be (same unit), or ``None``.
    """
    if not (
        correlation_fs
        and correlation_fs > 0
        and n_blocks >= 2
        and math.isfinite(block_fs)
        and 0 < block_fs < 2.0 * correlation_fs
        and math.isfinite(error)
    ):
        return error, 1.0

    block = correlation_shrink(block_fs / correlation_fs)
    window = correlation_shrink(n_blocks * block_fs / correlation_fs)
    factor = max(1.0, math.sqrt((n_blocks - 1) * window / (block - window)))
    if ceiling is not None and math.isfinite(ceiling) and error > 0:
        factor = max(1.0, min(factor, ceiling / error))
    return error * factor, factor


def correlation_shrink(x: float) -> float:
    """``g(x) = 2 (x - 1 + exp(-x)) / x^2``: the variance of the mean of an
    exponentially correlated series over ``x`` correlation times, over the
    variance of one sample (1 at ``x -> 0``, ``2 / x`` for long means)."""
    return 2.0 * (x - 1.0 + math.exp(-x)) / (x * x)


def canonical_temperature_error(
    temperature_K: float,
    degrees_of_freedom: int,
    window_fs: float,
    correlation_fs: float,
) -> float:
    """The largest standard error of a mean kinetic temperature that equilibrium
    fluctuations give (K): the canonical spread of the instantaneous kinetic
    temperature, ``T sqrt(2 / n_dof)``, as if all of it relaxed as slowly as
    ``correlation_fs``, averaged over ``window_fs`` (:func:`correlation_shrink`).
    192 atoms at 300 K over 5 ps of a 1 ps relaxation: 10 K."""
    spread = temperature_K * math.sqrt(2.0 / max(degrees_of_freedom, 1))
    return spread * math.sqrt(correlation_shrink(window_fs / correlation_fs))


def record_interval_fs(rows: List[Dict[str, float]]) -> float:
    """Mean time between consecutive records (fs; ``nan`` without ``time_fs`` or
    with fewer than two records)."""
    if len(rows) < 2 or "time_fs" not in rows[0]:
        return math.nan
    return (rows[-1]["time_fs"] - rows[0]["time_fs"]) / (len(rows) - 1)


def halves_change(values: Sequence[float]) -> Tuple[float, float]:
    """How much the mean of a series changes from its first half to its second:
    ``(change, error)``, the difference of the halves' :func:`block_average` means
    and its standard error (the halves' errors in quadrature; ``nan`` when a half is
    too short for an error). A change beyond its error says the series is not
    stationary: its overall mean mixes a transient with what follows."""
    x = np.asarray(values, dtype=float)
    middle = len(x) // 2
    first, first_error, _ = block_average(x[:middle])
    second, second_error, _ = block_average(x[middle:])
    return second - first, math.hypot(first_error, second_error)


def linear_fit(x: np.ndarray, y: np.ndarray) -> Dict[str, Optional[float]]:
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

    :param rows: records of a :class:`~.observer.Monitor`.
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
    temperature = linear_fit(time_ps, np.array([r["temperature_K"] for r in rows]))
    summary["heating_rate_K_per_ps"] = temperature["slope"]
    summary["heating_rate_error_K_per_ps"] = temperature["slope_error"]
    per_atom = 1000.0 / n_atoms
    conserved = linear_fit(
        time_ps, np.array([r["conserved_eV"] for r in rows]) * per_atom
    )
    total = linear_fit(time_ps, np.array([r["total_eV"] for r in rows]) * per_atom)
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


def species_temperatures(
    rows: List[Dict[str, float]], species_scale: Optional[Mapping[str, float]] = None
) -> Dict[str, np.ndarray]:
    """The temperature series (K) of each species in ``rows`` (the
    ``temperature_<X>_K`` columns), each times its ``species_scale`` factor
    (:attr:`~.observer.Monitor.species_scale`; default 1); a species without free
    atoms (factor 0) is left out."""
    series: Dict[str, np.ndarray] = {}
    for key in rows[0] if rows else []:
        if not (key.startswith("temperature_") and key != "temperature_K"):
            continue
        symbol = key[len("temperature_") : -len("_K")]
        scale = 1.0 if species_scale is None else species_scale.get(symbol, 1.0)
        if scale <= 0:
            continue  # no free atoms of this species
        series[symbol] = scale * np.array([r[key] for r in rows])
    return series


def finite(value: float) -> Optional[float]:
    """``value`` as a float, or ``None`` when it is not finite (JSON-ready)."""
    return float(value) if math.isfinite(value) else None
