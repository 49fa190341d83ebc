"""Conservative and direct forces of a metatomic model, from one model evaluation.

:class:`ModelForces` calls an exported metatomic model (``model.pt``) or a metatrain
checkpoint (exported on load) itself, with metatomic ``System`` objects and vesin's
neighbour lists (a Verlet list with a skin, kept between calls, so MD steps rarely
rebuild it):

- ``evaluate(atoms, conservative=True, direct=True)``: ONE forward pass returning
  ``energy`` and ``non_conservative_force``, then one backward pass of the energy for
  ``-dE/dr``: what a multiple-time-step outer step needs;
- ``evaluate(atoms, conservative=False, direct=True)``: forward pass only, under
  ``torch.no_grad()`` (no graph, no backward, no stress unless asked): the inner steps.

Direct forces have their mean removed (zero net force per structure), as metatomic's
ASE calculator does. :class:`ModelCalculator` wraps the same object as an ASE
calculator with a fixed force mode, for optimisers and ASE's own integrators.

Units: positions in Angstrom, energies in eV, forces in eV/A, stress in eV/A^3.
"""

import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Union

import ase
import ase.data
import numpy as np
import torch
from ase.calculators.calculator import Calculator, all_changes

from ..errors import UserInputError
from ..model_loading import load_exported_model

DIRECT_FORCE = "non_conservative_force"
DIRECT_STRESS = "non_conservative_stress"

#: force modes shared by the dynamics, the relaxation check and the command line
FORCE_MODES = ("conservative", "direct", "mts")


@dataclass
class ForceResult:
    """What one evaluation returned (``None`` for what was not asked).

    :ivar energy: potential energy (eV) from the ``energy`` output.
    :ivar conservative: ``-dE/dr``, shape ``(N, 3)``, eV/A.
    :ivar direct: direct forces (mean removed), shape ``(N, 3)``, eV/A.
    :ivar stress: stress, shape ``(3, 3)``, eV/A^3 (conservative if conservative forces
        were computed, else the direct stress output).
    """

    energy: Optional[float] = None
    conservative: Optional[np.ndarray] = None
    direct: Optional[np.ndarray] = None
    stress: Optional[np.ndarray] = None


def _load_atomistic_model(model: Union[str, os.PathLike, torch.nn.Module]):
    return load_exported_model(model)


