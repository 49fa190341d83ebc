"""Self-diffusion coefficients per species from an MD trajectory (Einstein relation).

``D = lim MSD(t) / (6 t)``: the mean-square displacement of the atoms of one species,
averaged over time origins, grows linearly once the motion is diffusive. The slope is
fitted over a window of lag times (by default 10% to 30% of the trajectory) that
leaves out the ballistic and caged start and the noisy long lags. The time origins
(those whose whole window fits in the trajectory) are cut into ``segments`` blocks of
consecutive origins; ``D`` is estimated with the origins of each block, and the error
is the standard deviation of the blocks over ``sqrt(segments)``. Neighbouring blocks
share part of their displacements when the lags are longer than a block: the error is
then somewhat optimistic, the price of lags long enough to leave the cage of a liquid
in a trajectory of a picosecond.

Positions are unwrapped frame to frame (minimum image of each displacement), so a
trajectory written with or without wrapping gives the same result, as long as no atom
moves more than half a box length between two frames; the centre-of-mass motion of
the whole system is removed (a thermostat or a drift of the total momentum must not
count as diffusion).

Units: positions in A, times in ps, ``D`` in A^2/ps (1 A^2/ps = 1e-4 cm^2/s; liquid
water at 300 K: about 0.23 A^2/ps).
"""

import math
from typing import Dict, Optional, Sequence, Tuple

import ase.data
import numpy as np

from ..errors import UserInputError

#: the lag window of the fit, as fractions of the trajectory's length
FIT_WINDOW = (0.1, 0.3)
#: names the estimator (records made with another one are recomputed where their
#: trajectory is still there)
METHOD = "einstein-origin-blocks-1"
#: most lags evaluated in the window (evenly spaced)
MAX_LAGS = 32


def unwrap(positions: np.ndarray, cell: Optional[np.ndarray]) -> np.ndarray:
    """Continuous trajectories from positions that may have been wrapped.

    :param positions: ``(frames, atoms, 3)`` in A.
    :param cell: ``(3, 3)`` cell (rows are vectors) of a periodic system, or ``None``.
    :return: ``(frames, atoms, 3)``, the first frame unchanged.
    """
    positions = np.asarray(positions, dtype=float)
    if cell is None or len(positions) < 2:
        return positions.copy()
    cell = np.asarray(cell, dtype=float)
    inverse = np.linalg.inv(cell)
    steps = np.diff(positions, axis=0)
    fractional = steps @ inverse
    steps = (fractional - np.round(fractional)) @ cell
    out = np.empty_like(positions)
    out[0] = positions[0]
    out[1:] = positions[0] + np.cumsum(steps, axis=0)
    return out


def mean_square_displacement(
    positions: np.ndarray, lags: Sequence[int], origins: Optional[slice] = None
) -> np.ndarray:
    """MSD (A^2) at the given lags (frames, >= 1), averaged over atoms and origins.

    :param positions: ``(frames, atoms, 3)`` unwrapped positions in A.
    :param origins: the time origins (frames) averaged over; default: every origin
        ``t`` with ``t + lag`` in the trajectory.
    """
    msd = np.zeros(len(lags))
    for k, lag in enumerate(lags):
        if origins is None:
            start, stop = positions[:-lag], positions[lag:]
        else:
            start = positions[origins]
            stop = positions[origins.start + lag : origins.stop + lag]
        moved = stop - start
        msd[k] = float(np.mean(np.sum(moved * moved, axis=-1)))
    return msd


def _slope(times: np.ndarray, values: np.ndarray) -> float:
    design = np.vstack([times, np.ones_like(times)]).T
    coefficients, *_ = np.linalg.lstsq(design, values, rcond=None)
    return float(coefficients[0])


def diffusion_coefficients(
    positions: np.ndarray,
    times_ps: Sequence[float],
    numbers: Sequence[int],
    masses: Sequence[float],
    cell: Optional[np.ndarray] = None,
    segments: int = 4,
    window: Tuple[float, float] = FIT_WINDOW,
) -> Dict[str, Dict[str, float]]:
    """``D`` per species with its error from ``segments`` blocks of time origins.

    :param positions: ``(frames, atoms, 3)`` positions in A (wrapped or not).
    :param times_ps: time of each frame (ps), evenly spaced.
    :param numbers: atomic numbers ``(atoms,)``.
    :param masses: atomic masses ``(atoms,)`` (for the centre of mass).
    :param cell: the (fixed) cell of a periodic system, else ``None``.
    :param segments: blocks of time origins (>= 2).
    :param window: lags fitted, as fractions ``(start, end)`` of the trajectory.
    :return: ``{symbol: {"D_A2_per_ps", "error_A2_per_ps", "segments",
        "fit_lag_ps": [start, end]}}``.
    :raises UserInputError: too few frames for the segments and the window.
    """
    positions = np.asarray(positions, dtype=float)
    times = np.asarray(times_ps, dtype=float)
    numbers = np.asarray(numbers)
    masses = np.asarray(masses, dtype=float)
    if segments < 2:
        raise UserInputError(f"diffusion needs at least 2 segments, got {segments}")
    frames = len(positions)
    lag_start = int(math.floor(window[0] * frames))
    lag_end = int(math.floor(window[1] * frames))
    length = (frames - lag_end) // segments  # origins per block
    if lag_start < 1 or lag_end - lag_start < 2 or length < 1:
        raise UserInputError(
            f"{frames} frames are too few to estimate diffusion over "
            f"{segments} blocks: write frames more often or run longer"
        )
    dt = float(np.mean(np.diff(times)))
    unwrapped = unwrap(positions, cell)
    centre = (unwrapped * masses[None, :, None]).sum(axis=1) / masses.sum()
    unwrapped = unwrapped - centre[:, None, :]
    lags = np.unique(np.linspace(lag_start, lag_end, MAX_LAGS).round().astype(int))
    result: Dict[str, Dict[str, float]] = {}
    for z in sorted(set(int(n) for n in numbers)):
        mask = numbers == z
        estimates = []
        for k in range(segments):
            origins = slice(k * length, (k + 1) * length)
            msd = mean_square_displacement(unwrapped[:, mask], lags, origins)
            estimates.append(_slope(lags * dt, msd) / 6.0)
        estimates = np.array(estimates)
        result[ase.data.chemical_symbols[z]] = {
            "D_A2_per_ps": float(estimates.mean()),
            "error_A2_per_ps": float(estimates.std(ddof=1) / math.sqrt(segments)),
            "segments": int(segments),
            "fit_lag_ps": [float(lag_start * dt), float(lag_end * dt)],
        }
    return result


def trajectory_diffusion(
    path, start_fs: float = 0.0, segments: int = 4
) -> Dict[str, Dict[str, float]]:
    """:func:`diffusion_coefficients` of an ``mtt-nc md`` trajectory (extxyz frames
    with ``time_fs`` in their info), from ``start_fs`` on.

    :raises UserInputError: too few frames after ``start_fs``.
    """
    import ase.io

    frames = [f for f in ase.io.read(path, ":") if f.info["time_fs"] >= start_fs - 1e-6]
    if not frames:
        raise UserInputError(f"no frames after {start_fs} fs in {path}")
    periodic = bool(frames[0].pbc.all())
    return diffusion_coefficients(
        np.array([f.positions for f in frames]),
        np.array([f.info["time_fs"] for f in frames]) / 1000.0,
        frames[0].numbers,
        frames[0].get_masses(),
        cell=frames[0].cell.array if periodic else None,
        segments=segments,
    )
