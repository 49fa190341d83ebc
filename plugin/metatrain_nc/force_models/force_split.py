"""Force splits: what a multiple-time-step integrator asks its models for.

r-RESPA (Tuckerman, Berne, Martyna 1992) splits the forces that drive the atoms into
a *fast* part, evaluated at every inner step, and a *slow* part, whose difference to
the fast one (the correction ``F_slow - F_fast``) acts only at outer steps. A
:class:`ForceSplit` is that split as an object, in the spirit of jax-md's force
functions: the integrator asks it for ``fast(atoms)``, ``slow(atoms)`` or
``both(atoms)`` and never needs to know which models are behind it. The
implementations, built once at the command/API boundary by :func:`force_split`:

- :class:`HybridSplit`: one model with both heads (``pet_m``): fast = its direct
  head, slow = its ``-dE/dr``; ``both`` is one forward and one backward pass;
- :class:`PairSplit`: a teacher (slow, conservative) and a student (fast: its direct
  head, else its forces), with the checks of :class:`~.pair.ForcePair` (trained
  conservative forces of the slow model, species, cutoffs);
- :class:`ConservativeSplit`, :class:`DirectSplit`: one force kind (plain velocity
  Verlet at the inner step): fast == slow, :attr:`ForceSplit.splits` is ``False``, no
  correction, and ``both`` costs what ``fast`` costs (one call).

Results are :class:`~.base.ForceResult` objects: energies in eV, forces in eV/A with
shape ``(n_atoms, 3)``, in the float64 numpy arrays the models return (never modified
by the split; the integrator may apply constraints to them in place). Which field
holds the fast and which the slow forces is the split's :attr:`ForceSplit.fast_head`
and :attr:`ForceSplit.slow_head` (``"conservative"`` or ``"direct"``, read with
``result.forces(head)``; :func:`fast_forces`, :func:`slow_forces` and
:func:`correction` do it). A result of ``fast`` may lack the energy; results of
``slow`` and ``both`` have it. Model failures propagate as the force layer raises them
(:class:`~metatrain_nc.errors.NonFiniteError`,
:class:`~metatrain_nc.errors.ModelError`).

A minimal integrator on the protocol (one outer step ``dt`` of ``M`` inner steps)::

    result = split.both(atoms)
    p += 0.5 * dt * correction(split, result)        # zero (skipped) unless splits
    for k in range(M):
        p += 0.5 * h * fast_forces(split, result)
        x += h * p / m
        result = split.both(atoms) if k == M - 1 else split.fast(atoms)
        p += 0.5 * h * fast_forces(split, result)
    p += 0.5 * dt * correction(split, result)
"""

from typing import Any, Dict, List, Optional, Protocol, runtime_checkable

import ase
import numpy as np

from ..errors import UserInputError
from .base import ForceModel, ForceResult
from .names import CONSERVATIVE, DIRECT, FORCE_MODES
from .pair import ForcePair

#: the force mode of multiple time stepping (the others are the heads' names)
MTS = "mts"


@runtime_checkable
class ForceSplit(Protocol):
    """The force split a multiple-time-step integrator runs on (see module doc).

    :ivar mode: the force mode it implements: ``"mts"``, ``"conservative"`` or
        ``"direct"`` (``mtt-nc md --forces``).
    :ivar fast_head: the field of a result holding the fast (inner) forces.
    :ivar slow_head: the field holding the slow forces (the forces of record: what
        the integrator reports as the forces of the structure).
    :ivar splits: whether slow and fast forces differ (``False``: the correction is
        zero and ``both`` is ``fast``; an integrator skips the outer kicks).
    :ivar model: the model of record: the energy and the slow forces.
    :ivar fast_model: a separate model of the inner steps (``None``: ``model``).
    """

    mode: str
    fast_head: str
    slow_head: str
    splits: bool
    model: ForceModel
    fast_model: Optional[ForceModel]

    def check(self, atoms: ase.Atoms) -> List[str]:
        """Refuse a structure the models cannot run (:class:`UserInputError`);
        return warnings about it (a cutoff mismatch of a pair)."""
        ...

    def fast(self, atoms: ase.Atoms, where: Optional[str] = None) -> ForceResult:
        """The fast forces at the positions of ``atoms`` (``result.forces(
        fast_head)``, eV/A, (n_atoms, 3)); the energy (eV) when the model gives it
        at no cost. ``where`` names the structure in errors."""
        ...

    def slow(self, atoms: ase.Atoms, where: Optional[str] = None) -> ForceResult:
        """The slow forces (``result.forces(slow_head)``, eV/A, (n_atoms, 3)) and
        the energy (eV)."""
        ...

    def both(self, atoms: ase.Atoms, where: Optional[str] = None) -> ForceResult:
        """Fast and slow forces and the energy at the same positions, from one
        model call where the model can (a hybrid model; one force kind)."""
        ...

    def describe(self) -> Dict[str, Any]:
        """What reports say about the split: at least ``"forces"`` (the mode),
        ``"slow"`` and ``"fast"`` (model sources; ``fast`` is ``None`` without a
        separate fast model)."""
        ...


