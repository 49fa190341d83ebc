"""Dynamics that make direct forces safe.

- :class:`MultipleTimeStep`: RESPA integrator for ASE (conservative / direct / mts
  forces, NVE / SVR / Langevin);
- :class:`ModelCalculator`, :func:`load_force_model`, :class:`ForceSplit`,
  :func:`force_split`: re-exported from :mod:`metatrain_nc.force_models`, the one
  force-model layer (a force split is what the integrator runs on);
- :class:`Monitor`, :func:`summarise`, :class:`RunawayError`: energy and temperature
  monitors, heating rate and drift; :func:`equipartition`, :func:`block_average`:
  per-species temperatures with block-averaged errors;
- :func:`census`, :class:`TopologyWatch`: the molecules of a structure (bonded
  topology) and the check of ``mtt-nc md`` that a run kept them;
- :func:`find_stride`: the largest MTS stride whose drift stays near conservative;
- :func:`run_md`, :func:`relaxation_check`: the engines of ``mtt-nc md`` and
  ``mtt-nc relax``.

Names are imported lazily, so that ``mtt-nc --help`` does not import torch.
"""

from ..lazy_exports import lazy_exports

_EXPORTS = {
    "MultipleTimeStep": "integrator",
    "ModelCalculator": ".force_models.calculator",
    "ForceResult": ".force_models.base",
    "load_force_model": ".force_models.loading",
    "ForceSplit": ".force_models.force_split",
    "force_split": ".force_models.force_split",
    "Monitor": "observer",
    "RunawayError": "observer",
    "summarise": "statistics",
    "block_average": "statistics",
    "widen_for_correlation": "statistics",
    "equipartition": "verdicts",
    "census": "topology",
    "TopologyWatch": "topology",
    "find_stride": "stride",
    "StrideScan": "stride",
    "SVRThermostat": "thermostats",
    "LangevinThermostat": "thermostats",
    "MDSettings": "md",
    "run_md": "md",
    "relaxation_check": "relax",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
