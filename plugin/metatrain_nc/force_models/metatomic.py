"""A metatomic model (exported ``model.pt`` or metatrain ``.ckpt``) as a
:class:`~.base.ForceModel`.

:class:`MetatomicModel` calls the model itself with metatomic ``System`` objects and
vesin's neighbour lists (a Verlet list with a skin, kept between calls, so that MD
steps rarely rebuild it):

- ``evaluate(atoms, conservative=True, direct=True)``: ONE forward pass returning
  ``energy`` and ``non_conservative_force``, then one backward pass of the energy for
  ``-dE/dr``: what a multiple-time-step outer step needs;
- ``evaluate(atoms, conservative=False, direct=True)``: forward pass only, under
  ``torch.no_grad()``: the inner steps.

Direct forces have their mean removed (zero net force per structure), as metatomic's
ASE calculator does. Outputs are requested in eV, eV/A and eV/A^3 whatever the model's
own units. ``float64=True`` converts a checkpoint (or in-memory metatrain model) before
export; an exported float32 ``.pt`` cannot be converted (a clear error says so).
"""

import os
from typing import List, Optional, Sequence, Union

import ase
import numpy as np
import torch

from ..errors import UserInputError
from ..model_loading import load_exported_model
from .base import ForceModel, ForceResult, StructureForces
from .names import CONSERVATIVE, DIRECT, DIRECT_FORCE, DIRECT_STRESS, ENERGY

ModelSource = Union[str, os.PathLike, torch.nn.Module]


