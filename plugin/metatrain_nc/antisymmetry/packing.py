"""Several structures in one model evaluation: one backward pass, one row of EACH
structure's Jacobian.

For small structures (a molecule of N atoms: 3N rows of a few dozen) much of the
cost of a Jacobian row is per-call overhead rather than arithmetic. A *pack* puts
structures of the same model side by side in one forward graph (metatomic models
take a list of systems); the structures do not interact, so the force of structure
``a`` depends on the positions of ``a`` only and ``d f / d r`` of the pack is block
diagonal. A backward pass seeded with ``e_r`` in every structure's block at once
gives row ``r`` of each structure's Jacobian: ``max_k 3 N_k`` backward passes for
the pack instead of ``sum_k 3 N_k``. Probes of the stochastic estimator stack the
same way (one probe of each structure per pass).

:func:`plan_packs` groups structures of similar size (sorted by atom count) up to a
row budget (``sum 3N``, which bounds the memory of the forward graph); a structure
above the budget is a pack of its own. :func:`run_packs` drives the work pack by
pack; with ``packing="auto"`` it times the first chunk of the first pack against its
first structure alone and keeps the faster way (:func:`_packing_pays`), as the VJP
strategy is chosen for the rows of one structure. The arithmetic of a row is not
reduced: a backward pass through a pack costs about what the structures' single
passes cost without their overhead.

Only models with gradients that evaluate several systems in one call
(:class:`~metatrain_nc.force_models.metatomic.TorchForces` of one model and output)
are packed; any other model (ASE calculators, finite differences) is evaluated one
structure at a time.
"""

from typing import Callable, Iterator, List, Optional, Sequence

import numpy as np
import torch

from ..force_models.base import StructureForces
from ..force_models.timing import WallClock
from .settings import PACK_ROWS, PACKING_CHOICES


def packable(force_models: Sequence[StructureForces]) -> bool:
    """Whether ``force_models`` can share one model call (metatomic forces of one
    model and one output)."""
    from ..force_models.metatomic import TorchForces

    if not force_models or not all(isinstance(f, TorchForces) for f in force_models):
        return False
    first = force_models[0]
    return all(
        f.model is first.model and f.output == first.output for f in force_models
    )


def plan_packs(n_atoms: Sequence[int], pack_rows: int = PACK_ROWS) -> List[List[int]]:
    """Indices of structures grouped into packs of at most ``pack_rows`` rows.

    Structures are sorted by size (stable), so that a pack holds structures of
    similar size and few backward passes are spent on structures whose rows are all
    done; each pack keeps that order.
    """
    order = sorted(range(len(n_atoms)), key=lambda i: n_atoms[i])
    packs: List[List[int]] = []
    current: List[int] = []
    rows = 0
    for index in order:
        n3 = 3 * int(n_atoms[index])
        if current and rows + n3 > pack_rows:
            packs.append(current)
            current, rows = [], 0
        current.append(index)
        rows += n3
    if current:
        packs.append(current)
    return packs


