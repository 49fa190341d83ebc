"""Stride finder: the longest outer step of multiple time stepping that still
conserves energy as well as the conservative run does.

MTS conserves energy only while the correction ``F_slow - F_fast`` acts as a slow
force, and how long an outer step that allows depends on the model (how far its two
heads are apart). :func:`find_stride` measures it: short NVE segments from the same
start (same positions and velocities), all with the same inner step ``h`` and the same
duration, at strides M = 1, 2, 4, 8, ... (outer step ``M h``). M = 1 is velocity
Verlet with the conservative forces at ``h`` (the reference). A stride is accepted
while the drift of the conserved energy stays within

    ``|drift_M| <= factor * |drift_1| + tolerance``

(``factor`` 2, ``tolerance`` 1 meV/atom/ps by default: the floor of the NVE drift
warning of :func:`~.monitor.diagnose`, so that a conservative drift near zero does not
reject every stride) and the segment does not run away. The scan stops at the first
rejected stride, and the largest accepted stride is chosen.
"""

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import ase
from ase import units

from ..errors import UserInputError
from ..force_models.force_split import ForceSplit, force_split
from .integrator import MultipleTimeStep
from .monitor import DRIFT_FLOOR_MEV_PER_ATOM_PS, Monitor, RunawayError, summarise
from .structures import has_velocities, maxwell_boltzmann

#: strides tried by default (outer step = stride * inner step)
STRIDES = (1, 2, 4, 8, 16, 32)
#: a stride is accepted while its drift is within FACTOR x the reference drift ...
FACTOR = 2.0
#: ... plus this tolerance (meV/atom/ps)
TOLERANCE_MEV_PER_ATOM_PS = DRIFT_FLOOR_MEV_PER_ATOM_PS
#: default duration of each segment (fs)
SEGMENT_FS = 200.0
#: fewest outer steps of a segment (longer segments for long outer steps)
MIN_OUTER_STEPS = 10


@dataclass
class StrideRow:
    """One segment of the scan (times in fs, drift in meV/atom/ps, heating in K/ps).

    ``status``: ``"reference"`` (M = 1), ``"accepted"``, ``"drift"`` (rejected: drift
    beyond the allowed value) or ``"runaway"`` (rejected: the segment ran away).
    """

    stride: int
    outer_timestep_fs: float
    outer_steps: int
    drift_meV_per_atom_per_ps: Optional[float]
    drift_error_meV_per_atom_per_ps: Optional[float]
    heating_rate_K_per_ps: Optional[float]
    mean_temperature_K: Optional[float]
    status: str
    message: Optional[str] = None


