"""From what a user names to a :class:`~.base.ForceModel`.

:func:`load_force_model` accepts every kind the tools take:

- a path to an exported metatomic model (``.pt``) or a metatrain checkpoint
  (``.ckpt``), or such a model object (``AtomisticModel``, a metatrain model);
- ``"module:callable"``, a factory returning an ASE calculator, or an ASE
  ``Calculator`` object;
- a :class:`~.base.ForceModel` (returned as it is).
"""

import os
from typing import Any, Optional

from ..errors import UserInputError
from .base import ForceModel


def load_force_model(
    model: Any,
    *,
    direct: Optional[bool] = None,
    float64: bool = False,
    device: str = "cpu",
    neighbor_skin: float = 0.5,
) -> ForceModel:
    """The force model behind ``model``.

    :param model: path, ``module:callable``, model object, ASE calculator or
        :class:`ForceModel`.
    :param direct: for ASE calculators: their forces are direct (default: not).
        Metatomic models say themselves which heads they have: ``direct=True`` is
        refused for them.
    :param float64: evaluate a metatomic model in float64 (checkpoints only).
    :param device: torch device of a metatomic model.
    :param neighbor_skin: Verlet skin (A) of a metatomic model's neighbour lists.
    """
    from ase.calculators.calculator import BaseCalculator

    from .ase_calculator import (
        CalculatorModel,
        calculator_from_factory,
        is_factory_spec,
    )

    if isinstance(model, ForceModel):
        if float64 and model.dtype != "float64":
            raise UserInputError(
                f"model '{model.source}' was loaded as {model.dtype}; load it again "
                "with float64=True"
            )
        if direct and not model.has_direct:
            model.require_direct()
        return model
    if isinstance(model, BaseCalculator):
        return CalculatorModel(model, direct=bool(direct))
    if isinstance(model, (str, os.PathLike)):
        text = os.fspath(model)
        if not os.path.exists(text) and is_factory_spec(text):
            return CalculatorModel(
                calculator_from_factory(text), direct=bool(direct), source=text
            )
    if direct:
        raise UserInputError(
            "--direct (direct=True) is for ASE calculators, whose forces count as "
            f"conservative otherwise; '{model}' is a metatomic model, whose outputs "
            "say which force heads it has"
        )
    from .metatomic import MetatomicModel

    return MetatomicModel(
        model, float64=float64, device=device, neighbor_skin=neighbor_skin
    )
