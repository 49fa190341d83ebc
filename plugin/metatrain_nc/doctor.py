"""``mtt-nc doctor``: does the unmodified metatrain find the plugin architectures here?

Reports, for the interpreter it runs in: whether the start-up hook is loaded and active,
which architectures metatrain sees (its own and the registered ones, and any registered
name the hook refused), whether each patch the hook makes to metatrain applied, which
evaluators are registered, the versions in use, and for each problem what to do. Exit
code 0 when every architecture that metatrain-nc declares is usable through ``mtt``
and every patch applied, 1 otherwise.
"""

import argparse
import importlib
import site
import sys
from importlib.metadata import PackageNotFoundError, distribution, entry_points, version
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

DESCRIPTION = (
    "check that metatrain finds the plugin architectures (start-up hook, registered "
    "architectures and evaluators, versions)"
)

DISTRIBUTION = "metatrain-nc"
HOOK_MODULE = "_metatrain_nc_hook"
HOOK_PTH = "metatrain_nc_hook.pth"
ARCHITECTURE_GROUP = "metatrain.architectures"

#: distributions whose versions are reported, in this order
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

Problem = Tuple[str, str]  # (what is wrong, what to do)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--quiet``: print problems only."""
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


def _site_directories() -> List[Path]:
    """Directories whose ``.pth`` files Python reads at start-up."""
    directories = list(site.getsitepackages())
    if site.ENABLE_USER_SITE is not False:
        directories.append(site.getusersitepackages())
    return [Path(d).resolve() for d in directories]


def _pth_status() -> Dict[str, Any]:
    """Where the hook's ``.pth`` should be (next to metatrain-nc's metadata)."""
    try:
        dist = distribution(DISTRIBUTION)
    except PackageNotFoundError:
        return {"expected": None, "exists": False, "in_site_dir": False}
    expected = Path(str(dist.locate_file(HOOK_PTH))).resolve()
    return {
        "expected": str(expected),
        "exists": expected.is_file(),
        "in_site_dir": expected.parent in _site_directories(),
    }


def _own_architectures() -> Dict[str, str]:
    """Architectures that metatrain-nc itself declares (name -> module)."""
    try:
        dist = distribution(DISTRIBUTION)
    except PackageNotFoundError:
        return {}
    return {
        ep.name: ep.value for ep in dist.entry_points if ep.group == ARCHITECTURE_GROUP
    }


def _probe_hook_import() -> Optional[str]:
    """Why the hook module cannot be imported, or ``None`` if it can."""
    try:
        importlib.import_module(HOOK_MODULE)
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    return None


