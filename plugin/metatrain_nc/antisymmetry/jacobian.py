"""The force Jacobian J = d f / d r and the antisymmetry ratio lambda.

Conventions: ``J[(i, a), (j, b)] = d f_(i,a) / d r_(j,b)`` with rows and columns
flattened atom-major (``3 i + a``), shape ``(3N, 3N)``, units eV/A^2.
``lambda = ||(J - J^T)/2||_F / ||J||_F``, dimensionless.

Exact path: rows of J are vector-Jacobian products ``e_k^T J`` over a single forward
graph, computed in chunks of ``chunk_size`` rows, either as one batched backward pass
per chunk (``torch.autograd.grad(..., is_grads_batched=True)``, peak extra memory about
``chunk_size`` copies of the backward activations) or as a loop of single backward
passes (minimal memory). Which one is faster depends on the model: with PET on CPU the
loop wins once TorchScript's optimizing executor is off (vmap has no fast batching rule
for several of its operations), with small models the batched pass wins. The default
``strategy="auto"`` times the first rows both ways and keeps the faster one.

Stochastic path (Hutchinson): for Rademacher probes ``v`` (``E[v v^T] = I``),
``E ||J^T v||^2 = E ||J v||^2 = ||J||_F^2`` and
``E ||(J v - J^T v)/2||^2 = ||J_anti||_F^2``.
``J^T v`` is one VJP; ``J v`` comes from the double-backward trick
(``J v = d/du [u^T J v]`` with ``u^T J = grad(f, r, u, create_graph=True)``).

Many structures: :func:`exact_jacobians` and :func:`stochastic_lambdas` pack
structures of one model into one forward graph, so that each backward pass gives one
row (one probe) of every structure's Jacobian (:mod:`.packing`); the results equal
those of one structure at a time to round-off.

Models without gradients (ASE calculators, :class:`~metatrain_nc.force_models.
FiniteDifferenceForces`): :func:`exact_jacobian` computes J by central finite
differences of the forces (two force evaluations per column, step ``fd_step``:
:func:`default_fd_step`), and :func:`finite_difference_noise` estimates its error
from columns recomputed with twice the step. The stochastic path needs ``J^T v``, which
such a model does not have: :func:`stochastic_lambda` refuses it.
"""

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..errors import UserInputError
from ..force_models.base import StructureForces
from .packing import PACK_ROWS, Pack, Work, run_packs
from .settings import MAX_EXACT_ROWS, check_target

#: columns recomputed with a doubled step to estimate the finite-difference error
FD_NOISE_COLUMNS = 24

#: why a model without gradients has no stochastic estimate
STOCHASTIC_NEEDS_GRADIENTS = (
    "the stochastic estimator needs J^T v (one backward pass through the model), "
    "which a model without gradients (an ASE calculator, differentiated by finite "
    "differences) does not have: drop --stochastic (stochastic=False); its Jacobian "
    "then comes from central finite differences, 6N force evaluations per structure "
    "of N atoms, up to --max-exact-rows"
)

#: rows of the batched pass timed against the loop by ``strategy="auto"``
BATCHED_TRIAL_ROWS = 4

#: fewest probes whose error bar is trusted to stop at a target error
MIN_PROBES_FOR_TARGET = 4


def lambda_from_jacobian(jacobian: np.ndarray) -> float:
    """lambda = ||(J - J^T)/2||_F / ||J||_F for a square matrix ``jacobian``."""
    anti = 0.5 * (jacobian - jacobian.T)
    norm = float(np.linalg.norm(jacobian))
    if norm == 0.0:
        return 0.0
    return float(np.linalg.norm(anti)) / norm


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


def differentiable(force_model: StructureForces) -> bool:
    """Whether ``force_model`` gives exact vector-Jacobian products (a torch model)."""
    return bool(getattr(force_model, "differentiable", True))


def dtype_name(force_model: StructureForces) -> str:
    """``"float32"`` or ``"float64"``: the precision of ``force_model``'s forces."""
    dtype = getattr(force_model, "dtype", None)
    if dtype is None:
        dtype = getattr(getattr(force_model, "model", None), "dtype", "float64")
    return str(dtype).replace("torch.", "")


def default_fd_step(force_model: StructureForces) -> float:
    """Central-difference step (A): 1e-3 for float64 forces, 1e-2 for float32.

    The error of a central difference is a truncation term ``h^2 / 6`` times the third
    derivative of the forces plus a round-off term ``~ eps |f| / h``; these steps keep
    both small for forces that vary on a scale of ~1 A.
    """
    return 1e-3 if dtype_name(force_model) == "float64" else 1e-2


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


