"""The cost of force models: one way of timing them for every tool.

:func:`time_force_calls` (several models, interleaved) and :func:`time_force_model`
(one) time :meth:`~.base.ForceModel.evaluate` and return a :class:`ForceTiming` that
says what was timed. The rules:

- wall-clock time (``time.perf_counter``): what a user waits for, including work on
  other threads and on a GPU, which process CPU time misses (and CPU time counts a
  model's threads several times over);
- ``torch.cuda.synchronize()`` before and after each call when CUDA is in use
  (:func:`synchronize`): GPU kernels run asynchronously;
- every call on a configuration no call saw before: the structure displaced by
  Gaussian noise of ``displacement`` A (1e-3 by default, far below thermal motion).
  An ASE calculator returns its stored results when the positions have not changed,
  so timing it twice on one structure measures a dictionary look-up;
- ``warmup`` calls of each model first, not timed (TorchScript's profiling runs,
  neighbour-list set-up, a calculator's first-call initialisation);
- several models are called in turn (round robin), so that a change of the machine's
  load hits all of them alike; the result is the median over ``repeats`` calls.

:func:`wall_seconds` and :class:`WallClock` time any other model work the same way
(MD steps and runs, Jacobian rows): wall clock, GPU work included.

Units: seconds (:attr:`ForceTiming.seconds`, :attr:`ForceTiming.seconds_per_call`),
milliseconds (:attr:`ForceTiming.ms_per_call`), displacements in A.
"""

import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Mapping, Optional

import ase
import numpy as np

from ..errors import UserInputError
from .base import ForceModel

#: default standard deviation (A) of the displacement of every timed configuration
DISPLACEMENT = 1e-3
#: the clock every timing uses
CLOCK = "wall clock (time.perf_counter)"