class MetatomicModel(ForceModel):
    """Energies, forces and Jacobians of a metatomic model.

    :param model: path to ``model.pt`` or a metatrain ``.ckpt``, or a model object
        (``AtomisticModel`` or a metatrain model with ``export()``).
    :param float64: evaluate in float64 (checkpoints and metatrain models only).
    :param device: torch device (``"cpu"``).
    :param neighbor_skin: Verlet skin (A) of the neighbour lists of :meth:`evaluate`.
    """

    kind = "metatomic"

    def __init__(
        self,
        model: ModelSource,
        float64: bool = False,
        device: str = "cpu",
        neighbor_skin: float = 0.5,
    ):
        super().__init__()
        from metatomic.torch import ModelEvaluationOptions, ModelOutput
        from vesin.metatomic import NeighborList

        model, self.source = load_exported_model(model, float64=float64)
        capabilities = model.capabilities()
        if float64 and capabilities.dtype != "float64":
            raise UserInputError(
                f"model '{self.source}' is an exported {capabilities.dtype} model; "
                "float64 evaluation needs its checkpoint (.ckpt) or a float64 export"
            )
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.outputs: List[str] = sorted(capabilities.outputs.keys())
        self.units = {"length": str(capabilities.length_unit)}
        for key, output in (("energy", ENERGY), ("direct_forces", DIRECT_FORCE)):
            if output in capabilities.outputs:
                self.units[key] = str(capabilities.outputs[output].unit)
        self.atomic_types = sorted(int(t) for t in capabilities.atomic_types)
        self.dtype = str(capabilities.dtype)
        self.torch_dtype = getattr(torch, capabilities.dtype)
        self.architecture = str(model.metadata().extra.get("architecture", ""))
        if not self.architecture and self.source.endswith(".ckpt"):
            from ..checkpoint_name import architecture_of  # stock `pet` says nothing

            self.architecture = architecture_of(self.source) or ""
        if ENERGY not in self.outputs and DIRECT_FORCE not in self.outputs:
            raise UserInputError(
                f"model '{self.source}' has neither an 'energy' nor a "
                f"'{DIRECT_FORCE}' output (it has {self.outputs}): it gives no forces"
            )
        if ENERGY not in self.outputs:
            raise UserInputError(
                f"model '{self.source}' has no 'energy' output (it has {self.outputs})"
            )
        self.heads = [CONSERVATIVE] + ([DIRECT] if DIRECT_FORCE in self.outputs else [])
        self.has_direct_stress = DIRECT_STRESS in self.outputs
        extra = self.model.requested_inputs(use_new_names=True)
        if extra:
            raise UserInputError(
                f"models requesting extra inputs ({sorted(extra)}) are not supported"
            )
        self.neighbor_options = list(self.model.requested_neighbor_lists())
        self._neighbors = [
            NeighborList(options, length_unit="angstrom", skin=neighbor_skin)
            for options in self.neighbor_options
        ]
        self.requests = {
            # explicit units: metatomic converts from the model's own (kcal/mol...)
            ENERGY: ModelOutput(unit="eV", sample_kind="system"),
            DIRECT_FORCE: ModelOutput(unit="eV/A", sample_kind="atom"),
            DIRECT_STRESS: ModelOutput(unit="eV/A^3", sample_kind="system"),
        }
        self._options_cls = ModelEvaluationOptions

    @property
    def cutoff(self) -> float:
        """Largest neighbour-list cutoff the model asks for (A)."""
        return max((float(o.cutoff) for o in self.neighbor_options), default=0.0)

    def options(self, names: Sequence[str]):
        """``ModelEvaluationOptions`` requesting ``names`` in eV-based units."""
        return self._options_cls(
            length_unit="angstrom", outputs={n: self.requests[n] for n in names}
        )

    def system(self, atoms: ase.Atoms, positions: torch.Tensor, cell: torch.Tensor):
        """A metatomic ``System`` with the (Verlet-skin) neighbour lists attached."""
        from metatomic.torch import System

        types = torch.tensor(atoms.numbers, dtype=torch.int32, device=self.device)
        pbc = torch.tensor(atoms.pbc, dtype=torch.bool, device=self.device)
        system = System(types, positions, cell, pbc)
        for calculator in self._neighbors:
            calculator.add_neighbor_list(system, copy=True)
        return system

    def _evaluate(
        self, atoms: ase.Atoms, conservative: bool, direct: bool, stress: bool
    ) -> ForceResult:
        if direct:
            self.require_direct()
        stress = bool(stress and np.all(atoms.pbc))
        if stress and not conservative and not self.has_direct_stress:
            raise UserInputError(
                f"model '{self.source}' has no '{DIRECT_STRESS}' output"
            )
        names = [ENERGY]
        if direct:
            names.append(DIRECT_FORCE)
        if stress and not conservative:
            names.append(DIRECT_STRESS)
        dtype, device = self.torch_dtype, self.device
        positions = torch.tensor(atoms.positions, dtype=dtype, device=device)
        cell = torch.tensor(np.asarray(atoms.cell), dtype=dtype, device=device)
        result = ForceResult()
        with torch.set_grad_enabled(conservative):
            strain = None
            positions_in, cell_in = positions, cell
            if conservative:
                positions.requires_grad_(True)
                if stress:
                    strain = torch.eye(3, dtype=dtype, device=device).requires_grad_()
                    positions_in, cell_in = positions @ strain, cell @ strain
            system = self.system(atoms, positions_in, cell_in)
            outputs = self.model([system], self.options(names), check_consistency=False)
            self.n_forward += 1
            energy = outputs[ENERGY].block().values.reshape(())
            if conservative:
                inputs = [positions] if strain is None else [positions, strain]
                grads = torch.autograd.grad(energy, inputs)
                self.n_backward += 1
                result.conservative = -_numpy(grads[0])
                if strain is not None:
                    volume = abs(float(np.linalg.det(np.asarray(atoms.cell))))
                    result.stress = _numpy(grads[1]) / volume
            result.energy = float(energy.detach())
            if direct:
                forces = _numpy(outputs[DIRECT_FORCE].block().values).reshape(-1, 3)
                result.direct = forces - forces.mean(axis=0, keepdims=True)
            if stress and not conservative:
                values = outputs[DIRECT_STRESS].block().values
                result.stress = _numpy(values).reshape(3, 3)
        return result

    def structure_forces(
        self, atoms: ase.Atoms, output: str, where: Optional[str] = None
    ) -> "TorchForces":
        head = self._require_output(output)
        return TorchForces(
            self, atoms, CONSERVATIVE if head == CONSERVATIVE else DIRECT_FORCE, where
        )

    def describe(self):
        data = super().describe()
        data["name"] = self.model.metadata().name
        data["outputs"] = list(self.outputs)
        return data


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy().astype(np.float64)


