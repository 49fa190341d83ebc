"""Geometry-optimisation check: fraction of structures converged within N steps.

For each force mode (``conservative``: ``-dE/dr``; ``direct``: the direct head) and
each ASE optimiser (``LBFGS``, ``FIRE``), every structure (optionally displaced by
Gaussian noise of standard deviation ``sigma`` A, the same displacement for every
mode and optimiser) is relaxed until the largest force is below ``fmax`` (eV/A) or
``steps`` steps have passed. With direct forces the conservative ``fmax`` at the end
is also reported: a structure "converged" on direct forces need not be a minimum.

Every relaxation says why it stopped (``stop_reason``, :func:`stop_reason`):
``converged``; or, when it ran out of steps, what its last quarter of steps (at
least 10) shows: ``energy_rising`` (the energy went up), ``step_collapse`` (no new
lowest force and the steps shrank to nothing), ``force_stalled`` (no new lowest force),
``step_limit`` (still making progress: more steps may do); ``error`` when the model
failed or returned non-finite values.
"""

import math
from collections import Counter
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import ase
import numpy as np

from ..errors import NonFiniteError, UserInputError
from ..force_models.calculator import ModelCalculator
from ..force_models.loading import load_force_model
from .starts import displaced

OPTIMIZERS = ("LBFGS", "FIRE")
RELAX_MODES = ("conservative", "direct")

#: why a relaxation stopped, in the order they are checked
STOP_REASONS = (
    "converged",
    "error",
    "energy_rising",
    "step_collapse",
    "force_stalled",
    "step_limit",
)
#: an energy rise counts beyond this many eV per atom
ENERGY_RISE_EV_PER_ATOM = 1e-5
#: a rigid translation (A) that changes no physics: the forces it changes show the
#: model's round-off floor (:func:`round_off_floor`)
FLOOR_SHIFT_A = np.array([0.1234, -0.0567, 0.0891])
#: steps have collapsed below this largest displacement per step (A) ...
COLLAPSED_STEP_A = 1e-6
#: ... or below this fraction of the largest displacement of the first steps
COLLAPSED_STEP_FRACTION = 1e-3


class _History:
    """Optimiser observer: energy, largest force and largest displacement per step."""

    def __init__(self, atoms: ase.Atoms):
        self.atoms = atoms
        self.energies: List[float] = []
        self.fmax: List[float] = []
        self.displacements: List[float] = []
        self._last: Optional[np.ndarray] = None

    def __call__(self) -> None:
        forces = self.atoms.get_forces()
        self.fmax.append(float(np.linalg.norm(forces, axis=1).max()))
        self.energies.append(float(self.atoms.get_potential_energy()))
        positions = self.atoms.get_positions()
        if self._last is not None:
            moved = np.linalg.norm(positions - self._last, axis=1).max()
            self.displacements.append(float(moved))
        self._last = positions


