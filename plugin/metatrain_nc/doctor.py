"""``mtt-nc doctor``: is the registration of the plugin architectures active here?

Reports whether the start-up hook is loaded in this interpreter, which architectures
metatrain sees (its own and the plugins'), which evaluators are registered, the
versions in use, and what to do when something is off. Exit code 0 when metatrain
finds every registered plugin architecture, 1 otherwise.
"""

import argparse
import sys
import sysconfig
from importlib.metadata import PackageNotFoundError, entry_points, version
from pathlib import Path
from typing import Dict, List

DESCRIPTION = (
    "check that metatrain finds the plugin architectures (start-up hook, versions, "
    "registered architectures and evaluators)"
)

HOOK_PTH = "metatrain_nc_hook.pth"
PACKAGES = [
    "metatrain-nc",
    "metatrain",
    "torch",
    "metatomic-torch",
    "metatomic-ase",
    "ase",
    "chemiscope",
    "vesin",
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quiet", action="store_true", help="print problems only (exit code says it)"
    )


def _versions() -> Dict[str, str]:
    found = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def _hook_pth_locations() -> List[Path]:
    places = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    return [Path(p) / HOOK_PTH for p in places if (Path(p) / HOOK_PTH).exists()]


def diagnose() -> dict:
    """Everything ``mtt-nc doctor`` reports, as a dict (no printing).

    :return: keys ``versions``, ``hook_loaded``, ``hook_state``, ``pth_files``,
        ``site_disabled``, ``registered``, ``metatrain_architectures``,
        ``missing``, ``evaluators``, ``supported``, ``problems`` (list of
        ``(problem, what to do)``).
    """
    from . import SUPPORTED_METATRAIN
    from .compat import is_supported, metatrain_version, supported_range

    problems = []
    report: dict = {"versions": _versions()}
    hook = sys.modules.get("_metatrain_nc_hook")
    report["hook_loaded"] = hook is not None and hook.STATE.get("installed", False)
    report["hook_state"] = dict(hook.STATE) if hook is not None else {}
    report["pth_files"] = [str(p) for p in _hook_pth_locations()]
    report["site_disabled"] = bool(sys.flags.no_site)
    registered = {
        ep.name: ep.value for ep in entry_points(group="metatrain.architectures")
    }
    report["registered"] = registered
    report["evaluators"] = {
        ep.name: ep.value for ep in entry_points(group="metatrain.evaluators")
    }
    installed = metatrain_version()
    report["supported"] = is_supported(installed)
    if installed is None:
        problems.append(
            ("metatrain is not installed", f"pip install '{supported_range()}'")
        )
    elif not report["supported"]:
        problems.append(
            (
                f"metatrain {installed} is outside the supported range "
                f"{SUPPORTED_METATRAIN[0]} <= version < {SUPPORTED_METATRAIN[1]}",
                f"pip install '{supported_range()}'",
            )
        )
    if report["site_disabled"]:
        problems.append(
            (
                "Python runs without site (-S): .pth files, and so the hook, are off",
                "run without -S, or `import _metatrain_nc_hook` before metatrain",
            )
        )
    elif not report["pth_files"]:
        problems.append(
            (
                f"{HOOK_PTH} is missing from site-packages",
                "reinstall: pip install --force-reinstall metatrain-nc (or -e .)",
            )
        )
    elif not report["hook_loaded"]:
        problems.append(
            (
                "the hook did not load at start-up",
                "check that site-packages is writable and reinstall metatrain-nc",
            )
        )
    for error in report["hook_state"].get("errors", []):
        problems.append((f"hook error: {error}", "report it with `mtt-nc doctor`"))

    report["metatrain_architectures"] = []
    report["missing"] = []
    if installed is not None:
        try:
            from metatrain.utils.architectures import find_all_architectures

            seen = find_all_architectures()
            report["metatrain_architectures"] = seen
            report["missing"] = [name for name in registered if name not in seen]
        except Exception as error:  # an incompatible metatrain
            problems.append((f"metatrain could not list architectures: {error}", ""))
            report["missing"] = list(registered)
    for name in report["missing"]:
        problems.append(
            (
                f"metatrain does not see the registered architecture '{name}'",
                "fix the problems above; `mtt train` will not find it",
            )
        )
    report["problems"] = problems
    return report


def run(args: argparse.Namespace) -> int:
    report = diagnose()
    if not args.quiet:
        print("versions:")
        for name, value in report["versions"].items():
            print(f"  {name:<16} {value}")
        print(f"start-up hook loaded: {'yes' if report['hook_loaded'] else 'no'}")
        for path in report["pth_files"]:
            print(f"  {path}")
        refused = report["hook_state"].get("refused", {})
        print("plugin architectures (entry points, group metatrain.architectures):")
        for name, module in report["registered"].items():
            status = "seen by metatrain" if name not in report["missing"] else "MISSING"
            if name in refused:
                status += f" ({refused[name]})"
            print(f"  {name:<16} {module:<28} {status}")
        native = [
            n
            for n in report["metatrain_architectures"]
            if n not in report["registered"]
        ]
        print(f"metatrain's own architectures: {', '.join(native) or '-'}")
        print("evaluators (group metatrain.evaluators):")
        for name, module in report["evaluators"].items():
            print(f"  {name:<16} {module}")
    if report["problems"]:
        print("problems:")
        for problem, fix in report["problems"]:
            print(f"  - {problem}" + (f"\n    fix: {fix}" if fix else ""))
        return 1
    if not args.quiet:
        print("ok: metatrain finds every registered architecture")
    return 0
