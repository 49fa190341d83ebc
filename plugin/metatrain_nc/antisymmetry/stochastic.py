"""Stochastic (Hutchinson) estimate of lambda with a standard error.

For Rademacher probes ``v`` (``E[v v^T] = I``), ``E ||J^T v||^2 = E ||J v||^2 =
||J||_F^2`` and ``E ||(J v - J^T v)/2||^2 = ||J_anti||_F^2``. ``J^T v`` is one VJP;
``J v`` comes from the double-backward trick (``J v = d/du [u^T J v]`` with
``u^T J = grad(f, r, u, create_graph=True)``) or from central finite differences.

:func:`stochastic_lambdas` packs structures of one model into one forward graph, so
that each backward pass gives one probe of every structure (:mod:`.packing`). A model
without gradients has no ``J^T v``: :func:`stochastic_lambda` refuses it.
"""

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..errors import UserInputError
from ..force_models.base import StructureForces
from .common import differentiable, keep_forces
from .finite_difference import finite_difference_jvp
from .packing import PACK_ROWS, Pack, Work, run_packs
from .settings import check_target

#: why a model without gradients has no stochastic estimate
STOCHASTIC_NEEDS_GRADIENTS = (
    "the stochastic estimator needs J^T v (one backward pass through the model), "
    "which a model without gradients (an ASE calculator, differentiated by finite "
    "differences) does not have: drop --stochastic (stochastic=False); its Jacobian "
    "then comes from central finite differences, 6N force evaluations per structure "
    "of N atoms, up to --max-exact-rows"
)

#: fewest probes whose error bar is trusted to stop at a target error
MIN_PROBES_FOR_TARGET = 4


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
    keep_forces(pack, works)
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
            b = finite_difference_jvp(pack.models[s], v, fd_step)
        work.anti_sq.extend((0.25 * ((b - a) ** 2).sum(dim=1)).tolist())
        work.full_sq.extend((0.5 * ((b**2).sum(dim=1) + (a**2).sum(dim=1))).tolist())
        work.count += k
    return sum(sizes)