class ModelForces:
    """Energies and forces of a metatomic model for ASE ``Atoms``.

    :param model: path to ``model.pt`` or a metatrain ``.ckpt``, or a model object
        (``AtomisticModel`` or a metatrain model with ``export()``).
    :param device: torch device (``"cpu"``).
    :param neighbor_skin: Verlet skin (A) of the neighbour lists.
    """

    def __init__(
        self,
        model: Union[str, os.PathLike, torch.nn.Module],
        device: str = "cpu",
        neighbor_skin: float = 0.5,
    ):
        from metatomic.torch import ModelEvaluationOptions, ModelOutput
        from vesin.metatomic import NeighborList

        self.model, self.source = _load_atomistic_model(model)
        self.model = self.model.to(device)
        self.device = torch.device(device)
        capabilities = self.model.capabilities()
        self.outputs: List[str] = sorted(capabilities.outputs.keys())
        self.atomic_types: List[int] = [int(t) for t in capabilities.atomic_types]
        self.dtype = getattr(torch, capabilities.dtype)
        if "energy" not in self.outputs:
            raise UserInputError(
                f"model '{self.source}' has no 'energy' output (it has {self.outputs})"
            )
        extra = self.model.requested_inputs(use_new_names=True)
        if extra:
            raise UserInputError(
                f"models requesting extra inputs ({sorted(extra)}) are not supported"
            )
        self._neighbors = [
            NeighborList(options, length_unit="angstrom", skin=neighbor_skin)
            for options in self.model.requested_neighbor_lists()
        ]
        self._request = {
            # explicit units: metatomic converts from the model's own (kcal/mol...)
            "energy": ModelOutput(unit="eV", sample_kind="system"),
            DIRECT_FORCE: ModelOutput(unit="eV/A", sample_kind="atom"),
            DIRECT_STRESS: ModelOutput(unit="eV/A^3", sample_kind="system"),
        }
        self._options_cls = ModelEvaluationOptions
        #: number of model evaluations (forward passes) and backward passes so far
        self.n_forward = 0
        self.n_backward = 0

    @property
    def has_direct(self) -> bool:
        """Whether the model exposes ``non_conservative_force``."""
        return DIRECT_FORCE in self.outputs

    @property
    def has_direct_stress(self) -> bool:
        """Whether the model exposes ``non_conservative_stress``."""
        return DIRECT_STRESS in self.outputs

    def require_direct(self) -> None:
        """Raise :class:`UserInputError` if the model has no direct force output."""
        if not self.has_direct:
            raise UserInputError(
                f"model '{self.source}' has no '{DIRECT_FORCE}' output (it has "
                f"{self.outputs}): direct and mts force modes need a model with a "
                "direct force head (pet_nc, pet_m); use --forces conservative"
            )

    def check_atoms(self, atoms: ase.Atoms, where: str = "structure") -> None:
        """Raise :class:`UserInputError` for structures the model cannot evaluate."""
        if len(atoms) == 0:
            raise UserInputError(f"{where} has no atoms")
        if not np.all(np.isfinite(atoms.positions)):
            raise UserInputError(f"{where} has NaN or infinite positions")
        if not np.all(np.isfinite(np.asarray(atoms.cell))):
            raise UserInputError(f"{where} has a NaN or infinite cell")
        unknown = sorted(set(int(z) for z in atoms.numbers) - set(self.atomic_types))
        if unknown:
            symbols = [ase.data.chemical_symbols[z] for z in unknown]
            raise UserInputError(
                f"{where} contains species {symbols} that the model does not know; "
                f"it knows atomic numbers {self.atomic_types}"
            )
        if any(atoms.pbc) and not all(atoms.pbc):
            raise UserInputError(f"{where} is periodic in some directions only")

    def _system(self, atoms: ase.Atoms, positions: torch.Tensor, cell: torch.Tensor):
        from metatomic.torch import System

        types = torch.tensor(atoms.numbers, dtype=torch.int32, device=self.device)
        pbc = torch.tensor(atoms.pbc, dtype=torch.bool, device=self.device)
        system = System(types, positions, cell, pbc)
        for calculator in self._neighbors:
            calculator.add_neighbor_list(system, copy=True)
        return system

    def evaluate(
        self,
        atoms: ase.Atoms,
        conservative: bool = True,
        direct: bool = True,
        stress: bool = False,
    ) -> ForceResult:
        """Evaluate the model once for ``atoms``.

        :param atoms: the structure (positions in A).
        :param conservative: compute ``-dE/dr`` (one backward pass).
        :param direct: also return the direct forces (the same forward pass).
        :param stress: also return the stress: conservative (strain derivative) when
            ``conservative``, else the model's direct stress output.
        :return: a :class:`ForceResult`.
        """
        if direct:
            self.require_direct()
        periodic = bool(np.all(atoms.pbc))
        stress = bool(stress and periodic)
        if stress and not conservative and not self.has_direct_stress:
            raise UserInputError(
                f"model '{self.source}' has no '{DIRECT_STRESS}' output"
            )
        names = ["energy"]
        if direct:
            names.append(DIRECT_FORCE)
        if stress and not conservative:
            names.append(DIRECT_STRESS)
        options = self._options_cls(
            length_unit="angstrom", outputs={n: self._request[n] for n in names}
        )
        positions = torch.tensor(atoms.positions, dtype=self.dtype, device=self.device)
        cell = torch.tensor(
            np.asarray(atoms.cell), dtype=self.dtype, device=self.device
        )
        result = ForceResult()
        with torch.set_grad_enabled(conservative):
            strain = None
            if conservative:
                positions.requires_grad_(True)
                if stress:
                    strain = torch.eye(
                        3, dtype=self.dtype, device=self.device, requires_grad=True
                    )
                    positions_in = positions @ strain
                    cell_in = cell @ strain
                else:
                    positions_in, cell_in = positions, cell
            else:
                positions_in, cell_in = positions, cell
            system = self._system(atoms, positions_in, cell_in)
            outputs = self.model([system], options, check_consistency=False)
            self.n_forward += 1
            energy = outputs["energy"].block().values.reshape(())
            if conservative:
                inputs = [positions] if strain is None else [positions, strain]
                grads = torch.autograd.grad(energy, inputs)
                self.n_backward += 1
                result.conservative = -grads[0].detach().cpu().numpy().astype(float)
                if strain is not None:
                    volume = abs(float(np.linalg.det(np.asarray(atoms.cell))))
                    result.stress = grads[1].detach().cpu().numpy() / volume
            result.energy = float(energy.detach())
            if direct:
                forces = outputs[DIRECT_FORCE].block().values.detach().reshape(-1, 3)
                forces = forces.cpu().numpy().astype(float)
                result.direct = forces - forces.mean(axis=0, keepdims=True)
            if stress and not conservative:
                values = outputs[DIRECT_STRESS].block().values.detach()
                result.stress = values.reshape(3, 3).cpu().numpy().astype(float)
        return result


