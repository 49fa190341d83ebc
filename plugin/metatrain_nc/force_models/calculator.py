"""One force head of a :class:`~.base.ForceModel` as an ASE calculator (for ASE's
optimisers and integrators).

The calculator reports exactly the head it was made for: results stored from an
evaluation that lacks that head leave ``forces`` out, so that ASE asks again and gets
the right ones, instead of another head's forces under the same name.
"""

from typing import Any, Dict, Optional, Sequence

import ase
from ase.calculators.calculator import Calculator, all_changes
from ase.stress import full_3x3_to_voigt_6_stress

from ..errors import UserInputError
from .base import ForceResult
from .loading import load_force_model
from .names import CONSERVATIVE, DIRECT


class ModelCalculator(Calculator):
    """ASE calculator for one force head of a model.

    :param model: a :class:`~.base.ForceModel` or anything
        :func:`~.loading.load_force_model` takes.
    :param forces: ``"conservative"`` (``-dE/dr``) or ``"direct"`` (the direct head;
        forward pass only). The energy is the model's energy in both.

    The last :class:`~.base.ForceResult` is ``self.last``. Results can also be stored
    from outside with :meth:`store` (to avoid evaluating twice).
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, model: Any, forces: str = CONSERVATIVE, **kwargs: Any):
        super().__init__(**kwargs)
        if forces not in (CONSERVATIVE, DIRECT):
            raise UserInputError(
                f"force mode must be 'conservative' or 'direct', got '{forces}'"
            )
        self.provider = load_force_model(model)
        self.mode = forces
        self.provider.require(forces)
        self.last: Optional[ForceResult] = None

    def calculate(
        self,
        atoms: Optional[ase.Atoms] = None,
        properties: Sequence[str] = ("energy",),
        system_changes: Sequence[str] = all_changes,
    ) -> None:
        super().calculate(atoms, properties, system_changes)
        conservative = self.mode == CONSERVATIVE
        result = self.provider.evaluate(
            self.atoms,
            conservative=conservative,
            direct=not conservative,
            stress="stress" in properties,
        )
        self.store(self.atoms, result)

    def store(self, atoms: ase.Atoms, result: ForceResult) -> None:
        """Cache ``result`` as the results for ``atoms`` at their current positions
        (the forces only if ``result`` holds this calculator's head)."""
        self.atoms = atoms.copy()
        self.last = result
        results: Dict[str, Any] = {
            "energy": result.energy,
            "free_energy": result.energy,
        }
        forces = result.forces(self.mode)
        if forces is not None:
            results["forces"] = forces
        if result.stress is not None and forces is not None:
            results["stress"] = full_3x3_to_voigt_6_stress(result.stress)
        self.results = results
