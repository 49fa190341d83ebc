"""Python API of the antisymmetry evaluator.

Typical notebook use::

    from metatrain_nc.antisymmetry import (
        AntisymmetrySettings, antisymmetry_ratio, evaluate,
    )

    lam = antisymmetry_ratio(atoms, "model.pt")            # exact, direct forces
    report = evaluate(frames, "model.ckpt", rotation_loop=True)
    report = evaluate(frames, EMT())                       # an ASE calculator
    report = evaluate(frames, "model.pt", AntisymmetrySettings(square_loops=4))
    report.summary()["lambda_mean"]
    report.write("antisymmetry-out")  # JSON, CSV, PNG, chemiscope

``model`` is anything :func:`~metatrain_nc.force_models.load_force_model` takes: a
path (exported ``.pt`` or metatrain ``.ckpt``), an ``AtomisticModel`` or metatrain
model, ``"module:callable"`` naming a factory of an ASE calculator, an ASE
``Calculator``, or a :class:`~metatrain_nc.force_models.ForceModel`. The Jacobian of a
model with gradients (metatomic) is exact; that of an ASE calculator comes from
central finite differences of its forces (step and estimated noise reported).
"""

import os
from typing import Any, Dict, List, Optional, Sequence, Union

import ase
import numpy as np

from ..errors import NonFiniteError, UserInputError
from ..force_models.base import ForceModel
from ..force_models.loading import load_force_model
from ..force_models.names import CONSERVATIVE, DIRECT_FORCE, head_of_output
from .jacobian import exact_jacobian, lambda_from_jacobian, stochastic_lambda
from .results import AntisymmetryReport, StructureResult
from .settings import MAX_EXACT_ROWS, AntisymmetrySettings, canonical_output
from .steps import (
    add_loops,
    available_forces,
    check_structures,
    jacobian_items,
    jacobian_method,
    other_head_forces,
    progress_bars,
    structure_result,
    summary_settings,
)

ModelLike = Union[str, os.PathLike, Any]

__all__ = [
    "AntisymmetryReport",
    "ModelLike",
    "StructureResult",
    "antisymmetry_ratio",
    "check_lambda",
    "evaluate",
    "force_jacobian",
    "resolve_output",
]


def resolve_output(model: ForceModel, output: Optional[str] = None) -> str:
    """The force output of ``model`` to analyse: ``output`` if the model has it
    (:class:`UserInputError` otherwise); for ``None``, its direct head, or the forces
    of an ASE calculator not declared direct (``"conservative"``)."""
    output = canonical_output(output)
    if output is None:
        output = DIRECT_FORCE
        if not model.has_direct and model.kind == "ase":
            output = CONSERVATIVE
    fix = ""
    if output == DIRECT_FORCE and model.has_conservative:
        fix = "; analyse its -dE/dr with --output conservative (output='conservative')"
    model.require(head_of_output(output), fix)
    return output


def force_jacobian(
    atoms: ase.Atoms,
    model: ModelLike,
    output: Optional[str] = None,
    chunk_size: int = 16,
    float64: bool = False,
    max_rows: int = MAX_EXACT_ROWS,
    direct: Optional[bool] = None,
    fd_step: Optional[float] = None,
) -> np.ndarray:
    """Force Jacobian ``d f_(i,a) / d r_(j,b)``, shape (3N, 3N), eV/A^2: exact for a
    model with gradients, central finite differences (step ``fd_step`` A) for an ASE
    calculator.

    :param output: ``"non_conservative_force"``, ``"conservative"`` (-dE/dr) or
        ``None`` (see :func:`resolve_output`).
    :param direct: an ASE calculator's forces are direct.
    """
    model = load_force_model(model, direct=direct, float64=float64)
    model.check(atoms)
    forces = model.structure_forces(atoms, resolve_output(model, output))
    return exact_jacobian(
        forces, chunk_size=chunk_size, max_rows=max_rows, fd_step=fd_step
    )


