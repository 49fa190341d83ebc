"""Load a model (exported ``.pt`` or metatrain checkpoint) and evaluate forces.

The central object is :class:`ForceModel`: it turns positions (a torch tensor of shape
``(N, 3)`` in Angstrom) into forces (shape ``(N, 3)`` in eV/A) as a differentiable
function, for one chosen force output:

- ``"non_conservative_force"`` (default): the model's direct force head;
- ``"conservative"``: ``-dE/dr`` of the ``energy`` output (computed with
  ``create_graph=True``, so that it can be differentiated once more).

Systems and neighbour lists are built with metatomic's ``System`` and vesin's metatomic
neighbour-list calculator, which registers the pair vectors in the autograd graph.
"""

import os
from dataclasses import dataclass
from typing import Dict, List, Sequence, Union

import ase
import numpy as np
import torch

from ..errors import UserInputError
from ..model_loading import load_exported_model

DIRECT = "non_conservative_force"
CONSERVATIVE = "conservative"

#: minimum allowed distance (A) between two atoms before they count as overlapping
MIN_DISTANCE = 0.1


@dataclass
class LoadedModel:
    """An exported metatomic model and where it came from."""

    model: torch.nn.Module  # metatomic.torch.AtomisticModel
    source: str
    dtype: torch.dtype

    @property
    def outputs(self) -> List[str]:
        """Names of the outputs the model exposes."""
        return sorted(self.model.capabilities().outputs.keys())

    @property
    def atomic_types(self) -> List[int]:
        return [int(t) for t in self.model.capabilities().atomic_types]


def load_model(
    model: Union[str, os.PathLike, torch.nn.Module, LoadedModel],
    float64: bool = False,
) -> LoadedModel:
    """Load an exported model (``.pt``), a metatrain checkpoint (``.ckpt``) or wrap a
    model already in memory (an ``AtomisticModel`` or a metatrain model with
    ``export()``).

    :param model: path or model object.
    :param float64: evaluate in float64. Checkpoints and in-memory metatrain models are
        converted before export; an exported float32 ``.pt`` cannot be converted (a
    ``UserInputError`` says so).
    :return: the loaded model.
    """

    if isinstance(model, LoadedModel):
        if float64 and model.dtype != torch.float64:
            raise UserInputError(
                f"model '{model.source}' was loaded as {model.dtype}; "
                "load it again with float64=True"
            )
        return model
    model, source = load_exported_model(model, float64=float64)
    dtype = getattr(torch, model.capabilities().dtype)
    if float64 and dtype != torch.float64:
        raise UserInputError(
            f"model '{source}' is an exported {model.capabilities().dtype} model, "
            "float64 evaluation needs its checkpoint (.ckpt) or a float64 export"
        )
    model = model.eval()
    return LoadedModel(model=model, source=source, dtype=dtype)


def check_structure(atoms: ase.Atoms, loaded: LoadedModel, index: int = 0) -> None:
    """Raise :class:`UserInputError` for structures the evaluator cannot handle.

    Checks: at least one atom, finite positions and cell, species known to the model,
    no pair of atoms closer than :data:`MIN_DISTANCE` (minimum image).
    """
    where = f"structure {index}"
    if len(atoms) == 0:
        raise UserInputError(f"{where} has no atoms")
    if not np.all(np.isfinite(atoms.positions)):
        raise UserInputError(f"{where} has NaN or infinite positions")
    if not np.all(np.isfinite(np.asarray(atoms.cell))):
        raise UserInputError(f"{where} has a NaN or infinite cell")
    if np.all(atoms.pbc) and abs(atoms.cell.volume) < 1e-6:
        raise UserInputError(f"{where} is periodic but its cell has no volume")
    known = set(loaded.atomic_types)
    unknown = sorted(set(int(z) for z in atoms.numbers) - known)
    if unknown:
        symbols = [ase.data.chemical_symbols[z] for z in unknown]
        raise UserInputError(
            f"{where} contains species {symbols} (atomic numbers {unknown}) that the "
            f"model does not know; it knows {sorted(known)}"
        )
    if len(atoms) > 1:
        from ase.neighborlist import neighbor_list

        i, j, d = neighbor_list("ijd", atoms, MIN_DISTANCE)
        if len(i) > 0:
            raise UserInputError(
                f"{where}: atoms {int(i[0])} and {int(j[0])} overlap "
                f"(distance {float(d[0]):.3g} A < {MIN_DISTANCE} A)"
            )


