"""The ASE constraints the multiple-time-step integrator honours, and what they do
to its degrees of freedom.

:data:`SUPPORTED_CONSTRAINTS` (``FixAtoms``, ``FixCom``) are honoured by
:class:`~.integrator.MultipleTimeStep` as ASE's own integrators do;
:func:`check_constraints` refuses the others; :func:`degrees_of_freedom` counts the
kinetic degrees of freedom the constraints (and a conserved total momentum) leave.
"""

import ase
from ase.constraints import FixAtoms, FixCom

from ..errors import UserInputError

#: the ASE constraints the integrator honours
SUPPORTED_CONSTRAINTS = (FixAtoms, FixCom)


def degrees_of_freedom(atoms: ase.Atoms, momentum_conserved: bool = True) -> int:
    """Kinetic degrees of freedom (at least 1): ``3N``, less what the constraints
    remove, less 3 more when the total momentum is conserved (NVE, SVR without
    ``FixAtoms``; not Langevin, whose friction and noise act on every free atom)."""
    removed = sum(int(c.get_removed_dof(atoms)) for c in atoms.constraints)
    pinned = any(isinstance(c, (FixAtoms, FixCom)) for c in atoms.constraints)
    if momentum_conserved and not pinned:
        removed += 3
    return max(3 * len(atoms) - removed, 1)


def check_constraints(atoms: ase.Atoms) -> None:
    """Raise :class:`UserInputError` for constraints the integrator cannot honour."""
    for constraint in atoms.constraints:
        if not isinstance(constraint, SUPPORTED_CONSTRAINTS):
            raise UserInputError(
                f"constraint {type(constraint).__name__} is not supported by the "
                "multiple-time-step integrator (it honours FixAtoms and FixCom); "
                "remove it (atoms.set_constraint()) or use ASE's own integrators"
            )
