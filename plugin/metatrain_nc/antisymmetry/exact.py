"""The exact force Jacobian: rows ``e_k^T J`` as vector-Jacobian products.

Rows of J come from a single forward graph, in chunks of ``chunk_size`` rows,
either as one batched backward pass per chunk
(``torch.autograd.grad(..., is_grads_batched=True)``, peak extra memory about
``chunk_size`` copies of the backward activations) or as a loop of single backward
passes (minimal memory). Which one is faster depends on the model: with PET on CPU
the loop wins once TorchScript's optimizing executor is off (vmap has no fast
batching rule for several of its operations), with small models the batched pass
wins. The default ``strategy="auto"`` times the first rows both ways and keeps the
faster one.

:func:`exact_jacobians` packs structures of one model into one forward graph, so that
each backward pass gives one row of every structure's Jacobian (:mod:`.packing`).
Models without gradients go to :func:`.finite_difference.finite_difference_jacobian`.
"""

from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..errors import UserInputError
from ..force_models.base import StructureForces
from ..force_models.timing import WallClock
from .common import differentiable, keep_forces
from .finite_difference import default_fd_step, finite_difference_jacobian
from .packing import PACK_ROWS, Pack, Work, run_packs
from .settings import MAX_EXACT_ROWS

#: rows of the batched pass timed against the loop by ``strategy="auto"``
BATCHED_TRIAL_ROWS = 4


def _vjp_rows(
    forces: torch.Tensor, positions: torch.Tensor, rows: torch.Tensor, batched: bool
) -> torch.Tensor:
    """Rows ``rows`` (shape (k,)) of J as a (k, 3N) tensor."""
    n3 = forces.numel()
    flat = forces.reshape(-1)
    if batched:
        seeds = torch.zeros(len(rows), n3, dtype=forces.dtype)
        seeds[torch.arange(len(rows)), rows] = 1.0
        (grads,) = torch.autograd.grad(
            flat, positions, seeds, retain_graph=True, is_grads_batched=True
        )
        return grads.reshape(len(rows), n3)
    out = []
    for row in rows.tolist():
        seed = torch.zeros(n3, dtype=forces.dtype)
        seed[row] = 1.0
        (grad,) = torch.autograd.grad(flat, positions, seed, retain_graph=True)
        out.append(grad.reshape(n3))
    return torch.stack(out)


def exact_jacobian(
    force_model: StructureForces,
    chunk_size: int = 16,
    max_rows: int = MAX_EXACT_ROWS,
    progress: Optional[Callable[[int], None]] = None,
    strategy: str = "auto",
    fd_step: Optional[float] = None,
) -> np.ndarray:
    """The full force Jacobian (3N, 3N) in eV/A^2.

    Differentiable models: chunked vector-Jacobian products (exact). Models without
    gradients (:attr:`~metatrain_nc.force_models.StructureForces.differentiable`
    false, ASE calculators): :func:`finite_difference_jacobian` with step ``fd_step``.
    Several structures at once: :func:`exact_jacobians`.

    :param force_model: forces of one structure as a function of positions.
    :param chunk_size: rows per batched backward pass (bounds memory); columns per
        batch of displaced structures for finite differences.
    :param max_rows: refuse (``UserInputError``) when 3N is larger.
    :param progress: called with the number of rows (columns) done after each chunk.
    :param strategy: ``"batched"`` (``is_grads_batched``), ``"loop"`` (one backward
        per row) or ``"auto"`` (time the first chunk both ways, keep the faster).
    :param fd_step: finite-difference step (A); default :func:`default_fd_step`.
    """
    return exact_jacobians(
        [force_model],
        chunk_size=chunk_size,
        max_rows=max_rows,
        progress=progress,
        strategy=strategy,
        fd_step=fd_step,
        packing="single",
    )[0]


def exact_jacobians(
    force_models: Sequence[StructureForces], **options: Any
) -> List[np.ndarray]:
    """The Jacobians of several structures, in their order (see
    :func:`iter_exact_jacobians` for ``options``)."""
    result: List[Optional[np.ndarray]] = [None] * len(force_models)
    for index, jacobian in iter_exact_jacobians(force_models, **options):
        result[index] = jacobian
    return result  # type: ignore[return-value]


def _check_exact_rows(force_model: StructureForces, max_rows: int) -> None:
    n3 = 3 * force_model.n_atoms
    if n3 <= max_rows:
        return
    if not differentiable(force_model):
        raise UserInputError(
            f"structure with {force_model.n_atoms} atoms needs {2 * n3} force "
            f"evaluations (central differences) and a {n3}x{n3} Jacobian, more "
            f"than the exact limit ({max_rows} rows); raise --max-exact-rows (the "
            "stochastic estimator needs a model with gradients)"
        )
    raise UserInputError(
        f"structure with {force_model.n_atoms} atoms needs {n3} backward passes "
        f"and a {n3}x{n3} Jacobian, more than the exact limit ({max_rows} rows); "
        "use the stochastic estimator (--stochastic) or raise --max-exact-rows"
    )


