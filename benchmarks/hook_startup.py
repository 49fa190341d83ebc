"""Interpreter start-up cost of the registration hook (target: <= 2 ms).

Two throwaway virtual environments are made that are identical to the running one
(every site-packages entry is a symbolic link to the real one, so every other ``.pth``
file is read as usual) except that one lacks ``metatrain_nc_hook.pth``. Fresh
``python -c pass`` runs alternate between them; the medians and their difference are
the hook's start-up cost (byte-code caches on, as after any pip install). Also
reported: ``-X importtime`` of the hook module (with and without its ``.pyc``), and
the one-off cost paid lazily at the first ``metatrain.*`` import (entry points).

Run: ``python benchmarks/hook_startup.py [--runs N]``.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List

HOOK_PTH = "metatrain_nc_hook.pth"

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.registration_fixtures import (  # noqa: E402
    SITE_PACKAGES,
    shadow_environment,
)

#: as after a pip install: byte-code caches are used (and written if missing)
CACHED = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def start(executable: Path, code: str = "pass") -> float:
    """Wall time of one fresh interpreter running ``code``, in seconds."""
    begin = time.perf_counter()
    subprocess.run(
        [str(executable), "-c", code], check=True, capture_output=True, env=CACHED
    )
    return time.perf_counter() - begin


def importtime(executable: Path, runs: int, cache: bool = True) -> float:
    """Median ``-X importtime`` (cumulative, ms) of the hook module at start-up.

    With ``cache=False`` the module is compiled from source at every start (no
    byte-code cache, e.g. ``PYTHONDONTWRITEBYTECODE=1`` with an editable install).
    """
    values: List[float] = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as empty:
            flags = [] if cache else ["-X", f"pycache_prefix={empty}"]
            env = CACHED if cache else dict(CACHED, PYTHONDONTWRITEBYTECODE="1")
            result = subprocess.run(
                [str(executable), *flags, "-X", "importtime", "-c", "pass"],
                capture_output=True,
                text=True,
                check=True,
                env=env,
            )
        for line in result.stderr.splitlines():
            if line.split("|")[-1].strip() == "_metatrain_nc_hook":
                values.append(int(line.split("|")[1]) / 1000.0)
    return statistics.median(values) if values else float("nan")


def lazy_cost(executable: Path, runs: int) -> float:
    """Median one-off cost (ms) of reading the entry points at first use."""
    code = (
        "import time, _metatrain_nc_hook as h; t = time.perf_counter(); "
        "h.registered_architectures(); print(time.perf_counter() - t)"
    )
    values = [
        float(
            subprocess.run(
                [str(executable), "-c", code],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        for _ in range(runs)
    ]
    return 1000 * statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100, help="starts per variant")
    args = parser.parse_args()
    if not (SITE_PACKAGES / HOOK_PTH).exists():
        sys.exit(f"{HOOK_PTH} is not in {SITE_PACKAGES}: install metatrain-nc first")
    with tempfile.TemporaryDirectory() as folder:
        with_hook = shadow_environment(Path(folder) / "with")
        without = shadow_environment(Path(folder) / "without", [HOOK_PTH])
        check = "import sys; print('_metatrain_nc_hook' in sys.modules)"
        for executable, expected in ((with_hook, "True"), (without, "False")):
            out = subprocess.run(
                [str(executable), "-c", check], capture_output=True, text=True
            ).stdout.strip()
            assert out == expected, (executable, out)
        for _ in range(5):  # warm the file-system caches
            start(with_hook), start(without)
        times = {"with": [], "without": []}
        for _ in range(args.runs):  # alternate, so that load drifts hit both
            times["without"].append(start(without))
            times["with"].append(start(with_hook))
        median = {key: 1000 * statistics.median(value) for key, value in times.items()}
        difference = median["with"] - median["without"]
        imports = importtime(with_hook, min(args.runs, 30))
        uncached = importtime(with_hook, 10, cache=False)
        lazy = lazy_cost(with_hook, 10)

    print(f"`python -c pass`, {args.runs} alternating starts each (medians, ms)")
    print(f"  {'without metatrain_nc_hook.pth':<40} {median['without']:8.2f}")
    print(f"  {'with metatrain_nc_hook.pth':<40} {median['with']:8.2f}")
    print(f"  {'difference (start-up cost of the hook)':<40} {difference:8.2f}")
    print(f"  {'-X importtime of _metatrain_nc_hook':<40} {imports:8.3f}")
    print(f"  {'  same, compiled from source (no .pyc)':<40} {uncached:8.3f}")
    print(f"  {'first metatrain.* import, once':<40} {lazy:8.2f}")
    verdict = "meets" if difference <= 2.0 else "MISSES"
    print(f"target <= 2 ms per start: {verdict}")


if __name__ == "__main__":
    main()