def diagnose() -> Dict[str, Any]:
    """Everything ``mtt-nc doctor`` reports, without printing.

    :return: keys ``versions`` (name -> version), ``hook`` (``loaded``, ``active``,
        ``file``, ``state``), ``patches`` (patch name -> status), ``pth``
        (``expected``, ``exists``, ``in_site_dir``),
        ``site_disabled``, ``registered`` and ``own`` (name -> module),
        ``metatrain_own`` and ``seen`` (names), ``refused`` (name -> reason),
        ``evaluators`` (name -> module), ``supported`` (bool), ``problems`` and
        ``warnings`` (lists of ``(what is wrong, what to do)``).
    """
    from .cli import evaluator_entry_points
    from .compat import is_supported, metatrain_version, supported_range

    problems: List[Problem] = []
    warnings: List[Problem] = []
    report: Dict[str, Any] = {"versions": _versions()}

    hook = sys.modules.get(HOOK_MODULE)
    state = dict(getattr(hook, "STATE", {})) if hook is not None else {}
    finder = getattr(hook, "FINDER", None)
    report["hook"] = {
        "loaded": hook is not None,
        "file": getattr(hook, "__file__", None),
        "state": state,
        "in_meta_path": finder is not None and finder in sys.meta_path,
    }
    report["pth"] = _pth_status()
    report["site_disabled"] = bool(sys.flags.no_site)
    report["registered"] = {
        ep.name: ep.value for ep in entry_points(group=ARCHITECTURE_GROUP)
    }
    report["own"] = _own_architectures()
    report["evaluators"] = evaluator_entry_points()

    installed = metatrain_version()
    report["supported"] = is_supported(installed)
    fix_version = f"pip install '{supported_range()}'"
    if not report["supported"]:
        problems.append(
            (f"unsupported metatrain: {_unsupported(installed)}", fix_version)
        )

    # what metatrain sees, through its own (possibly patched) function
    report["seen"] = []
    if installed is not None:
        try:
            from metatrain.utils.architectures import find_all_architectures

            report["seen"] = list(find_all_architectures())
        except Exception as error:
            problems.append(
                (f"metatrain cannot list its architectures: {error!r}", fix_version)
            )
    if installed is not None and report["supported"]:
        try:  # the other module the hook patches (torch, metatrain: a few seconds)
            _import_quietly("metatrain.cli.train")
        except Exception as error:
            problems.append(
                (f"metatrain's `mtt train` cannot be imported: {error!r}", fix_version)
            )
    # what the hook did (refresh: listing the architectures may have run it)
    state = dict(getattr(hook, "STATE", {})) if hook is not None else {}
    report["hook"]["state"] = state
    report["refused"] = dict(state.get("refused", {}))
    report["hook"]["active"] = bool(
        report["hook"]["in_meta_path"]
        and "metatrain.utils.architectures" in state.get("patched", [])
    )
    served = set(report["registered"]) - set(report["refused"])
    served -= set(state.get("native", []))
    report["metatrain_own"] = [name for name in report["seen"] if name not in served]

    _hook_problems(report, problems)
    report["patches"] = _patch_status(hook, state)
    patching = report["hook"]["in_meta_path"]  # the hook is there to patch
    if patching:
        _patch_problems(report["patches"], problems)
    for error in state.get("errors", []):
        if patching and error.startswith("patching "):  # said above, with the fix
            continue
        problems.append(
            (f"start-up hook error: {error}", "report it to metatrain-nc developers")
        )

    own = report["own"]
    for name in report["registered"]:
        if name in report["seen"] or name in report["refused"]:
            continue
        if name in own:
            problems.append(
                (
                    f"metatrain does not see the architecture '{name}': `mtt train`, "
                    "`mtt export` and checkpoint loading will not find it",
                    "fix the problems listed above",
                )
            )
    for name, reason in report["refused"].items():
        item = (f"registered architecture '{name}' refused: {reason}", "")
        if name in own:
            problems.append(item)
        else:
            warnings.append(
                (item[0], "its package should pick a name metatrain does not use")
            )
    report["problems"] = problems
    report["warnings"] = warnings
    return report


def _import_quietly(name: str) -> None:
    import warnings

    with warnings.catch_warnings():  # metatrain's own deprecation notes
        warnings.simplefilter("ignore")
        importlib.import_module(name)


def _patch_status(hook: Any, state: Dict[str, Any]) -> Dict[str, str]:
    """Every patch the hook should have applied -> ``"applied"``, ``"failed: ..."``,
    ``"not applied"`` (its module ran without the hook's patching loader) or
    ``"module not imported"``."""
    expected = getattr(hook, "expected_patches", None)
    done = dict(state.get("patches", {}))
    names = list(expected()) if callable(expected) else list(done)
    status = {}
    for name in names:
        if name in done:
            status[name] = done[name]
        elif name.split(":")[0] in sys.modules:
            status[name] = "not applied"
        else:
            status[name] = "module not imported"
    return status


def _patch_problems(patches: Dict[str, str], problems: List[Problem]) -> None:
    from .compat import supported_range

    for name, status in patches.items():
        if status in ("applied", "module not imported"):  # the latter said above
            continue
        module = name.split(":")[0]
        why = (
            status[len("failed: ") :]
            if status.startswith("failed: ")
            else f"{module} was imported without the hook's patching loader"
        )
        problems.append(
            (
                f"the start-up hook's patch {name} did not apply ({why}): `mtt "
                "train` runs without it",
                f"use a metatrain this release supports (`pip install "
                f"'{supported_range()}'`) or a metatrain-nc release made for "
                "yours, and report it to metatrain-nc developers",
            )
        )


