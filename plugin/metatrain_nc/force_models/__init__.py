"""The one force-model layer: every tool asks a model through it.

Three kinds of model behind one interface (:class:`ForceModel`):

- :class:`MetatomicModel`: an exported metatomic model (``.pt``) or a metatrain
  checkpoint (``.ckpt``): energy, conservative forces, direct forces, stress, exact
  Jacobian products; float64 for checkpoints;
- :class:`CalculatorModel`: any ASE calculator (``module:callable`` on the command
  line); its forces count as conservative unless declared direct; Jacobians by finite
  differences;
- :class:`ForcePair`: a slow model and a fast one for multiple time stepping;
- :class:`ForceSplit`: the protocol multiple-time-step integrators run on (``fast``,
  ``slow``, ``both``), built once by :func:`.force_split.force_split` (import it
  from the module: ``force_split`` in this package is the module):
  :class:`HybridSplit` (``pet_m``), :class:`PairSplit` (teacher + student),
  :class:`ConservativeSplit`, :class:`DirectSplit`.

Every result is checked: non-finite energies, forces or stress raise
:class:`~metatrain_nc.errors.NonFiniteError` naming the model and the structure.
:func:`time_force_calls` / :func:`time_force_model` are the one way tools time
models (wall clock over distinct configurations, :mod:`.timing`).

:func:`load_force_model` turns what a user names into a :class:`ForceModel`;
:class:`ModelCalculator` shows one head of it to ASE; :func:`check_structure` holds
the structure rules every tool applies. Names are imported lazily.
"""

from ..lazy_exports import lazy_exports

_EXPORTS = {
    "ForceModel": "base",
    "ForceResult": "base",
    "StructureForces": "base",
    "MetatomicModel": "metatomic",
    "TorchForces": "metatomic",
    "CalculatorModel": "ase_calculator",
    "FiniteDifferenceForces": "ase_calculator",
    "calculator_from_factory": "ase_calculator",
    "ForcePair": "pair",
    "ForceSplit": "force_split",
    "HybridSplit": "force_split",
    "PairSplit": "force_split",
    "ConservativeSplit": "force_split",
    "DirectSplit": "force_split",
    "ModelCalculator": "calculator",
    "load_force_model": "loading",
    "check_structure": "structures",
    "describe_structure": "structures",
    "MIN_DISTANCE": "structures",
    "check_finite": "base",
    "ForceCall": "timing",
    "ForceTiming": "timing",
    "time_force_calls": "timing",
    "time_force_model": "timing",
    "wall_seconds": "timing",
    "WallClock": "timing",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
