"""What every frame of a reference set says about where it came from."""

import os
from typing import Any, Dict

from .plan import ReferencePlan


def model_version(spec: str, model: Any) -> str:
    """``"<distribution> <version>"`` of the package behind a ``module:callable``
    reference (the package of the calculator's class, else of the module), or
    ``"file sha256:<12 hex>"`` for a model file."""
    from importlib.metadata import PackageNotFoundError, packages_distributions, version

    if os.path.exists(spec):
        from .plan import file_sha256

        return f"file sha256:{file_sha256(spec)[:12]}"
    calculator = getattr(model, "calculator", None)
    modules = []
    if calculator is not None:
        modules.append(type(calculator).__module__)
    modules.append(spec.partition(":")[0])
    distributions = packages_distributions()
    for module in modules:
        top = module.split(".")[0]
        for name in distributions.get(top, []):
            try:
                return f"{name} {version(name)}"
            except PackageNotFoundError:
                continue
    return "unknown version"


def model_method(model: Any) -> str:
    """What the model computes: a calculator's ``reference_method`` attribute (the
    factories of :mod:`metatrain_nc.references` set it), else its class name (ASE
    calculators) or architecture (metatomic models)."""
    calculator = getattr(model, "calculator", None)
    text = getattr(calculator, "reference_method", None)
    if text:
        return str(text)
    if calculator is not None:
        return f"ASE calculator {type(calculator).__name__}"
    return f"metatomic model ({getattr(model, 'architecture', '') or 'unknown'})"


def frame_provenance(plan: ReferencePlan, reference_version: str) -> Dict[str, Any]:
    """The provenance keys written in every frame's ``info``."""
    from .. import __version__

    sampler = plan.sampler or plan.reference
    sampling = (
        f"Langevin MD of {sampler} from frame start_frame of {plan.structures_name} "
        "with Maxwell-Boltzmann velocities at temperature_K, "
        f"dt {plan.timestep:g} fs, friction {plan.friction:g}/fs, H mass "
        f"{plan.hydrogen_mass:g} amu, {plan.equilibration_steps} equilibration "
        f"steps, a frame every {plan.interval_steps} steps; random symmetric cell "
        f"strain up to {plan.max_strain:g} before labelling"
    )
    return {
        "reference": plan.reference,
        "reference_version": reference_version,
        "method": plan.method,
        "sampler": sampler,
        "sampling": sampling,
        "seed": int(plan.seed),
        "builder": f"metatrain-nc {__version__} (mtt-nc reference)",
    }