def _keep_forces(pack: Pack, works: Sequence[Work]) -> None:
    """Keep each structure's forces at its reference positions (the pack's forward
    pass computed them), so that nobody evaluates them again."""
    for s, work in enumerate(works):
        if work.forces is None:
            part = pack.flat[pack.offsets[s] : pack.offsets[s + 1]]
            work.forces = part.detach().to(torch.float64).numpy().reshape(-1, 3)


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
    _keep_forces(pack, works)
    if pack.batched is None and strategy == "auto" and len(pack) > 1:
        pack.batched = False
    if pack.batched is None and (
        strategy != "auto" or max(w.n3 for w in works) <= chunk_size
    ):
        pack.batched = strategy != "loop"
    if pack.batched is None and "loop_seconds" not in pack.extra:
        start = time.perf_counter()
        block = pack.rows(starts, count, batched=False)
        pack.extra["loop_seconds"] = (time.perf_counter() - start) / count
    elif pack.batched is None:
        count = min(count, BATCHED_TRIAL_ROWS)
        start = time.perf_counter()
        try:
            block = pack.rows(starts, count, batched=True)
        except RuntimeError:
            pack.batched = False
            block = pack.rows(starts, count, batched=False)
        else:
            per_row = (time.perf_counter() - start) / count
            pack.batched = per_row < pack.extra["loop_seconds"]
    elif pack.batched:
        try:
            block = pack.rows(starts, count, batched=True)
        except RuntimeError:
            # some custom operations have no batching rule: fall back to a loop
            pack.batched = False
            block = pack.rows(starts, count, batched=False)
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


def finite_difference_jacobian(
    force_model: StructureForces,
    delta: float = 1e-3,
    batch_size: int = 8,
    columns: Optional[Sequence[int]] = None,
    progress: Optional[Callable[[int], None]] = None,
) -> np.ndarray:
    """Central finite-difference Jacobian (3N, 3N), eV/A^2, ``delta`` in A.

    Column ``(j, b)`` is ``(f(r + delta e_jb) - f(r - delta e_jb)) / (2 delta)``;
    the displaced structures go to the model ``batch_size`` columns at a time. Works
    for every model (``forces_numpy`` only).

    :param columns: compute only these columns (flat indices ``3 j + b``): the result
        is then (3N, len(columns)).
    :param progress: called with the number of columns done after each batch.
    """
    if not delta > 0:
        raise UserInputError(f"the finite-difference step must be > 0, got {delta}")
    reference = np.array(force_model.atoms.positions, dtype=np.float64).reshape(-1)
    n3 = reference.size
    columns = list(range(n3)) if columns is None else [int(c) for c in columns]
    jacobian = np.empty((n3, len(columns)))
    batch_size = max(1, int(batch_size))
    for start in range(0, len(columns), batch_size):
        chunk = columns[start : start + batch_size]
        displaced = []
        for col in chunk:
            for sign in (1.0, -1.0):
                p = reference.copy()
                p[col] += sign * delta
                displaced.append(p.reshape(-1, 3))
        forces = force_model.forces_numpy(displaced, batch_size=2 * len(chunk))
        for k in range(len(chunk)):
            plus, minus = forces[2 * k], forces[2 * k + 1]
            jacobian[:, start + k] = (plus - minus).reshape(-1) / (2.0 * delta)
        if progress is not None:
            progress(len(chunk))
    return jacobian


def finite_difference_noise(
    force_model: StructureForces,
    jacobian: np.ndarray,
    delta: float,
    n_columns: int = FD_NOISE_COLUMNS,
    seed: int = 0,
    batch_size: int = 8,
) -> float:
    """Estimated error of a central-difference Jacobian, relative to ``||J||_F``.

    ``n_columns`` random columns (all of them when 3N is not larger) are recomputed
    with step ``2 delta``; ``||J_h - J_2h||_F`` over those columns, scaled to all 3N,
    divided by ``||J_h||_F``. The truncation error of ``J_h`` is ``(J_2h - J_h) / 3``,
    so this over-estimates it 3 times; round-off shows with the same order. It bounds
    the error of lambda from ``J_h`` (the antisymmetric part of an error is at most
    the error): a lambda below it is finite-difference noise.

    :param jacobian: ``J_h``, shape (3N, 3N).
    :param delta: the step ``h`` (A) of ``jacobian``.
    """
    n3 = jacobian.shape[1]
    norm = float(np.linalg.norm(jacobian))
    if norm == 0.0:
        return 0.0
    if n3 <= n_columns:
        columns = np.arange(n3)
    else:
        rng = np.random.default_rng(seed)
        columns = np.sort(rng.choice(n3, size=n_columns, replace=False))
    doubled = finite_difference_jacobian(
        force_model, 2.0 * delta, batch_size=batch_size, columns=columns
    )
    difference = float(np.linalg.norm(jacobian[:, columns] - doubled))
    return difference * math.sqrt(n3 / len(columns)) / norm


