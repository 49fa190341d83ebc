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
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Union

import ase
import numpy as np

from ..errors import NonFiniteError, UserInputError
from ..force_models.base import ForceModel
from ..force_models.loading import load_force_model
from ..force_models.names import CONSERVATIVE, DIRECT_FORCE, head_of_output
from .decompose import PairTable, bin_pairs, pair_table, per_atom_lambda
from .jacobian import (
    STOCHASTIC_NEEDS_GRADIENTS,
    default_fd_step,
    differentiable,
    exact_jacobian,
    finite_difference_noise,
    iter_exact_jacobians,
    iter_stochastic_lambdas,
    lambda_from_jacobian,
    stochastic_lambda,
)
from .loops import molecule_of, rotation_loop_work, square_loop_work
from .packing import packed_forces
from .settings import MAX_EXACT_ROWS, AntisymmetrySettings, canonical_output

ModelLike = Union[str, os.PathLike, Any]


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


@dataclass
class StructureResult:
    """Everything computed for one structure."""

    index: int
    n_atoms: int
    method: str  # "exact", "finite-difference" or "stochastic"
    lambda_: float
    error: Optional[float] = None  # standard error (stochastic only)
    probes: Optional[int] = None
    target_error: Optional[float] = None  # stochastic with a target only
    converged: Optional[bool] = None
    per_atom: Optional[np.ndarray] = None  # (N,) lambda_i, exact only
    pairs: Optional[PairTable] = None
    rotation_loop: Optional[Dict[str, Any]] = None
    square_loops: Optional[Dict[str, Any]] = None
    forces: Dict[str, np.ndarray] = field(default_factory=dict)  # name -> (N, 3)
    fd_step: Optional[float] = None  # A, finite differences only
    fd_noise: Optional[float] = None  # estimated FD error / ||J||, idem

    def as_dict(self) -> Dict[str, Any]:
        data: Dict[str, Any] = {
            "index": self.index,
            "n_atoms": self.n_atoms,
            "lambda": self.lambda_,
            "method": self.method,
        }
        if self.method == "stochastic":
            data["lambda_error"] = self.error
            data["probes"] = self.probes
            if self.target_error is not None:
                data["target_error"] = self.target_error
                data["target_reached"] = self.converged
        if self.fd_step is not None:
            data["fd_step_A"] = self.fd_step
            data["fd_noise"] = self.fd_noise
        if self.per_atom is not None:
            data["lambda_atom_max"] = float(np.max(self.per_atom))
        if self.rotation_loop is not None:
            data["rotation_loop"] = self.rotation_loop
        if self.square_loops is not None:
            data["square_loops"] = self.square_loops
        return data


@dataclass
class AntisymmetryReport:
    """Results of :func:`evaluate` for a list of structures."""

    frames: List[ase.Atoms]
    structures: List[StructureResult]
    model: Dict[str, Any]
    output: str
    settings: Dict[str, Any]
    bin_width: float = 0.25

    @property
    def lambdas(self) -> np.ndarray:
        return np.array([s.lambda_ for s in self.structures])

    def pair_bins(self) -> Dict[str, np.ndarray]:
        """Pairs of all structures binned by distance (see ``decompose.bin_pairs``)."""
        tables = [s.pairs for s in self.structures if s.pairs is not None]
        if not tables:
            return {}
        return bin_pairs(tables, self.bin_width)

    def summary(self) -> Dict[str, Any]:
        """The content of ``summary.json``."""
        lambdas = self.lambdas
        data = {
            "model": self.model,
            "output": self.output,
            "settings": self.settings,
            "n_structures": len(self.structures),
            "lambda_mean": float(np.mean(lambdas)),
            "lambda_max": float(np.max(lambdas)),
        }
        noise = [s.fd_noise for s in self.structures if s.fd_noise is not None]
        if noise:
            data["fd_noise_max"] = float(np.max(noise))
        data["structures"] = [s.as_dict() for s in self.structures]
        return data

    def write(self, outdir: Union[str, os.PathLike], force: bool = False) -> str:
        """Write JSON, CSV, PNG and chemiscope files into ``outdir`` (atomically)."""
        from .outputs import write_report

        return write_report(self, outdir, force=force)


