"""The steps of :func:`~.api.evaluate`, one job each: check every structure before
any expensive work (:func:`check_structures`), choose how the Jacobians are computed
(:func:`jacobian_method`), compute them or the stochastic lambdas
(:func:`jacobian_items`), turn each into a :class:`~.results.StructureResult`
(:func:`structure_result`, :func:`add_loops`), collect the forces of every head for
the chemiscope file (:func:`other_head_forces`), and say in the summary what was
done (:func:`summary_settings`).
"""

from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import ase
import numpy as np

from ..errors import UserInputError
from ..force_models.base import ForceModel, StructureForces
from ..force_models.names import CONSERVATIVE, DIRECT_FORCE
from .decompose import pair_table, per_atom_lambda
from .jacobian import (
    STOCHASTIC_NEEDS_GRADIENTS,
    default_fd_step,
    differentiable,
    finite_difference_noise,
    iter_exact_jacobians,
    iter_stochastic_lambdas,
    lambda_from_jacobian,
)
from .loops import molecule_of, rotation_loop_work, square_loop_work
from .packing import packed_forces
from .results import StructureResult
from .settings import AntisymmetrySettings

#: the summary's note on a stochastic estimate of conservative forces
STOCHASTIC_CONSERVATIVE_NOTE = (
    "conservative output: J is symmetric by construction, the stochastic path "
    "skips the JVP and gives 0; use the exact path as a numerical control"
)
#: the summary's note on finite differences
FINITE_DIFFERENCE_NOTE = (
    "Jacobian by central finite differences of the forces (the model has no "
    "gradients); fd_noise per structure estimates their error relative to "
    "||J|| (from columns recomputed with twice the step): a lambda below it "
    "is finite-difference noise"
)


def check_structures(
    frames: Sequence[ase.Atoms],
    model: ForceModel,
    output: str,
    settings: AntisymmetrySettings,
) -> List[StructureForces]:
    """The forces of ``output`` for each structure, once every structure is known
    to fit the settings.

    :raises UserInputError: a structure the model refuses, the stochastic estimator
        without gradients, more than ``settings.max_exact_rows`` rows of an exact or
        finite-difference Jacobian, a loop atom out of range.
    """
    stochastic = settings.stochastic
    force_models = []
    for index, atoms in enumerate(frames):
        model.check(atoms, f"structure {index}")
        forces = model.structure_forces(atoms, output, where=f"structure {index}")
        force_models.append(forces)
        exact_rows = 3 * len(atoms) > settings.max_exact_rows
        if stochastic and not differentiable(forces):
            raise UserInputError(
                f"model '{model.source}': {STOCHASTIC_NEEDS_GRADIENTS}"
            )
        if not stochastic and exact_rows and differentiable(forces):
            raise UserInputError(
                f"structure {index} has {len(atoms)} atoms: the exact Jacobian needs "
                f"{3 * len(atoms)} backward passes (limit {settings.max_exact_rows}); "
                "use the stochastic estimator (--stochastic / stochastic=True) or "
                "raise the limit (--max-exact-rows)"
            )
        if not stochastic and exact_rows:
            raise UserInputError(
                f"structure {index} has {len(atoms)} atoms: its finite-difference "
                f"Jacobian needs {6 * len(atoms)} force evaluations (3N = "
                f"{3 * len(atoms)} columns, limit {settings.max_exact_rows}); raise "
                "the limit (--max-exact-rows) if that is affordable"
            )
        if settings.rotation_loop and not 0 <= settings.loop_atom < len(atoms):
            raise UserInputError(
                f"loop atom {settings.loop_atom} is out of range for structure "
                f"{index} ({len(atoms)} atoms)"
            )
    return force_models


def jacobian_method(
    settings: AntisymmetrySettings, forces: StructureForces
) -> Tuple[str, Optional[float]]:
    """``("stochastic" | "exact" | "finite-difference", fd_step)``: finite
    differences (step in A, ``settings.fd_step`` or the default) for forces
    without gradients."""
    if settings.stochastic:
        return "stochastic", None
    if differentiable(forces):
        return "exact", None
    fd_step = settings.fd_step
    if fd_step is None:
        fd_step = default_fd_step(forces)
    return "finite-difference", fd_step


def available_forces(model: ForceModel) -> List[str]:
    """The force outputs of ``model``: its direct head and its -dE/dr."""
    names = []
    if model.has_direct:
        names.append(DIRECT_FORCE)
    if model.has_conservative:
        names.append(CONSERVATIVE)
    return names


def other_head_forces(
    model: ForceModel,
    frames: Sequence[ase.Atoms],
    settings: AntisymmetrySettings,
    skip: Optional[str],
) -> Dict[str, List[np.ndarray]]:
    """Forces of every head for the chemiscope file, packed as the Jacobians are,
    except those of ``skip``: the analysed head, whose forces come with the
    Jacobians (same forward passes; ``None`` with finite differences). Empty
    without ``settings.keep_forces``."""
    return {
        name: packed_forces(
            [
                model.structure_forces(atoms, name, where=f"structure {index}")
                for index, atoms in enumerate(frames)
            ],
            settings.packing,
            settings.pack_rows,
        )
        for name in available_forces(model)
        if settings.keep_forces and name != skip
    }