@dataclass
class StochasticLambda:
    """Result of the random-probe estimator.

    ``anti_sq[k]`` = ||(J v_k - J^T v_k)/2||^2, ``full_sq[k]`` = (||J v_k||^2 +
    ||J^T v_k||^2)/2 for each probe ``k`` (eV^2/A^4); both are unbiased for the squared
    Frobenius norms.
    """

    value: float
    error: float
    probes: int
    anti_sq: List[float] = field(default_factory=list)
    full_sq: List[float] = field(default_factory=list)
    anti_norm_sq: float = 0.0
    jacobian_norm_sq: float = 0.0
    target_error: Optional[float] = None
    converged: Optional[bool] = None  # target reached (None without a target)

    @property
    def relative_error(self) -> float:
        """``error / value`` (see :func:`relative_error`)."""
        return relative_error(self.value, self.error)


def relative_error(value: float, error: float) -> float:
    """``error / value``: 0 for an exact zero, ``inf`` for a noisy zero."""
    if value > 0:
        return error / value
    return 0.0 if error == 0 else math.inf


def ratio_estimate(anti_sq: np.ndarray, full_sq: np.ndarray):
    """lambda = sqrt(mean(a)/mean(b)) and its standard error (delta method)."""
    a = np.asarray(anti_sq, dtype=float)
    b = np.asarray(full_sq, dtype=float)
    k = len(a)
    ma, mb = a.mean(), b.mean()
    if mb <= 0.0:
        return 0.0, 0.0
    ratio = ma / mb
    lam = math.sqrt(max(ratio, 0.0))
    if k < 2:
        return lam, float("inf")
    cov = np.cov(np.stack([a, b]), ddof=1)
    var_ratio = (
        cov[0, 0] / mb**2 + ma**2 * cov[1, 1] / mb**4 - 2 * ma * cov[0, 1] / mb**3
    ) / k
    var_ratio = max(var_ratio, 0.0)
    if lam > 0:
        error = math.sqrt(var_ratio) / (2.0 * lam)
    else:
        error = math.sqrt(math.sqrt(var_ratio))
    return lam, float(error)


def stochastic_lambda(
    force_model: StructureForces,
    probes: int = 32,
    chunk_size: int = 8,
    seed: int = 0,
    progress: Optional[Callable[[int], None]] = None,
    batched: bool = False,
    jvp: str = "double-backward",
    fd_step: Optional[float] = None,
    target_error: Optional[float] = None,
    max_probes: int = 1024,
) -> StochasticLambda:
    """Random-probe estimate of lambda with a standard error (see module docstring).

    Several structures at once (packed like the exact path): :func:`stochastic_lambdas`.

    :param probes: number of Rademacher probes (the error falls like 1/sqrt(probes));
        the minimum when ``target_error`` is given.
    :param target_error: keep adding chunks of probes until the relative standard
        error ``error / lambda`` is at most this (e.g. ``0.1``), or ``max_probes``;
        checked from :data:`MIN_PROBES_FOR_TARGET` probes on.
    :param max_probes: upper bound on the probes spent for ``target_error``.
    :param chunk_size: probes per batched backward pass.
    :param seed: seed of the probe generator.
    :param batched: one batched backward pass per chunk of probes instead of a loop
        (slower for PET on CPU, see the exact path).
    :param jvp: how ``J v`` is computed: ``"double-backward"`` (exact; keeps a
        second-order graph, the memory hog for large systems) or
        ``"finite-difference"`` (``(f(r + h v) - f(r - h v)) / 2h``: two force
        evaluations per probe without graph, error O(h^2), for very large systems).
    :param fd_step: ``h`` in A for the finite-difference JVP (default 1e-3 in float64,
        1e-2 in float32).
    """
    return stochastic_lambdas(
        [force_model],
        probes=probes,
        chunk_size=chunk_size,
        seeds=[seed],
        progress=progress,
        batched=batched,
        jvp=jvp,
        fd_step=fd_step,
        target_error=target_error,
        max_probes=max_probes,
        packing="single",
    )[0]


