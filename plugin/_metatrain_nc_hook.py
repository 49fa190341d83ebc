"""Start-up hook of metatrain-nc: lets the unmodified metatrain find plugin
architectures declared as entry points (group ``metatrain.architectures``).

``metatrain_nc_hook.pth`` (site-packages root) imports this module at interpreter
start; it only puts :data:`FINDER` first in ``sys.meta_path``. It imports nothing
(``importlib.abc`` alone would cost ~16 ms: a meta-path finder is any object with
``find_spec``). Work happens on the first import of a ``metatrain.*`` module:

1. the entry points are read (:func:`registered_architectures`); a name that
   metatrain's own package folder holds is refused, so a metatrain architecture is
   never shadowed;
2. ``metatrain.<name>[.<sub>]`` is an alias of the registered module: the very same
   module object, nothing is imported twice;
3. right after ``metatrain.utils.architectures`` executes, ``find_all_architectures``
   also lists the registered names, ``get_architecture_path`` /
   ``get_architecture_name`` map them to and from the plugin's folder,
   ``preload_documentation_module`` loads their ``documentation.py``, and
   ``import_architecture`` shows the plugin's own "unsupported metatrain" message
   instead of metatrain's generic import error. A name that metatrain already lists
   (a metatrain that reads entry points itself) is left alone: the hook is a no-op
   for it;
4. right after ``metatrain.cli.train`` executes, ``train_model`` refuses a
   ``--restart`` across architectures when a plugin architecture is involved, and
   a fine-tuning of a ``pet_nc`` / ``pet_m`` checkpoint as an architecture other
   than ``pet_nc``, ``pet_m`` and ``pet``; it records the architecture of the run
   (:data:`RUN`) while it runs, so that the ``model_from_checkpoint`` it calls
   converts a ``pet_nc`` / ``pet_m`` checkpoint fine-tuned as stock ``pet`` into a
   stock PET model (``metatrain_nc.direct.conversion``).

Setting the environment variable ``METATRAIN_NC_DISABLE_HOOK=1`` keeps the finder
out. No failure here ever breaks interpreter start-up or an import: errors are kept
in :data:`STATE`, which ``mtt-nc doctor`` reports.
"""

import os
import sys

GROUP = "metatrain.architectures"
DISABLE_VARIABLE = "METATRAIN_NC_DISABLE_HOOK"

#: what the hook did in this interpreter (read by ``mtt-nc doctor``)
STATE = {
    "installed": False,  # the finder is in sys.meta_path
    "disabled": False,  # kept out by METATRAIN_NC_DISABLE_HOOK
    "registered": None,  # name -> module served by the hook, once read
    "refused": {},  # name -> why the hook does not serve it
    "native": [],  # registered names that metatrain lists by itself
    "patched": [],  # metatrain modules patched after they executed
    "errors": [],  # anything that went wrong, as text
}

#: the ``mtt train`` run in progress in this interpreter (set by the patched
#: ``metatrain.cli.train.train_model`` while it runs)
RUN = {"architecture": None}

#: plugin architectures whose checkpoints convert to stock ``pet`` (modules of this
#: package; a third-party plugin's checkpoints are left to metatrain)
_OWN_PACKAGE = "metatrain_nc."
_CONVERTS_TO = ("pet",)

# metatrain sub-packages that are not architectures
_RESERVED = ("cli", "utils", "share", "experimental", "deprecated")


class _AliasLoader:
    """Loads ``metatrain.<name>...`` as the registered (real) module object."""

    def __init__(self, target):
        self.target = target
        self.real_spec = None

    def create_module(self, spec):
        import importlib

        module = importlib.import_module(self.target)
        self.real_spec = module.__spec__
        return module

    def exec_module(self, module):
        # the import system set the alias spec on the real module: put its own back
        if self.real_spec is not None:
            module.__spec__ = self.real_spec


