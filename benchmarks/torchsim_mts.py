"""torch-sim MTS throughput: replica MD steps per second, batched vs the ASE path.

192-atom water box, untrained ``pet_m`` (default size, or ``--small``: d_pet 32, the
weights do not change the cost), float32, inner step 0.05 fs (every run stays near the
start, so costs compare like for like, as in benchmarks/md_speed.py). For each mode
(``conservative``, ``direct``, ``mts`` with stride M) and N replicas (``--replicas``,
default 1, 4, 16) it times outer steps of one torch-sim batch
(:func:`metatrain_nc.torchsim.mts_step`, a :class:`~metatrain_nc.torchsim.
MetatomicSplit` per mode on the same loaded model), and the ASE integrator
(:class:`~metatrain_nc.dynamics.integrator.MultipleTimeStep`) on one replica (N single
ASE runs take N times as long). All runs are interleaved: each of ``--outer-steps``
rounds does one outer step of every (engine, N, mode), after one warm-up round, and a
rate is M x N over the median time of its outer steps, so that the load of a shared
machine hits every column alike. Model calls per outer step are counted (forward /
backward passes of one batch evaluation: M / M conservative, M / 0 direct, M / 1 mts).

Ratios: each mode against torch-sim conservative at the same N, with the theory for
MTS: per inner step MTS costs ``t_fast + (t_slow - t_fast) / M`` (the outer ``both``
call of a hybrid model is a conservative call), so MTS / conservative =
``F / (1 + (F - 1) / M)``, F the measured direct speed-up; and torch-sim against N
sequential ASE runs. CUDA when available (``--device``), CPU otherwise.

    OMP_NUM_THREADS=1 python benchmarks/torchsim_mts.py [--replicas 1,4,16]
        [--outer-steps 3] [--stride 8] [--small] [--device cuda]
        [--max-atoms-per-call auto|none|N]
"""

import argparse
import statistics
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


class TorchSimRun:
    """One torch-sim batch of N replicas in one force mode."""

    def __init__(self, split, starts, stride, dt, device):
        self.split, self.stride, self.dt, self.device = split, stride, dt, device
        dtype = split.model.torch_dtype
        self.state = mts_init(atoms_to_state(starts, device, dtype), split)

    def step(self):
        self.state = mts_step(self.state, self.split, dt=self.dt, stride=self.stride)
        _sync(self.device)


class AseRun:
    """The ASE integrator on one replica in one force mode."""

    def __init__(self, model, atoms, mode, stride, dt):
        self.dyn = MultipleTimeStep(atoms.copy(), dt, model, forces=mode, stride=stride)

    def step(self):
        self.dyn.run(1)


def _sync(device: str) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def _budget(text: str):
    if text == "auto":
        return "auto"
    return None if text.lower() == "none" else int(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", default="1,4,16")
    parser.add_argument("--outer-steps", type=int, default=3, help="timed rounds")
    parser.add_argument("--stride", type=int, default=8)
    parser.add_argument("--timestep-fs", type=float, default=0.05, help="inner step")
    parser.add_argument("--small", action="store_true", help="d_pet 32 pet_m")
    parser.add_argument("--max-atoms-per-call", default="auto", type=_budget)
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
    runs = {}
    for mode in MODES:
        split = MetatomicSplit(
            model, mode=mode, max_atoms_per_call=args.max_atoms_per_call
        )
        for n in counts:
            starts = []
            for k in range(n):
                copy = atoms.copy()
                maxwell_boltzmann(copy, 300.0, k)
                starts.append(copy)
            runs[mode, n] = TorchSimRun(split, starts, args.stride, dt, args.device)
        runs[mode, "ase"] = AseRun(model, atoms, mode, args.stride, dt)
    times = {key: [] for key in runs}
    calls = {}
    for round_ in range(args.outer_steps + 1):  # round 0: warm-up
        for key, run in runs.items():
            before = (model.n_forward, model.n_backward)
            start = time.perf_counter()
            run.step()
            elapsed = time.perf_counter() - start
            if round_:
                times[key].append(elapsed)
            calls[key] = (model.n_forward - before[0], model.n_backward - before[1])
    rates = {}
    for (mode, n), values in times.items():
        replicas = 1 if n == "ase" else n
        rates[mode, n] = args.stride * replicas / statistics.median(values)
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
                    "replica steps/s": f"{rates[mode, n]:.2f}",
                    "calls/outer (fwd/bwd)": "{}/{}".format(*calls[mode, n]),
                    "vs ts conservative": f"{ratio:.2f}"
                    + (
                        f" (theory {theory:.2f}, {ratio / theory - 1:+.0%})"
                        if mode == "mts"
                        else ""
                    ),
                    "vs N ASE runs": f"{rates[mode, n] / rates[mode, 'ase']:.2f}",
                }
            )
    speedup = rates["direct", "ase"] / rates["conservative", "ase"]
    theory = speedup / (1 + (speedup - 1) / args.stride)
    for mode in MODES:
        ratio = rates[mode, "ase"] / rates["conservative", "ase"]
        rows.append(
            {
                "N": "ASE 1",
                "mode": mode,
                "replica steps/s": f"{rates[mode, 'ase']:.2f}",
                "calls/outer (fwd/bwd)": "{}/{}".format(*calls[mode, "ase"]),
                "vs ts conservative": f"({ratio:.2f} vs ASE conservative"
                + (f", theory {theory:.2f})" if mode == "mts" else ")"),
                "vs N ASE runs": "1.00",
            }
        )
    budget = runs[MODES[0], counts[0]].split.max_atoms_per_call
    print_table(
        f"torch-sim MTS vs ASE, 192-atom water, pet_m{' (small)' if args.small else ''}"
        f", M = {args.stride}, {args.device}, threads {torch.get_num_threads()}, "
        f"max atoms per call {budget}, median of {args.outer_steps} interleaved "
        "outer steps",
        rows,
    )


if __name__ == "__main__":
    main()