def load_force_model(
    model: Union[str, os.PathLike, torch.nn.Module, ModelForces], **kwargs: Any
) -> ModelForces:
    """A :class:`ModelForces` from a path or model object (passed through if already
    one)."""
    if isinstance(model, ModelForces):
        return model
    return ModelForces(model, **kwargs)


class ModelCalculator(Calculator):
    """ASE calculator for one force mode of a :class:`ModelForces`.

    :param model: a :class:`ModelForces` or anything :func:`load_force_model` takes.
    :param forces: ``"conservative"`` (``-dE/dr``) or ``"direct"`` (the direct head;
        forward pass only). The energy is the model's ``energy`` output in both.
    :param stress: compute the stress when asked for (periodic structures).

    ``calculation_results[-1]`` style access is not kept; the last :class:`ForceResult`
    is ``self.last``. Results can also be stored from outside with :meth:`store` (the
    multiple-time-step integrator does so, to avoid evaluating twice).
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(
        self,
        model: Union[str, os.PathLike, torch.nn.Module, ModelForces],
        forces: str = "conservative",
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if forces not in ("conservative", "direct"):
            raise UserInputError(
                f"force mode must be 'conservative' or 'direct', got '{forces}'"
            )
        self.provider = load_force_model(model)
        self.mode = forces
        if forces == "direct":
            self.provider.require_direct()
        self.last: Optional[ForceResult] = None

    def calculate(
        self,
        atoms: Optional[ase.Atoms] = None,
        properties: Sequence[str] = ("energy",),
        system_changes: Sequence[str] = all_changes,
    ) -> None:
        super().calculate(atoms, properties, system_changes)
        conservative = self.mode == "conservative"
        result = self.provider.evaluate(
            self.atoms,
            conservative=conservative,
            direct=not conservative,
            stress="stress" in properties,
        )
        self.store(self.atoms, result)

    def store(self, atoms: ase.Atoms, result: ForceResult) -> None:
        """Cache ``result`` as the results for ``atoms`` at their current positions."""
        self.atoms = atoms.copy()
        self.last = result
        forces = result.conservative if self.mode == "conservative" else result.direct
        if forces is None:
            forces = result.conservative if result.direct is None else result.direct
        results: Dict[str, Any] = {
            "energy": result.energy,
            "free_energy": result.energy,
            "forces": forces,
        }
        if result.stress is not None:
            results["stress"] = _full_to_voigt(result.stress)
        self.results = results


def _full_to_voigt(stress: np.ndarray) -> np.ndarray:
    s = np.asarray(stress)
    return np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])