def progress_bars(frames: Sequence[ase.Atoms], method: str, settings):
    """The structures' bar and the inner bar of rows, columns or probes."""
    from tqdm.auto import tqdm

    disable = not settings.progress
    bar = tqdm(total=len(frames), desc="structures", unit="structure", disable=disable)
    if method != "stochastic":
        total: Optional[int] = sum(3 * len(atoms) for atoms in frames)
    else:
        total = None if settings.target_error else settings.probes * len(frames)
    inner = tqdm(
        total=total,
        desc={"exact": "rows", "finite-difference": "columns"}.get(method, "probes"),
        leave=False,
        disable=disable,
    )
    return bar, inner


def jacobian_items(
    force_models: List[StructureForces],
    method: str,
    fd_step: Optional[float],
    settings: AntisymmetrySettings,
    progress: Callable[[int], Any],
    packing: Dict[str, Any],
    computed: Dict[int, np.ndarray],
) -> Iterator[Tuple[int, Any]]:
    """``(index, Jacobian or stochastic estimate)`` of each structure, in the order
    they are done; ``packing`` receives how they were packed, ``computed`` the
    forces of the analysed head."""
    common = dict(
        chunk_size=settings.chunk_size,
        progress=progress,
        packing=settings.packing,
        pack_rows=settings.pack_rows,
        info=packing,
        forces=computed,
    )
    if method == "stochastic":
        return iter_stochastic_lambdas(
            force_models,
            probes=settings.probes,
            seeds=[settings.seed + index for index in range(len(force_models))],
            jvp=settings.jvp,
            target_error=settings.target_error,
            max_probes=settings.max_probes,
            **common,
        )
    return iter_exact_jacobians(
        force_models,
        max_rows=settings.max_exact_rows,
        strategy=settings.strategy,
        fd_step=fd_step,
        **common,
    )


def structure_result(
    index: int,
    item: Any,
    atoms: ase.Atoms,
    forces: StructureForces,
    method: str,
    fd_step: Optional[float],
    settings: AntisymmetrySettings,
) -> StructureResult:
    """lambda of one structure from its stochastic estimate, or lambda, per-atom
    lambda_i, pairs and (finite differences) the noise estimate from its Jacobian."""
    if method == "stochastic":
        return StructureResult(
            index=index,
            n_atoms=len(atoms),
            method="stochastic",
            lambda_=item.value,
            error=item.error,
            probes=item.probes,
            target_error=settings.target_error,
            converged=item.converged,
        )
    jacobian = item
    result = StructureResult(
        index=index,
        n_atoms=len(atoms),
        method=method,
        lambda_=lambda_from_jacobian(jacobian),
        per_atom=per_atom_lambda(jacobian),
        pairs=pair_table(jacobian, atoms) if settings.pairs else None,
    )
    if method == "finite-difference":
        result.fd_step = fd_step
        result.fd_noise = finite_difference_noise(
            forces,
            jacobian,
            fd_step,
            seed=settings.seed + index,
            batch_size=settings.chunk_size,
        )
    return result


def add_loops(
    result: StructureResult,
    forces: StructureForces,
    atoms: ase.Atoms,
    settings: AntisymmetrySettings,
) -> None:
    """The closed-loop work the settings ask for, into ``result``."""
    if settings.rotation_loop:
        indices = molecule_of(atoms, settings.loop_atom)
        s = settings  # axis, points, deformation (A) and seed of the loop
        loop = rotation_loop_work(
            forces, indices, s.loop_axis, s.loop_points, s.loop_deformation, s.seed
        )
        result.rotation_loop = {
            "work_eV": loop.work,
            "moving_atoms": loop.indices,
            "axis": loop.axis,
            "n_points": loop.n_points,
            "deformation_A": loop.deformation,
            "path_length_A": loop.path_length,
        }
    if settings.square_loops > 0:
        squares = square_loop_work(
            forces,
            eps=settings.square_eps,
            n_loops=settings.square_loops,
            seed=settings.seed + result.index,
        )
        result.square_loops = {
            "eps_A": squares.eps,
            "work_eV": squares.work,
            "force_floor_eV_per_A": squares.force_floor,
            "mean_abs_work_eV": squares.mean_abs_work,
            "max_force_floor_eV_per_A": squares.max_force_floor,
        }


def summary_settings(
    settings: AntisymmetrySettings,
    method: str,
    fd_step: Optional[float],
    packing: Dict[str, Any],
    output: str,
) -> Dict[str, Any]:
    """The ``settings`` part of the summary: what was asked, how it was done."""
    summary = settings.summary(method, fd_step)
    # finite differences (ASE calculators) are never packed
    summary["packing_used"] = packing.get("packing", "single")
    summary["forward_graphs"] = packing.get("packs")
    if method == "stochastic" and output == CONSERVATIVE:
        summary["note"] = STOCHASTIC_CONSERVATIVE_NOTE
    if method == "finite-difference":
        summary["note"] = FINITE_DIFFERENCE_NOTE
    return summary
