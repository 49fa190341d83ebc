"""Start-up hook of metatrain-nc: lets the unmodified metatrain find plugin
architectures.

Loaded at interpreter start by ``metatrain_nc_hook.pth`` (site-packages root). It only
inserts :data:`FINDER` first in ``sys.meta_path``; nothing else happens until a
``metatrain.*`` module is imported for the first time. Then the finder

1. reads the entry points of the group ``metatrain.architectures`` (name -> module);
2. refuses names that metatrain itself has (a folder or module of that name in
   metatrain's package): never shadows a metatrain architecture;
3. aliases ``metatrain.<name>[.<sub>]`` to the registered module: the very same
   module object is returned, nothing is imported twice;
4. when ``metatrain.utils.architectures`` executes, extends
   ``find_all_architectures`` with the registered names (skipping names metatrain
   already lists, so the hook becomes a no-op once metatrain reads entry points
   itself) and maps ``get_architecture_path`` / ``get_architecture_name`` to and
   from the plugin's folders.

Any error is kept in :data:`STATE` (``mtt-nc doctor`` reports it) and never breaks
interpreter start-up or an import. Importing ``importlib.abc`` is avoided on purpose
(~16 ms): a meta-path finder is any object with ``find_spec``.
"""

import sys

GROUP = "metatrain.architectures"

#: what the hook did in this interpreter: read by ``mtt-nc doctor``
STATE = {
    "installed": False,
    "registered": None,  # name -> module, once entry points were read
    "refused": {},  # name -> reason
    "patched": False,
    "errors": [],
}


class _AliasLoader:
    """Loads ``metatrain.<name>...`` as the already imported real module."""

    def __init__(self, target):
        self.target = target
        self.real_spec = None

    def create_module(self, spec):
        import importlib

        module = importlib.import_module(self.target)
        self.real_spec = module.__spec__
        return module

    def exec_module(self, module):
        # importlib set the alias spec on the real module: put the real one back
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
        try:
            self.patch(module)
        except Exception as error:  # never break metatrain's own import
            STATE["errors"].append(f"patching {module.__name__}: {error!r}")

    def __getattr__(self, name):
        return getattr(self.loader, name)


class _Finder:
    """Meta-path finder for plugin architectures (see the module docstring)."""

    def find_spec(self, fullname, path=None, target=None):
        if not fullname.startswith("metatrain."):
            return None
        try:
            return self._find_spec(fullname, path, target)
        except Exception as error:
            STATE["errors"].append(f"finding {fullname}: {error!r}")
            return None

    def _find_spec(self, fullname, path, target):
        if fullname in _PATCHES:
            return self._patched_spec(fullname, path, target)
        registered = registered_architectures()
        parts = fullname.split(".")
        name = parts[1]
        if name not in registered:
            return None
        from importlib.machinery import ModuleSpec

        real = ".".join([registered[name]] + parts[2:])
        return ModuleSpec(fullname, _AliasLoader(real))

    def _patched_spec(self, fullname, path, target):
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _PatchingLoader(spec.loader, _PATCHES[fullname])
                return spec
        return None


def registered_architectures():
    """Plugin architectures this hook serves: entry-point name -> module path.

    Read once, on first use. Names that metatrain itself has are left out and
    recorded in ``STATE["refused"]``.
    """
    if STATE["registered"] is not None:
        return STATE["registered"]
    STATE["registered"] = {}
    from importlib.metadata import entry_points

    metatrain = sys.modules.get("metatrain")
    roots = list(getattr(metatrain, "__path__", []))
    import os

    found = {}
    for entry_point in entry_points(group=GROUP):
        name = entry_point.name
        if "." in name or not name.isidentifier():
            STATE["refused"][name] = "not a valid architecture name"
            continue
        own = [
            root
            for root in roots
            if os.path.isdir(os.path.join(root, name))
            or os.path.isfile(os.path.join(root, name + ".py"))
        ]
        if own:
            STATE["refused"][name] = (
                f"metatrain has its own '{name}' ({own[0]}); not shadowed"
            )
            continue
        found[name] = entry_point.value
    STATE["registered"] = found
    return found


