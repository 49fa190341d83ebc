"""Models named in a list (``mtt-nc accuracy``, ``mtt-nc compare``).

A tool that takes several models cannot use one ``--direct`` flag for a mix of ASE
calculators whose forces are conservative and others whose forces are direct. In a
list, each model can therefore carry a ``direct:`` prefix:

- ``direct:module:callable``: that ASE calculator's forces are direct;
- ``--direct`` (``direct=True``) still marks *every* ASE calculator of the list direct;
- metatomic models (``.pt``, ``.ckpt``) say themselves which heads they have: the
  prefix is refused for them, and ``--direct`` leaves them alone.

Imported by command modules for ``--help``: no torch here.
"""

import os
from typing import Any, Tuple

from ..errors import UserInputError

#: prefix marking an ASE calculator's forces as direct
DIRECT_PREFIX = "direct:"


def split_direct_prefix(model: Any) -> Tuple[Any, bool]:
    """``(model without the prefix, whether it had the prefix)``."""
    if isinstance(model, (str, os.PathLike)):
        text = os.fspath(model)
        if text.startswith(DIRECT_PREFIX) and not os.path.exists(text):
            return text[len(DIRECT_PREFIX) :], True
    return model, False


def is_calculator(model: Any) -> bool:
    """Whether ``model`` names an ASE calculator: a ``Calculator`` object or a
    ``module:callable`` string that is not an existing file."""
    from ase.calculators.calculator import BaseCalculator

    from .ase_calculator import is_factory_spec

    if isinstance(model, BaseCalculator):
        return True
    if isinstance(model, (str, os.PathLike)):
        text = os.fspath(model)
        return not os.path.exists(text) and is_factory_spec(text)
    return False


def model_label(model: Any) -> str:
    """A short label of a model of a list: a file's stem, an ASE calculator's
    ``module.callable`` (or class name), a loaded model's source."""
    from pathlib import Path

    spec, _ = split_direct_prefix(model)
    if isinstance(spec, (str, os.PathLike)):
        text = os.fspath(spec)
        if is_calculator(text):
            module, _, attribute = text.partition(":")
            return f"{module.rsplit('.', 1)[-1]}.{attribute}"
        return Path(text).stem
    source = getattr(spec, "source", "")
    if isinstance(source, str) and source and not source.startswith("<"):
        return model_label(source)
    return type(getattr(spec, "calculator", spec)).__name__


def load_listed_model(
    model: Any, *, direct: bool = False, float64: bool = False, device: str = "cpu"
):
    """The :class:`~.base.ForceModel` of one model of a list.

    :param model: path, ``[direct:]module:callable``, ASE calculator, model object or
        :class:`~.base.ForceModel`.
    :param direct: every ASE calculator's forces are direct (``--direct``).
    :param float64: evaluate metatomic models in float64.
    :raises UserInputError: ``direct:`` before something that is not an ASE
        calculator, or anything :func:`~.loading.load_force_model` refuses.
    """
    from .loading import load_force_model

    spec, prefixed = split_direct_prefix(model)
    calculator = is_calculator(spec)
    if prefixed and not calculator:
        raise UserInputError(
            f"'{DIRECT_PREFIX}' marks an ASE calculator (module:callable) whose "
            f"forces are direct; '{spec}' is not one (a metatomic model's outputs say "
            "which force heads it has): drop the prefix"
        )
    return load_force_model(
        spec,
        direct=(prefixed or direct) if calculator else None,
        float64=float64,
        device=device,
    )
