"""What the start-up hook changes in ``metatrain.cli.train`` (``mtt train``).

The hook (``_metatrain_nc_hook``) applies the two patches here right after
``metatrain.cli.train`` executes; each one raises if what it relies on is not there,
so that the hook records the failure and ``mtt-nc doctor`` reports it (a patch that
"applies" but is never called would be worse than a loud failure):

- :func:`patch_train_cli` wraps ``train_model``: it refuses a ``--restart`` across
  architectures when a plugin architecture is involved, and a fine-tuning of a
  ``pet_nc`` / ``pet_m`` checkpoint as an architecture other than ``pet_nc``,
  ``pet_m`` and ``pet``, before any data is read; while the run goes on, its
  architecture is in :data:`RUN`;
- :func:`patch_train_loading` wraps the name ``model_from_checkpoint`` that
  ``train_model`` calls, so that a ``pet_nc`` / ``pet_m`` checkpoint fine-tuned as
  stock ``pet`` becomes a stock PET model (``metatrain_nc.direct.conversion``).

Checkpoint architectures are read with :func:`.checkpoint_name.architecture_of`
(once per file, without loading the checkpoint): metatrain loads it once, itself.
Import-light: nothing from torch or metatrain at import.
"""

import inspect
import types
from typing import Any, Callable, Dict, Iterator, Optional, Sequence, Set

from .checkpoint_name import architecture_of

#: the ``mtt train`` run in progress in this interpreter (set by the patched
#: ``metatrain.cli.train.train_model`` while it runs)
RUN: Dict[str, Optional[str]] = {"architecture": None}

#: plugin architectures whose checkpoints convert to stock ``pet`` (modules of this
#: package; a third-party plugin's checkpoints are left to metatrain)
_OWN_PACKAGE = "metatrain_nc."
_CONVERTS_TO = ("pet",)


class PatchError(RuntimeError):
    """What a patch relies on is not in this metatrain (the patch did not apply)."""


def _hook() -> types.ModuleType:
    import _metatrain_nc_hook

    return _metatrain_nc_hook


def _plugin_architectures() -> Set[str]:
    """Architectures served by the hook (registered, not metatrain's own)."""
    hook = _hook()
    return set(hook.registered_architectures()) - set(hook.STATE["native"])


def _own_architectures() -> Set[str]:
    """Plugin architectures of this package served by the hook."""
    hook = _hook()
    return {
        name
        for name, module in hook.registered_architectures().items()
        if module.startswith(_OWN_PACKAGE) and name not in hook.STATE["native"]
    }


def signature_with(function: Callable, names: Sequence[str]) -> inspect.Signature:
    """The signature of ``function``; raises if it cannot receive ``names``.

    Arguments are then found by name (:func:`bound_argument`), whether they are
    passed by position or by keyword and wherever a metatrain version puts them.

    :raises PatchError: a name is not a parameter (and there is no ``**kwargs``).
    """
    signature = inspect.signature(function)
    parameters = signature.parameters.values()
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        missing = [name for name in names if name not in signature.parameters]
        if missing:
            raise PatchError(
                f"{function.__qualname__}{signature} has no parameter "
                f"{', '.join(map(repr, missing))}: not patched"
            )
    return signature


def bound_argument(bound: inspect.BoundArguments, name: str) -> Any:
    """The value of argument ``name`` in ``bound`` (defaults applied), also when it
    went into a ``**kwargs`` parameter."""
    for parameter in bound.signature.parameters.values():
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            extra = bound.arguments.get(parameter.name, {})
            if name in extra:
                return extra[name]
        elif parameter.name == name:
            if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
                return None
            return bound.arguments.get(name)
    return None


def option(options: Any, *keys: str) -> Any:
    """``options[keys[0]][keys[1]]...``, or ``None`` if any level is missing."""
    value = options
    for key in keys:
        try:
            value = value.get(key)
        except Exception:
            return None
        if value is None:
            return None
    return value


def _written_by(path: Any) -> Optional[str]:
    """The architecture of the checkpoint at ``path`` (``None`` if the file does not
    read: metatrain's own error, when it loads it, is the right one)."""
    try:
        return architecture_of(path)
    except Exception:
        return None


def check_restart_architecture(options: Any, restart_from: Any) -> None:
    """Refuse ``--restart`` of a checkpoint by another architecture when a plugin
    architecture is on either side."""
    wanted = option(options, "architecture", "name")
    written_by = _written_by(restart_from)
    if wanted is None or written_by is None or written_by == wanted:
        return
    if not ({wanted, written_by} & _plugin_architectures()):
        return
    raise ValueError(
        f"the checkpoint '{restart_from}' was written by the '{written_by}' "
        f"architecture, but the options ask for '{wanted}'. `--restart` continues a "
        f"run with its own architecture: set `architecture.name: {written_by}` to "
        f"continue it, or start '{wanted}' from it with `training.finetune.read_from:"
        f" {restart_from}` (e.g. pet_nc -> pet_m or pet), or drop --restart."
    )


