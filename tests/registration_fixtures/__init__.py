"""Helpers for the registration tests: fresh interpreters, throwaway distributions
and environments that differ from the test environment in one file only."""

import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path
from typing import Dict, Iterable, Optional, Sequence

ROOT = Path(__file__).resolve().parents[2]
SITE_PACKAGES = Path(sysconfig.get_paths()["purelib"])
ETHANOL = ROOT / "recipes" / "data" / "ethanol_100_eV.xyz"

#: a PET subclass registered by a third-party package, under another name
THIRD_PARTY_NAME = "nc_test_pet"
THIRD_PARTY_MODULE = "nc_test_pet_package"
_THIRD_PARTY_INIT = f'''
"""A third-party architecture: metatrain's PET under the entry point
{THIRD_PARTY_NAME!r}."""

from metatrain.pet import __capabilities__, __trainer__  # noqa: F401
from metatrain.pet import __model__ as _PET


class ThirdPartyPET(_PET):
    def get_checkpoint(self):
        checkpoint = super().get_checkpoint()
        checkpoint["architecture_name"] = {THIRD_PARTY_NAME!r}
        return checkpoint


__model__ = ThirdPartyPET
'''
_THIRD_PARTY_DOCUMENTATION = '''
"""Hypers of the third-party test architecture: PET's."""

from metatrain.pet.documentation import ModelHypers, TrainerHypers  # noqa: F401
'''


def fake_distribution(
    root: Path, name: str, entry_points: str = "", version: str = "1.0"
) -> Path:
    """Write a minimal installed distribution (``dist-info``) into ``root``."""
    info = root / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    )
    (info / "entry_points.txt").write_text(entry_points)
    return info


def third_party_architecture(root: Path, extra_entry_points: str = "") -> Path:
    """Write into ``root`` a package registering :data:`THIRD_PARTY_NAME`."""
    package = root / THIRD_PARTY_MODULE
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(_THIRD_PARTY_INIT)
    (package / "documentation.py").write_text(_THIRD_PARTY_DOCUMENTATION)
    fake_distribution(
        root,
        "nc-test-pet",
        "[metatrain.architectures]\n"
        f"{THIRD_PARTY_NAME} = {THIRD_PARTY_MODULE}\n" + extra_entry_points,
    )
    return root


def environment(
    pythonpath: Iterable[Path] = (), extra: Optional[Dict[str, str]] = None
) -> Dict[str, str]:
    """The test environment, with ``pythonpath`` first and few threads."""
    env = dict(os.environ)
    env.pop("METATRAIN_NC_DISABLE_HOOK", None)
    env["OMP_NUM_THREADS"] = "1"
    paths = [str(p) for p in pythonpath]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    if paths:
        env["PYTHONPATH"] = os.pathsep.join(paths)
    env.update(extra or {})
    return env


def python(
    code: str,
    pythonpath: Iterable[Path] = (),
    flags: Sequence[str] = (),
    extra_env: Optional[Dict[str, str]] = None,
    executable: Optional[str] = None,
    cwd: Optional[Path] = None,
) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (start-up hook included)."""
    return subprocess.run(
        [executable or sys.executable, *flags, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=environment(pythonpath, extra_env),
        cwd=cwd,
        timeout=300,
    )


def mtt(
    args: Sequence[str], cwd: Path, pythonpath: Iterable[Path] = ()
) -> subprocess.CompletedProcess:
    """Run the unmodified ``mtt`` command line in a fresh interpreter."""
    script = Path(sys.executable).parent / "mtt"
    command = [str(script)] if script.exists() else ["mtt"]
    return subprocess.run(
        [*command, *args],
        capture_output=True,
        text=True,
        env=environment(pythonpath),
        cwd=cwd,
        timeout=600,
    )


def site_packages_of(executable: Path) -> Path:
    """The site-packages folder of an environment made by :func:`shadow_environment`."""
    return executable.parents[1] / SITE_PACKAGES.relative_to(sys.prefix)


def shadow_environment(destination: Path, leave_out: Iterable[str] = ()) -> Path:
    """A virtual environment identical to this one except for ``leave_out``.

    Its site-packages holds a symbolic link to every entry of this interpreter's
    site-packages but the names in ``leave_out`` (e.g. the hook's ``.pth``).

    :return: the path of its ``python``.
    """
    leave_out = set(leave_out)
    destination.mkdir(parents=True, exist_ok=True)
    site_packages = destination / SITE_PACKAGES.relative_to(sys.prefix)
    site_packages.mkdir(parents=True)
    for entry in SITE_PACKAGES.iterdir():
        if entry.name not in leave_out and entry.name != "__pycache__":
            (site_packages / entry.name).symlink_to(entry)
    (destination / "bin").mkdir()
    shutil.copy(Path(sys.prefix) / "pyvenv.cfg", destination / "pyvenv.cfg")
    executable = destination / "bin" / "python"
    executable.symlink_to(os.path.realpath(sys.executable))
    return executable


def regular_install(destination: Path) -> Path:
    """Lay metatrain-nc out in ``destination`` as its wheel installs it.

    Package, hook module and ``.pth`` at the root (no editable path), metadata with
    the installed entry points; returns ``destination``.
    """
    from importlib.metadata import distribution

    installed = distribution("metatrain-nc")
    destination.mkdir(parents=True, exist_ok=True)
    shutil.copytree(
        ROOT / "plugin" / "metatrain_nc",
        destination / "metatrain_nc",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    shutil.copy(ROOT / "plugin" / "_metatrain_nc_hook.py", destination)
    shutil.copy(ROOT / "plugin" / "metatrain_nc_hook.pth", destination)
    groups = installed.read_text("entry_points.txt") or ""
    fake_distribution(destination, "metatrain-nc", groups, installed.version)
    return destination