def iter_exact_jacobians(
    force_models: Sequence[StructureForces],
    chunk_size: int = 16,
    max_rows: int = MAX_EXACT_ROWS,
    progress: Optional[Callable[[int], None]] = None,
    strategy: str = "auto",
    fd_step: Optional[float] = None,
    packing: str = "auto",
    pack_rows: int = PACK_ROWS,
    info: Optional[dict] = None,
    forces: Optional[Dict[int, np.ndarray]] = None,
) -> Iterator[Tuple[int, np.ndarray]]:
    """``(index, J)`` for every structure (J: (3N, 3N), eV/A^2), pack by pack.

    Structures of a model with gradients are packed (:mod:`.packing`): up to
    ``pack_rows`` rows share one forward graph and each backward pass gives one row
    of every structure's Jacobian; ``packing`` is ``"auto"`` (packed if timing the
    first chunk says it is not slower), ``"packed"`` or ``"single"``. Results are the
    same to round-off. Models without gradients: :func:`finite_difference_jacobian`,
    one structure at a time. Other parameters: see :func:`exact_jacobian`.

    :param info: filled with the packing used and the number of forward graphs.
    :param forces: filled with the forces (eV/A, (N, 3)) at the reference positions
        of each structure with gradients (index -> array), from the forward passes
        already made.
    """
    if strategy not in ("auto", "batched", "loop"):
        raise ValueError(f"unknown strategy '{strategy}'")
    for force_model in force_models:
        _check_exact_rows(force_model, max_rows)
    exact = [i for i, f in enumerate(force_models) if differentiable(f)]
    for index, force_model in enumerate(force_models):
        if differentiable(force_model):
            continue
        yield (
            index,
            finite_difference_jacobian(
                force_model,
                delta=default_fd_step(force_model) if fd_step is None else fd_step,
                batch_size=chunk_size,
                progress=progress,
            ),
        )
    if not exact:
        return
    models = [force_models[i] for i in exact]
    works = [_ExactWork(3 * f.n_atoms, f.dtype, chunk_size) for f in models]

    def step(pack: Pack, pack_works: List[Work]) -> int:
        return _exact_step(pack, pack_works, chunk_size, strategy)  # type: ignore

    conservative = models[0].output == "conservative"
    for k in run_packs(
        models,
        works,
        step,
        packing=packing,
        pack_rows=pack_rows,
        create_graph=conservative,
        progress=progress,
        info=info,
    ):
        if forces is not None:
            forces[exact[k]] = works[k].forces
        yield exact[k], works[k].jacobian.numpy().astype(np.float64)
        works[k].jacobian = None  # free it once handed over


class _ExactWork(Work):
    """Rows of one structure's Jacobian, filled a chunk at a time."""

    def __init__(self, n3: int, dtype: torch.dtype, chunk_size: int):
        self.n3 = n3
        self.dtype = dtype
        self.chunk_size = chunk_size
        self.jacobian = torch.empty(n3, n3, dtype=dtype)
        self.next = 0

    def done(self) -> bool:
        return self.next >= self.n3

    def fresh(self) -> "_ExactWork":
        return _ExactWork(self.n3, self.dtype, self.chunk_size)

    def chunks(self) -> int:
        return -(-self.n3 // self.chunk_size)


def _batched_rows(pack: Pack, starts, count: int):
    """``pack``'s rows by batched passes, or by a loop where a custom operation has
    no batching rule (``pack.batched`` is then ``False``)."""
    try:
        return pack.rows(starts, count, batched=True)
    except RuntimeError:
        pack.batched = False
        return pack.rows(starts, count, batched=False)


def _exact_step(
    pack: Pack, works: List[_ExactWork], chunk_size: int, strategy: str
) -> int:
    """The next ``chunk_size`` rows of every structure of ``pack``.

    ``strategy="auto"`` for one structure with more than one chunk: the first
    chunk runs as a loop of backward passes and the next
    :data:`BATCHED_TRIAL_ROWS` rows as one batched pass, both timed; the faster way
    per row is kept for the rest (no row is computed twice, and a slow batched pass
    costs a few rows only). A pack of several structures uses the loop: packing
    already removes the per-call overhead that a batched pass amortizes (for PET,
    batched passes over a pack of 100 ethanol molecules were 2x slower per row).
    """
    starts = [w.next for w in works]
    count = min(chunk_size, max(w.n3 - w.next for w in works))
    keep_forces(pack, works)
    if pack.batched is None and strategy == "auto" and len(pack) > 1:
        pack.batched = False
    if pack.batched is None and (
        strategy != "auto" or max(w.n3 for w in works) <= chunk_size
    ):
        pack.batched = strategy != "loop"
    if pack.batched is None and "loop_seconds" not in pack.extra:
        with WallClock() as clock:
            block = pack.rows(starts, count, batched=False)
        pack.extra["loop_seconds"] = clock.seconds / count
    elif pack.batched is None:
        count = min(count, BATCHED_TRIAL_ROWS)
        clock = WallClock().start()
        block = _batched_rows(pack, starts, count)
        if pack.batched is None:  # batched passes work: keep them if faster
            per_row = clock.stop() / count
            pack.batched = per_row < pack.extra["loop_seconds"]
    elif pack.batched:
        block = _batched_rows(pack, starts, count)
    else:
        block = pack.rows(starts, count, batched=False)
    done = 0
    for work, rows in zip(works, block, strict=True):
        k = max(0, min(count, work.n3 - work.next))
        if k:
            work.jacobian[work.next : work.next + k] = rows[:k].detach()
            work.next += k
            done += k
    return done
