"""PET's backend with a direct force head.

Two heads are available (model hyperparameter ``direct_force_head``):

``"edge"`` (default)
    Pair forces along the bonds. For every edge ``ij`` of PET's neighbour list, a
    small MLP on PET's edge features (one per readout layer) gives a scalar
    ``g_ij``; it is symmetrised through PET's reverse-neighbour index,
    ``w_ij = (g_ij fc(r_ij) + g_ji fc(r_ji)) / 2``, and

    .. math:: f_i = \\sum_j w_{ij} \\hat r_{ij}, \\qquad \\hat r_{ij} = r_{ij}/|r_{ij}|

    Because ``w_ij = w_ji`` and ``r_ji = -r_ij`` the forces obey Newton's third law:
    they sum to zero per structure exactly (no correction needed), conserve
    momentum and angular momentum of isolated pairs, and rotate with the structure
    as well as ``g`` is invariant.

``"atom"``
    PET's own per-atom vector head (as for any Cartesian rank-1 target), followed by
    the removal of the mean force of each structure.

In both cases the net force is removed *per structure* over all atoms the model
sees, before any ``selected_atoms`` slicing.
"""

from typing import Dict, List, Tuple

import torch
from metatrain.pet.documentation import ModelHypers
from metatrain.pet.modules.backend import PETBackend, process_non_conservative_stress

from .routing import FORCE_OUTPUT

# note: TorchScript cannot read module-level string constants, so the scripted
# methods below spell the output names out


class DirectForceBackend(PETBackend):
    """:class:`metatrain.pet.modules.backend.PETBackend` plus a direct force head.

    :param hypers: PET model hypers, plus ``direct_force_head`` ("edge" | "atom").
    :param atomic_types: sorted atomic types of the model.
    """

    def __init__(self, hypers: ModelHypers, atomic_types: List[int]) -> None:
        super().__init__(hypers, atomic_types)
        self.edge_force_head = hypers.get("direct_force_head", "edge") == "edge"
        # one MLP per readout layer, edge features (d_pet) -> scalar pair force;
        # filled by ``add_output`` (stays empty for the "atom" head)
        self.pair_force_head = torch.nn.ModuleList()

    def add_output(self, target_name: str, output_shapes: Dict[str, List[int]]) -> None:
        if target_name == FORCE_OUTPUT and self.edge_force_head:
            self.pair_force_head = torch.nn.ModuleList(
                [
                    torch.nn.Sequential(
                        torch.nn.Linear(self.d_pet, self.d_head),
                        torch.nn.SiLU(),
                        torch.nn.Linear(self.d_head, self.d_head),
                        torch.nn.SiLU(),
                        torch.nn.Linear(self.d_head, 1),
                    )
                    for _ in range(self.num_readout_layers)
                ]
            )
        else:
            super().add_output(target_name, output_shapes)

    def remove_output(self, target_name: str) -> None:
        if target_name == FORCE_OUTPUT:
            self.pair_force_head = torch.nn.ModuleList()
        super().remove_output(target_name)

    def predict(
        self,
        node_features_list: List[torch.Tensor],
        edge_features_list: List[torch.Tensor],
        batch_data: Dict[str, torch.Tensor],
        cells: torch.Tensor,
        system_indices: torch.Tensor,
        requested_output_names: List[str],
    ) -> Tuple[
        Dict[str, List[torch.Tensor]],
        Dict[str, List[torch.Tensor]],
        Dict[str, List[torch.Tensor]],
    ]:
        # Same steps as ``PETBackend.predict`` (TorchScript has no ``super()``), built
        # from PET's own helpers; the direct force head is added at the end.
        node_ll_features, edge_ll_features = self._calculate_last_layer_features(
            node_features_list, edge_features_list
        )
        node_by_output, edge_by_output = self._calculate_atomic_predictions(
            node_ll_features,
            edge_ll_features,
            batch_data["padding_mask"],
            batch_data["cutoff_factors"],
            requested_output_names,
        )
        atomic_predictions: Dict[str, List[torch.Tensor]] = {}
        for output_name, node_by_layer in node_by_output.items():
            edge_by_layer = edge_by_output[output_name]
            block_sums: List[torch.Tensor] = []
            for block in range(len(node_by_layer[0])):
                total = node_by_layer[0][block] + edge_by_layer[0][block]
                for layer in range(1, len(node_by_layer)):
                    total = total + node_by_layer[layer][block]
                    total = total + edge_by_layer[layer][block]
                block_sums.append(total)
            if output_name == "non_conservative_stress":
                block_sums[0] = process_non_conservative_stress(
                    block_sums[0], cells, system_indices, block_sums[0].shape[1] // 9
                )
            atomic_predictions[output_name] = block_sums

        if "non_conservative_force" in requested_output_names:
            if len(self.pair_force_head) > 0:
                forces = self._pair_forces(edge_features_list, batch_data)
            else:
                forces = atomic_predictions["non_conservative_force"][0].reshape(-1, 3)
                forces = _remove_mean_per_system(forces, system_indices, cells.shape[0])
            # PET reshapes flat block values to [n_atoms, 3, 1] for the TensorMap
            atomic_predictions["non_conservative_force"] = [forces.reshape(-1, 3)]
        return atomic_predictions, node_ll_features, edge_ll_features

    def _pair_forces(
        self,
        edge_features_list: List[torch.Tensor],
        batch_data: Dict[str, torch.Tensor],
    ) -> torch.Tensor:
        """Forces ``[n_atoms, 3]`` from symmetrised pair magnitudes along the edges."""
        padding_mask = batch_data["padding_mask"]  # [n_atoms, max_neighbors]
        cutoff_factors = batch_data["cutoff_factors"]  # [n_atoms, max_neighbors]
        edge_vectors = batch_data["edge_vectors"]  # [n_atoms, max_neighbors, 3]
        reverse = batch_data["reverse_neighbor_index"].reshape(-1)

        magnitude = torch.zeros_like(cutoff_factors)
        for layer_index, head in enumerate(self.pair_force_head):
            magnitude = magnitude + head(edge_features_list[layer_index]).squeeze(-1)
        weights = torch.where(padding_mask, magnitude * cutoff_factors, 0.0)
        flat = weights.reshape(-1)
        symmetric = 0.5 * (flat + flat[reverse]).reshape(weights.shape)
        symmetric = torch.where(padding_mask, symmetric, 0.0)

        distances = torch.sqrt(torch.sum(edge_vectors**2, dim=-1) + 1e-15)
        directions = edge_vectors / distances.unsqueeze(-1)
        return torch.sum(symmetric.unsqueeze(-1) * directions, dim=1)


def _remove_mean_per_system(
    forces: torch.Tensor, system_indices: torch.Tensor, n_systems: int
) -> torch.Tensor:
    """Subtract from each atom's force the mean force of its system.

    :param forces: ``[n_atoms, 3]``.
    :param system_indices: ``[n_atoms]`` system index of each atom.
    :param n_systems: number of systems in the batch.
    """
    totals = torch.zeros(
        (n_systems, 3), dtype=forces.dtype, device=forces.device
    ).index_add_(0, system_indices, forces)
    counts = torch.zeros(n_systems, dtype=forces.dtype, device=forces.device)
    counts = counts.index_add_(0, system_indices, torch.ones_like(forces[:, 0]))
    means = totals / counts.clamp(min=1.0).unsqueeze(-1)
    return forces - means[system_indices]
