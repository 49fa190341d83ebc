"""Closed-loop work W = loop integral of sum_i f_i . dr_i (eV) for one structure.

Two kinds of loops:

- :func:`rotation_loop_work`: a group of atoms (one molecule) turns through a full turn
  about an axis through its centroid, optionally deformed along the way, while all the
  other atoms stay fixed (the loop of "The dark side of the forces"). The path is
  ``r_k(t) = c + R(t) [d_k + delta (sin t u_k + (1 - cos t) w_k)]``, ``t`` in
  ``[0, 2 pi)``, with ``u``, ``w`` fixed random displacement patterns (mean free, RMS
  one per atom). The integral uses the analytic velocity ``dr/dt`` and the periodic
  trapezoidal rule, which converges exponentially fast for smooth forces: a conservative
  model gives zero to round-off.
- :func:`square_loop_work`: random squares of side ``eps`` (A, in the 3N-dimensional
  configuration space) spanned by two orthonormal mean-free directions, integrated with
  the midpoint rule (exact for forces linear in the positions). ``|W| / (4 eps N)``
  (eV/A) is a lower bound on the force error a conservative model must make on that
  loop.

Both only evaluate forces (``forces_numpy``): they work for every kind of model,
ASE calculators included.
"""

from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence

import ase
import numpy as np

from ..errors import UserInputError
from ..force_models.base import StructureForces


def _cross_matrix(axis: np.ndarray) -> np.ndarray:
    x, y, z = axis
    return np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])


def molecule_of(atoms: ase.Atoms, atom: int) -> List[int]:
    """Indices of the bonded group (ASE natural cutoffs x 1.2) holding ``atom``."""
    from ase.neighborlist import natural_cutoffs, neighbor_list
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if not 0 <= atom < len(atoms):
        raise UserInputError(
            f"loop atom {atom} is out of range for a structure of {len(atoms)} atoms"
        )
    i, j = neighbor_list("ij", atoms, natural_cutoffs(atoms, mult=1.2))
    n = len(atoms)
    graph = coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return [int(k) for k in np.nonzero(labels == labels[atom])[0]]


@dataclass
class RotationLoop:
    """Work along the rotation loop (eV) and what defined the loop."""

    work: float
    indices: List[int]
    axis: List[float]
    n_points: int
    deformation: float  # A
    path_length: float  # A, in the 3N-dimensional space
    work_per_point: List[float] = field(default_factory=list)  # integrand f . dr/dt


def rotation_loop_work(
    force_model: StructureForces,
    indices: Optional[Sequence[int]] = None,
    axis: Sequence[float] = (0.0, 0.0, 1.0),
    n_points: int = 200,
    deformation: float = 0.1,
    seed: int = 0,
    batch_size: int = 8,
    progress: Optional[Callable[[int], None]] = None,
) -> RotationLoop:
    """Work (eV) of the model's forces along a full turn of the atoms ``indices``.

    :param indices: atoms that move (default: the molecule of atom 0).
    :param axis: rotation axis (normalised here).
    :param n_points: quadrature points on the loop.
    :param deformation: amplitude ``delta`` (A) of the deformation (0: rigid turn).
    :param seed: seed of the deformation patterns.
    """
    atoms = force_model.atoms
    if indices is None:
        indices = molecule_of(atoms, 0)
    indices = [int(k) for k in indices]
    if len(indices) == 0:
        raise UserInputError("the rotation loop needs at least one moving atom")
    axis = np.asarray(axis, dtype=float)
    if np.linalg.norm(axis) == 0:
        raise UserInputError("the rotation axis must not be zero")
    axis = axis / np.linalg.norm(axis)
    k_mat = _cross_matrix(axis)
    reference = atoms.positions.copy()
    group = reference[indices]
    centre = group.mean(axis=0)
    d = group - centre
    rng = np.random.default_rng(seed)
    patterns = []
    for _ in range(2):
        p = rng.normal(size=d.shape)
        p -= p.mean(axis=0)
        rms = np.sqrt((p**2).sum(axis=1).mean())
        patterns.append(p / rms if rms > 0 else p)
    u, w = patterns
    thetas = 2.0 * np.pi * np.arange(n_points) / n_points
    configurations = []
    velocities = []
    for t in thetas:
        rot = np.eye(3) + np.sin(t) * k_mat + (1.0 - np.cos(t)) * (k_mat @ k_mat)
        shape = d + deformation * (np.sin(t) * u + (1.0 - np.cos(t)) * w)
        moved = centre + shape @ rot.T
        velocity = (shape @ rot.T) @ k_mat.T + deformation * (
            np.cos(t) * u + np.sin(t) * w
        ) @ rot.T
        positions = reference.copy()
        positions[indices] = moved
        configurations.append(positions)
        velocities.append(velocity)
    integrand = []
    for start in range(0, n_points, batch_size):
        chunk = configurations[start : start + batch_size]
        forces = force_model.forces_numpy(chunk, batch_size=batch_size)
        for offset, f in enumerate(forces):
            integrand.append(float((f[indices] * velocities[start + offset]).sum()))
        if progress is not None:
            progress(len(chunk))
    step = 2.0 * np.pi / n_points
    speeds = [np.linalg.norm(v) for v in velocities]
    return RotationLoop(
        work=float(np.sum(integrand) * step),
        indices=indices,
        axis=axis.tolist(),
        n_points=n_points,
        deformation=float(deformation),
        path_length=float(np.sum(speeds) * step),
        work_per_point=integrand,
    )


