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
"""

import math
from dataclasses import dataclass, field
from typing import Callable, List, Optional

import numpy as np
import torch

from ..errors import UserInputError
from .model import ForceModel

#: default largest 3N for the exact path (J itself is (3N)^2 floats)
MAX_EXACT_ROWS = 3000

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


def exact_jacobian(
    force_model: ForceModel,
    chunk_size: int = 16,
    max_rows: int = MAX_EXACT_ROWS,
    progress: Optional[Callable[[int], None]] = None,
    strategy: str = "auto",
) -> np.ndarray:
    """The full force Jacobian (3N, 3N) in eV/A^2 by chunked batched VJPs.

    :param force_model: forces of one structure as a function of positions.
    :param chunk_size: rows per batched backward pass (bounds memory).
    :param max_rows: refuse (``UserInputError``) when 3N is larger.
    :param progress: called with the number of rows done after each chunk.
    :param strategy: ``"batched"`` (``is_grads_batched``), ``"loop"`` (one backward
        per row) or ``"auto"`` (time the first chunk both ways, keep the faster).
    """
    if strategy not in ("auto", "batched", "loop"):
        raise ValueError(f"unknown strategy '{strategy}'")
    n3 = 3 * force_model.n_atoms
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
    force_model: ForceModel, delta: float = 1e-3, batch_size: int = 8
) -> np.ndarray:
    """Central finite-difference Jacobian (3N, 3N), eV/A^2, ``delta`` in A.

    Column ``(j, b)`` is ``(f(r + delta e_jb) - f(r - delta e_jb)) / (2 delta)``.
    """
    reference = force_model.positions.detach().numpy().astype(np.float64)
    n3 = reference.size
    displaced = []
    for col in range(n3):
        for sign in (1.0, -1.0):
            p = reference.copy().reshape(-1)
            p[col] += sign * delta
            displaced.append(p.reshape(-1, 3))
    forces = force_model.forces_numpy(displaced, batch_size=batch_size)
    jacobian = np.empty((n3, n3))
    for col in range(n3):
        plus, minus = forces[2 * col], forces[2 * col + 1]
        jacobian[:, col] = (plus - minus).reshape(-1) / (2.0 * delta)
    return jacobian


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


def check_target(target_error: Optional[float], probes: int, max_probes: int) -> None:
    """Raise :class:`UserInputError` for an unusable target error or probe budget."""
    if target_error is None:
        return
    if not target_error > 0:
        raise UserInputError(
            f"target error must be a positive fraction (e.g. 0.1), got {target_error}"
        )
    if max_probes < probes:
        raise UserInputError(
            f"the probe budget (--max-probes, {max_probes}) is smaller than the "
            f"minimum (--probes, {probes}): raise --max-probes"
        )


def stochastic_lambda(
    force_model: ForceModel,
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