def fast_forces(split: ForceSplit, result: ForceResult) -> np.ndarray:
    """The fast forces of ``result`` (eV/A, (n_atoms, 3))."""
    return result.forces(split.fast_head)


def slow_forces(split: ForceSplit, result: ForceResult) -> np.ndarray:
    """The slow forces of ``result`` (eV/A, (n_atoms, 3))."""
    return result.forces(split.slow_head)


def correction(split: ForceSplit, result: ForceResult) -> np.ndarray:
    """``F_slow - F_fast`` of a ``both`` result (eV/A, (n_atoms, 3); zeros when the
    split does not split)."""
    slow = slow_forces(split, result)
    if not split.splits:
        return np.zeros_like(slow)
    return slow - fast_forces(split, result)


class _OneModel:
    """A split on one model (:attr:`fast_model` is ``None``)."""

    mode: str
    fast_head: str
    slow_head: str
    fast_model: Optional[ForceModel] = None

    def __init__(self, model: ForceModel):
        self.model = model

    @property
    def splits(self) -> bool:
        return self.fast_head != self.slow_head

    def check(self, atoms: ase.Atoms) -> List[str]:
        self.model.check(atoms)
        return []

    def describe(self) -> Dict[str, Any]:
        return {
            "forces": self.mode,
            "slow": self.model.source,
            "fast": None,
            "inner_head": self.fast_head,
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.model.source!r})"


class _OneKind(_OneModel):
    """Plain velocity Verlet with one force kind (``mode``, which the model must
    have): every call is the same one."""

    def __init__(self, model: ForceModel):
        super().__init__(model)
        model.require(self.mode)

    def _call(self, atoms, where) -> ForceResult:
        raise NotImplementedError

    def fast(self, atoms: ase.Atoms, where: Optional[str] = None) -> ForceResult:
        return self._call(atoms, where)

    def slow(self, atoms: ase.Atoms, where: Optional[str] = None) -> ForceResult:
        return self._call(atoms, where)

    def both(self, atoms: ase.Atoms, where: Optional[str] = None) -> ForceResult:
        return self._call(atoms, where)


class ConservativeSplit(_OneKind):
    """Conservative forces ``-dE/dr`` of one model, fast == slow. A hybrid
    metatomic model also returns its direct head (free on the same pass; for the
    ``|F_c - F_nc|`` monitors).

    :raises UserInputError: the model has no conservative forces.
    """

    mode = CONSERVATIVE
    fast_head = slow_head = CONSERVATIVE

    def __init__(self, model: ForceModel):
        super().__init__(model)
        self._direct = model.kind == "metatomic" and model.has_direct

    def _call(self, atoms, where) -> ForceResult:
        return self.model.evaluate(
            atoms, conservative=True, direct=self._direct, where=where
        )


class DirectSplit(_OneKind):
    """Direct forces of one model (forward passes only), fast == slow.

    :raises UserInputError: the model has no direct head.
    """

    mode = DIRECT
    fast_head = slow_head = DIRECT

    def _call(self, atoms, where) -> ForceResult:
        return self.model.evaluate(atoms, conservative=False, direct=True, where=where)


class HybridSplit(_OneModel):
    """One model with both heads (``pet_m``): fast = the direct head (a forward
    pass), slow = ``-dE/dr`` (with the backward pass); ``both`` is one call.

    :raises UserInputError: the model has no direct head, or its conservative forces
        were never trained (``pet_nc``).
    """

    mode = MTS
    fast_head = DIRECT
    slow_head = CONSERVATIVE

    def __init__(self, model: ForceModel):
        ForcePair(model)  # its checks: trained conservative forces, a direct head
        super().__init__(model)

    def fast(self, atoms: ase.Atoms, where: Optional[str] = None) -> ForceResult:
        return self.model.evaluate(atoms, conservative=False, direct=True, where=where)

    def slow(self, atoms: ase.Atoms, where: Optional[str] = None) -> ForceResult:
        return self.model.evaluate(atoms, conservative=True, direct=False, where=where)

    def both(self, atoms: ase.Atoms, where: Optional[str] = None) -> ForceResult:
        return self.model.evaluate(atoms, conservative=True, direct=True, where=where)


