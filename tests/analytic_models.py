"""Small metatomic models with analytically known forces, for tests and benchmarks.

Stable API (other test modules import it):

- :func:`export_pair_model` saves a metatomic ``AtomisticModel`` (``.pt``) with
  ``energy`` (a smooth short-ranged Morse-like pair potential),
  ``non_conservative_force`` (= -dE/dr plus ``nonconservative_strength`` times a
  rotation field) and optionally
  ``non_conservative_stress``;
- :func:`pair_energy` is the same energy in plain torch (explicit images), usable with
  ``torch.autograd.functional.hessian``;
- :func:`analytic_lambda` gives the exact antisymmetry ratio of the exported model's
  ``non_conservative_force`` for a structure;
- :func:`analytic_rotation_work` gives the exact work of the non-conservative field
  along a rigid full turn of a group of atoms about their centroid;
- :func:`analytic_square_loop_work` gives the exact work of the non-conservative field
  around a square loop (the conservative part adds zero).

The non-conservative field is ``g_i = s * z_hat x (r_i - c)`` with ``c`` the centroid of
all atoms (positions as given, no wrapping). Its Jacobian blocks are
``dg_i/dr_j = s * K * (delta_ij - 1/N)`` with ``K = [z_hat x]`` antisymmetric, so it is
fully antisymmetric, ``||J_nc||_F^2 = 2 s^2 (N - 1)``, orthogonal (in the Frobenius
sense) to the symmetric Jacobian of the conservative part, and ``sum_i g_i = 0``.

Units: energies in eV, lengths in Angstrom, forces in eV/A, stress in eV/A^3,
``nonconservative_strength`` in eV/A^2.
"""

import math
from typing import Dict, List, Optional, Sequence

import ase
import numpy as np
import torch
from metatensor.torch import Labels, TensorBlock, TensorMap
from metatomic.torch import (
    AtomisticModel,
    ModelCapabilities,
    ModelMetadata,
    ModelOutput,
    NeighborListOptions,
    System,
)

#: parameters of the pair potential phi(r) = D [(1 - exp(-a (r - r0)))^2 - 1] fc(r)
MORSE_D = 0.3  # eV
MORSE_A = 1.6  # 1/A
MORSE_R0 = 1.5  # A
CUTOFF = 4.0  # A; fc(r) = (1 - (r/rc)^2)^3, twice continuously differentiable at rc


def _phi_and_derivative(
    r: torch.Tensor, cutoff: float, depth: float, a: float, r0: float
):
    """Pair energy phi(r) (eV) and d phi / d r (eV/A) for distances ``r`` (A)."""
    e = torch.exp(-a * (r - r0))
    morse = depth * ((1.0 - e) ** 2 - 1.0)
    dmorse = depth * 2.0 * (1.0 - e) * a * e
    x = r / cutoff
    inside = (x < 1.0).to(r.dtype)
    base = (1.0 - x * x) * inside
    fc = base**3
    dfc = 3.0 * base**2 * (-2.0 * x / cutoff) * inside
    return morse * fc, dmorse * fc + morse * dfc


