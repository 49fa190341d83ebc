"""The one interface every tool asks a model through.

A :class:`ForceModel` turns an ASE structure into energies and forces, whatever is
behind it (a metatomic model, an ASE calculator):

- :meth:`ForceModel.evaluate` returns a :class:`ForceResult` with the heads asked for
  (``conservative`` ``-dE/dr``, ``direct`` forces, stress), from as few model calls as
  the kind allows (a metatomic model gives both heads from one forward pass). It is
  the one place where every tool's results are checked: a NaN or infinite energy,
  force or stress raises :class:`~metatrain_nc.errors.NonFiniteError`, an ASE
  calculator that raises gives :class:`~metatrain_nc.errors.ModelError`; both name
  the model and the structure in one line (:func:`check_finite`);
- :meth:`ForceModel.structure_forces` returns the forces of one structure as a
  function of its positions (:class:`StructureForces`), which the antisymmetry
  evaluator differentiates: exactly (vector-Jacobian products) when the kind is
  differentiable, else by central finite differences.

Units everywhere: positions in A, energies in eV, forces in eV/A, stress in eV/A^3
(ASE's sign convention: ``(1/V) dE/d(strain)``), Jacobians in eV/A^2.
"""

import abc
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

import ase
import numpy as np

from ..errors import ModelError, NonFiniteError, UserInputError
from .names import CONSERVATIVE, DIRECT, head_of_output
from .structures import check_structure, describe_structure


@dataclass
class ForceResult:
    """What one evaluation returned (``None`` for what was not asked).

    :ivar energy: potential energy (eV).
    :ivar conservative: ``-dE/dr``, shape ``(N, 3)``, eV/A.
    :ivar direct: direct forces, shape ``(N, 3)``, eV/A.
    :ivar stress: stress, shape ``(3, 3)``, eV/A^3 (conservative if conservative forces
        were computed, else the direct stress).
    """

    energy: Optional[float] = None
    conservative: Optional[np.ndarray] = None
    direct: Optional[np.ndarray] = None
    stress: Optional[np.ndarray] = None

    def forces(self, head: str) -> Optional[np.ndarray]:
        """The forces of ``head`` (``"conservative"`` or ``"direct"``)."""
        return self.conservative if head == CONSERVATIVE else self.direct

    def non_finite(self) -> List[str]:
        """What holds NaN or infinite values, among ``"energy"``,
        ``"conservative"``, ``"direct"`` (forces) and ``"stress"``; empty when all is
        finite."""
        bad = []
        if self.energy is not None and not np.isfinite(self.energy):
            bad.append("energy")
        for name in ("conservative", "direct", "stress"):
            values = getattr(self, name)
            if values is not None and not np.all(np.isfinite(values)):
                bad.append(name)
        return bad


#: how :func:`check_finite` names what is not finite: (name, what it is)
_NAMES = {
    "energy": ("energy", ""),
    "conservative": ("forces", "-dE/dr; "),
    "direct": ("direct forces", ""),
    "stress": ("stress", ""),
}


def check_finite(result: ForceResult, source: str, where: str) -> ForceResult:
    """Return ``result`` if every value it holds is finite.

    :param source: the model, as reports name it (path, ``module:callable``).
    :param where: the structure (``"structure 3"``, ``"the MD structure at step
        12"``).
    :raises NonFiniteError: one line naming the model, the structure and what is
        not finite (with the number of non-finite components of arrays).
    """
    bad = result.non_finite()
    if not bad:
        return result
    details = []
    for name in bad:
        values = getattr(result, name)
        text, what = _NAMES[name]
        if name != "energy":
            count = int(np.size(values) - np.count_nonzero(np.isfinite(values)))
            text += f" ({what}{count} of {np.size(values)} components)"
        details.append(text)
    raise NonFiniteError(
        f"model '{source}' returned non-finite {', '.join(details)} for {where}; "
        "nothing is computed from them",
        quantities=bad,
    )


