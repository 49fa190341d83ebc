"""Python API of the antisymmetry evaluator.

Typical notebook use::

    from metatrain_nc.antisymmetry import antisymmetry_ratio, evaluate

    lam = antisymmetry_ratio(atoms, "model.pt")            # exact, direct forces
    report = evaluate(frames, "model.ckpt", rotation_loop=True)
    report.summary()["lambda_mean"]
    report.write("antisymmetry-out")  # JSON, CSV, PNG, chemiscope

``model`` is a path (exported ``.pt`` or metatrain ``.ckpt``), an ``AtomisticModel``, a
metatrain model, or a :class:`~metatrain_nc.antisymmetry.model.LoadedModel`.
"""

import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Union

import ase
import numpy as np

from ..errors import UserInputError
from .decompose import PairTable, bin_pairs, pair_table, per_atom_lambda
from .jacobian import (
    MAX_EXACT_ROWS,
    check_target,
    exact_jacobian,
    lambda_from_jacobian,
    stochastic_lambda,
)
from .loops import molecule_of, rotation_loop_work, square_loop_work
from .model import (
    CONSERVATIVE,
    DIRECT,
    ForceModel,
    LoadedModel,
    check_structure,
    load_model,
    model_description,
)

ModelLike = Union[str, os.PathLike, Any]


def force_jacobian(
    atoms: ase.Atoms,
    model: ModelLike,
    output: str = DIRECT,
    chunk_size: int = 16,
    float64: bool = False,
    max_rows: int = MAX_EXACT_ROWS,
) -> np.ndarray:
    """Exact force Jacobian ``d f_(i,a) / d r_(j,b)``, shape (3N, 3N), eV/A^2.

    :param output: ``"non_conservative_force"`` or ``"conservative"`` (-dE/dr).
    """
    loaded = load_model(model, float64=float64)
    check_structure(atoms, loaded)
    return exact_jacobian(
        ForceModel(loaded, atoms, output), chunk_size=chunk_size, max_rows=max_rows
    )


def antisymmetry_ratio(
    atoms: ase.Atoms,
    model: ModelLike,
    output: str = DIRECT,
    stochastic: bool = False,
    probes: int = 64,
    chunk_size: int = 16,
    float64: bool = False,
    seed: int = 0,
):
    """lambda = ||(J - J^T)/2||_F / ||J||_F for one structure (dimensionless).

    :return: a float (exact), or ``(value, standard_error)`` when ``stochastic``.
    """
    loaded = load_model(model, float64=float64)
    check_structure(atoms, loaded)
    force_model = ForceModel(loaded, atoms, output)
    if stochastic:
        result = stochastic_lambda(
            force_model, probes=probes, chunk_size=chunk_size, seed=seed
        )
        return result.value, result.error
    return lambda_from_jacobian(exact_jacobian(force_model, chunk_size=chunk_size))


@dataclass
class StructureResult:
    """Everything computed for one structure."""

    index: int
    n_atoms: int
    method: str  # "exact" or "stochastic"
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
        return {
            "model": self.model,
            "output": self.output,
            "settings": self.settings,
            "n_structures": len(self.structures),
            "lambda_mean": float(np.mean(lambdas)),
            "lambda_max": float(np.max(lambdas)),
            "structures": [s.as_dict() for s in self.structures],
        }

    def write(self, outdir: Union[str, os.PathLike], force: bool = False) -> str:
        """Write JSON, CSV, PNG and chemiscope files into ``outdir`` (atomically)."""
        from .outputs import write_report

        return write_report(self, outdir, force=force)


def _available_forces(loaded: LoadedModel) -> List[str]:
    names = []
    if DIRECT in loaded.outputs:
        names.append(DIRECT)
    if "energy" in loaded.outputs:
        names.append(CONSERVATIVE)
    return names