class PairModel(torch.nn.Module):
    """Morse-like pair energy with analytic conservative and direct forces."""

    def __init__(
        self, cutoff: float, strength: float, stress: bool, scale: float = 1.0
    ):
        super().__init__()
        self.cutoff = cutoff
        self.scale = scale  # energy unit per eV (1 for eV, 23.06 for kcal/mol)
        self.depth = MORSE_D
        self.a = MORSE_A
        self.r0 = MORSE_R0
        self.strength = strength
        self.stress = stress
        self.nl_options = NeighborListOptions(
            cutoff=cutoff, full_list=False, strict=True
        )

    def requested_neighbor_lists(self) -> List[NeighborListOptions]:
        return [self.nl_options]

    def forward(
        self,
        systems: List[System],
        outputs: Dict[str, ModelOutput],
        selected_atoms: Optional[Labels] = None,
    ) -> Dict[str, TensorMap]:
        energies: List[torch.Tensor] = []
        atom_energies: List[torch.Tensor] = []
        forces: List[torch.Tensor] = []
        stresses: List[torch.Tensor] = []
        atom_samples: List[torch.Tensor] = []
        for s, system in enumerate(systems):
            n_atoms = system.positions.shape[0]
            neighbors = system.get_neighbor_list(self.nl_options)
            pairs = neighbors.samples.values
            first = pairs[:, 0].to(torch.long)
            second = pairs[:, 1].to(torch.long)
            d = neighbors.values.reshape(-1, 3)
            r = torch.linalg.vector_norm(d, dim=1)
            phi, dphi = _phi_and_derivative(r, self.cutoff, self.depth, self.a, self.r0)
            phi = phi * self.scale
            dphi = dphi * self.scale
            per_atom = torch.zeros(
                n_atoms, dtype=system.positions.dtype, device=system.positions.device
            )
            per_atom = per_atom.index_add(0, first, 0.5 * phi)
            per_atom = per_atom.index_add(0, second, 0.5 * phi)
            atom_energies.append(per_atom)
            energies.append(phi.sum().reshape(1))
            # force on the second atom of each pair: -dphi/dr d/r, opposite on the first
            pair_force = -(dphi / r).unsqueeze(1) * d
            f = torch.zeros_like(system.positions)
            f = f.index_add(0, second, pair_force)
            f = f.index_add(0, first, -pair_force)
            centred = system.positions - system.positions.mean(dim=0, keepdim=True)
            rotation = torch.stack(
                [-centred[:, 1], centred[:, 0], torch.zeros_like(centred[:, 2])], dim=1
            )
            forces.append(f + self.scale * self.strength * rotation)
            if self.stress:
                volume = torch.abs(torch.linalg.det(system.cell))
                virial = (d * (dphi / r).unsqueeze(1)).T @ d
                stresses.append(virial / volume)
            atom_samples.append(
                torch.stack(
                    [
                        torch.full((n_atoms,), s, dtype=torch.int32),
                        torch.arange(n_atoms, dtype=torch.int32),
                    ],
                    dim=1,
                )
            )

        results: Dict[str, TensorMap] = {}
        keys = Labels("_", torch.tensor([[0]]))
        if "energy" in outputs:
            if outputs["energy"].sample_kind == "atom":
                block = TensorBlock(
                    values=torch.cat(atom_energies).reshape(-1, 1),
                    samples=Labels(["system", "atom"], torch.cat(atom_samples)),
                    components=[],
                    properties=Labels("energy", torch.tensor([[0]])),
                )
            else:
                block = TensorBlock(
                    values=torch.cat(energies).reshape(-1, 1),
                    samples=Labels("system", torch.arange(len(systems)).reshape(-1, 1)),
                    components=[],
                    properties=Labels("energy", torch.tensor([[0]])),
                )
            results["energy"] = TensorMap(keys, [block])
        if "non_conservative_force" in outputs:
            block = TensorBlock(
                values=torch.cat(forces).reshape(-1, 3, 1),
                samples=Labels(["system", "atom"], torch.cat(atom_samples)),
                components=[Labels("xyz", torch.tensor([[0], [1], [2]]))],
                properties=Labels("non_conservative_force", torch.tensor([[0]])),
            )
            results["non_conservative_force"] = TensorMap(keys, [block])
        if self.stress and "non_conservative_stress" in outputs:
            block = TensorBlock(
                values=torch.stack(stresses).reshape(-1, 3, 3, 1),
                samples=Labels("system", torch.arange(len(systems)).reshape(-1, 1)),
                components=[
                    Labels("xyz_1", torch.tensor([[0], [1], [2]])),
                    Labels("xyz_2", torch.tensor([[0], [1], [2]])),
                ],
                properties=Labels("non_conservative_stress", torch.tensor([[0]])),
            )
            results["non_conservative_stress"] = TensorMap(keys, [block])
        return results


def export_pair_model(
    path: str,
    *,
    nonconservative_strength: float = 0.0,
    stress: bool = False,
    dtype: str = "float64",
    atomic_types: Sequence[int] = (1, 6, 8),
    direct_forces: bool = True,
    energy_unit: str = "eV",
    cutoff: float = CUTOFF,
) -> str:
    """Save the analytic pair model as a metatomic ``AtomisticModel`` at ``path``.

    :param path: where to write the ``.pt`` file.
    :param nonconservative_strength: ``s`` (eV/A^2) of the rotation field added to
        ``non_conservative_force`` (0 gives exactly -dE/dr).
    :param stress: also expose ``non_conservative_stress`` (the conservative virial
        stress, eV/A^3; the rotation field adds nothing to it).
    :param dtype: ``"float64"`` or ``"float32"``.
    :param atomic_types: atomic numbers the model accepts.
    :param direct_forces: expose ``non_conservative_force`` (``False``: an energy-only
        model, to test errors about missing outputs).
    :param energy_unit: ``"eV"`` or ``"kcal/mol"``: the unit the model declares and
        computes in (the same physics either way).
    :param cutoff: range of the pair energy and of the neighbour list (A).
    :return: ``path`` as a string.
    """
    scale = {"eV": 1.0, "kcal/mol": 23.060547830619026}[energy_unit]
    outputs = {
        "energy": ModelOutput(unit=energy_unit, sample_kind="system"),
        "non_conservative_force": ModelOutput(
            unit=f"{energy_unit}/Angstrom", sample_kind="atom"
        ),
    }
    if not direct_forces:
        del outputs["non_conservative_force"]
    if stress:
        outputs["non_conservative_stress"] = ModelOutput(
            unit=f"{energy_unit}/Angstrom^3", sample_kind="system"
        )
    capabilities = ModelCapabilities(
        outputs=outputs,
        atomic_types=[int(t) for t in atomic_types],
        interaction_range=cutoff,
        length_unit="angstrom",
        supported_devices=["cpu"],
        dtype=dtype,
    )
    module = PairModel(
        float(cutoff), float(nonconservative_strength), bool(stress), scale
    ).eval()
    model = AtomisticModel(
        module, ModelMetadata(name="analytic pair model"), capabilities
    )
    model.save(str(path))
    return str(path)