def stochastic_lambdas(
    force_models: Sequence[StructureForces], **options: Any
) -> List[StochasticLambda]:
    """Stochastic estimates for several structures, in their order (see
    :func:`iter_stochastic_lambdas` for ``options``)."""
    result: List[Optional[StochasticLambda]] = [None] * len(force_models)
    for index, estimate in iter_stochastic_lambdas(force_models, **options):
        result[index] = estimate
    return result  # type: ignore[return-value]


def iter_stochastic_lambdas(
    force_models: Sequence[StructureForces],
    probes: int = 32,
    chunk_size: int = 8,
    seeds: Optional[Sequence[int]] = None,
    progress: Optional[Callable[[int], None]] = None,
    batched: bool = False,
    jvp: str = "double-backward",
    fd_step: Optional[float] = None,
    target_error: Optional[float] = None,
    max_probes: int = 1024,
    packing: str = "auto",
    pack_rows: int = PACK_ROWS,
    info: Optional[dict] = None,
    forces: Optional[Dict[int, np.ndarray]] = None,
) -> Iterator[Tuple[int, StochasticLambda]]:
    """``(index, estimate)`` for every structure, pack by pack.

    Structures are packed as in :func:`iter_exact_jacobians`: one backward pass
    gives ``J^T v`` (and one more ``J v``) for one probe of every structure of the
    pack. Each structure draws its probes from its own generator
    (``seeds[k]``, default ``0, 1, 2...``) in the same order packed or not, so the
    results agree to round-off. The finite-difference JVP is not packed. ``info``
    and ``forces``: see :func:`iter_exact_jacobians`; other parameters: see
    :func:`stochastic_lambda`.
    """
    if jvp not in ("double-backward", "finite-difference"):
        raise ValueError(f"unknown jvp method '{jvp}'")
    for force_model in force_models:
        if not differentiable(force_model):
            raise UserInputError(STOCHASTIC_NEEDS_GRADIENTS)
    check_target(target_error, probes, max_probes)
    if not force_models:
        return
    seeds = list(range(len(force_models))) if seeds is None else list(seeds)
    finite_difference = jvp == "finite-difference"
    conservative = force_models[0].output == "conservative"
    works = [
        _ProbeWork(
            3 * f.n_atoms, f.dtype, s, probes, chunk_size, target_error, max_probes
        )
        for f, s in zip(force_models, seeds, strict=True)
    ]

    def step(pack: Pack, pack_works: List[Work]) -> int:
        return _probe_step(
            pack,
            pack_works,  # type: ignore[arg-type]
            batched=batched,
            finite_difference=finite_difference,
            fd_step=fd_step,
        )

    for k in run_packs(
        force_models,
        works,
        step,
        packing="single" if finite_difference else packing,
        pack_rows=pack_rows,
        create_graph=not finite_difference or conservative,
        progress=progress,
        info=info,
    ):
        if forces is not None:
            forces[k] = works[k].forces
        yield k, works[k].result()