def stop_reason(
    converged: bool,
    energies: Sequence[float],
    fmax: Sequence[float],
    displacements: Sequence[float],
    n_atoms: int,
) -> str:
    """Why a relaxation stopped, from its history (one entry per optimiser step, the
    start included; ``displacements[k]``: largest atomic displacement of step k + 1).

    Without convergence the last quarter of the steps (at least 10; the window) is
    examined, in this order: ``energy_rising`` when the energy at the end is above
    both the lowest energy of the run and the energy at the start of the window by
    more than :data:`ENERGY_RISE_EV_PER_ATOM` per atom; ``step_collapse`` when no
    step of the window found a lower force than before it and its steps are below
    :data:`COLLAPSED_STEP_A` or :data:`COLLAPSED_STEP_FRACTION` of the first steps';
    ``force_stalled`` when no step of the window found a lower force; else
    ``step_limit`` (the forces were still going down). ``error`` for non-finite values.
    """
    if converged:
        return "converged"
    values = np.asarray(list(energies) + list(fmax), dtype=float)
    if len(fmax) == 0 or not np.all(np.isfinite(values)):
        return "error"
    if len(fmax) < 3:
        return "step_limit"
    window = min(max(10, len(fmax) // 4), len(fmax) - 1)
    start = len(fmax) - 1 - window
    tolerance = ENERGY_RISE_EV_PER_ATOM * max(n_atoms, 1)
    end = energies[-1]
    if end > min(energies) + tolerance and end > energies[start] + tolerance:
        return "energy_rising"
    if min(fmax[start + 1 :]) < min(fmax[: start + 1]):
        return "step_limit"
    recent = displacements[start:]
    early = max(displacements[:window]) if displacements else 0.0
    if recent and max(recent) < max(COLLAPSED_STEP_A, COLLAPSED_STEP_FRACTION * early):
        return "step_collapse"
    return "force_stalled"


def round_off_floor(
    model, atoms: ase.Atoms, heads: Sequence[str]
) -> Dict[str, Optional[float]]:
    """Largest change of any force component (eV/A) under a rigid translation, per
    head of ``model`` (a force model): the noise floor of its arithmetic (float32:
    ~1e-5 to 1e-4 eV/A). A threshold below it cannot be met reliably, whatever the
    optimiser. ``None`` for a head whose forces are not finite (the relaxations say
    so, each with its ``error``)."""
    shifted = atoms.copy()
    shifted.positions = shifted.positions + FLOOR_SHIFT_A
    floor: Dict[str, Optional[float]] = {}
    for head in heads:
        try:
            change = model.forces(atoms, head) - model.forces(shifted, head)
            floor[head] = float(np.abs(change).max())
        except NonFiniteError:
            floor[head] = None
    return floor


def _optimizer(name: str):
    from ase.optimize import FIRE, LBFGS

    return {"LBFGS": LBFGS, "FIRE": FIRE}[name]


def relaxation_check(
    model,
    structures: Sequence[ase.Atoms],
    force_modes: Sequence[str] = RELAX_MODES,
    optimizers: Sequence[str] = OPTIMIZERS,
    fmax: float = 1e-3,
    steps: int = 1000,
    sigma: float = 0.0,
    seed: int = 0,
    progress: Optional[Callable[[], None]] = None,
) -> Dict[str, Any]:
    """Relax every structure with every (force mode, optimiser).

    :param model: anything :func:`~metatrain_nc.force_models.load_force_model`
        takes (path, ``module:callable``, ASE calculator, force model).
    :param structures: the structures (not modified).
    :param force_modes: subset of ``("conservative", "direct")``.
    :param optimizers: subset of ``("LBFGS", "FIRE")``.
    :param fmax: convergence threshold on the largest force norm (eV/A).
    :param steps: maximum optimiser steps per structure.
    :param sigma: standard deviation (A) of the random displacement (0: none;
        :func:`~.starts.displaced`).
    :param seed: seed of the displacements.
    :param progress: called after each relaxation.
    :return: ``{"records": [...], "summary": {mode: {optimizer: {...}}}}``, the
        summary's ``successes``, ``trials``, ``rate``, ``interval_95`` (Wilson, see
        :func:`success_interval`), ``stop_reasons`` (counts) and ``mean_steps``
        also as ``"fractions"``, ``"intervals_95"`` and ``"stop_reasons"``, each
        ``{mode: {optimizer: value}}``; each record has
        ``structure``, ``forces``, ``optimizer``, ``converged``, ``stop_reason`` (see
        :func:`stop_reason`), ``steps``, ``fmax_final`` (eV/A, of the driving forces),
        ``fmax_lowest`` (eV/A, the lowest on the way), ``conservative_fmax_final``
        (eV/A), ``energy_final`` (eV); ``round_off_floor_eV_per_A`` per force mode
        (:func:`round_off_floor`, on the first start).
    """
    provider = load_force_model(model)
    for mode in force_modes:
        if mode not in RELAX_MODES:
            raise UserInputError(f"unknown force mode '{mode}' for relaxations")
        if mode == "direct":
            provider.require_direct()
        else:
            provider.require(mode)
    for name in optimizers:
        if name not in OPTIMIZERS:
            raise UserInputError(
                f"unknown optimiser '{name}'; choose from {list(OPTIMIZERS)}"
            )
    if not fmax > 0:
        raise UserInputError(f"fmax must be > 0, got {fmax}")
    if steps < 1:
        raise UserInputError(f"steps must be >= 1, got {steps}")
    if sigma < 0:
        raise UserInputError(f"sigma must be >= 0, got {sigma}")
    for i, atoms in enumerate(structures):
        provider.check(atoms, f"structure {i}")
    if not structures:
        raise UserInputError("no structures to relax")

    rng = np.random.default_rng(seed)
    starts = [displaced(atoms, sigma, rng) for atoms in structures]
    floor = round_off_floor(provider, starts[0], force_modes)

    records: List[Dict[str, Any]] = []
    conservative_calc = (
        ModelCalculator(provider, forces="conservative")
        if provider.has_conservative
        else None
    )
    for mode in force_modes:
        for name in optimizers:
            for index, start in enumerate(starts):
                atoms = start.copy()
                atoms.calc = ModelCalculator(provider, forces=mode)
                optimizer = _optimizer(name)(atoms, logfile=None)
                history = _History(atoms)
                optimizer.attach(history, interval=1)
                try:
                    converged = bool(optimizer.run(fmax=fmax, steps=steps))
                    forces = atoms.get_forces()
                    final = float(np.linalg.norm(forces, axis=1).max())
                    if mode == "conservative":
                        final_c = final
                    elif conservative_calc is None:
                        final_c = None  # a direct-only model has no -dE/dr
                    else:
                        probe = atoms.copy()
                        probe.calc = conservative_calc
                        final_c = float(
                            np.linalg.norm(probe.get_forces(), axis=1).max()
                        )
                    energy = float(atoms.get_potential_energy())
                    if not np.isfinite(final):
                        converged = False
                except (ValueError, RuntimeError, FloatingPointError) as error:
                    # non-finite values end this relaxation ("error"), not the rest
                    if isinstance(error, UserInputError) and not isinstance(
                        error, NonFiniteError
                    ):
                        raise
                    converged, final, final_c, energy = False, None, None, None
                reason = (
                    stop_reason(
                        converged,
                        history.energies,
                        history.fmax,
                        history.displacements,
                        len(atoms),
                    )
                    if final is not None
                    else "error"
                )
                records.append(
                    {
                        "structure": index,
                        "forces": mode,
                        "optimizer": name,
                        "converged": converged,
                        "stop_reason": reason,
                        "steps": int(optimizer.nsteps),
                        "fmax_final": final,
                        "fmax_lowest": min(history.fmax) if history.fmax else None,
                        "conservative_fmax_final": final_c,
                        "energy_final": energy,
                    }
                )
                if progress is not None:
                    progress()
    summary = {
        mode: {name: _summary(records, mode, name) for name in optimizers}
        for mode in force_modes
    }
    return {
        "records": records,
        "summary": summary,
        "fractions": _per(summary, "rate"),
        "intervals_95": _per(summary, "interval_95"),
        "stop_reasons": _per(summary, "stop_reasons"),
        "round_off_floor_eV_per_A": floor,
    }


def _summary(records: Sequence[Dict[str, Any]], mode: str, name: str) -> Dict:
    """Successes, trials, rate with its Wilson 95% interval, stop reasons (counts)
    and mean steps of the relaxations of one force mode and optimiser."""
    mine = [r for r in records if (r["forces"], r["optimizer"]) == (mode, name)]
    successes = sum(bool(r["converged"]) for r in mine)
    rate, low, high = success_interval(successes, len(mine))
    reasons = Counter(r["stop_reason"] for r in mine)
    return {
        "successes": successes,
        "trials": len(mine),
        "rate": rate,
        "interval_95": [low, high],
        "stop_reasons": {k: reasons[k] for k in STOP_REASONS if reasons[k]},
        "mean_steps": float(np.mean([r["steps"] for r in mine])),
    }


def _per(summary: Dict[str, Dict[str, Dict]], key: str) -> Dict:
    return {m: {o: s[key] for o, s in per.items()} for m, per in summary.items()}


def success_interval(
    successes: int, trials: int, z: float = 1.96
) -> Tuple[float, float, float]:
    """Success rate with its Wilson score interval (95% for ``z = 1.96``).

    The Wilson interval stays inside [0, 1] and is not empty at 0 or ``trials``
    successes, unlike the normal approximation (Wilson, J. Am. Stat. Assoc. 22, 209
    (1927)).

    :return: ``(rate, low, high)``, fractions.
    :raises UserInputError: no trials, or successes outside ``[0, trials]``.
    """
    if trials < 1 or not 0 <= successes <= trials:
        raise UserInputError(
            f"a success rate needs trials >= 1 and 0 <= successes <= trials, got "
            f"{successes} of {trials}"
        )
    rate = successes / trials
    denominator = 1.0 + z * z / trials
    centre = (rate + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(rate * (1 - rate) / trials + z * z / (4 * trials**2))
    half /= denominator
    return rate, max(0.0, centre - half), min(1.0, centre + half)


def direct_endpoints(
    records: Sequence[Dict[str, Any]], forces: str, optimizer: str
) -> List[float]:
    """Conservative fmax (eV/A), sorted, at the end of every relaxation driven by
    ``forces`` with ``optimizer`` that converged: how far a direct head's stationary
    points are from a minimum of the energy (records of :func:`relaxation_check`)."""
    return sorted(
        r["conservative_fmax_final"]
        for r in records
        if r["forces"] == forces
        and r["optimizer"] == optimizer
        and r["converged"]
        and r.get("conservative_fmax_final") is not None
    )


def difference_interval(
    successes_a: int, trials_a: int, successes_b: int, trials_b: int, z: float = 1.96
) -> Tuple[float, float, float]:
    """Difference of two success rates, ``rate_a - rate_b``, with Newcombe's hybrid
    score interval (95% for ``z = 1.96``), built from the two Wilson intervals of
    :func:`success_interval` (Newcombe, Stat. Med. 17, 873 (1998), method 10). It
    stays inside [-1, 1] and behaves at rates of 0 and 1, where the normal
    approximation gives an empty interval.

    :return: ``(difference, low, high)``, fractions.
    :raises UserInputError: as :func:`success_interval`.
    """
    rate_a, low_a, high_a = success_interval(successes_a, trials_a, z)
    rate_b, low_b, high_b = success_interval(successes_b, trials_b, z)
    difference = rate_a - rate_b
    low = difference - math.sqrt((rate_a - low_a) ** 2 + (high_b - rate_b) ** 2)
    high = difference + math.sqrt((high_a - rate_a) ** 2 + (rate_b - low_b) ** 2)
    return difference, max(-1.0, low), min(1.0, high)
