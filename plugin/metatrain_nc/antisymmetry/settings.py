"""Settings of the antisymmetry evaluator (:class:`AntisymmetrySettings`).

One dataclass holds what :func:`~metatrain_nc.antisymmetry.evaluate` and
``mtt-nc antisymmetry`` compute, and :meth:`AntisymmetrySettings.check` holds every
rule that does not need the model or the structures. Lengths in A.

Import-light on purpose (no torch): the command line builds and checks the settings
before loading anything.
"""

from dataclasses import dataclass, fields
from typing import Any, Dict, Optional, Sequence

from ..errors import UserInputError
from ..force_models.names import CONSERVATIVE, DIRECT, DIRECT_FORCE

#: default largest 3N for the exact path (J itself is (3N)^2 floats)
MAX_EXACT_ROWS = 3000

#: default largest sum of 3N over the structures packed into one model evaluation
PACK_ROWS = 3000

#: how structures are evaluated: packed together, one at a time, or timed (auto)
PACKING_CHOICES = ("auto", "packed", "single")


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


def canonical_output(output: Optional[str]) -> Optional[str]:
    """``"non_conservative_force"`` (also for ``"direct"``), ``"conservative"`` or
    ``None``; :class:`UserInputError` for anything else."""
    if output is None:
        return None
    if output in (DIRECT_FORCE, DIRECT):
        return DIRECT_FORCE
    if output == CONSERVATIVE:
        return CONSERVATIVE
    raise UserInputError(
        f"unknown output '{output}': use '{DIRECT_FORCE}' or '{CONSERVATIVE}'"
    )


