"""Start-up cost of the registration hook (target: <= 2 ms per interpreter start).

Three figures, medians over many fresh interpreters:

1. ``-X importtime`` of ``_metatrain_nc_hook`` (what the ``.pth`` line costs);
2. wall time of a start without the hook against a start with it, with site-packages
   on the path in both: ``python -S -c "import site"`` against ``python -S -c
   "import site, _metatrain_nc_hook"`` (the difference is the hook's full cost);
3. the one-off lazy cost paid on the first ``metatrain.*`` import (reading entry
   points), inside ``import metatrain.utils.architectures``.

Run: ``python benchmarks/hook_startup.py [--runs N]``.
"""

import argparse
import statistics
import subprocess
import sys
import sysconfig
import time


def wall(args, runs):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(args, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def importtime(runs):
    values = []
    for _ in range(runs):
        result = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", "pass"],
            capture_output=True,
            text=True,
            check=True,
        )
        for line in result.stderr.splitlines():
            if line.rstrip().endswith("_metatrain_nc_hook"):
                values.append(int(line.split("|")[1]) / 1000.0)  # cumulative, ms
    return statistics.median(values) if values else float("nan")


def lazy_cost(runs):
    code = (
        "import time, _metatrain_nc_hook as h; t = time.perf_counter(); "
        "h.registered_architectures(); print(time.perf_counter() - t)"
    )
    values = [
        float(
            subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True
            ).stdout
        )
        for _ in range(runs)
    ]
    return statistics.median(values) * 1000


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    site_packages = sysconfig.get_paths()["purelib"]
    add_path = f"import sys; sys.path.append({site_packages!r})"
    without = wall([sys.executable, "-S", "-c", f"{add_path}; import site"], args.runs)
    with_hook = wall(
        [sys.executable, "-S", "-c", f"{add_path}; import site, _metatrain_nc_hook"],
        args.runs,
    )
    print(f"interpreter start, {args.runs} runs each (medians):")
    print(f"  -X importtime of the hook module     {importtime(args.runs):7.3f} ms")
    print(f"  wall, without the hook               {1000 * without:7.2f} ms")
    print(f"  wall, with the hook                  {1000 * with_hook:7.2f} ms")
    difference = 1000 * (with_hook - without)
    print(f"  difference                           {difference:7.2f} ms")
    print(f"  first metatrain import (entry points) {lazy_cost(10):6.2f} ms, once")


if __name__ == "__main__":
    main()