def _unsupported(installed: Optional[str]) -> str:
    from .compat import unsupported_message

    return unsupported_message(installed)


def _hook_problems(report: Dict[str, Any], problems: List[Problem]) -> None:
    hook, pth = report["hook"], report["pth"]
    state = hook["state"]
    reinstall = "reinstall: pip install --force-reinstall --no-deps metatrain-nc"
    if hook["active"]:
        return
    if state.get("disabled"):
        problems.append(
            (
                "the start-up hook is disabled by METATRAIN_NC_DISABLE_HOOK",
                "unset METATRAIN_NC_DISABLE_HOOK",
            )
        )
    elif report["site_disabled"]:
        problems.append(
            (
                "Python runs without the site module (-S): .pth files, and so the "
                "start-up hook, are not read",
                "run without -S, or `import _metatrain_nc_hook` before metatrain",
            )
        )
    elif pth["expected"] is None:
        problems.append(
            ("metatrain-nc is not installed (no metadata found)", "pip install -e .")
        )
    elif not pth["exists"]:
        problems.append((f"{pth['expected']} is missing", reinstall))
    elif not pth["in_site_dir"]:
        problems.append(
            (
                f"{pth['expected']} is not in a site directory (pip --target or "
                "PYTHONPATH?): Python reads .pth files only from site-packages",
                "pip install metatrain-nc into the environment (no --target)",
            )
        )
    elif not hook["loaded"]:
        why = _probe_hook_import()
        problems.append(
            (
                "the start-up hook did not load"
                + (f" ({why})" if why else " (it imports now: was sys.path changed?)"),
                reinstall,
            )
        )
    elif not hook["in_meta_path"]:
        problems.append(
            ("the start-up hook's finder was removed from sys.meta_path", reinstall)
        )


def _print_report(report: Dict[str, Any]) -> None:
    print("versions:")
    for name, value in report["versions"].items():
        print(f"  {name:<16} {value}")
    hook = report["hook"]
    loaded = "yes" if hook["loaded"] else "no"
    active = "yes" if hook["active"] else "no"
    print(f"start-up hook loaded: {loaded}, active: {active}")
    if hook["file"]:
        print(f"  module  {hook['file']}")
    if report["pth"]["expected"]:
        exists = "" if report["pth"]["exists"] else "  (MISSING)"
        print(f"  .pth    {report['pth']['expected']}{exists}")
    print("architectures registered (entry points, group metatrain.architectures):")
    for name, module in report["registered"].items():
        if name in report["refused"]:
            status = f"REFUSED: {report['refused'][name]}"
        elif name in report["seen"]:
            status = "seen by metatrain"
        else:
            status = "NOT seen by metatrain"
        print(f"  {name:<16} {module:<32} {status}")
    for name, reason in report["refused"].items():
        if name not in report["registered"]:
            print(f"  {name:<16} {'':<32} REFUSED: {reason}")
    own = ", ".join(report["metatrain_own"]) or "-"
    print(f"metatrain's own architectures: {own}")
    print("start-up hook patches:")
    for name, status in report["patches"].items():
        print(f"  {name:<52} {status}")
    print("evaluators (entry points, group metatrain.evaluators):")
    for name, module in report["evaluators"].items():
        print(f"  {name:<16} {module}")
    if not report["evaluators"]:
        print("  -")


def run(args: argparse.Namespace) -> int:
    """Print the report; 0 when the registration is usable, 1 otherwise."""
    report = diagnose()
    if not args.quiet:
        _print_report(report)
    for title, items in (
        ("warnings", report["warnings"]),
        ("problems", report["problems"]),
    ):
        if items:
            print(f"{title}:")
        for what, fix in items:
            print(f"  - {what}" + (f"\n    fix: {fix}" if fix else ""))
    if report["problems"]:
        return 1
    if not args.quiet:
        print(
            "ok: metatrain finds every architecture metatrain-nc registers, and "
            "every patch of the start-up hook applied"
        )
    return 0
