"""The sections of a teacher-student pair (``mtt-nc compare --pair SLOW+FAST``).

A pair is a conservative model (the teacher, slow) whose multiple-time-step inner
steps are driven by a second model (a distilled student, fast): it has no force head
of its own to test, so it appears in the cost section (the teacher's conservative
evaluation, the fast model's evaluation and their MTS average) and in the MD
sections (one run, ``mts``), next to the hybrid models' own ``mts`` rows. Its NVE
run starts from the teacher's equilibrated structure, as the teacher's own runs do.
"""

from pathlib import Path
from typing import Any, Callable, Dict

import ase

from ..force_models.names import CONSERVATIVE, DIRECT
from ..force_models.pair import ForcePair
from .models import ModelEntry
from .settings import CompareSettings

#: the stages a pair takes part in
PAIR_STAGES = ("cost", "nve", "nvt")


def pair_cost_stage(
    entry: ModelEntry, atoms: ase.Atoms, settings: CompareSettings
) -> Dict[str, Any]:
    """Wall time of one evaluation (ms): the slow model's conservative forces, the
    fast model's inner forces, and an inner step of MTS on average,
    ``fast + conservative / stride`` (every inner step evaluates the fast model, every
    outer step the slow one once more)."""
    from ..force_models.timing import ForceCall
    from .stages import timed_calls

    slow, fast = entry.model, entry.fast
    head = ForcePair(slow, fast).inner_head
    calls = {
        "conservative": ForceCall(slow, conservative=True, direct=False),
        "fast": ForceCall(
            fast, conservative=head == CONSERVATIVE, direct=head == DIRECT
        ),
    }
    result = timed_calls(calls, atoms, settings)
    times = result["ms"]
    times["mts_per_inner_step"] = (
        times["fast"] + times["conservative"] / settings.stride
    )
    result["ms_per_atom"]["mts_per_inner_step"] = times["mts_per_inner_step"] / len(
        atoms
    )
    result["fast_head"] = head
    return result


def pair_md_stage(
    entry: ModelEntry,
    atoms: ase.Atoms,
    settings: CompareSettings,
    folder: Path,
    ensemble: str,
) -> Dict[str, Any]:
    """The pair's ``mts`` run (NVE, or NVT with SVR), as
    :func:`~.stages.md_stage` runs a hybrid model's, with the fast model driving the
    inner steps."""
    from .stages import equilibrate, md_row

    if ensemble == "nve" and settings.equilibration_fs > 0:
        atoms = equilibrate(entry, atoms, settings)  # the teacher's own forces
    return {"mts": md_row(entry, atoms, settings, folder, ensemble, "mts", entry.fast)}


def pair_stage_functions(
    md_atoms: ase.Atoms, settings: CompareSettings, folder: Path
) -> Dict[str, Callable[[ModelEntry], Dict[str, Any]]]:
    """``stage -> function(entry)`` for the stages of :data:`PAIR_STAGES`."""
    return {
        "cost": lambda e: pair_cost_stage(e, md_atoms, settings),
        "nve": lambda e: pair_md_stage(e, md_atoms, settings, folder / "md", "nve"),
        "nvt": lambda e: pair_md_stage(e, md_atoms, settings, folder / "md", "svr"),
    }
