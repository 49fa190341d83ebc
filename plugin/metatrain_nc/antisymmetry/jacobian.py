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
``strategy="auto"`` times the first chunk both ways and keeps the faster one.

Stochastic path (Hutchinson): for Rademacher probes ``v`` (``E[v v^T] = I``),
``E ||J^T v||^2 = E ||J v||^2 = ||J||_F^2`` and
``E ||(J v - J^T v)/2||^2 = ||J_anti||_F^2``.
``J^T v`` is one VJP; ``J v`` comes from the double-backward trick
(``J v = d/du [u^T J v]`` with ``u^T J = grad(f, r, u, create_graph=True)``).

Models without gradients (ASE calculators, :class:`~metatrain_nc.force_models.
FiniteDifferenceForces`): :func:`exact_jacobian` computes J by central finite
differences of the forces (two force evaluations per column, step ``fd_step``:
:func:`default_fd_step`), and :func:`finite_difference_noise` estimates its error
from columns recomputed with twice the step. The stochastic path needs ``J^T v``, which
such a model does not have: :func:`stochastic_lambda` refuses it.
"""

import math
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence

import numpy as np
import torch

from ..errors import UserInputError
from ..force_models.base import StructureForces
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


def _batched_is_faster(
    forces: torch.Tensor, positions: torch.Tensor, rows: torch.Tensor
) -> bool:
    import time

    start = time.perf_counter()
    try:
        _vjp_rows(forces, positions, rows, batched=True)
    except RuntimeError:
        return False
    batched = time.perf_counter() - start
    start = time.perf_counter()
    _vjp_rows(forces, positions, rows, batched=False)
    return batched < time.perf_counter() - start


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

    :param force_model: forces of one structure as a function of positions.
    :param chunk_size: rows per batched backward pass (bounds memory); columns per
        batch of displaced structures for finite differences.
    :param max_rows: refuse (``UserInputError``) when 3N is larger.
    :param progress: called with the number of rows (columns) done after each chunk.
    :param strategy: ``"batched"`` (``is_grads_batched``), ``"loop"`` (one backward
        per row) or ``"auto"`` (time the first chunk both ways, keep the faster).
    :param fd_step: finite-difference step (A); default :func:`default_fd_step`.
    """
    if strategy not in ("auto", "batched", "loop"):
        raise ValueError(f"unknown strategy '{strategy}'")
    n3 = 3 * force_model.n_atoms
    if not differentiable(force_model):
        if n3 > max_rows:
            raise UserInputError(
                f"structure with {force_model.n_atoms} atoms needs {2 * n3} force "
                f"evaluations (central differences) and a {n3}x{n3} Jacobian, more "
                f"than the exact limit ({max_rows} rows); raise --max-exact-rows (the "
                "stochastic estimator needs a model with gradients)"
            )
        return finite_difference_jacobian(
            force_model,
            delta=default_fd_step(force_model) if fd_step is None else fd_step,
            batch_size=chunk_size,
            progress=progress,
        )
    if n3 > max_rows:
        raise UserInputError(
            f"structure with {force_model.n_atoms} atoms needs {n3} backward passes "
            f"and a {n3}x{n3} Jacobian, more than the exact limit ({max_rows} rows); "
            "use the stochastic estimator (--stochastic) or raise --max-exact-rows"
        )
    positions = force_model.positions.clone().requires_grad_(True)
    conservative = force_model.output == "conservative"
    forces = force_model.forces(positions, create_graph=conservative)
    jacobian = torch.empty(n3, n3, dtype=force_model.dtype)
    use_batched = strategy != "loop"
    for start in range(0, n3, chunk_size):
        rows = torch.arange(start, min(start + chunk_size, n3))
        if strategy == "auto" and start == 0 and n3 > chunk_size:
            use_batched = _batched_is_faster(forces, positions, rows)
        if use_batched:
            try:
                block = _vjp_rows(forces, positions, rows, batched=True)
            except RuntimeError:
                # some custom operations have no batching rule: fall back to a loop
                use_batched = False
                block = _vjp_rows(forces, positions, rows, batched=False)
        else:
            block = _vjp_rows(forces, positions, rows, batched=False)
        jacobian[rows] = block.detach()
        if progress is not None:
            progress(len(rows))
    return jacobian.numpy().astype(np.float64)


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
    if jvp not in ("double-backward", "finite-difference"):
        raise ValueError(f"unknown jvp method '{jvp}'")
    if not differentiable(force_model):
        raise UserInputError(STOCHASTIC_NEEDS_GRADIENTS)
    check_target(target_error, probes, max_probes)
    finite_difference = jvp == "finite-difference"
    if fd_step is None:
        fd_step = 1e-3 if force_model.dtype == torch.float64 else 1e-2
    generator = torch.Generator().manual_seed(seed)
    positions = force_model.positions.clone().requires_grad_(True)
    forces = force_model.forces(
        positions,
        create_graph=not finite_difference or force_model.output == "conservative",
    )
    flat = forces.reshape(-1)
    n3 = flat.numel()
    anti_sq: List[float] = []
    full_sq: List[float] = []
    # u is a dummy cotangent: g(u) = J^T u is linear in u, d(g . v)/du = J v
    u = torch.zeros(n3, dtype=force_model.dtype, requires_grad=True)
    jt_u = u
    if force_model.output != "conservative" and not finite_difference:
        (jt_u,) = torch.autograd.grad(flat, positions, u, create_graph=True)
        jt_u = jt_u.reshape(-1)

    def enough(done: int) -> bool:
        if done < probes:
            return False
        if target_error is None or done >= max_probes:
            return True
        if done < MIN_PROBES_FOR_TARGET:
            return False  # an error bar from 2-3 probes is itself too noisy
        value, error = ratio_estimate(np.array(anti_sq), np.array(full_sq))
        return relative_error(value, error) <= target_error

    done = 0
    while not enough(done):
        # up to the minimum, then a chunk at a time until the target error
        k = min(chunk_size, probes - done if done < probes else max_probes - done)
        signs = torch.randint(0, 2, (k, n3), generator=generator)
        v = (2.0 * signs - 1.0).to(force_model.dtype)
        jtv = jv = None
        symmetric = force_model.output == "conservative"  # J = J^T: skip the JVP
        if batched:
            try:
                (jtv,) = torch.autograd.grad(
                    flat, positions, v, retain_graph=True, is_grads_batched=True
                )
                if symmetric or finite_difference:
                    jv = jtv  # replaced below for finite differences
                else:
                    (jv,) = torch.autograd.grad(
                        jt_u, u, v, retain_graph=True, is_grads_batched=True
                    )
            except RuntimeError:
                batched = False
        if not batched:
            jtv_list, jv_list = [], []
            for row in v:
                (a,) = torch.autograd.grad(flat, positions, row, retain_graph=True)
                if symmetric or finite_difference:
                    b = a  # replaced below for finite differences
                else:
                    (b,) = torch.autograd.grad(jt_u, u, row, retain_graph=True)
                jtv_list.append(a)
                jv_list.append(b)
            jtv = torch.stack(jtv_list)
            jv = torch.stack(jv_list)
        if finite_difference and not symmetric:
            reference = force_model.positions.detach().numpy()
            displaced = []
            for row in v.numpy():
                step = fd_step * row.reshape(-1, 3)
                displaced += [reference + step, reference - step]
            f = force_model.forces_numpy(displaced, batch_size=2)
            jv = torch.stack(
                [
                    torch.from_numpy((f[2 * i] - f[2 * i + 1]).reshape(-1))
                    for i in range(k)
                ]
            ) / (2.0 * fd_step)
        jtv = jtv.reshape(k, n3).detach().double()
        jv = jv.reshape(k, n3).detach().double()
        anti_sq.extend((0.25 * ((jv - jtv) ** 2).sum(dim=1)).tolist())
        full_sq.extend((0.5 * ((jv**2).sum(dim=1) + (jtv**2).sum(dim=1))).tolist())
        done += k
        if progress is not None:
            progress(k)
    value, error = ratio_estimate(np.array(anti_sq), np.array(full_sq))
    result = StochasticLambda(
        value=value,
        error=error,
        probes=done,
        anti_sq=anti_sq,
        full_sq=full_sq,
        anti_norm_sq=float(np.mean(anti_sq)),
        jacobian_norm_sq=float(np.mean(full_sq)),
        target_error=target_error,
    )
    if target_error is not None:
        result.converged = (
            done >= MIN_PROBES_FOR_TARGET and result.relative_error <= target_error
        )
    return result