class Pack:
    """The forces of several structures, each a function of its own positions, in
    one forward graph.

    :param force_models: structures (one :class:`StructureForces` each); more than
        one only if :func:`packable`.
    :param create_graph: keep a differentiable graph of the forces (conservative
        output, double-backward JVPs).
    :ivar sizes: 3N of each structure; :ivar offsets: start of each in :attr:`flat`.
    :ivar flat: all forces, flattened and concatenated (``sum 3N``).
    :ivar forward_seconds: wall time of the forward pass.
    """

    def __init__(self, force_models: Sequence[StructureForces], create_graph: bool):
        from ..force_models.metatomic import forces_of_structures

        self.models = list(force_models)
        self.create_graph = create_graph
        #: rows by batched backward passes (None: not decided yet)
        self.batched: Optional[bool] = None
        #: per-pack data of a computation (e.g. the stochastic path's J^T u)
        self.extra: dict = {}
        self.dtype = self.models[0].dtype
        self.positions = [f.positions.clone().requires_grad_(True) for f in self.models]
        with WallClock() as clock:
            if len(self.models) == 1:
                forces = [self.models[0].forces(self.positions[0], create_graph)]
            else:
                forces = forces_of_structures(self.models, self.positions, create_graph)
        self.forward_seconds = clock.seconds
        self.sizes = [3 * f.n_atoms for f in self.models]
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)]).tolist()
        self.flat = torch.cat([f.reshape(-1) for f in forces])
        self.total = int(self.offsets[-1])

    def __len__(self) -> int:
        return len(self.models)

    def split(self, values: torch.Tensor) -> List[torch.Tensor]:
        """Columns of ``values`` (k, total) split per structure: (k, 3N_s) each."""
        return [
            values[:, self.offsets[s] : self.offsets[s + 1]] for s in range(len(self))
        ]

    def row_seeds(self, starts: Sequence[int], count: int) -> torch.Tensor:
        """Seeds (count, total): seed ``j`` selects row ``starts[s] + j`` of every
        structure ``s`` that has it."""
        seeds = torch.zeros(count, self.total, dtype=self.flat.dtype)
        for s, (size, start) in enumerate(zip(self.sizes, starts, strict=True)):
            for j in range(count):
                if start + j < size:
                    seeds[j, self.offsets[s] + start + j] = 1.0
        return seeds

    def vjp(
        self,
        outputs: torch.Tensor,
        inputs: Sequence[torch.Tensor],
        seeds: torch.Tensor,
        batched: bool,
    ) -> torch.Tensor:
        """``seeds @ d outputs / d inputs``: (k, sum of the inputs' sizes), by one
        batched backward pass (``is_grads_batched``) or a loop of k passes.

        :raises RuntimeError: from the batched pass when an operation of the model
            has no batching rule (the caller falls back to the loop).
        """
        inputs = list(inputs)
        if batched:
            grads = torch.autograd.grad(
                outputs,
                inputs,
                seeds,
                retain_graph=True,
                is_grads_batched=True,
                allow_unused=True,
            )
            return _concatenate(grads, inputs, len(seeds))
        rows = []
        for seed in seeds:
            grads = torch.autograd.grad(
                outputs, inputs, seed, retain_graph=True, allow_unused=True
            )
            rows.append(_concatenate(grads, inputs, None))
        return torch.stack(rows)

    def rows(
        self, starts: Sequence[int], count: int, batched: bool
    ) -> List[torch.Tensor]:
        """Rows ``starts[s] .. starts[s] + count`` of every structure's Jacobian:
        (count, 3N_s) each (rows past a structure's 3N are zero)."""
        seeds = self.row_seeds(starts, count)
        grads = self.vjp(self.flat, self.positions, seeds, batched)
        return self.split(grads)


def _concatenate(grads, inputs, batch: Optional[int]) -> torch.Tensor:
    """Flatten and concatenate gradients (zeros for unused inputs)."""
    parts = []
    for grad, tensor in zip(grads, inputs, strict=True):
        if grad is None:
            shape = (tensor.numel(),) if batch is None else (batch, tensor.numel())
            grad = torch.zeros(shape, dtype=tensor.dtype)
        parts.append(grad.reshape(-1) if batch is None else grad.reshape(batch, -1))
    return torch.cat(parts, dim=-1)


class Work:
    """What is computed for one structure, a chunk at a time (subclassed by the exact
    and stochastic paths).

    :ivar forces: the structure's forces at its reference positions (eV/A, (N, 3)),
        kept from the first forward pass that reached it.
    """

    forces: Optional[np.ndarray] = None

    def done(self) -> bool:
        raise NotImplementedError

    def fresh(self) -> "Work":
        """A new, unstarted copy (to time a chunk without touching this one)."""
        raise NotImplementedError

    def chunks(self) -> int:
        """Estimated number of chunks of a whole computation."""
        raise NotImplementedError


