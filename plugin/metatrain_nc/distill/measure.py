"""Cost of the teacher and the students, and of their MD, in this process.

Timed with the package's one timing module
(:mod:`metatrain_nc.force_models.timing`): wall-clock time (``time.perf_counter``,
with ``torch.cuda.synchronize`` when CUDA is in use) over distinct configurations:
every force call is made on positions no call saw before (displacements of 1e-3 A),
so no model or ASE calculator can return a cached result; MD steps move the atoms
by themselves. One thread (``torch.set_num_threads(1)``), calls of the models
interleaved. Times in ms.
"""

import statistics
from pathlib import Path
from typing import Dict, List

from .settings import DistillSettings
from .stages import NVE_START


def force_call_ms(teacher: str, students: Dict[str, str], out: Path, repeats: int):
    """Cost of one force call on the MD start (median of ``repeats`` interleaved
    wall-clock calls per model, each on new positions:
    :func:`~metatrain_nc.force_models.timing.time_force_calls`): the teacher's
    conservative forces, each student's direct forces.

    :return: ``name -> ForceTiming`` (``"teacher"`` and each student); its
        ``ms_per_call`` is the cost in ms, its ``as_dict()`` says what was timed.
    """
    import ase.io
    import torch

    from ..force_models import load_force_model
    from ..force_models.timing import ForceCall, time_force_calls

    torch.set_num_threads(1)
    start = ase.io.read(out / "data" / NVE_START)
    calls = {"teacher": ForceCall(load_force_model(teacher), True, False)}
    for name, path in students.items():
        calls[name] = ForceCall(load_force_model(path), False, True)
    timings = time_force_calls(
        calls, start, repeats=repeats, warmup=2, where="the MD start"
    )
    return timings


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
    from ..force_models.timing import wall_seconds

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
            seconds = wall_seconds(lambda dyn=dyn, mode=mode: dyn.run(outer[mode]))
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