def synchronize() -> None:
    """Wait for queued GPU work (``torch.cuda.synchronize()``) when CUDA is in use in
    this process; nothing otherwise (torch is not imported for it)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return
    cuda = torch.cuda
    if cuda.is_available() and cuda.is_initialized():
        cuda.synchronize()


class WallClock:
    """Wall-clock seconds of a block of model work, GPU work included
    (:func:`synchronize` at both ends)::

        with WallClock() as clock:
            dyn.run(100)
        clock.seconds

    or ``clock = WallClock().start()`` ... ``clock.stop()`` (returns the seconds).

    :ivar seconds: seconds between start and stop (s); while running, the time so far.
    """

    def __init__(self) -> None:
        self._began: Optional[float] = None
        self._seconds = 0.0

    def start(self) -> "WallClock":
        synchronize()
        self._began = time.perf_counter()
        return self

    def stop(self) -> float:
        synchronize()
        if self._began is not None:
            self._seconds = time.perf_counter() - self._began
            self._began = None
        return self._seconds

    @property
    def seconds(self) -> float:
        if self._began is not None:
            return time.perf_counter() - self._began
        return self._seconds

    def __enter__(self) -> "WallClock":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def wall_seconds(call: Callable[[], object]) -> float:
    """Wall-clock seconds of ``call()``, GPU work included (:class:`WallClock`)."""
    with WallClock() as clock:
        call()
    return clock.seconds


@dataclass
class ForceCall:
    """One kind of model call to time: the flags of
    :meth:`~.base.ForceModel.evaluate`."""

    model: ForceModel
    conservative: bool = True
    direct: bool = False
    stress: bool = False

    @property
    def computes(self) -> List[str]:
        """What each call computes: ``"energy"``, ``"conservative forces"``,
        ``"direct forces"``, ``"stress"``."""
        out = ["energy"]
        if self.conservative:
            out.append("conservative forces")
        if self.direct:
            out.append("direct forces")
        if self.stress:
            out.append("stress")
        return out


@dataclass
class ForceTiming:
    """What :func:`time_force_calls` measured for one kind of call.

    :ivar model: the model's source (path, ``module:callable``).
    :ivar kind: ``"metatomic"`` or ``"ase"``.
    :ivar computes: what each call computed (:attr:`ForceCall.computes`).
    :ivar n_atoms: atoms of the timed structure.
    :ivar seconds: wall-clock seconds of each timed call (s).
    :ivar warmup: untimed calls made first.
    :ivar displacement_A: standard deviation of the displacement that makes every
        call's configuration new (A).
    :ivar clock: the clock (:data:`CLOCK`).
    """

    model: str
    kind: str
    computes: List[str]
    n_atoms: int
    seconds: List[float] = field(default_factory=list)
    warmup: int = 0
    displacement_A: float = DISPLACEMENT
    clock: str = CLOCK

    @property
    def calls(self) -> int:
        """Timed calls."""
        return len(self.seconds)

    @property
    def seconds_per_call(self) -> float:
        """Median wall-clock seconds per call (s)."""
        return float(statistics.median(self.seconds))

    @property
    def ms_per_call(self) -> float:
        """Median wall-clock milliseconds per call (ms)."""
        return 1000.0 * self.seconds_per_call

    @property
    def ms_per_atom(self) -> float:
        """:attr:`ms_per_call` per atom (ms)."""
        return self.ms_per_call / max(self.n_atoms, 1)

    def describe(self) -> str:
        """One line: the cost and what was timed."""
        return (
            f"'{self.model}' ({self.kind}): {' + '.join(self.computes)} on "
            f"{self.n_atoms} atoms, {self.ms_per_call:.4g} ms per call (median of "
            f"{self.calls} calls, {self.clock}, each on a new configuration: "
            f"displacements of {self.displacement_A:g} A; after {self.warmup} "
            "warm-up calls)"
        )

    def as_dict(self) -> Dict[str, object]:
        """JSON-ready, with ``calls``, ``seconds_per_call``, ``ms_per_call`` and the
        one-line ``what``."""
        data: Dict[str, object] = asdict(self)
        data.update(
            calls=self.calls,
            seconds_per_call=self.seconds_per_call,
            ms_per_call=self.ms_per_call,
            what=self.describe(),
        )
        return data


def time_force_calls(
    calls: Mapping[str, ForceCall],
    atoms: ase.Atoms,
    repeats: int = 5,
    warmup: int = 2,
    displacement: float = DISPLACEMENT,
    seed: int = 0,
    where: Optional[str] = None,
) -> Dict[str, ForceTiming]:
    """Wall-clock cost of each of ``calls`` on ``atoms`` (see the module doc).

    :param calls: ``name -> ForceCall``; called in turn, ``repeats`` times each.
    :param atoms: the structure (positions in A); not modified.
    :param repeats: timed calls of each.
    :param warmup: untimed calls of each, first.
    :param displacement: standard deviation (A) of the Gaussian displacement of the
        positions of every call (> 0: a new configuration each time).
    :param seed: seed of the displacements.
    :param where: how errors name the structure.
    :raises UserInputError: ``repeats < 1``, ``warmup < 0`` or ``displacement <= 0``;
        the models' own errors (:class:`~metatrain_nc.errors.ModelError`).
    """
    if repeats < 1 or warmup < 0:
        raise UserInputError(
            f"timing needs repeats >= 1 and warmup >= 0, got {repeats} and {warmup}"
        )
    if not displacement > 0:
        raise UserInputError(
            "timing needs a displacement > 0 A (a new configuration for every "
            f"call, or an ASE calculator returns its stored result), got {displacement}"
        )
    rng = np.random.default_rng(seed)
    base = np.array(atoms.positions, dtype=np.float64)

    def one(call: ForceCall) -> float:
        work = atoms.copy()
        work.calc = None
        work.positions = base + rng.normal(0.0, displacement, base.shape)
        return wall_seconds(
            lambda: call.model.evaluate(
                work,
                conservative=call.conservative,
                direct=call.direct,
                stress=call.stress,
                where=where,
            )
        )

    for call in calls.values():
        for _ in range(warmup):
            one(call)
    timings = {
        name: ForceTiming(
            model=str(call.model.source),
            kind=call.model.kind,
            computes=call.computes,
            n_atoms=len(atoms),
            warmup=warmup,
            displacement_A=float(displacement),
        )
        for name, call in calls.items()
    }
    for _ in range(repeats):
        for name, call in calls.items():
            timings[name].seconds.append(one(call))
    return timings


def time_force_model(
    model: ForceModel,
    atoms: ase.Atoms,
    conservative: bool = True,
    direct: bool = False,
    stress: bool = False,
    **options,
) -> ForceTiming:
    """:func:`time_force_calls` for one kind of call of one model (``options``:
    ``repeats``, ``warmup``, ``displacement``, ``seed``, ``where``)."""
    call = ForceCall(model, conservative, direct, stress)
    return time_force_calls({"call": call}, atoms, **options)["call"]