@dataclass
class SquareLoops:
    """Work around random squares (eV) and the force floors |W| / (4 eps N) (eV/A)."""

    eps: float
    work: List[float]
    force_floor: List[float]

    @property
    def mean_abs_work(self) -> float:
        return float(np.mean(np.abs(self.work)))

    @property
    def max_force_floor(self) -> float:
        return float(np.max(self.force_floor))


def random_square_directions(n_atoms: int, rng: np.random.Generator):
    """Two orthonormal, mean-free directions (each (N, 3), unit 3N-norm)."""
    directions = []
    for _ in range(2):
        x = rng.normal(size=(n_atoms, 3))
        if n_atoms > 1:
            x -= x.mean(axis=0)
        for previous in directions:
            x -= (x * previous).sum() * previous
        directions.append(x / np.linalg.norm(x))
    return directions


def square_loop_work(
    force_model: StructureForces,
    eps: float = 0.05,
    n_loops: int = 4,
    seed: int = 0,
    directions: Optional[Sequence[Sequence[np.ndarray]]] = None,
    batch_size: int = 8,
) -> SquareLoops:
    """Work (eV) around ``n_loops`` random squares of side ``eps`` (A).

    The square goes r0 -> r0 + eps u -> r0 + eps (u + v) -> r0 + eps v -> r0; the
    midpoint rule evaluates the forces at the middle of each side (4 evaluations).

    :param directions: optional explicit ``[(u, v), ...]`` pairs (each (N, 3),
        orthonormal) instead of random ones.
    """
    if eps <= 0:
        raise UserInputError(f"the square side eps must be positive, got {eps}")
    n = force_model.n_atoms
    r0 = force_model.atoms.positions.copy()
    rng = np.random.default_rng(seed)
    if directions is None:
        directions = [random_square_directions(n, rng) for _ in range(n_loops)]
    configurations = []
    for u, v in directions:
        configurations += [
            r0 + eps * (0.5 * u),
            r0 + eps * (u + 0.5 * v),
            r0 + eps * (0.5 * u + v),
            r0 + eps * (0.5 * v),
        ]
    forces = force_model.forces_numpy(configurations, batch_size=batch_size)
    works, floors = [], []
    for k, (u, v) in enumerate(directions):
        f = forces[4 * k : 4 * k + 4]
        work = eps * (
            (f[0] * u).sum() + (f[1] * v).sum() - (f[2] * u).sum() - (f[3] * v).sum()
        )
        works.append(float(work))
        floors.append(abs(float(work)) / (4.0 * eps * n))
    return SquareLoops(eps=float(eps), work=works, force_floor=floors)
