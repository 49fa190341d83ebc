"""Per-atom and per-pair decompositions of the force Jacobian.

For a Jacobian ``J`` of shape (3N, 3N) (eV/A^2), with 3x3 blocks
``J_ij = d f_i / d r_j``:

- per atom ``i``: ``lambda_i = ||A[rows of i]||_F / ||J[rows of i]||_F`` with
  ``A = (J - J^T)/2``;
- per pair ``i != j``: ``|J_ij|_F``, ``|(J_ij - J_ji^T)/2|_F`` and their ratio
  ``lambda_ij``, against the minimum-image distance ``r_ij`` (A);
- on-site blocks ``i == i`` are reported apart (their antisymmetric part is
  ``(J_ii - J_ii^T)/2``).
"""

from dataclasses import dataclass
from typing import Dict, List

import ase
import numpy as np


def per_atom_lambda(jacobian: np.ndarray) -> np.ndarray:
    """lambda_i for every atom, shape (N,), dimensionless (0 where a row block is 0)."""
    n = jacobian.shape[0] // 3
    anti = 0.5 * (jacobian - jacobian.T)
    full = (jacobian.reshape(n, 3, -1) ** 2).sum(axis=(1, 2))
    asym = (anti.reshape(n, 3, -1) ** 2).sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        result = np.sqrt(np.where(full > 0, asym / full, 0.0))
    return result


def minimum_image_distances(atoms: ase.Atoms) -> np.ndarray:
    """All interatomic distances (N, N) in A, minimum image along periodic axes."""
    return atoms.get_all_distances(mic=bool(np.any(atoms.pbc)))


@dataclass
class PairTable:
    """Every ordered pair ``i != j``: arrays of shape (N (N - 1),)."""

    i: np.ndarray
    j: np.ndarray
    distance: np.ndarray  # A
    block_norm: np.ndarray  # |J_ij|_F, eV/A^2
    anti_norm: np.ndarray  # |(J_ij - J_ji^T)/2|_F, eV/A^2
    onsite_block_norm: np.ndarray  # (N,) |J_ii|_F
    onsite_anti_norm: np.ndarray  # (N,) |(J_ii - J_ii^T)/2|_F

    @property
    def pair_lambda(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(
                self.block_norm > 0, self.anti_norm / self.block_norm, np.nan
            )


def pair_table(jacobian: np.ndarray, atoms: ase.Atoms) -> PairTable:
    """Block norms of J for all ordered pairs, with minimum-image distances."""
    n = len(atoms)
    blocks = jacobian.reshape(n, 3, n, 3).transpose(0, 2, 1, 3)  # [i, j, a, b]
    transposed = blocks.transpose(1, 0, 3, 2)  # [i, j] -> J_ji^T
    anti = 0.5 * (blocks - transposed)
    block_norm = np.sqrt((blocks**2).sum(axis=(2, 3)))
    anti_norm = np.sqrt((anti**2).sum(axis=(2, 3)))
    distances = minimum_image_distances(atoms)
    i, j = np.nonzero(~np.eye(n, dtype=bool))
    diag = np.arange(n)
    return PairTable(
        i=i,
        j=j,
        distance=distances[i, j],
        block_norm=block_norm[i, j],
        anti_norm=anti_norm[i, j],
        onsite_block_norm=block_norm[diag, diag],
        onsite_anti_norm=anti_norm[diag, diag],
    )


def bin_pairs(
    tables: List[PairTable], bin_width: float = 0.25
) -> Dict[str, np.ndarray]:
    """Bin pairs of several structures by distance.

    :return: arrays per bin: ``r_min``, ``r_max``, ``r_center`` (A), ``count``,
        ``mean_block_norm`` and ``mean_anti_norm`` (eV/A^2), ``lambda`` =
        sqrt(sum anti^2 / sum block^2) in the bin; empty bins are dropped.
    """
    if not tables:
        raise ValueError("no pair tables to bin")
    distance = np.concatenate([t.distance for t in tables])
    block = np.concatenate([t.block_norm for t in tables])
    anti = np.concatenate([t.anti_norm for t in tables])
    if distance.size == 0:
        keys = ["r_min", "r_max", "r_center", "count"]
        keys += ["mean_block_norm", "mean_anti_norm", "lambda"]
        return {key: np.zeros(0) for key in keys}
    edges = np.arange(0.0, distance.max() + bin_width, bin_width)
    if len(edges) < 2:
        edges = np.array([0.0, bin_width])
    index = np.clip(np.digitize(distance, edges) - 1, 0, len(edges) - 2)
    n_bins = len(edges) - 1
    count = np.bincount(index, minlength=n_bins)
    sum_block = np.bincount(index, block, minlength=n_bins)
    sum_anti = np.bincount(index, anti, minlength=n_bins)
    sum_block2 = np.bincount(index, block**2, minlength=n_bins)
    sum_anti2 = np.bincount(index, anti**2, minlength=n_bins)
    keep = count > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        lam = np.where(sum_block2 > 0, np.sqrt(sum_anti2 / sum_block2), np.nan)
    return {
        "r_min": edges[:-1][keep],
        "r_max": edges[1:][keep],
        "r_center": 0.5 * (edges[:-1] + edges[1:])[keep],
        "count": count[keep],
        "mean_block_norm": (sum_block / np.maximum(count, 1))[keep],
        "mean_anti_norm": (sum_anti / np.maximum(count, 1))[keep],
        "lambda": lam[keep],
    }
