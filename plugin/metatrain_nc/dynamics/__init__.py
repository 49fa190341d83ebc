"""Dynamics that make direct forces safe.

- :class:`MultipleTimeStep`: RESPA integrator for ASE (conservative / direct / mts
  forces, NVE / SVR / Langevin);
- :class:`ModelForces`, :class:`ModelCalculator`: conservative and direct forces from
  one model evaluation, and an ASE calculator for one force mode;
- :class:`Monitor`, :func:`summarise`, :class:`RunawayError`: energy and temperature
  monitors, heating rate and drift;
- :func:`run_md`, :func:`relaxation_check`: the engines of ``mtt-nc md`` and
  ``mtt-nc relax``.

Names are imported lazily, so that ``mtt-nc --help`` does not import torch.
"""

from ..lazy_exports import lazy_exports

_EXPORTS = {
    "MultipleTimeStep": "integrator",
    "ModelForces": "forces",
    "ModelCalculator": "forces",
    "ForceResult": "forces",
    "load_force_model": "forces",
    "Monitor": "monitor",
    "RunawayError": "monitor",
    "summarise": "monitor",
    "SVRThermostat": "thermostats",
    "LangevinThermostat": "thermostats",
    "MDSettings": "md",
    "run_md": "md",
    "relaxation_check": "relax",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