@dataclass
class AntisymmetrySettings:
    """What the evaluator computes for every structure.

    :ivar output: force output analysed: ``"non_conservative_force"`` (the direct
        head), ``"conservative"`` (-dE/dr, the control) or ``None``: the direct head
        if the model has one, else the forces of an ASE calculator (its only head).
    :ivar stochastic: random-probe estimate with ``probes`` probes instead of the full
        Jacobian (no per-atom/per-pair results then; differentiable models only).
    :ivar probes: probes of the stochastic estimator (the minimum with
        ``target_error``).
    :ivar chunk_size: rows (or probes, or finite-difference columns) per batch;
        bounds memory.
    :ivar max_exact_rows: largest 3N accepted by the exact and finite-difference
        paths.
    :ivar float64: load a metatomic model in float64 (checkpoints, float64 exports).
    :ivar fd_step: step (A) of the central differences that give the Jacobian of a
        model without gradients (an ASE calculator); ``None``: 1e-3 A for float64
        forces, 1e-2 A for float32.
    :ivar pairs: keep per-pair block norms for the distance figure.
    :ivar bin_width: distance bin width (A) of the pair tables.
    :ivar rotation_loop: work along a full turn of the molecule holding ``loop_atom``
        (``loop_points`` points, deformation ``loop_deformation`` A, about
        ``loop_axis``).
    :ivar square_loops: random square loops of side ``square_eps`` (A) per structure.
    :ivar seed: seed of probes, loops and finite-difference noise columns.
    :ivar progress: show tqdm progress bars.
    :ivar strategy: rows of J by ``"auto"``, ``"loop"`` or ``"batched"`` backward
        passes (see :func:`~metatrain_nc.antisymmetry.jacobian.exact_jacobian`).
    :ivar jvp: ``J v`` of the stochastic path: ``"double-backward"`` or
        ``"finite-difference"`` (no second-order graph: less memory).
    :ivar target_error: stochastic path: add probes until the relative standard error
        of lambda is at most this, or ``max_probes`` (per structure).
    :ivar max_probes: probe budget per structure for ``target_error``.
    :ivar packing: ``"packed"``: structures of a model with gradients share one
        model evaluation, up to ``pack_rows`` rows (sum of 3N), and each backward
        pass gives one row (or one probe) of every structure's Jacobian;
        ``"single"``: one structure at a time; ``"auto"``: the first pack times
        its first chunk both ways and the faster is kept. Results agree to
        round-off (see :mod:`~metatrain_nc.antisymmetry.packing`).
    :ivar pack_rows: largest sum of 3N in one pack (bounds the memory of its graph).
    :ivar keep_forces: keep the forces of every head of each structure
        (``StructureResult.forces``, for the chemiscope file); off saves one
        evaluation per head other than the analysed one.
    """

    output: Optional[str] = None
    stochastic: bool = False
    probes: int = 64
    chunk_size: int = 16
    max_exact_rows: int = MAX_EXACT_ROWS
    float64: bool = False
    fd_step: Optional[float] = None
    pairs: bool = True
    bin_width: float = 0.25
    rotation_loop: bool = False
    loop_atom: int = 0
    loop_points: int = 200
    loop_deformation: float = 0.1
    loop_axis: Sequence[float] = (0.0, 0.0, 1.0)
    square_loops: int = 0
    square_eps: float = 0.05
    seed: int = 0
    progress: bool = False
    strategy: str = "auto"
    jvp: str = "double-backward"
    target_error: Optional[float] = None
    max_probes: int = 1024
    packing: str = "auto"
    pack_rows: int = PACK_ROWS
    keep_forces: bool = True

    @classmethod
    def from_overrides(
        cls, settings: Optional["AntisymmetrySettings"] = None, **overrides: Any
    ) -> "AntisymmetrySettings":
        """A copy of ``settings`` (default settings if ``None``) with ``overrides``;
        :class:`UserInputError` naming unknown keywords."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise UserInputError(
                f"unknown antisymmetry setting(s) {unknown}; known: {sorted(names)}"
            )
        values = {} if settings is None else dict(settings.__dict__)
        values.update(overrides)
        return cls(**values)

    def check(self) -> None:
        """Raise :class:`UserInputError` for settings that cannot work."""
        self.output = canonical_output(self.output)
        if self.chunk_size < 1:
            raise UserInputError(f"--chunk-size must be >= 1, got {self.chunk_size}")
        if self.max_exact_rows < 1:
            raise UserInputError(
                f"--max-exact-rows must be >= 1, got {self.max_exact_rows}"
            )
        if self.stochastic and self.probes < 2:
            raise UserInputError("the stochastic estimator needs at least 2 probes")
        if self.target_error is not None and not self.stochastic:
            raise UserInputError(
                "a target error applies to the stochastic estimator: add --stochastic "
                "(stochastic=True) or drop --target-error"
            )
        check_target(self.target_error, self.probes, self.max_probes)
        if self.strategy not in ("auto", "loop", "batched"):
            raise UserInputError(
                f"unknown VJP strategy '{self.strategy}': use auto, loop or batched"
            )
        if self.packing not in PACKING_CHOICES:
            raise UserInputError(
                f"unknown packing '{self.packing}': use {', '.join(PACKING_CHOICES)}"
            )
        if self.pack_rows < 1:
            raise UserInputError(f"--pack-rows must be >= 1, got {self.pack_rows}")
        if self.jvp not in ("double-backward", "finite-difference"):
            raise UserInputError(
                f"unknown JVP method '{self.jvp}': use double-backward or "
                "finite-difference"
            )
        if self.fd_step is not None and not self.fd_step > 0:
            raise UserInputError(
                f"--fd-step must be a positive length (A), got {self.fd_step}"
            )
        if not self.bin_width > 0:
            raise UserInputError(f"--bin-width must be > 0 A, got {self.bin_width}")
        if self.rotation_loop and self.loop_points < 3:
            raise UserInputError(f"--loop-points must be >= 3, got {self.loop_points}")
        if self.rotation_loop and (
            len(self.loop_axis) != 3 or not any(float(x) for x in self.loop_axis)
        ):
            raise UserInputError(
                f"the loop axis needs 3 components, not all zero; got "
                f"{list(self.loop_axis)}"
            )
        if self.square_loops < 0:
            raise UserInputError(
                f"--square-loops must be >= 0, got {self.square_loops}"
            )
        if self.square_loops > 0 and not self.square_eps > 0:
            raise UserInputError(
                f"the square side --square-eps must be positive, got {self.square_eps}"
            )

    def summary(self, method: str, fd_step: Optional[float]) -> Dict[str, Any]:
        """The ``settings`` of ``summary.json``.

        :param method: ``"exact"``, ``"finite-difference"`` or ``"stochastic"``.
        :param fd_step: the finite-difference step used (A), if any.
        """
        stochastic = self.stochastic
        targeted = self.target_error is not None
        data: Dict[str, Any] = {
            "method": method,
            "probes": self.probes if stochastic else None,
            "target_error": self.target_error,
            "max_probes": self.max_probes if targeted else None,
            "chunk_size": self.chunk_size,
            "max_exact_rows": self.max_exact_rows,
            "vjp_strategy": self.strategy if method == "exact" else None,
            "jvp": self.jvp if stochastic else None,
            "packing": self.packing,
            "pack_rows": self.pack_rows,
            "fd_step_A": fd_step,
            "float64": self.float64,
            "bin_width_A": self.bin_width,
            "rotation_loop": self.rotation_loop,
            "loop_atom": self.loop_atom,
            "loop_points": self.loop_points,
            "loop_deformation_A": self.loop_deformation,
            "loop_axis": [float(x) for x in self.loop_axis],
            "square_loops": self.square_loops,
            "square_eps_A": self.square_eps,
            "seed": self.seed,
        }
        return data
