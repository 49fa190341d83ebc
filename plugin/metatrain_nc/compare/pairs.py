"""Teacher-student pairs (``mtt-nc compare --pair SLOW+FAST``).

A pair is a conservative model (the teacher, slow) whose multiple-time-step inner
steps are driven by a second model (a distilled student, fast): one more entry of the
comparison, of kind ``"pair"``, with one MD mode (``mts``). It has no force head of
its own to test, so it appears in the cost section (the teacher's conservative
evaluation, the fast model's evaluation and their MTS average) and in the MD sections
(:data:`PAIR_STAGES`), next to the hybrid models' own ``mts`` rows. Its NVE run
starts from the teacher's equilibrated structure, as the teacher's own runs do.
"""

import dataclasses
import os
from typing import Any, List, Optional, Sequence, Tuple

from ..errors import UserInputError
from .models import ModelEntry, describe_model, unique_label

#: the stages a pair takes part in
PAIR_STAGES = ("cost", "nve", "nvt")

#: separates the slow and the fast model of a pair (``--pair SLOW+FAST``)
PAIR_SEPARATOR = "+"


def split_pair(spec: Any, known_names: Sequence[str] = ()) -> Tuple[Any, Any]:
    """``"SLOW+FAST"`` (or a ``(slow, fast)`` tuple) -> ``(slow, fast)``.

    Each side is a model file, ``[direct:]module:callable`` or the label of a compared
    model; a path containing ``+`` is found by trying every ``+`` of ``spec``.

    :raises UserInputError: no ``+``, a side that names no model, or more than one
        way to read ``spec``.
    """
    from ..force_models.specs import is_calculator, split_direct_prefix

    if isinstance(spec, (tuple, list)):
        if len(spec) != 2:
            raise UserInputError(f"a pair is (slow, fast), got {len(spec)} models")
        return spec[0], spec[1]
    text = os.fspath(spec)

    def resolves(part: str) -> bool:
        bare = split_direct_prefix(part)[0]
        return part in known_names or os.path.exists(bare) or is_calculator(bare)

    splits = [
        (text[:k], text[k + 1 :])
        for k, char in enumerate(text)
        if char == PAIR_SEPARATOR and 0 < k < len(text) - 1
    ]
    if not splits:
        raise UserInputError(
            f"--pair '{text}': write the slow (conservative) and the fast model "
            f"joined by '{PAIR_SEPARATOR}', e.g. pet_c.pt{PAIR_SEPARATOR}student.pt"
        )
    good = [s for s in splits if resolves(s[0]) and resolves(s[1])]
    if len(good) == 1:
        return good[0]
    if good:
        raise UserInputError(
            f"--pair '{text}' can be read as {[f'{a} + {b}' for a, b in good]}: "
            "rename the files so that only one '+' separates two models"
        )
    names = f" or one of the compared models {list(known_names)}" if known_names else ""
    unknown = [p for p in splits[0] if not resolves(p)] if len(splits) == 1 else []
    what = f"'{unknown[0]}' is" if len(unknown) == 1 else "the parts are"
    raise UserInputError(
        f"--pair '{text}': {what} not a model file, an ASE calculator "
        f"(module:callable){names}"
    )


def describe_pair(
    spec: Any,
    entries: Sequence[ModelEntry],
    name: Optional[str] = None,
    *,
    md_atoms=None,
    direct: bool = False,
    float64: bool = False,
    device: str = "cpu",
) -> ModelEntry:
    """A teacher-student pair as one more entry of the comparison.

    :param spec: ``"SLOW+FAST"`` or ``(slow, fast)`` (see :func:`split_pair`); a side
        naming a compared model reuses it (loaded once).
    :param entries: the compared models.
    :param md_atoms: the MD structure: the pair is checked on it (species of the fast
        model, cutoffs) before any work; warnings go to the entry's ``notes``.
    :raises UserInputError: a slow model without trained conservative forces, a fast
        model that cannot cover the MD structure, anything a model load refuses.
    """
    from ..force_models.pair import ForcePair

    slow_spec, fast_spec = split_pair(spec, [e.name for e in entries])

    def described(part) -> ModelEntry:
        for entry in entries:
            if part is entry.model or (
                isinstance(part, str) and part in (entry.name, entry.path)
            ):
                return entry
        return describe_model(part, direct=direct, float64=float64, device=device)

    slow, fast = described(slow_spec), described(fast_spec)
    pair = ForcePair(slow.model, fast.model)
    notes: List[str] = []
    if md_atoms is not None:
        slow.model.check(md_atoms, "the MD structure")
        notes = pair.check(md_atoms)
    fast_architecture = getattr(fast.model, "architecture", "") or "-"
    entry = dataclasses.replace(
        slow,
        name=name or f"{slow.name}{PAIR_SEPARATOR}{fast.name}",
        architecture=f"{slow.architecture or '-'} + {fast_architecture}",
        heads=["conservative"],
        fast=fast.model,
        fast_path=os.fspath(fast_spec) if isinstance(fast_spec, str) else None,
        fast_name=fast.name,
        slow_name=slow.name,
    )
    entry.notes = [f"Pair '{entry.name}': {note}" for note in notes]
    return entry


def add_pairs(
    entries: List[ModelEntry], pairs: Sequence[Any], md_atoms, **load: Any
) -> List[ModelEntry]:
    """``entries`` followed by one entry per pair of ``pairs`` (:func:`describe_pair`,
    labels ``SLOW+FAST`` made unique); ``load``: ``direct``, ``float64``, ``device``."""
    out = list(entries)
    for spec in pairs:
        entry = describe_pair(spec, entries, md_atoms=md_atoms, **load)
        entry.name = unique_label(entry.name, [e.name for e in out])
        out.append(entry)
    return out
