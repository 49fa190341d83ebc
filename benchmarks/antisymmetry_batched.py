"""Lambda over many small structures: packed (batched) vs one structure at a time.

Structures: the 100 ethanol frames of ``recipes/data/ethanol_100_eV.xyz`` (9 atoms,
27 Jacobian rows each). Model: an untrained ``pet_nc`` with the hypers of the bundled
small recipe (``recipes/small/ethanol_pet_nc.yaml``: d_pet 64, 2 GNN layers, 2
attention layers), exported to TorchScript as ``mtt export`` would (the weights do
not change the cost), float32, or ``--model PATH``.

In one process, interleaved ``--repeats`` times, :func:`metatrain_nc.antisymmetry.
evaluate` computes lambda of the direct head for all frames

- exact: ``packing="auto"`` (the default: structures packed into one model evaluation
  when the first chunk says it is faster; one backward pass gives one row of every
  structure's Jacobian) against ``packing="single"`` (one structure at a time, the
  evaluator before packing; its VJP strategy is still chosen automatically);
- stochastic (``--probes`` probes per structure): the same two ways;
- exact, as a reference (``--reference``, on by default): one structure at a time
  with all of its rows in ONE batched backward pass (``strategy="batched"``,
  ``chunk_size`` = the largest 3N), the best one-at-a-time strategy for small
  molecules; ``packing="single"`` spends its first 16 rows in the timed loop of
  ``strategy="auto"``.

Reported: median wall time of each, the ratio single / packed, the largest relative
difference of the per-structure lambdas between the two (round-off), and where the
time of the last repeat of each mode went (exclusive wall time): model calls that
build forward graphs (neighbour lists included), backward passes
(``torch.autograd.grad``: rows, probes, the double-backward graph of ``J v``), the
forces of the other head written to the chemiscope file, and the rest (Python,
per-atom lambda, packing decisions).

    OMP_NUM_THREADS=1 python benchmarks/antisymmetry_batched.py [--repeats 3]
                                        [--frames 100] [--probes 4] [--no-reference]
"""

import argparse
import contextlib
import functools
import statistics
import sys
import tempfile
import time
from pathlib import Path

import ase.io
import numpy as np
import torch
import yaml
from metatrain.utils.architectures import get_default_hypers, import_architecture
from metatrain.utils.data import DatasetInfo
from metatrain.utils.data.target_info import get_energy_target_info

sys.path.insert(0, str(Path(__file__).resolve().parent))
from antisymmetry_common import setup_threads  # noqa: E402

import metatrain_nc.antisymmetry.steps as antisymmetry_steps  # noqa: E402
from metatrain_nc.antisymmetry import evaluate, load_force_model  # noqa: E402
from metatrain_nc.antisymmetry.packing import Pack  # noqa: E402
from metatrain_nc.cli_options import add_options, option  # noqa: E402
from metatrain_nc.force_models.timing import WallClock  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ETHANOL = ROOT / "recipes" / "data" / "ethanol_100_eV.xyz"
RECIPE = ROOT / "recipes" / "small" / "ethanol_pet_nc.yaml"


def small_pet_nc(path: Path) -> Path:
    """Export an untrained pet_nc with the small ethanol recipe's model hypers."""
    recipe = yaml.safe_load(RECIPE.read_text())
    hypers = get_default_hypers("pet_nc")["model"]
    hypers.update(recipe["architecture"]["model"])
    energy = get_energy_target_info(
        "energy", {"unit": "eV"}, add_position_gradients=True
    )
    info = DatasetInfo("angstrom", [1, 6, 8], {"energy": energy})
    torch.manual_seed(0)
    model = import_architecture("pet_nc").__model__(hypers, info)
    model.to(torch.float32).eval().export().save(str(path))
    return path


