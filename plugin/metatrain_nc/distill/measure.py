"""Cost of the teacher and the students, and of their MD, in this process.

Wall-clock time (``time.perf_counter``, with ``torch.cuda.synchronize`` on a GPU)
over distinct configurations: every force call is made on positions no call saw
before (a displacement of ~1e-3 A), so no model or ASE calculator can return a
cached result; MD steps move the atoms by themselves. One thread
(``torch.set_num_threads(1)``), calls of the models interleaved.
"""

import statistics
import time
from pathlib import Path
from typing import Callable, Dict, List

from .settings import DistillSettings
from .stages import NVE_START


def _synchronize(device: str = "cpu") -> None:
    import torch

    if str(device).startswith("cuda") and torch.cuda.is_available():
        torch.cuda.synchronize()


def _wall(call: Callable[[], object], device: str = "cpu") -> float:
    _synchronize(device)
    began = time.perf_counter()
    call()
    _synchronize(device)
    return time.perf_counter() - began


def force_call_ms(
    teacher: str, students: Dict[str, str], out: Path, repeats: int
) -> Dict[str, float]:
    """Milliseconds per force call on the MD start (median of ``repeats``
    interleaved calls per model, each on new positions): the teacher's conservative
    forces, each student's direct forces."""
    import ase.io
    import numpy as np
    import torch

    from ..force_models import load_force_model

    torch.set_num_threads(1)
    start = ase.io.read(out / "data" / NVE_START)
    models = {"teacher": load_force_model(teacher)}
    for name, path in students.items():
        models[name] = load_force_model(path)
    rng = np.random.default_rng(0)

    def call(name: str) -> None:
        atoms = start.copy()
        atoms.positions += rng.normal(scale=1e-3, size=atoms.positions.shape)
        teacher_call = name == "teacher"
        models[name].evaluate(atoms, conservative=teacher_call, direct=not teacher_call)

    times: Dict[str, List[float]] = {name: [] for name in models}
    for name in models:
        for _ in range(2):  # TorchScript profiling, neighbour lists
            call(name)
    for _ in range(repeats):
        for name in models:
            times[name].append(_wall(lambda name=name: call(name)))
    return {name: 1000 * statistics.median(v) for name, v in times.items()}


def md_step_ms(
    teacher: str, student: str, stride: int, settings: DistillSettings, out: Path
) -> Dict[str, object]:
    """Wall-clock ms per step of the teacher's velocity Verlet (at its own step
    ``teacher_timestep_fs`` and at the inner step) and of MTS with the student at
    ``stride`` (inner step ``inner_fs``), interleaved repeats from the MD start;
    and the speed-up per simulated ps over the teacher at its own step."""
    import ase.io
    import numpy as np
    import torch
    from ase import units

    from ..dynamics.integrator import MultipleTimeStep
    from ..dynamics.structures import thermalize_momenta
    from ..force_models import load_force_model

    torch.set_num_threads(1)
    start = ase.io.read(out / "data" / NVE_START)
    thermalize_momenta(start, 300.0, rng=np.random.default_rng(0))
    slow, fast = load_force_model(teacher), load_force_model(student)
    h = settings.inner_fs * units.fs

    def dynamics(mode: str):
        atoms = start.copy()
        if mode == "teacher":
            return MultipleTimeStep(
                atoms, settings.teacher_timestep_fs * units.fs, slow,
                forces="conservative", stride=1,
            )  # fmt: skip
        return MultipleTimeStep(
            atoms, stride * h, slow, forces="mts", stride=stride, fast=fast
        )

    per_step: Dict[str, List[float]] = {"teacher": [], "mts": []}
    outer = {"teacher": settings.timing_inner_steps,
             "mts": settings.timing_outer_steps(stride)}  # fmt: skip
    for mode in per_step:  # warm-up
        dynamics(mode).run(1)
    for _ in range(settings.timing_repeats):
        for mode in per_step:
            dyn = dynamics(mode)
            dyn.run(1)
            seconds = _wall(lambda dyn=dyn, mode=mode: dyn.run(outer[mode]))
            inner = outer[mode] * (1 if mode == "teacher" else stride)
            per_step[mode].append(seconds / inner)
    ms = {mode: 1000 * statistics.median(v) for mode, v in per_step.items()}
    teacher_fs_per_ms = settings.teacher_timestep_fs / ms["teacher"]
    mts_fs_per_ms = settings.inner_fs / ms["mts"]
    return {
        "what": "wall-clock ms per MD step, one thread, interleaved repeats",
        "ms_per_step": ms,
        "repeats_ms": {m: [1000 * x for x in v] for m, v in per_step.items()},
        "teacher_timestep_fs": settings.teacher_timestep_fs,
        "inner_timestep_fs": settings.inner_fs,
        "stride": stride,
        "speedup_per_simulated_ps": mts_fs_per_ms / teacher_fs_per_ms,
    }