class PairSplit:
    """A slow model (the teacher: energy and conservative forces) and a fast one (a
    student: its direct head, or its forces if it has none). The fast forces are in
    ``result.direct`` whichever head of the fast model gives them; ``both`` calls the
    fast model, then the slow one.

    :raises UserInputError: the slow model has no trained conservative forces
        (:class:`~.pair.ForcePair`).
    """

    mode = MTS
    fast_head = DIRECT
    slow_head = CONSERVATIVE
    splits = True

    def __init__(self, slow: ForceModel, fast: ForceModel):
        self.pair = ForcePair(slow, fast)
        self.model = slow
        self.fast_model = fast
        self._inner_head = self.pair.inner_head

    def check(self, atoms: ase.Atoms) -> List[str]:
        """The slow model's structure checks, then the pair's
        (:meth:`~.pair.ForcePair.check`: the fast model's species and cutoff);
        return the pair's warnings."""
        self.model.check(atoms)
        return self.pair.check(atoms)

    def fast(self, atoms: ase.Atoms, where: Optional[str] = None) -> ForceResult:
        head = self._inner_head
        inner = self.fast_model.evaluate(
            atoms,
            conservative=head == CONSERVATIVE,
            direct=head == DIRECT,
            where=where,
        )
        return ForceResult(direct=inner.forces(head))

    def slow(self, atoms: ase.Atoms, where: Optional[str] = None) -> ForceResult:
        result = self.model.evaluate(
            atoms, conservative=True, direct=False, where=where
        )
        return ForceResult(energy=result.energy, conservative=result.conservative)

    def both(self, atoms: ase.Atoms, where: Optional[str] = None) -> ForceResult:
        result = self.fast(atoms, where)
        slow = self.slow(atoms, where)
        result.energy = slow.energy
        result.conservative = slow.conservative
        return result

    def describe(self) -> Dict[str, Any]:
        """:meth:`~.pair.ForcePair.describe` (sources, inner head, cutoffs and
        interaction ranges of both models)."""
        return self.pair.describe()

    def __repr__(self) -> str:
        return f"PairSplit({self.model.source!r}, {self.fast_model.source!r})"


def check_force_mode(forces: str, fast: Any = None) -> None:
    """Raise :class:`UserInputError` for an unknown force mode, or a fast model
    outside multiple time stepping."""
    if forces not in FORCE_MODES:
        raise UserInputError(
            f"unknown force mode '{forces}'; choose one of {list(FORCE_MODES)}"
        )
    if fast is not None and forces != MTS:
        raise UserInputError(
            f"a fast model (--fast) drives the inner steps of multiple time "
            f"stepping: use --forces mts, or drop --fast for '{forces}' forces"
        )


def force_split(
    model: Any, forces: Optional[str] = None, fast: Any = None
) -> ForceSplit:
    """The force split of ``model`` in force mode ``forces``, its models loaded once.

    :param model: a :class:`ForceSplit` (returned as it is), or anything
        :func:`~.loading.load_force_model` takes (exported ``.pt``, ``.ckpt``,
        ``module:callable``, an ASE calculator, a :class:`~.base.ForceModel`).
    :param forces: ``"mts"`` (default for a model), ``"conservative"`` or
        ``"direct"``; for a split, ``None`` or its own :attr:`ForceSplit.mode`.
    :param fast: ``"mts"`` only: a separate model of the inner steps (anything
        ``load_force_model`` takes); default: the direct head of ``model``.
    :return: :class:`HybridSplit` (mts, no ``fast``), :class:`PairSplit` (mts with
        ``fast``), :class:`ConservativeSplit` or :class:`DirectSplit`.
    :raises UserInputError: an unknown mode, ``fast`` outside mts, or a model that
        lacks what the mode needs.
    """
    from .loading import load_force_model

    if isinstance(model, ForceSplit):
        if fast is not None:
            raise UserInputError(
                "a force split already holds its fast model: give either a split or "
                "a model and its fast model"
            )
        if forces is not None and forces != model.mode:
            check_force_mode(forces)
            raise UserInputError(
                f"the force split {model!r} runs '{model.mode}' forces, not '{forces}'"
            )
        return model
    forces = MTS if forces is None else forces
    check_force_mode(forces, fast)
    slow = load_force_model(model)
    if forces == CONSERVATIVE:
        return ConservativeSplit(slow)
    if forces == DIRECT:
        return DirectSplit(slow)
    if fast is None:
        return HybridSplit(slow)
    return PairSplit(slow, load_force_model(fast))
