"""Fast and slow forces of a batched torch-sim state: the force split of MTS.

The batched twin of the ASE integrator's force split: an object with

- ``slow(state)``: the slow (conservative) forces ``-dE/dr`` and the energy;
- ``fast(state)``: the fast (direct) forces, their mean removed per system (and the
  energy when it comes for free);
- ``both(state)``: both, from as few model calls as the model allows (one forward
  and one backward pass for a hybrid ``pet_m`` model),

each returning a :class:`ForceBatch` of tensors over the whole batch (energies
``(n_systems,)`` in eV, forces ``(n_atoms, 3)`` in eV/A, in the state's dtype).

- :class:`ModelPairSplit`: two torch-sim ``ModelInterface`` models (e.g. a MACE or
  Lennard-Jones model for the slow forces and a cheaper one for the fast forces);
- :class:`MetatomicSplit`: a metatomic model (exported ``.pt``, ``.ckpt``, anything
  :func:`~metatrain_nc.force_models.load_force_model` takes) evaluated on all systems
  in one call with vesin's Verlet neighbour lists (one per system, kept between
  calls); its direct head is the fast force, or a separate ``fast`` model's.
"""

from dataclasses import dataclass
from typing import Any, List, Optional

import torch

from ..errors import UserInputError
from ..force_models.names import CONSERVATIVE, DIRECT, DIRECT_FORCE, ENERGY
from .states import pbc_vector, remove_mean_per_system, row_vector_cells, system_sizes


@dataclass
class ForceBatch:
    """What a split returned for a batch (``None``: not asked / not available)."""

    energy: Optional[torch.Tensor] = None
    conservative: Optional[torch.Tensor] = None
    direct: Optional[torch.Tensor] = None


class ModelPairSplit:
    """Slow and fast forces from two torch-sim models (``model(state)`` returning
    ``{"energy", "forces"}``); ``fast`` defaults to ``slow`` (then MTS is velocity
    Verlet at the inner step)."""

    def __init__(self, slow: Any, fast: Any = None):
        self.slow_model = slow
        self.fast_model = slow if fast is None else fast

    def slow(self, state) -> ForceBatch:
        out = self.slow_model(state)
        return ForceBatch(energy=out["energy"], conservative=out["forces"])

    def fast(self, state) -> ForceBatch:
        out = self.fast_model(state)
        forces = remove_mean_per_system(out["forces"], state)
        return ForceBatch(energy=out.get("energy"), direct=forces)

    def both(self, state) -> ForceBatch:
        slow = self.slow(state)
        slow.direct = self.fast(state).direct
        return slow