class _PatchingLoader:
    """Runs metatrain's real loader, then patches the module it executed."""

    def __init__(self, loader, patch):
        self.loader = loader
        self.patch = patch

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.loader.exec_module(module)
        module.__loader__ = self.loader
        patches = self.patch if isinstance(self.patch, tuple) else (self.patch,)
        failed = False
        for patch in patches:
            try:
                patch(module)
            except Exception as error:  # never break metatrain's own import
                failed = True
                STATE["errors"].append(
                    f"patching {module.__name__} ({patch.__name__}): {error!r}"
                )
        if not failed:
            STATE["patched"].append(module.__name__)

    def __getattr__(self, name):
        return getattr(self.loader, name)


class _Finder:
    """Meta-path finder serving plugin architectures (see the module docstring)."""

    def find_spec(self, fullname, path=None, target=None):
        if not fullname.startswith("metatrain."):
            return None
        try:
            if fullname in _PATCHES:
                return self._patched_spec(fullname, path, target)
            return self._alias_spec(fullname)
        except Exception as error:
            STATE["errors"].append(f"finding {fullname}: {error!r}")
            return None

    def _alias_spec(self, fullname):
        parts = fullname.split(".")
        registered = registered_architectures()
        name = parts[1]
        if name not in registered or name in STATE["native"]:
            return None
        from importlib.machinery import ModuleSpec

        return ModuleSpec(
            fullname, _AliasLoader(".".join([registered[name]] + parts[2:]))
        )

    def _patched_spec(self, fullname, path, target):
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is None:
                continue
            if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                spec.loader = _PatchingLoader(spec.loader, _PATCHES[fullname])
            return spec
        return None


def metatrain_folders():
    """The folders of metatrain's own package (empty if metatrain is missing).

    Found without importing metatrain.
    """
    module = sys.modules.get("metatrain")
    if module is not None:
        return list(getattr(module, "__path__", []))
    import importlib.util

    spec = importlib.util.find_spec("metatrain")
    if spec is None or spec.submodule_search_locations is None:
        return []
    return list(spec.submodule_search_locations)


def _metatrain_has(name, folders):
    for folder in folders:
        candidate = os.path.join(folder, name)
        if os.path.isdir(candidate) or os.path.isfile(candidate + ".py"):
            return candidate
    return None


def registered_architectures():
    """Plugin architectures this hook serves: entry-point name -> module path.

    Read once, on first use. Names the hook does not serve (metatrain has a module of
    that name, an invalid name, a name registered twice) are left out and recorded,
    with the reason, in ``STATE["refused"]``.
    """
    registered = STATE["registered"]
    if registered is not None:
        return registered
    registered = STATE["registered"] = {}  # also guards against re-entry
    try:
        from importlib.metadata import entry_points

        folders = metatrain_folders()
        for entry_point in entry_points(group=GROUP):
            name, value = entry_point.name, entry_point.value
            if name in registered:
                if registered[name] != value:
                    STATE["refused"][name + " = " + value] = (
                        f"'{name}' is already registered as {registered[name]}"
                    )
                continue
            if not name.isidentifier():
                STATE["refused"][name] = "not a valid architecture name"
                continue
            own = _metatrain_has(name, folders)
            if own is not None or name in _RESERVED:
                STATE["refused"][name] = (
                    f"metatrain has its own '{name}' ({own}); not shadowed"
                )
                continue
            registered[name] = value
    except Exception as error:
        STATE["errors"].append(f"reading entry points: {error!r}")
    return registered


def _package_folder(module_name):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec(module_name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]).resolve()


