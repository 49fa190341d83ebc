"""Energy and temperature monitor for :class:`~.integrator.MultipleTimeStep`.

:class:`Monitor` is an ASE observer: ``dyn.attach(monitor, interval=k)`` records, every
``k`` outer steps, one row of :data:`COLUMNS` plus one temperature per species, and
stops a runaway run by raising :class:`RunawayError` (temperature above a bound, or any
non-finite value). :func:`summarise` fits straight lines to the records: the heating
rate (K/ps) and the drift of the conserved energy (meV/atom/ps).

Temperatures: total ``2 K / ((3N - 3) k_B)``; per species ``2 K_s / (3 N_s k_B)``.
"""

import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

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


def _linear_fit(x: np.ndarray, y: np.ndarray) -> Dict[str, Optional[float]]:
    """Slope, its standard error, and the residual standard deviation of y(x)."""
    if len(x) < 3 or np.ptp(x) == 0:
        return {"slope": None, "slope_error": None, "residual_std": None}
    design = np.vstack([x, np.ones_like(x)]).T
    coefficients, *_ = np.linalg.lstsq(design, y, rcond=None)
    residuals = y - design @ coefficients
    dof = len(x) - 2
    sigma2 = float(residuals @ residuals) / dof
    xc = x - x.mean()
    slope_error = math.sqrt(sigma2 / float(xc @ xc))
    return {
        "slope": float(coefficients[0]),
        "slope_error": slope_error,
        "residual_std": math.sqrt(sigma2),
    }


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
        ``drift_meV_per_atom_per_ps`` (+ ``_error``) of the conserved energy,
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
    summary["conserved_fluctuation_meV_per_atom"] = conserved["residual_std"]
    summary["total_energy_drift_meV_per_atom_per_ps"] = total["slope"]
    keys = [k for k in rows[0] if k.startswith("temperature")]
    for key in keys:
        mean = float(np.mean([r[key] for r in rows]))
        summary[f"mean_{key}"] = mean
        if target_temperature_K is not None:
            summary[f"deviation_{key}"] = mean - float(target_temperature_K)
    return summary