def _patch_architectures(module):
    """Make ``metatrain.utils.architectures`` list and locate plugin architectures."""
    import importlib.util
    from pathlib import Path

    registered = registered_architectures()
    native = module.find_all_architectures()
    extra = {}
    for name, target in registered.items():
        if name in native:
            STATE["refused"][name] = "metatrain lists it already; hook not needed"
            continue
        spec = importlib.util.find_spec(target)
        if spec is None or not spec.submodule_search_locations:
            STATE["errors"].append(f"entry point {name} = {target}: not a package")
            continue
        extra[name] = Path(list(spec.submodule_search_locations)[0]).resolve()
    if not extra:
        return

    original_find = module.find_all_architectures
    original_path = module.get_architecture_path
    original_name = module.get_architecture_name

    def find_all_architectures():
        names = list(original_find())
        return names + [name for name in extra if name not in names]

    def get_architecture_path(name):
        if name in extra:
            return extra[name]
        return original_path(name)

    def get_architecture_name(path):
        resolved = Path(path).resolve()
        for name, folder in extra.items():
            if resolved == folder or folder in resolved.parents:
                return name
        return original_name(path)

    for function, original in (
        (find_all_architectures, original_find),
        (get_architecture_path, original_path),
        (get_architecture_name, original_name),
    ):
        function.__doc__ = original.__doc__
        function.__wrapped__ = original
    module.find_all_architectures = find_all_architectures
    module.get_architecture_path = get_architecture_path
    module.get_architecture_name = get_architecture_name
    STATE["patched"] = True


def _patch_train_cli(module):
    """Refuse ``mtt train --restart`` across architectures when a plugin is involved.

    metatrain continues a checkpoint with the checkpoint's own architecture, whatever
    the options file says. With a plugin architecture on either side, that silently
    trains something else than asked (e.g. a ``pet_nc`` checkpoint continued as
    ``pet_nc`` by a ``pet_m`` options file): refuse with the way out instead.
    """
    original = module.train_model

    def train_model(*args, **kwargs):
        options = kwargs.get("options", args[0] if args else None)
        restart_from = kwargs.get("restart_from", args[4] if len(args) > 4 else None)
        if restart_from is not None and options is not None:
            _check_restart_architecture(options, restart_from)
        return original(*args, **kwargs)

    train_model.__doc__ = original.__doc__
    train_model.__wrapped__ = original
    module.train_model = train_model


def _check_restart_architecture(options, restart_from):
    import torch

    wanted = options["architecture"]["name"]
    checkpoint = torch.load(restart_from, weights_only=False, map_location="cpu")
    written_by = checkpoint.get("architecture_name")
    plugin = registered_architectures()
    if written_by == wanted or not ({wanted, written_by} & set(plugin)):
        return
    raise ValueError(
        f"the checkpoint '{restart_from}' was written by the '{written_by}' "
        f"architecture, but the options ask for '{wanted}'. `--restart` continues a "
        f"run with its own architecture: set `architecture.name: {written_by}` to "
        f"continue it, or start '{wanted}' from it with `training.finetune.read_from:"
        f" {restart_from}` (e.g. pet_nc -> pet_m), or drop --restart."
    )


#: modules patched right after metatrain executes them
_PATCHES = {
    "metatrain.utils.architectures": _patch_architectures,
    "metatrain.cli.train": _patch_train_cli,
}

FINDER = _Finder()


def install():
    """Put the finder first in ``sys.meta_path`` (idempotent)."""
    if not any(isinstance(finder, _Finder) for finder in sys.meta_path):
        sys.meta_path.insert(0, FINDER)
    STATE["installed"] = True


try:
    install()
except Exception as _error:  # pragma: no cover - never break start-up
    STATE["errors"].append(repr(_error))
