"""torch-sim MTS throughput: replica MD steps per second, batched vs the ASE path.

192-atom water box, untrained ``pet_m`` (default size, or ``--small``: d_pet 32, the
weights do not change the cost), float32, inner step 0.05 fs (every run stays near the
start, so costs compare like for like, as in benchmarks/md_speed.py). For each mode
(``conservative``, ``direct``, ``mts`` with stride M) and N replicas (``--replicas``,
default 1, 4, 16) it times ``--outer-steps`` outer steps of one torch-sim batch
(:func:`metatrain_nc.torchsim.mts_step`) and reports inner MD steps x replicas per
second; then the ASE integrator on one replica (N single ASE runs take N times as
long). Ratios: each mode against torch-sim conservative at the same N (theory for
MTS: F / (1 + (F - 1) / M), F the measured direct speed-up), and torch-sim against
N sequential ASE runs. CUDA when available (``--device``), CPU otherwise.

    python benchmarks/torchsim_mts.py [--replicas 1,4,16] [--outer-steps 3]
                                      [--stride 8] [--small] [--device cuda]
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from ase import units

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import default_model, export, print_table, water_frames  # noqa: E402

from metatrain_nc.dynamics.integrator import MultipleTimeStep  # noqa: E402
from metatrain_nc.dynamics.structures import maxwell_boltzmann  # noqa: E402
from metatrain_nc.force_models import MetatomicModel  # noqa: E402
from metatrain_nc.torchsim import (  # noqa: E402
    MetatomicSplit,
    atoms_to_state,
    mts_init,
    mts_step,
)

MODES = ("conservative", "direct", "mts")


def torchsim_rate(split, starts, mode, stride, outer_steps, dt, device) -> float:
    state = mts_init(
        atoms_to_state(starts, device, split.provider.torch_dtype), split, forces=mode
    )
    state = mts_step(state, split, dt=dt, stride=stride)  # warm-up
    _sync(device)
    start = time.perf_counter()
    for _ in range(outer_steps):
        state = mts_step(state, split, dt=dt, stride=stride)
    _sync(device)
    return outer_steps * stride * len(starts) / (time.perf_counter() - start)


def ase_rate(model, atoms, mode, stride, outer_steps, dt) -> float:
    dyn = MultipleTimeStep(atoms.copy(), dt, model, forces=mode, stride=stride)
    dyn.run(1)
    start = time.perf_counter()
    dyn.run(outer_steps)
    return outer_steps * stride / (time.perf_counter() - start)


def _sync(device: str) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", default="1,4,16")
    parser.add_argument("--outer-steps", type=int, default=3)
    parser.add_argument("--stride", type=int, default=8)
    parser.add_argument("--timestep-fs", type=float, default=0.05, help="inner step")
    parser.add_argument("--small", action="store_true", help="d_pet 32 pet_m")
    default = "cuda" if torch.cuda.is_available() else "cpu"
    parser.add_argument("--device", default=default)
    args = parser.parse_args()
    counts = [int(n) for n in args.replicas.split(",")]
    atoms = water_frames(1)[0]
    maxwell_boltzmann(atoms, 300.0, 0)
    dt = args.timestep_fs * args.stride * units.fs
    hypers = {"d_pet": 32, "d_head": 32, "d_node": 32} if args.small else {}
    with tempfile.TemporaryDirectory() as tmp:
        path = export(default_model("pet_m", **hypers), Path(tmp) / "pet_m.pt")
        model = MetatomicModel(str(path), device=args.device)
        split = MetatomicSplit(model)
        rates = {}
        for n in counts:
            starts = []
            for k in range(n):
                copy = atoms.copy()
                maxwell_boltzmann(copy, 300.0, k)
                starts.append(copy)
            for mode in MODES:
                rates[mode, n] = torchsim_rate(
                    split, starts, mode, args.stride, args.outer_steps, dt, args.device
                )
        for mode in MODES:
            rates[mode, "ase"] = ase_rate(
                model, atoms, mode, args.stride, args.outer_steps, dt
            )
    rows = []
    for n in counts:
        speedup = rates["direct", n] / rates["conservative", n]
        theory = speedup / (1 + (speedup - 1) / args.stride)
        for mode in MODES:
            ratio = rates[mode, n] / rates["conservative", n]
            rows.append(
                {
                    "N": str(n),
                    "mode": mode,
                    "replica steps/s": f"{rates[mode, n]:.1f}",
                    "vs ts conservative": f"{ratio:.2f}"
                    + (f" (theory {theory:.2f})" if mode == "mts" else ""),
                    "vs N ASE runs": f"{rates[mode, n] / rates[mode, 'ase']:.2f}",
                }
            )
    for mode in MODES:
        rows.append(
            {
                "N": "ASE 1",
                "mode": mode,
                "replica steps/s": f"{rates[mode, 'ase']:.1f}",
                "vs ts conservative": "",
                "vs N ASE runs": "1.00",
            }
        )
    print_table(
        f"torch-sim MTS vs ASE, 192-atom water, pet_m{' (small)' if args.small else ''}"
        f", M = {args.stride}, {args.device}, threads {torch.get_num_threads()}",
        rows,
    )


if __name__ == "__main__":
    main()