@dataclass
class StrideScan:
    """What :func:`find_stride` found.

    :ivar stride: the chosen stride M.
    :ivar inner_timestep_fs: the inner step of every segment and of the run.
    :ivar outer_timestep_fs: ``stride * inner_timestep_fs``.
    :ivar reference_drift: drift of the M = 1 segment (meV/atom/ps).
    :ivar allowed_drift: ``factor * |reference_drift| + tolerance``.
    :ivar rows: one :class:`StrideRow` per segment run (the scan stops at the first
        rejection).
    :ivar wall_time_s: wall-clock time of the whole scan (s).
    :ivar model_forward_passes: calls of the (slow) model during the scan (forward
        passes; backward passes in ``model_backward_passes``).
    :ivar fast_model_forward_passes: calls of the fast model during the scan
        (``None`` without one).
    """

    stride: int
    inner_timestep_fs: float
    outer_timestep_fs: float
    segment_fs: float
    factor: float
    tolerance_meV_per_atom_per_ps: float
    reference_drift_meV_per_atom_per_ps: Optional[float]
    allowed_drift_meV_per_atom_per_ps: Optional[float]
    strides: List[int]
    rows: List[StrideRow] = field(default_factory=list)
    wall_time_s: float = 0.0
    model_forward_passes: int = 0
    model_backward_passes: int = 0
    fast_model_forward_passes: Optional[int] = None

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready (``summary.json``'s ``stride_scan``)."""
        return asdict(self)

    def table(self) -> str:
        """The scan as a text table."""
        lines = [
            f"stride scan: inner step {self.inner_timestep_fs:g} fs, NVE segments of "
            f"{self.segment_fs:g} fs from the same start; allowed drift "
            f"{self.factor:g} x |{_fmt(self.reference_drift_meV_per_atom_per_ps)}| + "
            f"{self.tolerance_meV_per_atom_per_ps:g} = "
            f"{_fmt(self.allowed_drift_meV_per_atom_per_ps)} meV/atom/ps",
            f"{'stride':>6} {'outer fs':>9} {'drift meV/atom/ps':>20} "
            f"{'heating K/ps':>13}  verdict",
        ]
        for row in self.rows:
            drift = _fmt(row.drift_meV_per_atom_per_ps)
            if row.drift_error_meV_per_atom_per_ps is not None:
                drift += f" +- {row.drift_error_meV_per_atom_per_ps:.2g}"
            lines.append(
                f"{row.stride:>6} {row.outer_timestep_fs:>9g} {drift:>20} "
                f"{_fmt(row.heating_rate_K_per_ps):>13}  {row.status}"
            )
        lines.append(
            f"chosen stride {self.stride}: outer step {self.outer_timestep_fs:g} fs"
        )
        fast = self.fast_model_forward_passes
        lines.append(
            f"the scan's own model calls (not counted in the run's): "
            f"{self.model_forward_passes} forward, {self.model_backward_passes} "
            "backward" + ("" if fast is None else f"; fast model {fast} forward")
        )
        return "\n".join(lines)


def find_stride(
    model: Union[ForceSplit, Any],
    atoms: ase.Atoms,
    inner_timestep_fs: float = 0.5,
    strides: Sequence[int] = STRIDES,
    segment_fs: float = SEGMENT_FS,
    factor: float = FACTOR,
    tolerance: float = TOLERANCE_MEV_PER_ATOM_PS,
    fast: Any = None,
    temperature_K: Optional[float] = None,
    seed: int = 0,
    max_temperature_K: Optional[float] = 5000.0,
    progress: Optional[Callable[[StrideRow], None]] = None,
) -> StrideScan:
    """Scan strides of multiple time stepping at a fixed inner step (see module doc).

    :param model: a multiple-time-step
        :class:`~metatrain_nc.force_models.force_split.ForceSplit` (``mode ==
        "mts"``), or the (slow) model: anything
        :func:`~metatrain_nc.force_models.load_force_model` takes; without ``fast``
        it needs a direct head.
    :param atoms: the start; its momenta are the initial velocities (if it has none:
        Maxwell-Boltzmann at ``temperature_K`` with ``seed``). Not modified.
    :param inner_timestep_fs: the inner step ``h`` (fs), the same for every stride.
    :param strides: strides to try, increasing; the first must be 1 (the reference).
    :param segment_fs: simulated time of every segment (fs); a segment has at least
        :data:`MIN_OUTER_STEPS` outer steps.
    :param factor: allowed drift, in units of the reference's ``|drift|``.
    :param tolerance: added to the allowed drift (meV/atom/ps).
    :param fast: with a model: a separate model for the inner steps (as for
        :func:`~metatrain_nc.force_models.force_split.force_split`).
    :param temperature_K: Maxwell-Boltzmann temperature when ``atoms`` has no momenta.
    :param seed: seed of those velocities.
    :param max_temperature_K: a segment above it has run away (``None``: no bound).
    :param progress: called with each finished :class:`StrideRow`.
    """
    from ..force_models.timing import WallClock

    strides = [int(m) for m in strides]
    if not strides or strides[0] != 1:
        raise UserInputError("the stride scan starts at stride 1 (the reference)")
    if any(b <= a for a, b in zip(strides[:-1], strides[1:], strict=True)):
        raise UserInputError(f"strides must increase, got {strides}")
    if not (math.isfinite(inner_timestep_fs) and inner_timestep_fs > 0):
        raise UserInputError(
            f"the inner time step must be > 0 fs, got {inner_timestep_fs}"
        )
    if not segment_fs > 0:
        raise UserInputError(f"the segment time must be > 0 fs, got {segment_fs}")
    if not (factor >= 1 and tolerance >= 0):
        raise UserInputError(
            f"need factor >= 1 and tolerance >= 0, got {factor} and {tolerance}"
        )
    split = force_split(model, "mts", fast)
    provider, fast_model = split.model, split.fast_model
    start = atoms.copy()
    start.calc = None
    if not has_velocities(start):
        if temperature_K is None or not temperature_K > 0:
            raise UserInputError(
                "the structure has no velocities: give a temperature for "
                "Maxwell-Boltzmann velocities"
            )
        maxwell_boltzmann(start, temperature_K, seed)

    clock = WallClock().start()
    calls = (provider.n_forward, provider.n_backward)
    fast_calls = None if fast_model is None else fast_model.n_forward
    scan = StrideScan(
        stride=1,
        inner_timestep_fs=float(inner_timestep_fs),
        outer_timestep_fs=float(inner_timestep_fs),
        segment_fs=float(segment_fs),
        factor=float(factor),
        tolerance_meV_per_atom_per_ps=float(tolerance),
        reference_drift_meV_per_atom_per_ps=None,
        allowed_drift_meV_per_atom_per_ps=None,
        strides=strides,
    )
    for stride in strides:
        outer = stride * inner_timestep_fs
        steps = max(MIN_OUTER_STEPS, int(round(segment_fs / outer)))
        row = _segment(
            split, start, inner_timestep_fs, stride, steps, max_temperature_K
        )
        drift = row.drift_meV_per_atom_per_ps
        if stride == 1:
            scan.reference_drift_meV_per_atom_per_ps = drift
            if row.status != "runaway" and drift is not None:
                row.status = "reference"
                allowed = factor * abs(drift) + tolerance
                scan.allowed_drift_meV_per_atom_per_ps = allowed
        elif row.status != "runaway":
            allowed = scan.allowed_drift_meV_per_atom_per_ps
            ok = drift is not None and abs(drift) <= allowed
            row.status = "accepted" if ok else "drift"
        scan.rows.append(row)
        if progress is not None:
            progress(row)
        if row.status == "reference":
            continue
        if row.status != "accepted":  # a runaway reference stops the scan too
            break
        scan.stride = stride
    scan.outer_timestep_fs = scan.stride * scan.inner_timestep_fs
    scan.wall_time_s = clock.stop()
    scan.model_forward_passes = provider.n_forward - calls[0]
    scan.model_backward_passes = provider.n_backward - calls[1]
    if fast_model is not None:
        scan.fast_model_forward_passes = fast_model.n_forward - fast_calls
    return scan


def _segment(
    split: ForceSplit, start, inner_fs, stride, steps, max_temperature_K
) -> StrideRow:
    atoms = start.copy()
    dyn = MultipleTimeStep(
        atoms, stride * inner_fs * units.fs, split, stride=stride, ensemble="nve"
    )
    monitor = Monitor(dyn, max_temperature_K)
    dyn.attach(monitor, interval=1)
    status, message = "pending", None
    try:
        dyn.run(steps)
    except RunawayError as error:
        status, message = "runaway", str(error)
    summary = summarise(monitor.rows, len(atoms))
    return StrideRow(
        stride=stride,
        outer_timestep_fs=stride * inner_fs,
        outer_steps=int(dyn.nsteps),
        drift_meV_per_atom_per_ps=summary.get("drift_meV_per_atom_per_ps"),
        drift_error_meV_per_atom_per_ps=summary.get("drift_error_meV_per_atom_per_ps"),
        heating_rate_K_per_ps=summary.get("heating_rate_K_per_ps"),
        mean_temperature_K=summary.get("mean_temperature_K"),
        status=status,
        message=message,
    )


def _fmt(value: Optional[float]) -> str:
    """``n/a`` for a missing number, ``nan``/``inf`` for a non-finite one."""
    return "n/a" if value is None else f"{value:.3g}"