def _available_forces(model: ForceModel) -> List[str]:
    names = []
    if model.has_direct:
        names.append(DIRECT_FORCE)
    if model.has_conservative:
        names.append(CONSERVATIVE)
    return names


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
    if isinstance(frames, ase.Atoms):
        frames = [frames]
    frames = list(frames)
    if not frames:
        raise UserInputError("no structures to evaluate")
    model = load_force_model(model, direct=direct, float64=settings.float64)
    output = resolve_output(model, settings.output)
    stochastic = settings.stochastic
    # validate everything before any expensive work
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

    from tqdm.auto import tqdm

    results: List[Optional[StructureResult]] = [None] * len(frames)
    fd_step: Optional[float] = None
    method = "stochastic" if stochastic else "exact"
    if not stochastic and not differentiable(force_models[0]):
        method = "finite-difference"
        fd_step = settings.fd_step
        if fd_step is None:
            fd_step = default_fd_step(force_models[0])
    progress = settings.progress
    # forces of every head, for the chemiscope file: those of the analysed head
    # come with the Jacobians (same forward passes), the others packed the same way
    computed: Dict[int, np.ndarray] = {}
    head_forces = {
        name: packed_forces(
            [
                model.structure_forces(atoms, name, where=f"structure {index}")
                for index, atoms in enumerate(frames)
            ],
            settings.packing,
            settings.pack_rows,
        )
        for name in _available_forces(model)
        if settings.keep_forces and (name != output or method == "finite-difference")
    }
    bar = tqdm(
        total=len(frames), desc="structures", unit="structure", disable=not progress
    )
    if not stochastic:
        total: Optional[int] = sum(3 * len(atoms) for atoms in frames)
    else:
        total = None if settings.target_error else settings.probes * len(frames)
    inner = tqdm(
        total=total,
        desc={"exact": "rows", "finite-difference": "columns"}.get(method, "probes"),
        leave=False,
        disable=not progress,
    )
    packing: Dict[str, Any] = {}
    common = dict(
        chunk_size=settings.chunk_size,
        progress=inner.update,
        packing=settings.packing,
        pack_rows=settings.pack_rows,
        info=packing,
        forces=computed,
    )
    if stochastic:
        items = iter_stochastic_lambdas(
            force_models,
            probes=settings.probes,
            seeds=[settings.seed + index for index in range(len(frames))],
            jvp=settings.jvp,
            target_error=settings.target_error,
            max_probes=settings.max_probes,
            **common,
        )
    else:
        items = iter_exact_jacobians(
            force_models,
            max_rows=settings.max_exact_rows,
            strategy=settings.strategy,
            fd_step=fd_step,
            **common,
        )
    for index, item in items:
        atoms = frames[index]
        force_model = force_models[index]
        if stochastic:
            result = StructureResult(
                index=index,
                n_atoms=len(atoms),
                method="stochastic",
                lambda_=item.value,
                error=item.error,
                probes=item.probes,
                target_error=settings.target_error,
                converged=item.converged,
            )
        else:
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
                    force_model,
                    jacobian,
                    fd_step,
                    seed=settings.seed + index,
                    batch_size=settings.chunk_size,
                )
        check_lambda(result.lambda_, model, force_model.where)
        if settings.rotation_loop:
            indices = molecule_of(atoms, settings.loop_atom)
            loop = rotation_loop_work(
                force_model,
                indices,
                axis=settings.loop_axis,
                n_points=settings.loop_points,
                deformation=settings.loop_deformation,
                seed=settings.seed,
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
                force_model,
                eps=settings.square_eps,
                n_loops=settings.square_loops,
                seed=settings.seed + index,
            )
            result.square_loops = {
                "eps_A": squares.eps,
                "work_eV": squares.work,
                "force_floor_eV_per_A": squares.force_floor,
                "mean_abs_work_eV": squares.mean_abs_work,
                "max_force_floor_eV_per_A": squares.max_force_floor,
            }
        for name in _available_forces(model) if settings.keep_forces else []:
            if name in head_forces:
                result.forces[name] = head_forces[name][index]
            else:
                result.forces[name] = computed[index]
        results[index] = result
        bar.update(1)
        bar.set_postfix(lam=f"{result.lambda_:.3g}")
    inner.close()
    bar.close()

    summary = settings.summary(method, fd_step)
    # finite differences (ASE calculators) are never packed
    summary["packing_used"] = packing.get("packing", "single")
    summary["forward_graphs"] = packing.get("packs")
    if stochastic and output == CONSERVATIVE:
        summary["note"] = (
            "conservative output: J is symmetric by construction, the stochastic path "
            "skips the JVP and gives 0; use the exact path as a numerical control"
        )
    if method == "finite-difference":
        summary["note"] = (
            "Jacobian by central finite differences of the forces (the model has no "
            "gradients); fd_noise per structure estimates their error relative to "
            "||J|| (from columns recomputed with twice the step): a lambda below it "
            "is finite-difference noise"
        )
    return AntisymmetryReport(
        frames=frames,
        structures=results,  # type: ignore[arg-type]
        model=model.describe(),
        output=output,
        settings=summary,
        bin_width=settings.bin_width,
    )
