"""Load what a user calls "a model": an exported ``model.pt``, a metatrain ``.ckpt``
(exported on the fly), or a model object."""

import os
from typing import Tuple, Union

import torch

from .errors import UserInputError


def load_exported_model(
    model: Union[str, os.PathLike, torch.nn.Module], float64: bool = False
) -> Tuple[torch.nn.Module, str]:
    """A metatomic ``AtomisticModel`` in eval mode, and where it came from.

    :param model: path to an exported ``.pt`` or a metatrain ``.ckpt``, a metatomic
        ``AtomisticModel``, or a metatrain model (anything with ``export()``).
    :param float64: convert a metatrain model (or checkpoint) to float64 before
        exporting it; exported models keep their dtype.
    :return: ``(model, source)``, ``source`` being the path or ``"<in-memory model>"``.
    """
    from metatomic.torch import is_atomistic_model, load_atomistic_model

    source = "<in-memory model>"
    if isinstance(model, (str, os.PathLike)):
        source = str(model)
        if not os.path.isfile(source):
            raise UserInputError(f"model file '{source}' does not exist")
        if source.endswith(".ckpt"):
            try:
                from metatrain.utils.io import load_model as mtt_load_model

                model = mtt_load_model(source)
            except Exception as error:
                raise UserInputError(
                    f"cannot load metatrain checkpoint '{source}': {error}"
                ) from error
        else:
            try:
                model = load_atomistic_model(source)
            except Exception as error:
                raise UserInputError(
                    f"cannot load '{source}' as an exported metatomic model (.pt) or "
                    f"a metatrain checkpoint (.ckpt): {error}"
                ) from error
    if not is_atomistic_model(model):
        if not hasattr(model, "export"):
            raise UserInputError(
                f"{type(model).__name__} is neither a metatomic AtomisticModel nor a "
                "metatrain model with export()"
            )
        if float64:
            model = model.to(torch.float64)
        model = model.export()
    return model.eval(), source