def evaluate(
    frames: Union[ase.Atoms, Sequence[ase.Atoms]],
    model: ModelLike,
    output: str = DIRECT,
    stochastic: bool = False,
    probes: int = 64,
    chunk_size: int = 16,
    max_exact_rows: int = MAX_EXACT_ROWS,
    float64: bool = False,
    pairs: bool = True,
    bin_width: float = 0.25,
    rotation_loop: bool = False,
    loop_atom: int = 0,
    loop_points: int = 200,
    loop_deformation: float = 0.1,
    loop_axis: Sequence[float] = (0.0, 0.0, 1.0),
    square_loops: int = 0,
    square_eps: float = 0.05,
    seed: int = 0,
    progress: bool = False,
    strategy: str = "auto",
    jvp: str = "double-backward",
    target_error: Optional[float] = None,
    max_probes: int = 1024,
) -> AntisymmetryReport:
    """lambda (and optionally per atom, per pair, closed-loop work) for structures.

    :param frames: one or several ASE structures (A).
    :param output: force output analysed: ``"non_conservative_force"`` (direct, default)
        or ``"conservative"`` (-dE/dr, the control).
    :param stochastic: random-probe estimate with ``probes`` probes instead of the exact
        Jacobian (no per-atom/per-pair results then).
    :param chunk_size: rows (or probes) per batched backward pass; bounds memory.
    :param max_exact_rows: largest 3N accepted by the exact path.
    :param pairs: keep per-pair block norms (exact path) for the distance figure.
    :param bin_width: distance bin width (A) for the pair tables.
    :param rotation_loop: compute the rotation-loop work of the molecule holding atom
        ``loop_atom`` (``loop_points`` points, deformation ``loop_deformation`` A).
    :param square_loops: number of random square loops of side ``square_eps`` (A).
    :param progress: show tqdm progress bars.
    :param strategy: how rows of J are computed: ``"auto"``, ``"loop"`` or
        ``"batched"`` (see :func:`~metatrain_nc.antisymmetry.jacobian.exact_jacobian`).
    :param jvp: ``J v`` of the stochastic path: ``"double-backward"`` or
        ``"finite-difference"`` (no second-order graph: less memory for large systems).
    :param target_error: stochastic path: add probes (``probes`` at least) until the
        relative standard error of lambda is at most this, or ``max_probes``; a
        structure that stops at ``max_probes`` is flagged in the summary.
    :param max_probes: probe budget per structure for ``target_error``.
    """
    if isinstance(frames, ase.Atoms):
        frames = [frames]
    frames = list(frames)
    if not frames:
        raise UserInputError("no structures to evaluate")
    if output not in (DIRECT, CONSERVATIVE):
        raise UserInputError(
            f"unknown output '{output}': use '{DIRECT}' or '{CONSERVATIVE}'"
        )
    if probes < 2 and stochastic:
        raise UserInputError("the stochastic estimator needs at least 2 probes")
    if target_error is not None and not stochastic:
        raise UserInputError(
            "a target error applies to the stochastic estimator: add --stochastic "
            "(stochastic=True) or drop --target-error"
        )
    check_target(target_error, probes, max_probes)
    loaded = load_model(model, float64=float64)
    # validate everything before any expensive work
    for index, atoms in enumerate(frames):
        check_structure(atoms, loaded, index)
        ForceModel(loaded, atoms, output)
        if not stochastic and 3 * len(atoms) > max_exact_rows:
            raise UserInputError(
                f"structure {index} has {len(atoms)} atoms: the exact Jacobian needs "
                f"{3 * len(atoms)} backward passes (limit {max_exact_rows}); use the "
                "stochastic estimator (--stochastic / stochastic=True) or raise the "
                "limit (--max-exact-rows)"
            )
        if rotation_loop and not 0 <= loop_atom < len(atoms):
            raise UserInputError(
                f"loop atom {loop_atom} is out of range for structure {index} "
                f"({len(atoms)} atoms)"
            )

    from tqdm.auto import tqdm

    results: List[StructureResult] = []
    bar = tqdm(frames, desc="structures", unit="structure", disable=not progress)
    for index, atoms in enumerate(bar):
        force_model = ForceModel(loaded, atoms, output)
        n3 = 3 * len(atoms)
        if stochastic:
            inner = tqdm(
                total=probes if target_error is None else None,
                desc="probes",
                leave=False,
                disable=not progress,
            )
            estimate = stochastic_lambda(
                force_model,
                probes=probes,
                chunk_size=chunk_size,
                seed=seed + index,
                progress=inner.update,
                jvp=jvp,
                target_error=target_error,
                max_probes=max_probes,
            )
            inner.close()
            result = StructureResult(
                index=index,
                n_atoms=len(atoms),
                method="stochastic",
                lambda_=estimate.value,
                error=estimate.error,
                probes=estimate.probes,
                target_error=target_error,
                converged=estimate.converged,
            )
        else:
            inner = tqdm(total=n3, desc="rows", leave=False, disable=not progress)
            jacobian = exact_jacobian(
                force_model,
                chunk_size=chunk_size,
                max_rows=max_exact_rows,
                progress=inner.update,
                strategy=strategy,
            )
            inner.close()
            result = StructureResult(
                index=index,
                n_atoms=len(atoms),
                method="exact",
                lambda_=lambda_from_jacobian(jacobian),
                per_atom=per_atom_lambda(jacobian),
                pairs=pair_table(jacobian, atoms) if pairs else None,
            )
        if rotation_loop:
            indices = molecule_of(atoms, loop_atom)
            loop = rotation_loop_work(
                force_model,
                indices,
                axis=loop_axis,
                n_points=loop_points,
                deformation=loop_deformation,
                seed=seed,
            )
            result.rotation_loop = {
                "work_eV": loop.work,
                "moving_atoms": loop.indices,
                "axis": loop.axis,
                "n_points": loop.n_points,
                "deformation_A": loop.deformation,
                "path_length_A": loop.path_length,
            }
        if square_loops > 0:
            squares = square_loop_work(
                force_model, eps=square_eps, n_loops=square_loops, seed=seed + index
            )
            result.square_loops = {
                "eps_A": squares.eps,
                "work_eV": squares.work,
                "force_floor_eV_per_A": squares.force_floor,
                "mean_abs_work_eV": squares.mean_abs_work,
                "max_force_floor_eV_per_A": squares.max_force_floor,
            }
        for name in _available_forces(loaded):
            model_forces = ForceModel(loaded, atoms, name)
            result.forces[name] = model_forces.forces_numpy([atoms.positions])[0]
        results.append(result)
        bar.set_postfix(lam=f"{result.lambda_:.3g}")
    bar.close()

    settings = {
        "method": "stochastic" if stochastic else "exact",
        "probes": probes if stochastic else None,
        "target_error": target_error,
        "max_probes": max_probes if target_error is not None else None,
        "chunk_size": chunk_size,
        "vjp_strategy": strategy,
        "jvp": jvp if stochastic else None,
        "float64": float64,
        "bin_width_A": bin_width,
        "rotation_loop": rotation_loop,
        "loop_atom": loop_atom,
        "loop_points": loop_points,
        "loop_deformation_A": loop_deformation,
        "loop_axis": list(loop_axis),
        "square_loops": square_loops,
        "square_eps_A": square_eps,
        "seed": seed,
    }
    if stochastic and output == CONSERVATIVE:
        settings["note"] = (
            "conservative output: J is symmetric by construction, the stochastic path "
            "skips the JVP and gives 0; use the exact path as a numerical control"
        )
    return AntisymmetryReport(
        frames=frames,
        structures=results,
        model=model_description(loaded),
        output=output,
        settings=settings,
        bin_width=bin_width,
    )
