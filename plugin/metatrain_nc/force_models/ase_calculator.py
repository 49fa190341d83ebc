"""Any ASE calculator as a :class:`~.base.ForceModel`.

ASE has no standard way to say whether a calculator's forces are the gradient of its
energy, so they count as conservative unless the user says they are direct
(``direct=True``, ``--direct`` on the command line). Either way the calculator gives
one force head. Jacobians come from central finite differences of the forces
(:class:`FiniteDifferenceForces`): there is no ``J^T v`` without autograd.

On the command line a calculator is named ``module:callable``, as uvicorn names an
app: ``callable`` (a dotted path inside ``module`` is allowed) is imported from
``module`` (found on ``PYTHONPATH`` or in the current folder) and called without
arguments; it must return an ASE ``Calculator``.
"""

import importlib
import os
import re
import sys
from typing import Any, List, Optional, Sequence

import ase
import numpy as np
from ase.calculators.calculator import BaseCalculator
from ase.stress import voigt_6_to_full_3x3_stress

from ..errors import UserInputError
from .base import ForceModel, ForceResult, StructureForces
from .names import CONSERVATIVE, DIRECT, head_of_output

#: ``package.module:factory`` or ``module:object.factory``
FACTORY_PATTERN = re.compile(
    r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$"
)


def is_factory_spec(text: str) -> bool:
    """Whether ``text`` looks like ``module:callable`` (and not like a file path)."""
    return bool(FACTORY_PATTERN.match(str(text)))


def calculator_from_factory(spec: str) -> BaseCalculator:
    """Import ``module:callable``, call it, and check that it returned a calculator.

    :raises UserInputError: the module does not import, the name is missing or not
        callable, the call fails, or it returns something that is not a calculator.
    """
    module_name, _, attribute = spec.partition(":")
    try:
        target: Any = _import_from_here(module_name)
    except Exception as error:
        raise UserInputError(
            f"'{spec}' is not a model file, and as module:callable its module "
            f"'{module_name}' cannot be imported ({error}): give the path of a "
            ".pt/.ckpt file, or a module importable from PYTHONPATH or the current "
            "folder"
        ) from error
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise UserInputError(
                f"'{spec}': module '{module_name}' has no attribute '{attribute}'"
            )
        target = getattr(target, part)
    if not callable(target):
        raise UserInputError(
            f"'{spec}' is not callable ({type(target).__name__}): name a function "
            "(or class) that returns an ASE calculator"
        )
    try:
        calculator = target()
    except Exception as error:
        raise UserInputError(f"calling '{spec}()' failed: {error}") from error
    if not isinstance(calculator, BaseCalculator):
        raise UserInputError(
            f"'{spec}()' returned {type(calculator).__name__}, not an ASE calculator"
        )
    return calculator


def _import_from_here(module_name: str) -> Any:
    """Import ``module_name`` from ``sys.path`` or, as ``python -m`` and uvicorn do,
    from the current folder; the current folder is on the path only during the
    import (no lasting ``sys.path`` change)."""
    here = os.getcwd()
    added = here not in sys.path and "" not in sys.path and "." not in sys.path
    if added:
        sys.path.insert(0, here)
    try:
        return importlib.import_module(module_name)
    finally:
        if added and here in sys.path:
            sys.path.remove(here)


class CalculatorModel(ForceModel):
    """Energies and forces of an ASE calculator.

    :param calculator: the calculator (evaluated on copies of the structures, never
        attached to the user's atoms).
    :param direct: its forces are direct (not ``-dE/dr``); default conservative.
    :param source: how the model is named in reports (default: the class name).
    """

    kind = "ase"
    wraps_errors = True  # a calculator's own failures: wrapped with model, structure

    def __init__(
        self, calculator: BaseCalculator, direct: bool = False, source: str = ""
    ):
        super().__init__()
        if not isinstance(calculator, BaseCalculator):
            raise UserInputError(
                f"{type(calculator).__name__} is not an ASE calculator"
            )
        self.calculator = calculator
        self.source = source or f"<ASE {type(calculator).__name__}>"
        self.architecture = type(calculator).__name__
        self.heads = [DIRECT if direct else CONSERVATIVE]
        self.has_direct_stress = bool(direct)
        self.atomic_types = None
        self.dtype = "float64"

    @property
    def head(self) -> str:
        """The calculator's one force head."""
        return self.heads[0]

    def _evaluate(
        self, atoms: ase.Atoms, conservative: bool, direct: bool, stress: bool
    ) -> ForceResult:
        if conservative:
            self.require(CONSERVATIVE)
        if direct:
            self.require_direct()
        work = ase.Atoms(
            numbers=atoms.numbers,
            positions=atoms.positions,
            cell=atoms.cell,
            pbc=atoms.pbc,
        )
        work.calc = self.calculator
        # what the calculator raises is wrapped by ForceModel.evaluate, with the
        # model and the structure
        energy = float(work.get_potential_energy())
        forces = np.array(work.get_forces(), dtype=np.float64)
        voigt = work.get_stress() if stress and np.all(atoms.pbc) else None
        self.n_forward += 1
        result = ForceResult(energy=energy)
        if self.head == CONSERVATIVE:
            result.conservative = forces
        else:
            result.direct = forces
        if voigt is not None:
            result.stress = voigt_6_to_full_3x3_stress(np.asarray(voigt, float))
        return result

    def structure_forces(
        self, atoms: ase.Atoms, output: str, where: Optional[str] = None
    ) -> "FiniteDifferenceForces":
        self.require(head_of_output(output))
        return FiniteDifferenceForces(self, atoms, output, where)


class FiniteDifferenceForces(StructureForces):
    """Forces of one structure from an ASE calculator; Jacobians by central finite
    differences (two force calls per column)."""

    differentiable = False

    def __init__(
        self,
        model: CalculatorModel,
        atoms: ase.Atoms,
        output: str,
        where: Optional[str] = None,
    ):
        super().__init__(atoms, output, where)
        self.model = model
        self.positions = np.array(atoms.positions, dtype=np.float64)

    def forces_numpy(
        self, positions: Sequence[np.ndarray], batch_size: int = 8
    ) -> List[np.ndarray]:
        out = []
        for p in positions:
            work = self.atoms.copy()
            work.positions = np.asarray(p, dtype=np.float64).reshape(-1, 3)
            out.append(self.model.forces(work, self.model.head, self.where))
        return out
