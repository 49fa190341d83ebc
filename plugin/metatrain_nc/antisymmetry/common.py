"""What the exact and stochastic paths share: lambda of a Jacobian, which models have
gradients, and the forces that a pack's forward pass already computed.

``lambda = ||(J - J^T)/2||_F / ||J||_F``, dimensionless (conventions: :mod:`.jacobian`).
"""

from typing import Sequence

import numpy as np
import torch

from ..force_models.base import StructureForces
from .packing import Pack, Work


def lambda_from_jacobian(jacobian: np.ndarray) -> float:
    """lambda = ||(J - J^T)/2||_F / ||J||_F for a square matrix ``jacobian``."""
    anti = 0.5 * (jacobian - jacobian.T)
    norm = float(np.linalg.norm(jacobian))
    if norm == 0.0:
        return 0.0
    return float(np.linalg.norm(anti)) / norm


def differentiable(force_model: StructureForces) -> bool:
    """Whether ``force_model`` gives exact vector-Jacobian products (a torch model)."""
    return bool(getattr(force_model, "differentiable", True))


def keep_forces(pack: Pack, works: Sequence[Work]) -> None:
    """Keep each structure's forces at its reference positions (the pack's forward
    pass computed them), so that nobody evaluates them again."""
    for s, work in enumerate(works):
        if work.forces is None:
            part = pack.flat[pack.offsets[s] : pack.offsets[s + 1]]
            work.forces = part.detach().to(torch.float64).numpy().reshape(-1, 3)