def _patch_architectures(module):
    """Make ``metatrain.utils.architectures`` list and locate plugin architectures."""
    from pathlib import Path

    registered = registered_architectures()
    native = set(module.find_all_architectures())
    extra = {}
    for name, target in registered.items():
        if name in native:
            STATE["native"].append(name)
            continue
        folder = _package_folder(target)
        if folder is None:
            STATE["refused"][name] = f"{target} is not an importable package"
            continue
        extra[name] = folder
    if not extra:
        return

    original_find = module.find_all_architectures
    original_path = module.get_architecture_path
    original_name = module.get_architecture_name
    original_import = module.import_architecture
    original_preload = module.preload_documentation_module

    def find_all_architectures():
        names = list(original_find())
        return names + [name for name in extra if name not in names]

    def get_architecture_path(name):
        if name in extra:
            return extra[name]
        return original_path(name)

    def get_architecture_name(path):
        given = Path(path)
        directory = given if given.is_dir() else given.parent
        if given.exists():
            resolved = directory.resolve()
            for name, folder in extra.items():
                if resolved == folder:
                    return name
        return original_name(path)

    def preload_documentation_module(name):
        path = extra.get(name)
        if path is None or not (path / "documentation.py").is_file():
            return original_preload(name)
        import importlib.util

        # loaded in isolation like metatrain does, but under its real name, so that
        # relative imports inside the plugin package resolve
        spec = importlib.util.spec_from_file_location(
            registered[name] + ".documentation", path / "documentation.py"
        )
        documentation = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(documentation)
        sys.modules[f"metatrain.{name}.documentation"] = documentation
        return documentation

    def import_architecture(name):
        try:
            return original_import(name)
        except ImportError as error:
            cause = error.__cause__
            if type(cause).__name__ == "UnsupportedMetatrainError":
                # metatrain's "broken installation" wrapper hides the real fix
                raise cause from None
            raise

    for function, original in (
        (find_all_architectures, original_find),
        (get_architecture_path, original_path),
        (get_architecture_name, original_name),
        (import_architecture, original_import),
        (preload_documentation_module, original_preload),
    ):
        function.__doc__ = original.__doc__
        function.__wrapped__ = original
        setattr(module, function.__name__, function)


def _patch_train_cli(module):
    """Check the checkpoint a ``mtt train`` run starts from; record the run.

    metatrain continues a checkpoint with the checkpoint's own architecture, whatever
    the options file says. With a plugin architecture on either side, that silently
    trains something else than asked (e.g. a ``pet_nc`` checkpoint continued as
    ``pet_nc`` by a ``pet_m`` options file), or fails deep inside the trainer:
    refuse ``--restart`` across architectures and a fine-tuning that cannot work,
    naming the way out, before any data is read. While the run goes on, its
    architecture is in :data:`RUN` (for :func:`_patch_train_loading`).
    """
    original = module.train_model
    signature = _signature_with(original, ("options", "restart_from"))

    def train_model(*args, **kwargs):
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError:  # metatrain's own call error is the right one
            return original(*args, **kwargs)
        bound.apply_defaults()
        options = _bound_argument(bound, "options")
        restart_from = _bound_argument(bound, "restart_from")
        if restart_from is not None and options is not None:
            _check_restart_architecture(options, restart_from)
        elif options is not None:
            _check_finetune_architecture(options)
        previous = RUN["architecture"]
        RUN["architecture"] = _option(options, "architecture", "name")
        try:
            return original(*args, **kwargs)
        finally:
            RUN["architecture"] = previous

    train_model.__doc__ = original.__doc__
    train_model.__wrapped__ = original
    module.train_model = train_model


def _signature_with(function, names):
    """The signature of ``function``; raises if it cannot receive ``names``.

    Arguments are then found by name (:func:`_bound_argument`), whether they are
    passed by position or by keyword and wherever a metatrain version puts them.
    """
    import inspect

    signature = inspect.signature(function)
    parameters = signature.parameters.values()
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        missing = [name for name in names if name not in signature.parameters]
        if missing:
            raise TypeError(
                f"{function.__qualname__}{signature} has no parameter "
                f"{', '.join(map(repr, missing))}: not patched"
            )
    return signature


def _bound_argument(bound, name):
    """The value of argument ``name`` in ``bound`` (``inspect.BoundArguments``,
    defaults applied), also when it went into a ``**kwargs`` parameter."""
    import inspect

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


