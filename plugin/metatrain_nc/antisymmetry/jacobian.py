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

The code lives in modules by job: :mod:`.exact` (vector-Jacobian products),
:mod:`.finite_difference` (models without gradients), :mod:`.stochastic` (random
probes) and :mod:`.common`; this module re-exports their names.
"""

from .common import differentiable, keep_forces, lambda_from_jacobian
from .exact import (
    BATCHED_TRIAL_ROWS,
    _vjp_rows,  # noqa: F401 (benchmarks/antisymmetry_exact.py)
    exact_jacobian,
    exact_jacobians,
    iter_exact_jacobians,
)
from .finite_difference import (
    FD_NOISE_COLUMNS,
    default_fd_step,
    dtype_name,
    finite_difference_jacobian,
    finite_difference_jvp,
    finite_difference_noise,
)
from .stochastic import (
    MIN_PROBES_FOR_TARGET,
    STOCHASTIC_NEEDS_GRADIENTS,
    StochasticLambda,
    iter_stochastic_lambdas,
    ratio_estimate,
    relative_error,
    stochastic_lambda,
    stochastic_lambdas,
)

__all__ = [
    "BATCHED_TRIAL_ROWS",
    "FD_NOISE_COLUMNS",
    "MIN_PROBES_FOR_TARGET",
    "STOCHASTIC_NEEDS_GRADIENTS",
    "StochasticLambda",
    "default_fd_step",
    "differentiable",
    "dtype_name",
    "exact_jacobian",
    "exact_jacobians",
    "finite_difference_jacobian",
    "finite_difference_jvp",
    "finite_difference_noise",
    "iter_exact_jacobians",
    "iter_stochastic_lambdas",
    "keep_forces",
    "lambda_from_jacobian",
    "ratio_estimate",
    "relative_error",
    "stochastic_lambda",
    "stochastic_lambdas",
]
