"""Geometry-optimisation check: fraction of structures converged within N steps.

For each force mode (``conservative``: ``-dE/dr``; ``direct``: the direct head) and
each ASE optimiser (``LBFGS``, ``FIRE``), every structure (optionally displaced by
Gaussian noise of standard deviation ``sigma`` A, the same displacement for every
mode and optimiser) is relaxed until the largest force is below ``fmax`` (eV/A) or
``steps`` steps have passed. With direct forces the conservative ``fmax`` at the end
is also reported: a structure "converged" on direct forces need not be a minimum.
"""

from typing import Any, Callable, Dict, List, Optional, Sequence

import ase
import numpy as np

from ..errors import UserInputError
from ..force_models.calculator import ModelCalculator
from ..force_models.loading import load_force_model

OPTIMIZERS = ("LBFGS", "FIRE")
RELAX_MODES = ("conservative", "direct")


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
    :param sigma: standard deviation (A) of the random displacement (0: none).
    :param seed: seed of the displacements.
    :param progress: called after each relaxation.
    :return: ``{"records": [...], "fractions": {mode: {optimizer: fraction}}}``;
        each record has ``structure``, ``forces``, ``optimizer``, ``converged``,
        ``steps``, ``fmax_final`` (eV/A, of the driving forces),
        ``conservative_fmax_final`` (eV/A), ``energy_final`` (eV).
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
    starts = []
    for atoms in structures:
        start = ase.Atoms(
            numbers=atoms.numbers,
            positions=atoms.positions,
            cell=atoms.cell,
            pbc=atoms.pbc,
        )
        if sigma > 0:
            start.positions = start.positions + rng.normal(0.0, sigma, (len(start), 3))
        starts.append(start)

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
                    if isinstance(error, UserInputError):
                        raise
                    converged, final, final_c, energy = False, None, None, None
                records.append(
                    {
                        "structure": index,
                        "forces": mode,
                        "optimizer": name,
                        "converged": converged,
                        "steps": int(optimizer.nsteps),
                        "fmax_final": final,
                        "conservative_fmax_final": final_c,
                        "energy_final": energy,
                    }
                )
                if progress is not None:
                    progress()
    fractions: Dict[str, Dict[str, float]] = {}
    for mode in force_modes:
        fractions[mode] = {}
        for name in optimizers:
            selected = [
                r["converged"]
                for r in records
                if r["forces"] == mode and r["optimizer"] == name
            ]
            fractions[mode][name] = float(np.mean(selected))
    return {"records": records, "fractions": fractions}