def check_finetune_architecture(options: Any) -> None:
    """Refuse ``finetune.read_from`` of a ``pet_nc`` / ``pet_m`` checkpoint by an
    architecture that cannot continue it (all but ``pet_nc``, ``pet_m`` and
    ``pet``): metatrain would hand a PET-with-direct-heads to that architecture's
    trainer, which fails with an unrelated message deep inside training."""
    wanted = option(options, "architecture", "name")
    read_from = option(options, "architecture", "training", "finetune", "read_from")
    own = _own_architectures()
    if read_from is None or wanted is None or wanted in own or wanted in _CONVERTS_TO:
        return
    written_by = _written_by(read_from)
    if written_by not in own:
        return
    allowed = ", ".join(sorted(own)) + " or stock " + " or ".join(_CONVERTS_TO)
    raise ValueError(
        f"the checkpoint '{read_from}' (`training.finetune.read_from`) was written by "
        f"the '{written_by}' architecture, which '{wanted}' cannot fine-tune: a "
        f"{written_by} checkpoint can be fine-tuned as {allowed} (stock pet keeps "
        f"its backbone and energy head). Start '{wanted}' from scratch instead."
    )


def patch_train_cli(module: Any) -> None:
    """Check the checkpoint a ``mtt train`` run starts from; record the run.

    metatrain continues a checkpoint with the checkpoint's own architecture, whatever
    the options file says. With a plugin architecture on either side, that silently
    trains something else than asked (e.g. a ``pet_nc`` checkpoint continued as
    ``pet_nc`` by a ``pet_m`` options file), or fails deep inside the trainer:
    refuse ``--restart`` across architectures and a fine-tuning that cannot work,
    naming the way out, before any data is read. While the run goes on, its
    architecture is in :data:`RUN` (for :func:`patch_train_loading`).

    :raises PatchError: ``train_model`` cannot receive ``options`` and
        ``restart_from``.
    """
    original = module.train_model
    signature = signature_with(original, ("options", "restart_from"))

    def train_model(*args: Any, **kwargs: Any) -> Any:
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError:  # metatrain's own call error is the right one
            return original(*args, **kwargs)
        bound.apply_defaults()
        options = bound_argument(bound, "options")
        restart_from = bound_argument(bound, "restart_from")
        if restart_from is not None and options is not None:
            check_restart_architecture(options, restart_from)
        elif options is not None:
            check_finetune_architecture(options)
        previous = RUN["architecture"]
        RUN["architecture"] = option(options, "architecture", "name")
        try:
            return original(*args, **kwargs)
        finally:
            RUN["architecture"] = previous

    train_model.__doc__ = original.__doc__
    train_model.__wrapped__ = original  # type: ignore[attr-defined]
    module.train_model = train_model


def _code_objects(code: types.CodeType) -> Iterator[types.CodeType]:
    yield code
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            yield from _code_objects(constant)


def _looks_up_global(code: types.CodeType, name: str) -> bool:
    import dis

    return any(
        instruction.opname in ("LOAD_GLOBAL", "LOAD_NAME")
        and instruction.argval == name
        for nested in _code_objects(code)
        for instruction in dis.get_instructions(nested)
    )


def functions_using(module: Any, name: str) -> list:
    """Functions defined in ``module`` whose code (nested functions included) looks
    up the global ``name``: those that a new value of ``module.<name>`` reaches
    (``other.<name>`` attribute look-ups do not count)."""
    found = []
    for value in vars(module).values():
        function = inspect.unwrap(value) if callable(value) else value
        code = getattr(function, "__code__", None)
        if code is None or getattr(function, "__module__", None) != module.__name__:
            continue
        if _looks_up_global(code, name):
            found.append(function.__qualname__)
    return found


def patch_train_loading(module: Any) -> None:
    """Let ``mtt train`` of stock ``pet`` fine-tune a ``pet_nc`` / ``pet_m``
    checkpoint.

    ``cli/train.py`` builds the model to fine-tune with the checkpoint's own
    architecture (``model_from_checkpoint``), then calls its ``restart`` and gives it
    to the run's trainer. Only the name ``model_from_checkpoint`` inside
    ``metatrain.cli.train`` is wrapped (``metatrain.utils.io`` and every other user
    are untouched), and it only acts while a ``train_model`` run of stock ``pet``
    (:data:`RUN`) loads a checkpoint of this package's architectures: then it
    returns a stock PET model with the checkpoint's backbone and energy head
    (``metatrain_nc.direct.conversion``), whose own ``restart`` and trainer run next.

    :raises PatchError: no function of the module calls ``model_from_checkpoint``
        by that name (metatrain moved the call: wrapping the name would change
        nothing).
    """
    original = module.model_from_checkpoint
    if not functions_using(module, "model_from_checkpoint"):
        raise PatchError(
            f"no function of {module.__name__} calls `model_from_checkpoint` any "
            "more (metatrain moved the call): fine-tuning a pet_nc / pet_m "
            "checkpoint as stock pet would not convert it"
        )

    def model_from_checkpoint(
        checkpoint: Any, context: Any, *args: Any, **kwargs: Any
    ) -> Any:
        wanted = RUN["architecture"]
        written_by = None
        if isinstance(checkpoint, dict):
            written_by = checkpoint.get("architecture_name")
        if (
            wanted is None
            or args
            or kwargs
            or written_by == wanted
            or wanted not in _CONVERTS_TO
            or written_by not in _own_architectures()
        ):
            return original(checkpoint, context, *args, **kwargs)
        from .direct.conversion import model_for_architecture

        return model_for_architecture(checkpoint, context, wanted, original)

    model_from_checkpoint.__doc__ = original.__doc__
    model_from_checkpoint.__wrapped__ = original  # type: ignore[attr-defined]
    module.model_from_checkpoint = model_from_checkpoint
