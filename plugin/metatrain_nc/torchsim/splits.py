"""Fast and slow forces of a batched torch-sim state: the force split of MTS.

The batched twin of the ASE integrator's force split
(:class:`metatrain_nc.force_models.force_split.ForceSplit`), with the same names:

- ``mode``: ``"mts"``, ``"conservative"`` or ``"direct"`` (``mtt-nc md --forces``);
- ``fast_head`` / ``slow_head``: the field of a result holding the fast (inner) /
  the slow forces (``"conservative"`` or ``"direct"``, read with
  ``result.forces(head)``);
- ``splits``: whether slow and fast forces differ (``False`` for plain conservative
  or direct velocity Verlet: the integrator skips the outer correction kicks);
- ``model`` / ``fast_model``: the model of record and the separate fast model (or
  ``None``); ``check(atoms)``, ``describe()``;
- ``fast(state)``, ``slow(state)``, ``both(state)``: the fast forces, the slow
  forces and the energy, or both from as few model calls as the model allows (one
  forward and one backward pass for a hybrid ``pet_m`` model; one call when the
  split does not split),

each returning a :class:`ForceBatch` of tensors over the whole batch (energies
``(n_systems,)`` in eV, forces ``(n_atoms, 3)`` in eV/A, in the state's dtype).
The fast forces have their mean removed per system.

- :class:`ModelPairSplit`: two torch-sim ``ModelInterface`` models (e.g. a MACE or
  Lennard-Jones model for the slow forces and a cheaper one for the fast forces);
- :class:`MetatomicSplit`: a metatomic model (exported ``.pt``, ``.ckpt``, anything
  :func:`~metatrain_nc.force_models.load_force_model` takes) evaluated on the
  systems of the batch with vesin's Verlet neighbour lists (one per system, kept
  between calls), as :class:`~metatrain_nc.force_models.MetatomicModel` evaluates
  one structure; its direct head is the fast force, or a separate ``fast`` model's.
"""

from typing import Any, Dict, List, Union

import torch

from ..errors import UserInputError
from ..force_models.force_split import MTS, check_force_mode
from ..force_models.names import CONSERVATIVE, DIRECT, DIRECT_FORCE, ENERGY
from .split_protocol import ForceBatch, _Split
from .states import pbc_vector, remove_mean_per_system, row_vector_cells, system_sizes

#: default atom budget of one model call on CPU (see :class:`MetatomicSplit`)
CPU_ATOMS_PER_CALL = 256


class ModelPairSplit(_Split):
    """Slow and fast forces from two torch-sim models (``model(state)`` returning
    ``{"energy", "forces"}``); ``fast`` defaults to ``slow`` (then MTS is velocity
    Verlet at the inner step). ``mode="conservative"`` / ``"direct"``: velocity
    Verlet with the slow / the fast model's forces."""

    def __init__(self, slow: Any, fast: Any = None, mode: str = MTS):
        check_force_mode(mode)
        self.mode = mode
        self.model = self.slow_model = slow
        self.fast_model = slow if fast is None else fast

    def check(self, atoms) -> List[str]:
        return []

    def describe(self) -> Dict[str, Any]:
        return {
            "forces": self.mode,
            "slow": repr(self.slow_model),
            "fast": None
            if self.fast_model is self.slow_model
            else repr(self.fast_model),
        }

    def _slow(self, state) -> ForceBatch:
        out = self.slow_model(state)
        return ForceBatch(energy=out["energy"], conservative=out["forces"])

    def _fast(self, state) -> ForceBatch:
        out = self.fast_model(state)
        forces = remove_mean_per_system(out["forces"], state)
        return ForceBatch(energy=out.get("energy"), direct=forces)

    def slow(self, state) -> ForceBatch:
        return self._fast(state) if self.mode == DIRECT else self._slow(state)

    def fast(self, state) -> ForceBatch:
        return self._slow(state) if self.mode == CONSERVATIVE else self._fast(state)

    def both(self, state) -> ForceBatch:
        if not self.splits:
            return self.fast(state)
        slow = self._slow(state)
        slow.direct = self._fast(state).direct
        return slow