class _ProbeWork(Work):
    """Probes of one structure: its generator and the squared norms so far."""

    def __init__(
        self,
        n3: int,
        dtype: torch.dtype,
        seed: int,
        probes: int,
        chunk_size: int,
        target_error: Optional[float],
        max_probes: int,
    ):
        self.args = (n3, dtype, seed, probes, chunk_size, target_error, max_probes)
        self.n3 = n3
        self.dtype = dtype
        self.probes = probes
        self.chunk_size = chunk_size
        self.target_error = target_error
        self.max_probes = max_probes
        self.generator = torch.Generator().manual_seed(seed)
        self.anti_sq: List[float] = []
        self.full_sq: List[float] = []
        self.count = 0

    def fresh(self) -> "_ProbeWork":
        return _ProbeWork(*self.args)

    def chunks(self) -> int:
        return -(-self.probes // self.chunk_size)

    def done(self) -> bool:
        if self.count < self.probes:
            return False
        if self.target_error is None or self.count >= self.max_probes:
            return True
        if self.count < MIN_PROBES_FOR_TARGET:
            return False  # an error bar from 2-3 probes is itself too noisy
        value, error = ratio_estimate(np.array(self.anti_sq), np.array(self.full_sq))
        return relative_error(value, error) <= self.target_error

    def next_chunk(self) -> int:
        """Probes of the next chunk: up to the minimum, then a chunk at a time until
        the target error (0 when done)."""
        if self.done():
            return 0
        if self.count < self.probes:
            return min(self.chunk_size, self.probes - self.count)
        return min(self.chunk_size, self.max_probes - self.count)

    def result(self) -> StochasticLambda:
        value, error = ratio_estimate(np.array(self.anti_sq), np.array(self.full_sq))
        result = StochasticLambda(
            value=value,
            error=error,
            probes=self.count,
            anti_sq=self.anti_sq,
            full_sq=self.full_sq,
            anti_norm_sq=float(np.mean(self.anti_sq)),
            jacobian_norm_sq=float(np.mean(self.full_sq)),
            target_error=self.target_error,
        )
        if self.target_error is not None:
            result.converged = (
                self.count >= MIN_PROBES_FOR_TARGET
                and result.relative_error <= self.target_error
            )
        return result


def _probe_step(
    pack: Pack,
    works: List[_ProbeWork],
    batched: bool,
    finite_difference: bool,
    fd_step: Optional[float],
) -> int:
    """One chunk of probes of every unfinished structure of ``pack``."""
    _keep_forces(pack, works)
    symmetric = pack.models[0].output == "conservative"  # J = J^T: skip the JVP
    if "jt_u" not in pack.extra:
        # u is a dummy cotangent: g(u) = J^T u is linear in u, d(g . v)/du = J v
        u = torch.zeros(pack.total, dtype=pack.dtype, requires_grad=True)
        jt_u = u
        if not symmetric and not finite_difference:
            grads = torch.autograd.grad(pack.flat, pack.positions, u, create_graph=True)
            jt_u = torch.cat([g.reshape(-1) for g in grads])
        pack.extra["u"], pack.extra["jt_u"] = u, jt_u
        pack.batched = batched
    u, jt_u = pack.extra["u"], pack.extra["jt_u"]
    sizes = [work.next_chunk() for work in works]
    k_max = max(sizes)
    seeds = torch.zeros(k_max, pack.total, dtype=pack.dtype)
    probes = []
    for s, (work, k) in enumerate(zip(works, sizes, strict=True)):
        if k == 0:
            probes.append(None)
            continue
        signs = torch.randint(0, 2, (k, work.n3), generator=work.generator)
        v = (2.0 * signs - 1.0).to(work.dtype)
        seeds[:k, pack.offsets[s] : pack.offsets[s + 1]] = v
        probes.append(v)
    jtv = jv = None
    if pack.batched:
        try:
            jtv = pack.vjp(pack.flat, pack.positions, seeds, batched=True)
            if not (symmetric or finite_difference):
                jv = pack.vjp(jt_u, [u], seeds, batched=True)
        except RuntimeError:
            pack.batched = False
    if not pack.batched:
        jtv = pack.vjp(pack.flat, pack.positions, seeds, batched=False)
        if not (symmetric or finite_difference):
            jv = pack.vjp(jt_u, [u], seeds, batched=False)
    if jv is None:
        jv = jtv  # J = J^T, or replaced below by finite differences
    jtv_parts, jv_parts = pack.split(jtv), pack.split(jv)
    for s, (work, k, v) in enumerate(zip(works, sizes, probes, strict=True)):
        if k == 0:
            continue
        a = jtv_parts[s][:k].detach().double()
        b = jv_parts[s][:k].detach().double()
        if finite_difference and not symmetric:
            b = _finite_difference_jvp(pack.models[s], v, fd_step)
        work.anti_sq.extend((0.25 * ((b - a) ** 2).sum(dim=1)).tolist())
        work.full_sq.extend((0.5 * ((b**2).sum(dim=1) + (a**2).sum(dim=1))).tolist())
        work.count += k
    return sum(sizes)


def _finite_difference_jvp(
    force_model: StructureForces, v: torch.Tensor, fd_step: Optional[float]
) -> torch.Tensor:
    """``J v`` for probes ``v`` (k, 3N) by central differences, float64."""
    if fd_step is None:
        fd_step = 1e-3 if force_model.dtype == torch.float64 else 1e-2
    reference = force_model.positions.detach().numpy()
    displaced = []
    for row in v.numpy():
        step = fd_step * row.reshape(-1, 3)
        displaced += [reference + step, reference - step]
    f = force_model.forces_numpy(displaced, batch_size=2)
    return torch.stack(
        [torch.from_numpy((f[2 * i] - f[2 * i + 1]).reshape(-1)) for i in range(len(v))]
    ) / (2.0 * fd_step)