class StructureForces(abc.ABC):
    """Forces of one structure as a function of its positions (species, cell and
    periodicity fixed), for Jacobians and closed-loop work.

    :ivar atoms: the reference structure.
    :ivar n_atoms: N.
    :ivar output: ``"non_conservative_force"`` or ``"conservative"``.
    :ivar differentiable: whether :meth:`forces` is a torch function of the positions
        (exact VJPs); if not, only :meth:`forces_numpy` exists.
    :ivar where: how the structure is named in errors.
    """

    differentiable: bool = False

    def __init__(self, atoms: ase.Atoms, output: str, where: Optional[str] = None):
        self.atoms = atoms
        self.n_atoms = len(atoms)
        self.output = output
        self.where = where or describe_structure(atoms)

    @abc.abstractmethod
    def forces_numpy(
        self, positions: Sequence[np.ndarray], batch_size: int = 8
    ) -> List[np.ndarray]:
        """Forces (eV/A, each (N, 3)) at several configurations (each (N, 3), A)."""

    def forces(self, positions, create_graph: bool = False):
        """Differentiable forces (only when :attr:`differentiable`)."""
        raise UserInputError(
            "this model's forces are not differentiable (an ASE calculator): its "
            "Jacobian comes from finite differences; exact vector-Jacobian products "
            "and the stochastic estimator need a metatomic model"
        )


