"""Multiple time stepping and monitors for torch-sim (batched MD, many replicas).

- :func:`mts_init`, :func:`mts_step`: r-RESPA over a batched torch-sim state, with
  :class:`LangevinThermostat` / :class:`SVRThermostat` per system;
- :class:`MetatomicSplit`, :class:`ModelPairSplit`: the fast / slow forces of a
  batch (the force split of the ASE integrator, batched);
- :func:`run_replicas`: the engine of ``mtt-nc md --engine torch-sim``: N replicas,
  each with the outputs of the ASE path and its own monitors and runaway stop.

Needs ``torch-sim-atomistic`` (``pip install 'metatrain-nc[torchsim]'``). Names are
imported lazily, so that ``mtt-nc --help`` imports neither torch nor torch-sim.
"""

from ..lazy_exports import lazy_exports

_EXPORTS = {
    "MTSState": "integrator",
    "mts_init": "integrator",
    "mts_step": "integrator",
    "runaway_systems": "integrator",
    "select": "integrator",
    "LangevinThermostat": "thermostats",
    "SVRThermostat": "thermostats",
    "ForceBatch": "splits",
    "MetatomicSplit": "splits",
    "ModelPairSplit": "splits",
    "atoms_to_state": "states",
    "run_replicas": "runner",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