def run_packs(
    force_models: Sequence[StructureForces],
    works: Sequence[Work],
    step: Callable[[Pack, List[Work]], int],
    *,
    packing: str = "auto",
    pack_rows: int = PACK_ROWS,
    create_graph: bool = False,
    progress: Optional[Callable[[int], None]] = None,
    info: Optional[dict] = None,
) -> Iterator[int]:
    """Run ``step`` (one chunk for every unfinished structure of a pack, returning
    the rows or probes done) until every work is done; yield the index of each
    structure when its pack is finished, pack by pack.

    :param packing: ``"packed"`` (structures of :func:`plan_packs` share one forward
        graph), ``"single"`` (one structure at a time) or ``"auto"``: the first pack
        of several structures times its first chunk packed and its first structure
        alone (:func:`_packing_pays`) and the faster way is kept for all packs.
    :param info: filled with ``packing`` (the way used) and ``packs`` (forward graphs
        built).
    """
    if packing not in PACKING_CHOICES:
        raise ValueError(f"unknown packing '{packing}'")
    info = {} if info is None else info
    info.setdefault("packs", 0)
    can_pack = packing != "single" and packable(force_models)
    if can_pack:
        plan = plan_packs([f.n_atoms for f in force_models], pack_rows)
    else:
        plan = [[i] for i in range(len(force_models))]
    decision = packing if can_pack else "single"

    def finish(group: List[int], pack: Optional[Pack] = None) -> None:
        if pack is None:
            pack = Pack([force_models[i] for i in group], create_graph)
            info["packs"] += 1
        group_works = [works[i] for i in group]
        while not all(w.done() for w in group_works):
            done = step(pack, group_works)
            if progress is not None:
                progress(done)

    for group in plan:
        if len(group) > 1 and decision == "auto":
            pack = Pack([force_models[i] for i in group], create_graph)
            info["packs"] += 1
            if _packing_pays(pack, [works[i] for i in group], step, progress):
                decision = "packed"
                finish(group, pack)
            else:
                decision = "single"
                for index in group:
                    finish([index])
        elif len(group) > 1 and decision == "single":
            for index in group:
                finish([index])
        else:
            finish(group)
        yield from group
    # "auto" left undecided: no pack had several structures
    info["packing"] = "single" if decision == "auto" else decision


def _packing_pays(
    pack: Pack,
    works: List[Work],
    step: Callable[[Pack, List[Work]], int],
    progress: Optional[Callable[[int], None]],
) -> bool:
    """Time the first chunk of ``pack`` (kept: real work) and of its first structure
    alone (a fresh copy: thrown away); whether packing is not slower per structure.

    The cost per structure of the whole computation is estimated as
    ``(forward + chunks x first chunk) / structures`` for the pack and
    ``forward + chunks x first chunk`` for the structure alone.
    """
    chunks = max(w.fresh().chunks() for w in works)
    with WallClock() as clock:
        done = step(pack, works)
    packed = pack.forward_seconds + chunks * clock.seconds
    if progress is not None:
        progress(done)
    alone = Pack(pack.models[:1], pack.create_graph)
    with WallClock() as clock:
        step(alone, [works[0].fresh()])
    single = alone.forward_seconds + chunks * clock.seconds
    return packed / len(pack) <= single


def packed_forces(
    force_models: Sequence[StructureForces],
    packing: str = "auto",
    pack_rows: int = PACK_ROWS,
) -> List[np.ndarray]:
    """Forces (eV/A, (N, 3) each) of every structure at its reference positions,
    packs of :func:`plan_packs` in one model call each (one call per structure for
    ``packing="single"`` or models that cannot be packed)."""
    if packing == "single" or not packable(force_models):
        return [f.forces_numpy([f.atoms.positions])[0] for f in force_models]
    result: List[Optional[np.ndarray]] = [None] * len(force_models)
    for group in plan_packs([f.n_atoms for f in force_models], pack_rows):
        pack = Pack([force_models[i] for i in group], create_graph=False)
        flat = pack.flat.detach().to(torch.float64)
        for s, index in enumerate(group):
            part = flat[pack.offsets[s] : pack.offsets[s + 1]]
            result[index] = part.numpy().reshape(-1, 3)
    return result  # type: ignore[return-value]
