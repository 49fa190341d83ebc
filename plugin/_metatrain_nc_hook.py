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
4. right after ``metatrain.cli.train`` executes, the patches of
   ``metatrain_nc.train_patches`` check the checkpoint a ``mtt train`` run starts
   from and let stock ``pet`` fine-tune a ``pet_nc`` / ``pet_m`` checkpoint.

Each patch raises if what it relies on has moved in metatrain; the outcome of every
patch is in ``STATE["patches"]`` (:func:`expected_patches` lists them all) and
``mtt-nc doctor`` fails when one did not apply.

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
    "patches": {},  # patch name -> "applied" | "failed: why" (see patch_name)
    "errors": [],  # anything that went wrong, as text
}

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

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.loader.exec_module(module)
        module.__loader__ = self.loader
        _apply_patches(module)

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
                spec.loader = _PatchingLoader(spec.loader)
            else:
                STATE["errors"].append(f"cannot patch {fullname}: unusual loader")
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


#: metatrain modules patched right after they execute: module -> patches, each a
#: function of this module or ``"module:function"`` (imported when needed)
_PATCHES = {
    "metatrain.utils.architectures": (_patch_architectures,),
    "metatrain.cli.train": (
        "metatrain_nc.train_patches:patch_train_cli",
        "metatrain_nc.train_patches:patch_train_loading",
    ),
}


def patch_name(module_name, patch):
    """``"<module>: <function>"``, the name of a patch in ``STATE["patches"]``."""
    function = patch if isinstance(patch, str) else patch.__name__
    return f"{module_name}: {function.rsplit(':', 1)[-1]}"


def expected_patches():
    """Names of every patch the hook applies (see :func:`patch_name`)."""
    return [patch_name(m, p) for m, patches in _PATCHES.items() for p in patches]


def _apply_patches(module):
    """Apply the patches of ``module`` (just executed); record each outcome in
    ``STATE["patches"]``, and failures in ``STATE["errors"]``. Never raises."""
    failed = False
    for patch in _PATCHES[module.__name__]:
        name = patch_name(module.__name__, patch)
        try:
            if isinstance(patch, str):
                import importlib

                where, function = patch.split(":")
                patch = getattr(importlib.import_module(where), function)
            patch(module)
        except Exception as error:  # never break metatrain's own import
            failed = True
            STATE["patches"][name] = f"failed: {error}"
            STATE["errors"].append(f"patching {name}: {error!r}")
        else:
            STATE["patches"][name] = "applied"
    if not failed:
        STATE["patched"].append(module.__name__)


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