class Breakdown:
    """Exclusive wall time of a few phases of :func:`evaluate` (nested phases are
    charged to the innermost one, except inside the other head's forces, charged
    to them as a whole), by wrapping the functions that run them."""

    PHASES = {
        "forward": (Pack, "__init__"),
        "backward": (torch.autograd, "grad"),
        "other head": (antisymmetry_steps, "packed_forces"),
    }

    def __init__(self):
        self.seconds = dict.fromkeys(self.PHASES, 0.0)
        self.calls = dict.fromkeys(self.PHASES, 0)
        self._stack = []  # [phase, start, time of nested phases]

    def _wrap(self, phase, function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            if any(frame[0] == "other head" for frame in self._stack):
                return function(*args, **kwargs)
            self._stack.append([phase, time.perf_counter(), 0.0])
            try:
                return function(*args, **kwargs)
            finally:
                _, start, nested = self._stack.pop()
                spent = time.perf_counter() - start
                self.seconds[phase] += spent - nested
                self.calls[phase] += 1
                if self._stack:
                    self._stack[-1][2] += spent

        return wrapper

    @contextlib.contextmanager
    def active(self):
        saved = {k: getattr(owner, name) for k, (owner, name) in self.PHASES.items()}
        for phase, (owner, name) in self.PHASES.items():
            setattr(owner, name, self._wrap(phase, saved[phase]))
        try:
            yield self
        finally:
            for phase, (owner, name) in self.PHASES.items():
                setattr(owner, name, saved[phase])

    def describe(self, total: float) -> str:
        parts = [
            f"{phase} {self.seconds[phase]:.2f} s ({self.calls[phase]} calls)"
            for phase in self.PHASES
        ]
        rest = total - sum(self.seconds.values())
        return ", ".join(parts) + f", rest {rest:.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_options(
        parser,
        (
            option("--model", help="exported model (default: untrained pet_nc)"),
            option("--frames", default=100),
            option("--repeats", default=3),
            option("--probes", default=4),
            option(
                "--paths", default="exact,stochastic", help="exact, stochastic or both"
            ),
            option(
                "--no-reference",
                dest="reference",
                action="store_false",
                help="skip the exact path one at a time with all rows in one batched "
                "pass",
            ),
        ),
    )
    args = parser.parse_args()
    setup_threads()

    with tempfile.TemporaryDirectory() as tmp:
        path = args.model or small_pet_nc(Path(tmp) / "pet_nc.pt")
        model = load_force_model(path)
        frames = ase.io.read(ETHANOL, f":{args.frames}")
        atoms = sum(len(a) for a in frames)
        print(
            f"{len(frames)} structures ({atoms} atoms), model {path}, "
            f"{torch.get_num_threads()} thread(s)"
        )
        evaluate(frames[:4], model, pairs=False)  # warm-up
        largest = max(3 * len(a) for a in frames)
        for name in args.paths.split(","):
            options = {"pairs": False}
            if name == "stochastic":
                options.update(stochastic=True, probes=args.probes)
            modes = {"auto": {"packing": "auto"}, "single": {"packing": "single"}}
            if name == "exact" and args.reference:
                modes["batched"] = {
                    "packing": "single",
                    "strategy": "batched",
                    "chunk_size": largest,
                }
            times = {mode: [] for mode in modes}
            lambdas = {}
            breakdowns = {}
            for repeat in range(args.repeats):
                for mode, extra in modes.items():
                    with Breakdown().active() as breakdown:
                        with WallClock() as clock:
                            report = evaluate(frames, model, **options, **extra)
                        times[mode].append(clock.seconds)
                    breakdowns[mode] = breakdown.describe(times[mode][-1])
                    lambdas[mode] = report.lambdas
                    used = report.settings["packing_used"]
                    graphs = report.settings["forward_graphs"]
                    print(
                        f"  {name:10s} repeat {repeat}: {mode:7s} "
                        f"{times[mode][-1]:7.2f} s (used: {used}, "
                        f"{graphs} forward graph(s))",
                        flush=True,
                    )
            medians = {mode: statistics.median(times[mode]) for mode in modes}
            packed, single = medians["auto"], medians["single"]
            difference = max(
                float(
                    np.max(
                        np.abs(lambdas[mode] - lambdas["single"])
                        / np.abs(lambdas["single"])
                    )
                )
                for mode in modes
            )
            what = "exact" if name == "exact" else f"stochastic, {args.probes} probes"
            print(
                f"{what}: packed {packed:.2f} s, one at a time {single:.2f} s "
                f"(medians of {args.repeats}): {single / packed:.2f}x; "
                f"{single / len(frames) * 1e3:.0f} vs "
                f"{packed / len(frames) * 1e3:.0f} ms per structure; lambda "
                f"{np.mean(lambdas['auto']):.4g}, largest relative difference "
                f"{difference:.1e}"
            )
            if "batched" in modes:
                batched = medians["batched"]
                print(
                    f"{what}: one at a time, all {largest} rows in one batched pass "
                    f"{batched:.2f} s: packed is {batched / packed:.2f}x faster"
                )
            for mode in modes:
                print(f"  time of {mode} (last repeat): {breakdowns[mode]}")


if __name__ == "__main__":
    main()