class MetatomicSplit(_Split):
    """A metatomic model's conservative forces (slow) and direct head (fast).

    :param model: the (slow) model, anything
        :func:`~metatrain_nc.force_models.load_force_model` takes; a
        ``pet_m``/``pet_nc`` model gives both heads from one forward pass.
    :param fast: ``mode="mts"`` only: a separate model for the fast forces (its
        direct head if it has one, else its conservative forces); default:
        ``model``'s direct head.
    :param mode: ``"mts"`` (default), ``"conservative"`` or ``"direct"``: the
        force mode, as :func:`~metatrain_nc.force_models.force_split.force_split`.
    :param neighbor_skin: Verlet skin (A) of the per-system neighbour lists.
    :param max_atoms_per_call: the systems of the batch are evaluated in groups of
        at most this many atoms (at least one system per call); ``None``: the whole
        batch in one call. Default (``"auto"``): 256 on CPU, where a model call
        costs the same per atom whatever its size and large calls only add glibc
        page faults (PET on the 192-atom water box, one thread: 1 system 0.93 s,
        2 systems 1.81 s, 4 systems 4.5 s of which 0.7 s kernel time for ~4e5 page
        faults of its > 32 MB temporaries); one call on other devices (GPUs).

    Model calls run under ``torch.jit.optimized_execution(False)``, as
    :func:`~metatrain_nc.force_models.metatomic.forces_of_structures`: the same
    cost per call once warm, without TorchScript's profiling executor
    re-specialising (seconds per new batch shape) when a replica stops.
    """

    def __init__(
        self,
        model: Any,
        fast: Any = None,
        neighbor_skin: float = 0.5,
        *,
        mode: str = MTS,
        max_atoms_per_call: Union[int, None, str] = "auto",
    ):
        from ..force_models.loading import load_force_model

        check_force_mode(mode, fast)
        self.mode = mode
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
        if max_atoms_per_call == "auto":
            on_cpu = torch.device(self.provider.device).type == "cpu"
            max_atoms_per_call = CPU_ATOMS_PER_CALL if on_cpu else None
        if max_atoms_per_call is not None and int(max_atoms_per_call) < 1:
            raise UserInputError(
                f"max_atoms_per_call must be >= 1 or None, got {max_atoms_per_call}"
            )
        self.max_atoms_per_call = max_atoms_per_call
        self.skin = float(neighbor_skin)
        self._lists: Dict[tuple, List[list]] = {}
        self._options: Dict[tuple, Any] = {}
        self._validate()

    def _validate(self) -> None:
        from ..force_models.pair import ForcePair

        if self.mode == MTS:
            self._pair = ForcePair(self.provider, self.fast_provider)
        elif self.mode == DIRECT:
            self.provider.require_direct()
        else:
            self.provider.require(CONSERVATIVE)

    @property
    def model(self):
        """The model of record (energy, slow forces), as the ASE force split."""
        return self.provider

    @property
    def fast_model(self):
        """The separate model of the fast forces, or ``None``."""
        return self.fast_provider

    def check(self, atoms) -> List[str]:
        """Refuse a structure (ASE ``Atoms``) the models cannot run; return the
        pair's warnings (a cutoff mismatch), as the ASE force split."""
        self.provider.check(atoms)
        if self.mode == MTS:
            return self._pair.check(atoms)
        return []

    @property
    def shared(self) -> bool:
        """One model gives both heads (one call per outer evaluation)."""
        return self.fast_provider is None

    @property
    def has_direct(self) -> bool:
        return DIRECT in self.provider.heads

    @property
    def inner_head(self) -> str:
        """The head of the model that drives the inner steps."""
        if self.mode != MTS:
            return self.fast_head
        fast = self.fast_provider
        if fast is None:
            return DIRECT
        return DIRECT if DIRECT in fast.heads else CONSERVATIVE

    def describe(self) -> Dict[str, Any]:
        fast = self.fast_provider
        return {
            "forces": self.mode,
            "slow": self.provider.source,
            "model": self.provider.source,
            "fast": None if fast is None else fast.source,
            "inner_head": self.inner_head,
            "max_atoms_per_call": self.max_atoms_per_call,
        }

    def __repr__(self) -> str:
        fast = "" if self.fast_provider is None else f", {self.fast_provider.source!r}"
        return f"MetatomicSplit({self.provider.source!r}{fast}, mode={self.mode!r})"

    # -- the protocol ----------------------------------------------------------------
    def slow(self, state) -> ForceBatch:
        if self.mode == DIRECT:
            return self._call(self.provider, state, conservative=False, direct=True)
        return self._call(self.provider, state, conservative=True, direct=False)

    def fast(self, state) -> ForceBatch:
        if self.mode == CONSERVATIVE:
            return self._call(self.provider, state, conservative=True, direct=False)
        if self.fast_provider is None:
            return self._call(self.provider, state, conservative=False, direct=True)
        head = self.inner_head
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
        if self.mode == CONSERVATIVE:
            # the direct head costs nothing on a conservative pass of a hybrid model
            # (for the |F_c - F_nc| monitors), as the ASE ConservativeSplit
            return self._call(
                self.provider, state, conservative=True, direct=self.has_direct
            )
        if self.mode == DIRECT:
            return self.fast(state)
        if self.fast_provider is None:
            return self._call(self.provider, state, conservative=True, direct=True)
        result = self.slow(state)
        result.direct = self.fast(state).direct
        return result

    # -- evaluation ------------------------------------------------------------------
    def _neighbor_lists(self, provider, sizes: List[int]) -> List[list]:
        from vesin.metatomic import NeighborList

        key = (id(provider), tuple(sizes))
        if key not in self._lists:
            # a new batch composition (a replica stopped): new Verlet lists (the
            # dict is shared with the splits of other modes: changed in place)
            for old in [k for k in self._lists if k[0] == key[0]]:
                del self._lists[old]
            self._lists[key] = [
                [
                    NeighborList(options, length_unit="angstrom", skin=self.skin)
                    for options in provider.neighbor_options
                ]
                for _ in sizes
            ]
        return self._lists[key]

    def _model_options(self, provider, names: tuple):
        key = (id(provider), names)
        if key not in self._options:
            self._options[key] = provider.options(list(names))
        return self._options[key]

    def _groups(self, sizes: List[int]) -> List[range]:
        """Consecutive systems, at most :attr:`max_atoms_per_call` atoms a group."""
        budget = self.max_atoms_per_call
        if budget is None:
            return [range(len(sizes))]
        groups, first, atoms = [], 0, 0
        for k, size in enumerate(sizes):
            if k > first and atoms + size > budget:
                groups.append(range(first, k))
                first, atoms = k, 0
            atoms += size
        groups.append(range(first, len(sizes)))
        return groups

    def _call(self, provider, state, conservative: bool, direct: bool) -> ForceBatch:
        from metatomic.torch import System

        if direct:
            provider.require_direct()
        dtype, device = provider.torch_dtype, provider.device
        sizes = system_sizes(state)
        lists = self._neighbor_lists(provider, sizes)
        # no copies when the state is in the model's dtype and device (as it is
        # when built with the model's dtype: runner, benchmark)
        positions = state.positions.detach().to(device=device, dtype=dtype)
        cells = row_vector_cells(state).detach().to(device=device, dtype=dtype)
        pbc = pbc_vector(state).to(device)
        types = state.atomic_numbers.to(device=device, dtype=torch.int32)
        options = self._model_options(
            provider, (ENERGY, DIRECT_FORCE) if direct else (ENERGY,)
        )
        starts = [0]
        for size in sizes:
            starts.append(starts[-1] + size)
        energies, gradients, directs = [], [], []
        with torch.set_grad_enabled(conservative):
            for group in self._groups(sizes):
                low, high = starts[group[0]], starts[group[-1] + 1]
                part = positions[low:high].detach().requires_grad_(conservative)
                systems = []
                for k in group:
                    atoms = slice(starts[k] - low, starts[k + 1] - low)
                    system = System(
                        types[starts[k] : starts[k + 1]], part[atoms], cells[k], pbc
                    )
                    for calculator in lists[k]:
                        calculator.add_neighbor_list(system, copy=True)
                    systems.append(system)
                # as forces_of_structures: TorchScript's profiling executor
                # re-profiles every new shape (seconds each) for no steady gain
                with torch.jit.optimized_execution(False):
                    outputs = provider.model(systems, options, check_consistency=False)
                energy = outputs[ENERGY].block().values.reshape(-1)
                if conservative:
                    (grad,) = torch.autograd.grad(energy.sum(), [part])
                    gradients.append(grad)
                energies.append(energy.detach())
                if direct:
                    values = outputs[DIRECT_FORCE].block().values.detach()
                    directs.append(values.reshape(-1, 3))
        # one evaluation of the batch, however many calls it took
        provider.n_forward += 1
        if conservative:
            provider.n_backward += 1
        back = {"device": state.positions.device, "dtype": state.positions.dtype}
        result = ForceBatch(energy=_cat(energies).to(**back))
        if conservative:
            result.conservative = -_cat(gradients).to(**back)
        if direct:
            result.direct = remove_mean_per_system(_cat(directs).to(**back), state)
        return result


def _cat(tensors: List[torch.Tensor]) -> torch.Tensor:
    return tensors[0] if len(tensors) == 1 else torch.cat(tensors)