class ForceModel(abc.ABC):
    """A model as the tools see it. Subclasses set the attributes below and implement
    :meth:`_evaluate` (what :meth:`evaluate` returns before its checks) and
    :meth:`structure_forces`.

    :ivar kind: ``"metatomic"`` or ``"ase"``.
    :ivar source: where it came from (path, ``module:callable``, a repr).
    :ivar heads: the force heads it can compute, from :data:`~.names.HEADS`.
    :ivar atomic_types: atomic numbers it knows (``None``: any).
    :ivar dtype: ``"float32"`` or ``"float64"``.
    :ivar units: the declared ``length`` and ``energy`` units (and a metatomic
        model's ``direct_forces`` unit); every result is converted to eV and A.
    :ivar n_forward: model calls so far (forward passes).
    :ivar n_backward: backward passes so far (gradients of the energy).
    """

    kind: str = ""
    source: str = ""
    heads: List[str]
    atomic_types: Optional[List[int]] = None
    dtype: str = "float64"
    units: Dict[str, str] = {"length": "angstrom", "energy": "eV"}
    has_direct_stress: bool = False
    architecture: str = ""
    #: wrap what the model raises in a :class:`ModelError` naming the model and the
    #: structure (ASE calculators: their own failures, such as refusing a structure;
    #: not metatomic models, whose exceptions are bugs that need their traceback)
    wraps_errors: bool = False

    def __init__(self) -> None:
        self.n_forward = 0
        self.n_backward = 0

    # -- what it has ---------------------------------------------------------------
    @property
    def has_direct(self) -> bool:
        """Whether the model has a direct force head."""
        return DIRECT in self.heads

    @property
    def has_conservative(self) -> bool:
        """Whether the model has conservative forces (``-dE/dr``)."""
        return CONSERVATIVE in self.heads

    @property
    def trained_heads(self) -> List[str]:
        """The heads that are the model's forces: all of :attr:`heads`, except the
        energy gradient of a ``pet_nc`` model (its energy head never sees forces)."""
        if self.architecture == "pet_nc":
            return [h for h in self.heads if h != CONSERVATIVE] or list(self.heads)
        return list(self.heads)

    def require(self, head: str, fix: str = "") -> None:
        """Raise :class:`UserInputError` if the model lacks ``head``."""
        if head in self.heads:
            return
        if head == DIRECT:
            what = (
                "no direct force head (for a metatomic model: no "
                "'non_conservative_force' output; for an ASE calculator: its forces "
                "count as conservative unless you say they are direct with --direct)"
            )
        else:
            what = "no conservative forces (an ASE calculator declared direct)"
        raise UserInputError(f"model '{self.source}' has {what}{fix}")

    def require_trained(self, head: str, fix: str = "") -> None:
        """Raise :class:`UserInputError` unless ``head`` is one of the model's
        :attr:`trained_heads`: a ``pet_nc`` model has ``-dE/dr`` of its energy head,
        but that head never saw forces, so it is not a force field to learn from
        (labels) or to correct with (the slow model of multiple time stepping)."""
        self.require(head, fix)
        if head in self.trained_heads:
            return
        raise UserInputError(
            f"model '{self.source}' is a {self.architecture} model: its energy head "
            "was never trained on forces, so -dE/dr is not a force it learned "
            f"(only its direct head is){fix}"
        )

    def require_direct(self) -> None:
        """Raise :class:`UserInputError` if the model has no direct head."""
        self.require(
            DIRECT,
            ": direct and mts force modes need one (pet_nc, pet_m, or a --fast "
            "model for mts); use --forces conservative",
        )

    def check(self, atoms: ase.Atoms, where: str = "structure") -> None:
        """Raise :class:`UserInputError` for a structure this model cannot evaluate."""
        check_structure(atoms, self.atomic_types, where)

    # -- what it computes ------------------------------------------------------------
    def evaluate(
        self,
        atoms: ase.Atoms,
        conservative: bool = True,
        direct: bool = True,
        stress: bool = False,
        where: Optional[str] = None,
    ) -> ForceResult:
        """Energy and the forces asked for at the positions of ``atoms``.

        :param conservative: compute ``-dE/dr``.
        :param direct: compute the direct forces.
        :param stress: also the stress (periodic structures only): conservative when
            ``conservative``, else the direct stress.
        :param where: how the structure is named in errors (``"structure 3"``;
            default: its formula and size, :func:`~.structures.describe_structure`).
        :raises NonFiniteError: a NaN or infinite energy, force or stress.
        :raises ModelError: an ASE calculator raised (its message, wrapped with the
            model and the structure).
        """
        try:
            result = self._evaluate(atoms, conservative, direct, stress)
        except UserInputError:
            raise
        except Exception as error:
            if not self.wraps_errors:
                raise
            name = where or describe_structure(atoms)
            text = " ".join(str(error).split())  # one line, whatever it raised
            raise ModelError(
                f"model '{self.source}' failed on {name}: "
                f"{type(error).__name__}: {text}"
            ) from error
        if result.non_finite():  # named only when it fails (no cost otherwise)
            check_finite(result, self.source, where or describe_structure(atoms))
        return result

    @abc.abstractmethod
    def _evaluate(
        self, atoms: ase.Atoms, conservative: bool, direct: bool, stress: bool
    ) -> ForceResult:
        """What :meth:`evaluate` returns, before its checks (one kind of model)."""

    @abc.abstractmethod
    def structure_forces(
        self, atoms: ase.Atoms, output: str, where: Optional[str] = None
    ) -> StructureForces:
        """Forces of ``atoms`` as a function of positions, for the head named by
        ``output`` (``"non_conservative_force"``/``"direct"`` or ``"conservative"``);
        ``where`` names the structure in errors."""

    def forces(
        self, atoms: ase.Atoms, head: str, where: Optional[str] = None
    ) -> np.ndarray:
        """The forces of one head (eV/A, shape (N, 3)), checked as by
        :meth:`evaluate`."""
        self.require(head)
        result = self.evaluate(
            atoms,
            conservative=head == CONSERVATIVE,
            direct=head == DIRECT,
            where=where,
        )
        return result.forces(head)

    def describe(self) -> Dict[str, Any]:
        """What reports and summaries say about the model."""
        return {
            "source": self.source,
            "kind": self.kind,
            "architecture": self.architecture,
            "dtype": self.dtype,
            "heads": list(self.heads),
            "atomic_types": self.atomic_types,
            "units": dict(self.units),
        }

    def _require_output(self, output: str) -> str:
        head = head_of_output(output)
        self.require(head)
        return head