class ForceModel:
    """Forces of one structure as a differentiable function of its positions.

    :param loaded: the model (see :func:`load_model`).
    :param atoms: the reference structure (species, cell, periodicity are kept fixed).
    :param output: ``"non_conservative_force"`` or ``"conservative"``.
    """

    #: run TorchScript's optimizing executor (off: faster backward passes on CPU)
    jit_optimized: bool = False

    def __init__(self, loaded: LoadedModel, atoms: ase.Atoms, output: str = DIRECT):
        from metatomic.torch import ModelEvaluationOptions, ModelOutput
        from vesin.metatomic import NeighborList

        self.loaded = loaded
        self.atoms = atoms
        self.output = output
        model = loaded.model
        available = loaded.outputs
        if output == CONSERVATIVE:
            self._key = "energy"
            if "energy" not in available:
                raise UserInputError(
                    "conservative forces need an 'energy' output; the model has "
                    f"{available}"
                )
            request = {"energy": ModelOutput(unit="eV", sample_kind="system")}
        else:
            self._key = output
            if output not in available:
                raise UserInputError(
                    f"the model has no '{output}' output; it has {available}"
                )
            request = {output: ModelOutput(unit="eV/A", sample_kind="atom")}
        extra_inputs = model.requested_inputs(use_new_names=True)
        if extra_inputs:
            raise UserInputError(
                "models that request extra inputs "
                f"({sorted(extra_inputs)}) are not supported"
            )
        self._options = ModelEvaluationOptions(length_unit="angstrom", outputs=request)
        self._nl = [
            NeighborList(options, length_unit="angstrom")
            for options in model.requested_neighbor_lists()
        ]
        dtype = loaded.dtype
        self.dtype = dtype
        self.types = torch.tensor(atoms.numbers, dtype=torch.int32)
        self.cell = torch.tensor(np.asarray(atoms.cell.array), dtype=dtype)
        self.pbc = torch.tensor(atoms.pbc, dtype=torch.bool)
        self.positions = torch.tensor(atoms.positions, dtype=dtype)
        self.n_atoms = len(atoms)

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
        systems = [self._system(p) for p in positions]
        # TorchScript's optimizing executor records autodiff subgraphs whose backward
        # is ~3x slower on CPU (measured on PET, benchmarks/antisymmetry_exact.py) and
        # re-profiles for every new shape: the plain interpreter is faster here.
        with torch.jit.optimized_execution(self.jit_optimized):
            result = self.loaded.model(systems, self._options, check_consistency=False)
        values = result[self._key].block().values
        if self.output == CONSERVATIVE:
            grads = torch.autograd.grad(
                values.sum(),
                list(positions),
                create_graph=create_graph,
            )
            return [-g for g in grads]
        forces = values.reshape(-1, 3)
        return list(forces.split(self.n_atoms, dim=0))

    def forces(self, positions: torch.Tensor, create_graph: bool = False):
        """Forces (eV/A, shape (N, 3)) at ``positions`` (A, shape (N, 3))."""
        return self.forces_batch([positions], create_graph=create_graph)[0]

    def forces_numpy(
        self, positions: Sequence[np.ndarray], batch_size: int = 8
    ) -> List[np.ndarray]:
        """Forces (eV/A) at many configurations (each (N, 3), A); no graph kept."""
        out: List[np.ndarray] = []
        for start in range(0, len(positions), batch_size):
            chunk = [
                torch.tensor(
                    p, dtype=self.dtype, requires_grad=self.output == CONSERVATIVE
                )
                for p in positions[start : start + batch_size]
            ]
            with torch.set_grad_enabled(self.output == CONSERVATIVE):
                forces = self.forces_batch(chunk, create_graph=False)
            out.extend(f.detach().numpy().astype(np.float64) for f in forces)
        return out


def model_description(loaded: LoadedModel) -> Dict[str, object]:
    """What the summary says about the model."""
    metadata = loaded.model.metadata()
    return {
        "source": loaded.source,
        "name": metadata.name,
        "dtype": str(loaded.dtype).replace("torch.", ""),
        "outputs": loaded.outputs,
        "atomic_types": loaded.atomic_types,
    }