class MetatomicSplit:
    """A metatomic model's conservative forces (slow) and direct head (fast).

    :param model: the (slow) model, anything
        :func:`~metatrain_nc.force_models.load_force_model` takes; a
        ``pet_m``/``pet_nc`` model gives both heads from one forward pass.
    :param fast: a separate model for the fast forces (its direct head if it has
        one, else its conservative forces); default: ``model``'s direct head.
    :param neighbor_skin: Verlet skin (A) of the per-system neighbour lists.
    """

    def __init__(self, model: Any, fast: Any = None, neighbor_skin: float = 0.5):
        from ..force_models.loading import load_force_model

        self.provider = load_force_model(model)
        if self.provider.kind != "metatomic":
            raise UserInputError(
                "the torch-sim engine runs metatomic models (.pt, .ckpt); got a "
                f"'{self.provider.kind}' model"
            )
        self.fast_provider = None if fast is None else load_force_model(fast)
        if self.fast_provider is not None and self.fast_provider.kind != "metatomic":
            raise UserInputError(
                "the fast model of the torch-sim engine must be a "
                "metatomic model (.pt, .ckpt)"
            )
        self.skin = float(neighbor_skin)
        self._lists = {}

    @property
    def model(self):
        """The model of record (energy, slow forces), as the ASE force split."""
        return self.provider

    @property
    def fast_model(self):
        """The separate model of the fast forces, or ``None``."""
        return self.fast_provider

    def check(self, atoms) -> None:
        """Refuse a structure (ASE ``Atoms``) the models cannot run."""
        self.provider.check(atoms)
        if self.fast_provider is not None:
            self.fast_provider.check(atoms)

    @property
    def shared(self) -> bool:
        """One model gives both heads (one call per outer evaluation)."""
        return self.fast_provider is None

    @property
    def has_direct(self) -> bool:
        return DIRECT in self.provider.heads

    @property
    def fast_head(self) -> str:
        fast = self.fast_provider
        if fast is None:
            return DIRECT
        return DIRECT if DIRECT in fast.heads else CONSERVATIVE

    def describe(self) -> dict:
        fast = self.fast_provider
        return {
            "model": self.provider.source,
            "fast": None if fast is None else fast.source,
            "fast_head": self.fast_head,
        }

    # -- the protocol ----------------------------------------------------------------
    def slow(self, state) -> ForceBatch:
        return self._call(self.provider, state, conservative=True, direct=False)

    def fast(self, state) -> ForceBatch:
        if self.fast_provider is None:
            return self._call(self.provider, state, conservative=False, direct=True)
        head = self.fast_head
        result = self._call(
            self.fast_provider,
            state,
            conservative=head == CONSERVATIVE,
            direct=head == DIRECT,
        )
        if head == CONSERVATIVE:
            result.direct = remove_mean_per_system(result.conservative, state)
            result.conservative = None
        return result

    def both(self, state) -> ForceBatch:
        if self.fast_provider is None:
            return self._call(self.provider, state, conservative=True, direct=True)
        slow = self.slow(state)
        slow.direct = self.fast(state).direct
        return slow

    # -- evaluation ------------------------------------------------------------------
    def _neighbor_lists(self, provider, count: int) -> List[list]:
        from vesin.metatomic import NeighborList

        key = (id(provider), count)
        if key not in self._lists:
            # a new batch composition (a replica stopped): new Verlet lists
            self._lists = {k: v for k, v in self._lists.items() if k[0] != key[0]}
            self._lists[key] = [
                [
                    NeighborList(options, length_unit="angstrom", skin=self.skin)
                    for options in provider.neighbor_options
                ]
                for _ in range(count)
            ]
        return self._lists[key]

    def _call(self, provider, state, conservative: bool, direct: bool) -> ForceBatch:
        from metatomic.torch import System

        if direct:
            provider.require_direct()
        dtype, device = provider.torch_dtype, provider.device
        sizes = system_sizes(state)
        lists = self._neighbor_lists(provider, len(sizes))
        positions = state.positions.detach().to(device=device, dtype=dtype)
        cells = row_vector_cells(state).detach().to(device=device, dtype=dtype)
        pbc = pbc_vector(state).to(device)
        types = state.atomic_numbers.to(device=device, dtype=torch.int32)
        names = [ENERGY] + ([DIRECT_FORCE] if direct else [])
        back = {"device": state.positions.device, "dtype": state.positions.dtype}
        with torch.set_grad_enabled(conservative):
            if conservative:
                positions.requires_grad_(True)
            systems = []
            start = 0
            for k, size in enumerate(sizes):
                part = slice(start, start + size)
                system = System(types[part], positions[part], cells[k], pbc)
                for calculator in lists[k]:
                    calculator.add_neighbor_list(system, copy=True)
                systems.append(system)
                start += size
            outputs = provider.model(
                systems, provider.options(names), check_consistency=False
            )
            provider.n_forward += 1
            energy = outputs[ENERGY].block().values.reshape(-1)
            result = ForceBatch(energy=energy.detach().to(**back))
            if conservative:
                (grad,) = torch.autograd.grad(energy.sum(), [positions])
                provider.n_backward += 1
                result.conservative = -grad.to(**back)
            if direct:
                values = outputs[DIRECT_FORCE].block().values.detach()
                forces = values.reshape(-1, 3).to(**back)
                result.direct = remove_mean_per_system(forces, state)
        return result
