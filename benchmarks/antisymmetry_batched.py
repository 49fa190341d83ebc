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
- stochastic (``--probes`` probes per structure): the same two ways.

Reported: median wall time of each, the ratio single / packed, and the largest
relative difference of the per-structure lambdas between the two (round-off).

    OMP_NUM_THREADS=1 python benchmarks/antisymmetry_batched.py [--repeats 3]
                                        [--frames 100] [--probes 4]
"""

import argparse
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

from metatrain_nc.antisymmetry import evaluate, load_force_model  # noqa: E402

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="exported model (default: untrained pet_nc)")
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--probes", type=int, default=4)
    parser.add_argument(
        "--paths", default="exact,stochastic", help="exact, stochastic or both"
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
        for name in args.paths.split(","):
            options = {"pairs": False}
            if name == "stochastic":
                options.update(stochastic=True, probes=args.probes)
            times = {"auto": [], "single": []}
            lambdas = {}
            for repeat in range(args.repeats):
                for packing in ("auto", "single"):
                    start = time.perf_counter()
                    report = evaluate(frames, model, packing=packing, **options)
                    times[packing].append(time.perf_counter() - start)
                    lambdas[packing] = report.lambdas
                    used = report.settings["packing_used"]
                    graphs = report.settings["forward_graphs"]
                    print(
                        f"  {name:10s} repeat {repeat}: packing={packing:6s} "
                        f"{times[packing][-1]:7.2f} s (used: {used}, "
                        f"{graphs} forward graph(s))",
                        flush=True,
                    )
            packed = statistics.median(times["auto"])
            single = statistics.median(times["single"])
            difference = np.max(
                np.abs(lambdas["auto"] - lambdas["single"]) / np.abs(lambdas["single"])
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


if __name__ == "__main__":
    main()