def _check_restart_architecture(options, restart_from):
    try:
        import torch

        wanted = options["architecture"]["name"]
        checkpoint = torch.load(restart_from, weights_only=False, map_location="cpu")
        written_by = checkpoint.get("architecture_name")
    except Exception:  # unreadable: metatrain's own error is the right one
        return
    plugin = set(registered_architectures()) - set(STATE["native"])
    if written_by == wanted or not ({wanted, written_by} & plugin):
        return
    raise ValueError(
        f"the checkpoint '{restart_from}' was written by the '{written_by}' "
        f"architecture, but the options ask for '{wanted}'. `--restart` continues a "
        f"run with its own architecture: set `architecture.name: {written_by}` to "
        f"continue it, or start '{wanted}' from it with `training.finetune.read_from:"
        f" {restart_from}` (e.g. pet_nc -> pet_m or pet), or drop --restart."
    )


def _option(options, *keys):
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


def _own_architectures():
    """Plugin architectures of this package served by the hook."""
    return {
        name
        for name, module in registered_architectures().items()
        if module.startswith(_OWN_PACKAGE) and name not in STATE["native"]
    }


def _checkpoint_architecture(path):
    """The ``architecture_name`` of the checkpoint at ``path`` (``None`` if the file
    does not read: metatrain's own error is the right one)."""
    try:
        import torch

        checkpoint = torch.load(path, weights_only=False, map_location="cpu")
        return checkpoint.get("architecture_name")
    except Exception:
        return None


def _check_finetune_architecture(options):
    """Refuse ``finetune.read_from`` of a ``pet_nc`` / ``pet_m`` checkpoint by an
    architecture that cannot continue it (all but ``pet_nc``, ``pet_m`` and
    ``pet``): metatrain would hand a PET-with-direct-heads to that architecture's
    trainer, which fails with an unrelated message deep inside training."""
    wanted = _option(options, "architecture", "name")
    read_from = _option(options, "architecture", "training", "finetune", "read_from")
    own = _own_architectures()
    if read_from is None or wanted is None or wanted in own or wanted in _CONVERTS_TO:
        return
    written_by = _checkpoint_architecture(read_from)
    if written_by not in own:
        return
    allowed = ", ".join(sorted(own)) + " or stock " + " or ".join(_CONVERTS_TO)
    raise ValueError(
        f"the checkpoint '{read_from}' (`training.finetune.read_from`) was written by "
        f"the '{written_by}' architecture, which '{wanted}' cannot fine-tune: a "
        f"{written_by} checkpoint can be fine-tuned as {allowed} (stock pet keeps "
        f"its backbone and energy head). Start '{wanted}' from scratch instead."
    )


def _patch_train_loading(module):
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
    """
    original = module.model_from_checkpoint

    def model_from_checkpoint(checkpoint, context, *args, **kwargs):
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
        from metatrain_nc.direct.conversion import model_for_architecture

        return model_for_architecture(checkpoint, context, wanted, original)

    model_from_checkpoint.__doc__ = original.__doc__
    model_from_checkpoint.__wrapped__ = original
    module.model_from_checkpoint = model_from_checkpoint


#: metatrain modules patched right after they execute
_PATCHES = {
    "metatrain.utils.architectures": _patch_architectures,
    "metatrain.cli.train": (_patch_train_cli, _patch_train_loading),
}

#: the finder this hook puts first in ``sys.meta_path``
FINDER = _Finder()


def install():
    """Put :data:`FINDER` first in ``sys.meta_path`` (idempotent)."""
    if os.environ.get(DISABLE_VARIABLE, "") not in ("", "0"):
        STATE["disabled"] = True
        return
    if not any(isinstance(finder, _Finder) for finder in sys.meta_path):
        sys.meta_path.insert(0, FINDER)
    STATE["installed"] = True


try:
    install()
except Exception as _error:  # pragma: no cover - never break start-up
    STATE["errors"].append(f"installing the finder: {_error!r}")
