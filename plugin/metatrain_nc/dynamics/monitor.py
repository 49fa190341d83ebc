"""Energy and temperature monitor of MD runs: the names of :mod:`.observer` (the ASE
observer that records and stops runaways), :mod:`.statistics` (block averages, drift
fits, species temperatures) and :mod:`.verdicts` (drift and equipartition verdicts,
the warnings of a run) in one place, as documented in ``docs/dynamics.md``::

    monitor = Monitor(dyn, max_temperature_K=2000)
    dyn.attach(monitor, interval=1)
    summary = summarise(monitor.rows, len(atoms))
    diagnose(monitor.rows, summary, forces, ensemble)["warnings"]
"""

from .observer import (
    COLUMNS,
    Monitor,
    RunawayError,
    runaway_message,
    species_degrees_of_freedom,
)
from .statistics import (
    block_average,
    drift_ratio,
    linear_fit,
    species_temperatures,
    summarise,
)
from .verdicts import (
    DRIFT_FLOOR_MEV_PER_ATOM_PS,
    DRIFT_P_VALUE,
    DRIFT_RATIO_FLOOR,
    EQUILIBRATION_FRACTION,
    MIN_DRIFT_RECORDS,
    MIN_RECORDS,
    RESOLVED_SIGMA,
    assess,
    diagnose,
    drift_verdict,
    equipartition,
)

__all__ = [
    "COLUMNS",
    "DRIFT_FLOOR_MEV_PER_ATOM_PS",
    "DRIFT_P_VALUE",
    "DRIFT_RATIO_FLOOR",
    "EQUILIBRATION_FRACTION",
    "MIN_DRIFT_RECORDS",
    "MIN_RECORDS",
    "RESOLVED_SIGMA",
    "Monitor",
    "RunawayError",
    "block_average",
    "diagnose",
    "drift_ratio",
    "drift_verdict",
    "equipartition",
    "linear_fit",
    "runaway_message",
    "species_degrees_of_freedom",
    "species_temperatures",
    "summarise",
    "assess",
]