def antisymmetry_ratio(
    atoms: ase.Atoms,
    model: ModelLike,
    output: Optional[str] = None,
    stochastic: bool = False,
    probes: int = 64,
    chunk_size: int = 16,
    float64: bool = False,
    seed: int = 0,
    direct: Optional[bool] = None,
    fd_step: Optional[float] = None,
):
    """lambda = ||(J - J^T)/2||_F / ||J||_F for one structure (dimensionless).

    :return: a float (exact or finite differences), or ``(value, standard_error)``
        when ``stochastic`` (models with gradients only).
    """
    model = load_force_model(model, direct=direct, float64=float64)
    model.check(atoms)
    forces = model.structure_forces(atoms, resolve_output(model, output))
    if stochastic:
        result = stochastic_lambda(
            forces, probes=probes, chunk_size=chunk_size, seed=seed
        )
        return check_lambda(result.value, model, forces.where), result.error
    jacobian = exact_jacobian(forces, chunk_size=chunk_size, fd_step=fd_step)
    return check_lambda(lambda_from_jacobian(jacobian), model, forces.where)


def check_lambda(value: float, model: ForceModel, where: str) -> float:
    """Return ``value`` (a lambda) if it is finite.

    :raises NonFiniteError: a NaN or infinite lambda, naming the model and the
        structure (its forces or their Jacobian were not finite); never reported as
        a number.
    """
    if np.isfinite(value):
        return value
    raise NonFiniteError(
        f"model '{model.source}' gave a non-finite lambda ({value}) for {where}: its "
        "forces or their Jacobian are not finite",
        quantities=["lambda"],
    )


def evaluate(
    frames: Union[ase.Atoms, Sequence[ase.Atoms]],
    model: ModelLike,
    settings: Optional[AntisymmetrySettings] = None,
    *,
    direct: Optional[bool] = None,
    **overrides: Any,
) -> AntisymmetryReport:
    """lambda (and optionally per atom, per pair, closed-loop work) for structures.

    :param frames: one or several ASE structures (A).
    :param model: anything :func:`~metatrain_nc.force_models.load_force_model` takes
        (a path, ``"module:callable"``, an ASE calculator, a model object...).
    :param settings: what to compute (:class:`AntisymmetrySettings`; default
        settings if ``None``).
    :param direct: an ASE calculator's forces are direct (they count as conservative
        otherwise); refused for metatomic models.
    :param overrides: fields of :class:`AntisymmetrySettings` replacing those of
        ``settings`` (``evaluate(frames, model, rotation_loop=True)``).

    The Jacobian of a model with gradients is exact (``method`` ``"exact"``); that
    of an ASE calculator comes from central finite differences (``method``
    ``"finite-difference"``, step ``settings.fd_step``), with an estimate of their
    noise per structure (``fd_noise``, relative to ``||J||``). The stochastic
    estimator needs gradients: it is refused for ASE calculators.
    """
    settings = AntisymmetrySettings.from_overrides(settings, **overrides)
    settings.check()
    frames = [frames] if isinstance(frames, ase.Atoms) else list(frames)
    if not frames:
        raise UserInputError("no structures to evaluate")
    model = load_force_model(model, direct=direct, float64=settings.float64)
    output = resolve_output(model, settings.output)
    # validate everything before any expensive work
    force_models = check_structures(frames, model, output, settings)
    method, fd_step = jacobian_method(settings, force_models[0])
    skip = None if method == "finite-difference" else output
    head_forces = other_head_forces(model, frames, settings, skip)
    bar, inner = progress_bars(frames, method, settings)
    results: List[Optional[StructureResult]] = [None] * len(frames)
    packing: Dict[str, Any] = {}
    computed: Dict[int, np.ndarray] = {}  # forces of the analysed head
    items = jacobian_items(
        force_models, method, fd_step, settings, inner.update, packing, computed
    )
    for index, item in items:
        atoms, forces = frames[index], force_models[index]
        result = structure_result(index, item, atoms, forces, method, fd_step, settings)
        check_lambda(result.lambda_, model, forces.where)
        add_loops(result, forces, atoms, settings)
        for name in available_forces(model) if settings.keep_forces else []:
            result.forces[name] = head_forces.get(name, computed)[index]
        results[index] = result
        bar.update(1)
        bar.set_postfix(lam=f"{result.lambda_:.3g}")
    inner.close()
    bar.close()
    return AntisymmetryReport(
        frames=frames,
        structures=results,  # type: ignore[arg-type]
        model=model.describe(),
        output=output,
        settings=summary_settings(settings, method, fd_step, packing, output),
        bin_width=settings.bin_width,
    )