class TorchForces(StructureForces):
    """Forces of one structure as a differentiable torch function of its positions.

    Neighbour lists are built without a skin, by vesin's metatomic calculator, which
    registers the pair vectors in the autograd graph; conservative forces are computed
    with ``create_graph`` on request, so that they can be differentiated once more.

    :ivar positions: reference positions, torch tensor (N, 3), A, model dtype.
    :ivar dtype: the model's torch dtype.
    """

    differentiable = True
    #: run TorchScript's optimizing executor (off: faster backward passes on CPU)
    jit_optimized: bool = False

    def __init__(
        self,
        model: MetatomicModel,
        atoms: ase.Atoms,
        output: str,
        where: Optional[str] = None,
    ):
        from vesin.metatomic import NeighborList

        super().__init__(atoms, output, where)
        self.model = model
        self.dtype = model.torch_dtype
        self._key = ENERGY if output == CONSERVATIVE else DIRECT_FORCE
        self._options = model.options([self._key])
        self._nl = [
            NeighborList(options, length_unit="angstrom")
            for options in model.neighbor_options
        ]
        self.types = torch.tensor(atoms.numbers, dtype=torch.int32)
        self.cell = torch.tensor(np.asarray(atoms.cell.array), dtype=self.dtype)
        self.pbc = torch.tensor(atoms.pbc, dtype=torch.bool)
        self.positions = torch.tensor(atoms.positions, dtype=self.dtype)

    def _system(self, positions: torch.Tensor):
        from metatomic.torch import System

        system = System(self.types, positions, self.cell, self.pbc)
        for calculator in self._nl:
            calculator.add_neighbor_list(system, copy=True)
        return system

    def forces_batch(
        self, positions: Sequence[torch.Tensor], create_graph: bool = False
    ) -> List[torch.Tensor]:
        """Forces (eV/A) for several position tensors (each (N, 3), A) in one call.

        The result stays connected to the autograd graph of the inputs; with
        ``create_graph`` the conservative forces are themselves differentiable.
        """
        return forces_of_structures([self] * len(positions), positions, create_graph)

    def forces(self, positions: torch.Tensor, create_graph: bool = False):
        """Forces (eV/A, shape (N, 3)) at ``positions`` (A, shape (N, 3))."""
        return self.forces_batch([positions], create_graph=create_graph)[0]

    def forces_numpy(
        self, positions: Sequence[np.ndarray], batch_size: int = 8
    ) -> List[np.ndarray]:
        out: List[np.ndarray] = []
        grad = self.output == CONSERVATIVE
        for start in range(0, len(positions), batch_size):
            chunk = [
                torch.tensor(p, dtype=self.dtype, requires_grad=grad)
                for p in positions[start : start + batch_size]
            ]
            with torch.set_grad_enabled(grad):
                forces = self.forces_batch(chunk, create_graph=False)
            out.extend(_numpy(f) for f in forces)
        return out


def forces_of_structures(
    structures: Sequence[TorchForces],
    positions: Sequence[torch.Tensor],
    create_graph: bool = False,
) -> List[torch.Tensor]:
    """Forces (eV/A) of several structures from ONE model call.

    ``structures[k]`` gives species, cell and periodicity of the k-th system and
    ``positions[k]`` (N_k x 3, A) its positions; all must be :class:`TorchForces` of
    the same model and output. Each result stays connected to its own positions
    (with ``create_graph``, conservative forces are differentiable once more), so
    one backward pass through the results reaches every structure at once.
    """
    first = structures[0]
    for other in structures[1:]:
        if other.model is not first.model or other.output != first.output:
            raise ValueError("structures evaluated together need one model and output")
    systems = [s._system(p) for s, p in zip(structures, positions, strict=True)]
    # TorchScript's optimizing executor records autodiff subgraphs whose backward
    # is ~3x slower on CPU (measured on PET, benchmarks/antisymmetry_exact.py) and
    # re-profiles for every new shape: the plain interpreter is faster here.
    with torch.jit.optimized_execution(first.jit_optimized):
        result = first.model.model(systems, first._options, check_consistency=False)
    first.model.n_forward += 1
    values = result[first._key].block().values
    if first.output == CONSERVATIVE:
        grads = torch.autograd.grad(
            values.sum(), list(positions), create_graph=create_graph
        )
        first.model.n_backward += 1
        return [-g for g in grads]
    sizes = [s.n_atoms for s in structures]
    return list(values.reshape(-1, 3).split(sizes, dim=0))