def pair_energy(
    positions: torch.Tensor, atoms: ase.Atoms, cutoff: float = CUTOFF
) -> torch.Tensor:
    """The pair energy (eV) of ``atoms`` at ``positions`` (shape (N, 3), A), in torch.

    Periodic images come from ASE's neighbour list at the reference positions, so the
    function is exact (and twice differentiable) for small displacements.
    """
    from ase.neighborlist import primitive_neighbor_list

    i, j, shifts = primitive_neighbor_list(
        "ijS",
        atoms.pbc,
        np.asarray(atoms.cell),
        atoms.positions,
        cutoff + 0.5,
        self_interaction=False,
    )
    cell = torch.tensor(np.asarray(atoms.cell), dtype=positions.dtype)
    shifts_t = torch.tensor(shifts, dtype=positions.dtype)
    d = positions[j] - positions[i] + shifts_t @ cell
    r = torch.linalg.vector_norm(d, dim=1)
    phi, _ = _phi_and_derivative(r, cutoff, MORSE_D, MORSE_A, MORSE_R0)
    return 0.5 * phi.sum()


def analytic_jacobian(atoms: ase.Atoms, nonconservative_strength: float) -> np.ndarray:
    """The exact force Jacobian (3N, 3N), eV/A^2, of ``non_conservative_force``."""
    positions = torch.tensor(atoms.positions, dtype=torch.float64)
    hessian = torch.autograd.functional.hessian(
        lambda p: pair_energy(p, atoms), positions
    ).reshape(3 * len(atoms), 3 * len(atoms))
    n = len(atoms)
    k = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    centring = np.eye(n) - np.full((n, n), 1.0 / n)
    return -hessian.numpy() + nonconservative_strength * np.kron(centring, k)


def analytic_lambda(atoms: ase.Atoms, nonconservative_strength: float) -> float:
    """The exact antisymmetry ratio of ``non_conservative_force`` for ``atoms``.

    ``lambda^2 = 2 s^2 (N - 1) / (||H||_F^2 + 2 s^2 (N - 1))`` with ``H`` the Hessian of
    the pair energy (computed here by autograd, independently of metatomic).
    """
    n = len(atoms)
    positions = torch.tensor(atoms.positions, dtype=torch.float64)
    hessian = torch.autograd.functional.hessian(
        lambda p: pair_energy(p, atoms), positions
    )
    h2 = float((hessian**2).sum())
    a2 = 2.0 * nonconservative_strength**2 * (n - 1)
    return math.sqrt(a2 / (h2 + a2))


def analytic_rotation_work(
    atoms: ase.Atoms, indices: Sequence[int], nonconservative_strength: float
) -> float:
    """Work (eV) of the field along one rigid counter-clockwise turn about z_hat.

    The atoms ``indices`` turn about their own centroid, the others stay fixed:
    ``W = 2 pi s sum_i |(r_i - c_m)_perp|^2`` (perp: the x, y components).
    """
    group = atoms.positions[list(indices)]
    centred = group - group.mean(axis=0)
    return 2.0 * math.pi * nonconservative_strength * float((centred[:, :2] ** 2).sum())


def analytic_square_loop_work(
    u: np.ndarray, v: np.ndarray, eps: float, nonconservative_strength: float
) -> float:
    """Work (eV) of the field around the square r0 -> +eps u -> +eps v -> -eps u -> r0.

    ``u`` and ``v`` have shape (N, 3). The field is linear, ``g = M r``, so
    ``W = eps^2 (v.M u - u.M v)``.
    """
    n = u.shape[0]
    k = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    m = nonconservative_strength * np.kron(np.eye(n) - np.full((n, n), 1.0 / n), k)
    uf, vf = u.reshape(-1), v.reshape(-1)
    return float(eps**2 * (vf @ m @ uf - uf @ m @ vf))
