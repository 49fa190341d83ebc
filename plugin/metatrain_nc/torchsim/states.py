"""Batched-state helpers shared by the torch-sim integrator, force splits and runner.

Only the fields that every supported torch-sim release has are used (``positions``,
``masses``, ``cell``, ``pbc``, ``atomic_numbers``, ``system_idx`` of ``SimState``;
``momenta``, ``energy``, ``forces`` of ``MDState``), so that the same code runs with
torch-sim-atomistic 0.3 (the last release for Python 3.11) and 0.5+ (Python 3.12+).
Units are torch-sim's metal units, which are ASE's: A, eV, amu, and time in
``A sqrt(amu / eV)`` (``ase.units.fs`` = ``torch_sim.units.MetalUnits.time / 1000``).
"""

from typing import List, Sequence

import torch

from ..errors import UserInputError

INSTALL_HINT = "pip install 'metatrain-nc[torchsim]'"


def require_torch_sim():
    """``torch_sim``, or a :class:`UserInputError` telling how to install it."""
    try:
        import torch_sim
    except ImportError as error:
        raise UserInputError(
            f"the torch-sim engine needs torch-sim-atomistic ({INSTALL_HINT}): {error}"
        ) from None
    return torch_sim


def n_systems(state) -> int:
    return int(state.cell.shape[0])


def system_sizes(state) -> List[int]:
    """Atoms of each system (systems are contiguous in the state)."""
    counts = torch.bincount(state.system_idx, minlength=n_systems(state))
    return [int(c) for c in counts]


def per_system_sum(values: torch.Tensor, state) -> torch.Tensor:
    """Sum of per-atom ``values`` (``(n_atoms, ...)``) over each system."""
    out = torch.zeros(
        (n_systems(state),) + tuple(values.shape[1:]),
        dtype=values.dtype,
        device=values.device,
    )
    return out.index_add_(0, state.system_idx, values)


def remove_mean_per_system(forces: torch.Tensor, state) -> torch.Tensor:
    """``forces`` less their mean over each system (zero net force per system)."""
    counts = torch.bincount(state.system_idx, minlength=n_systems(state))
    mean = per_system_sum(forces, state) / counts.clamp(min=1).to(forces.dtype)[:, None]
    return forces - mean[state.system_idx]


def kinetic_energy(state) -> torch.Tensor:
    """Kinetic energy of each system (eV), ``sum p^2 / 2m``."""
    per_atom = 0.5 * (state.momenta**2).sum(dim=1) / state.masses
    return per_system_sum(per_atom, state)


def pbc_vector(state) -> torch.Tensor:
    """Periodicity as a ``(3,)`` bool tensor (torch-sim 0.3 stores one bool)."""
    pbc = torch.as_tensor(state.pbc, device=state.positions.device)
    if pbc.dim() == 0:
        pbc = pbc.expand(3)
    return pbc.to(torch.bool)


def row_vector_cells(state) -> torch.Tensor:
    """Cells as rows of lattice vectors, ``(n_systems, 3, 3)`` (ASE's convention;
    torch-sim stores column vectors)."""
    return state.cell.mT


def finite_systems(state, *tensors: torch.Tensor) -> torch.Tensor:
    """Bool ``(n_systems,)``: systems whose per-atom ``tensors`` (default:
    positions) are all finite."""
    tensors = tensors or (state.positions,)
    bad = torch.zeros(state.positions.shape[0], dtype=torch.bool)
    bad = bad.to(state.positions.device)
    for tensor in tensors:
        if tensor is not None:
            bad |= ~torch.isfinite(tensor.reshape(tensor.shape[0], -1)).all(dim=1)
    counts = per_system_sum(bad.to(torch.int64), state)
    return counts == 0


def select_systems(state, keep: torch.Tensor):
    """A new state of the same class with the systems where ``keep`` (bool,
    ``(n_systems,)``) is true, renumbered in order. Per-atom and per-system fields
    of ``MDState`` are kept; other extras of newer torch-sim states are not."""
    keep = keep.to(torch.bool).to(state.positions.device)
    atoms = keep[state.system_idx]
    renumber = torch.cumsum(keep.to(torch.int64), 0) - 1
    fields = {
        "positions": state.positions[atoms],
        "masses": state.masses[atoms],
        "atomic_numbers": state.atomic_numbers[atoms],
        "system_idx": renumber[state.system_idx[atoms]],
        "cell": state.cell[keep],
        "pbc": state.pbc,
    }
    for name in ("momenta", "forces"):
        if hasattr(state, name):
            fields[name] = getattr(state, name)[atoms]
    if hasattr(state, "energy"):
        fields["energy"] = state.energy[keep]
    return type(state)(**fields)


def md_state(state, momenta: torch.Tensor, energy, forces):
    """torch-sim's ``MDState`` with the fields of ``state`` and the given ones."""
    ts = require_torch_sim()
    return ts.integrators.MDState(
        positions=state.positions,
        masses=state.masses,
        cell=state.cell,
        pbc=state.pbc,
        atomic_numbers=state.atomic_numbers,
        system_idx=state.system_idx,
        momenta=momenta,
        energy=energy,
        forces=forces,
    )


def atoms_to_state(atoms_list: Sequence, device="cpu", dtype=torch.float64):
    """A torch-sim ``SimState`` of ASE structures (with their momenta, when they
    all have some, as an ``MDState`` with zero energy and forces)."""
    ts = require_torch_sim()
    pbc = {tuple(bool(p) for p in a.pbc) for a in atoms_list}
    if len(pbc) > 1 or (pbc and len(set(next(iter(pbc)))) > 1):
        raise UserInputError(
            "torch-sim needs the same periodicity in x, y, z for every replica "
            f"(got {sorted(pbc)})"
        )
    state = ts.io.atoms_to_state(list(atoms_list), torch.device(device), dtype)
    import numpy as np

    momenta = torch.tensor(
        np.concatenate([a.get_momenta() for a in atoms_list]),
        dtype=dtype,
        device=state.positions.device,
    )
    zeros = torch.zeros(n_systems(state), dtype=dtype, device=momenta.device)
    return md_state(state, momenta, zeros, torch.zeros_like(momenta))
