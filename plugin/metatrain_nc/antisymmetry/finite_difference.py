"""Force Jacobians of models without gradients (ASE calculators,
:class:`~metatrain_nc.force_models.FiniteDifferenceForces`), by central finite
differences of the forces, and an estimate of their error.

:func:`finite_difference_jacobian` takes two force evaluations per column, step
``delta`` (:func:`default_fd_step`); :func:`finite_difference_noise` estimates its
error from columns recomputed with twice the step; :func:`finite_difference_jvp` gives
``J v`` for probes ``v`` (the stochastic path's ``jvp="finite-difference"``).
"""

import math
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from ..errors import UserInputError
from ..force_models.base import StructureForces

#: columns recomputed with a doubled step to estimate the finite-difference error
FD_NOISE_COLUMNS = 24


def dtype_name(force_model: StructureForces) -> str:
    """``"float32"`` or ``"float64"``: the precision of ``force_model``'s forces."""
    dtype = getattr(force_model, "dtype", None)
    if dtype is None:
        dtype = getattr(getattr(force_model, "model", None), "dtype", "float64")
    return str(dtype).replace("torch.", "")


def default_fd_step(force_model: StructureForces) -> float:
    """Central-difference step (A): 1e-3 for float64 forces, 1e-2 for float32.

    The error of a central difference is a truncation term ``h^2 / 6`` times the third
    derivative of the forces plus a round-off term ``~ eps |f| / h``; these steps keep
    both small for forces that vary on a scale of ~1 A.
    """
    return 1e-3 if dtype_name(force_model) == "float64" else 1e-2


def finite_difference_jacobian(
    force_model: StructureForces,
    delta: float = 1e-3,
    batch_size: int = 8,
    columns: Optional[Sequence[int]] = None,
    progress: Optional[Callable[[int], None]] = None,
) -> np.ndarray:
    """Central finite-difference Jacobian (3N, 3N), eV/A^2, ``delta`` in A.

    Column ``(j, b)`` is ``(f(r + delta e_jb) - f(r - delta e_jb)) / (2 delta)``;
    the displaced structures go to the model ``batch_size`` columns at a time. Works
    for every model (``forces_numpy`` only).

    :param columns: compute only these columns (flat indices ``3 j + b``): the result
        is then (3N, len(columns)).
    :param progress: called with the number of columns done after each batch.
    """
    if not delta > 0:
        raise UserInputError(f"the finite-difference step must be > 0, got {delta}")
    reference = np.array(force_model.atoms.positions, dtype=np.float64).reshape(-1)
    n3 = reference.size
    columns = list(range(n3)) if columns is None else [int(c) for c in columns]
    jacobian = np.empty((n3, len(columns)))
    batch_size = max(1, int(batch_size))
    for start in range(0, len(columns), batch_size):
        chunk = columns[start : start + batch_size]
        displaced = []
        for col in chunk:
            for sign in (1.0, -1.0):
                p = reference.copy()
                p[col] += sign * delta
                displaced.append(p.reshape(-1, 3))
        forces = force_model.forces_numpy(displaced, batch_size=2 * len(chunk))
        for k in range(len(chunk)):
            plus, minus = forces[2 * k], forces[2 * k + 1]
            jacobian[:, start + k] = (plus - minus).reshape(-1) / (2.0 * delta)
        if progress is not None:
            progress(len(chunk))
    return jacobian


def finite_difference_noise(
    force_model: StructureForces,
    jacobian: np.ndarray,
    delta: float,
    n_columns: int = FD_NOISE_COLUMNS,
    seed: int = 0,
    batch_size: int = 8,
) -> float:
    """Estimated error of a central-difference Jacobian, relative to ``||J||_F``.

    ``n_columns`` random columns (all of them when 3N is not larger) are recomputed
    with step ``2 delta``; ``||J_h - J_2h||_F`` over those columns, scaled to all 3N,
    divided by ``||J_h||_F``. The truncation error of ``J_h`` is ``(J_2h - J_h) / 3``,
    so this over-estimates it 3 times; round-off shows with the same order. It bounds
    the error of lambda from ``J_h`` (the antisymmetric part of an error is at most
    the error): a lambda below it is finite-difference noise.

    :param jacobian: ``J_h``, shape (3N, 3N).
    :param delta: the step ``h`` (A) of ``jacobian``.
    """
    n3 = jacobian.shape[1]
    norm = float(np.linalg.norm(jacobian))
    if norm == 0.0:
        return 0.0
    if n3 <= n_columns:
        columns = np.arange(n3)
    else:
        rng = np.random.default_rng(seed)
        columns = np.sort(rng.choice(n3, size=n_columns, replace=False))
    doubled = finite_difference_jacobian(
        force_model, 2.0 * delta, batch_size=batch_size, columns=columns
    )
    difference = float(np.linalg.norm(jacobian[:, columns] - doubled))
    return difference * math.sqrt(n3 / len(columns)) / norm


def finite_difference_jvp(
    force_model: StructureForces, v: torch.Tensor, fd_step: Optional[float]
) -> torch.Tensor:
    """``J v`` for probes ``v`` (k, 3N) by central differences, float64."""
    if fd_step is None:
        fd_step = 1e-3 if force_model.dtype == torch.float64 else 1e-2
    reference = force_model.positions.detach().numpy()
    displaced = []
    for row in v.numpy():
        step = fd_step * row.reshape(-1, 3)
        displaced += [reference + step, reference - step]
    f = force_model.forces_numpy(displaced, batch_size=2)
    return torch.stack(
        [torch.from_numpy((f[2 * i] - f[2 * i + 1]).reshape(-1)) for i in range(len(v))]
    ) / (2.0 * fd_step)
