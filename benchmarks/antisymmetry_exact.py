"""Exact lambda: VJP strategies against (a) one backward per row with TorchScript's
default executor and (b) central finite differences.

System: the 192-atom water box of recipes/data (576 Jacobian rows). Model: a
default-size stock PET with a direct force head, exported untrained (weights do not
change the cost; see antisymmetry_common.py), float32, or ``--model PATH``.

All methods run in this one process on the same model and structure: one backward pass
per row (default executor, then the plain executor the evaluator uses), batched VJPs
(``is_grads_batched``, chunks of ``--chunk-sizes`` rows) and central differences (two
force evaluations per column, 8 structures per model call). Each method computes the
same ``--rows`` rows (columns for finite differences) after a warm-up; the cost of the
full Jacobian is extrapolated linearly (every row costs the same). ``--full`` computes
the whole Jacobian with the evaluator and saves it (``--save``) for
``antisymmetry_stochastic.py``. Peak memory: resident-set growth during the timed rows
(above the state after the forward pass), sampled every 5 ms.

Measured on the shared 2-core machine (2026-11-25, 2.99M-parameter PET, float32),
seconds per row [full J]: per-row backward 0.35 [200 s], batched chunk 8 0.64 [371 s],
chunk 16 0.73 [418 s], central differences 0.69 [399 s], default-executor per-row
0.36 [207 s] once warm (1.25 s/row in a cold, loaded run). Peak memory: ~80 MB for the
loop, ~560 MB (chunk 8) and ~1.2 GB (chunk 16) for the batched path.

Usage: OMP_NUM_THREADS=2 python benchmarks/antisymmetry_exact.py [--rows 32]
       [--chunk-sizes 8,16] [--full --save water_J.npy]
"""

import argparse
import threading
import time

import numpy as np
import psutil
import torch
from antisymmetry_common import setup_threads, untrained_pet, water_box

from metatrain_nc.antisymmetry import (
    DIRECT_FORCE,
    lambda_from_jacobian,
    load_force_model,
)
from metatrain_nc.antisymmetry.jacobian import _vjp_rows, exact_jacobian
from metatrain_nc.force_models.timing import WallClock, wall_seconds


class PeakRSS:
    """Peak resident memory (MB) above the level at entry, sampled in a thread."""

    def __enter__(self):
        self.process = psutil.Process()
        self.base = self.process.memory_info().rss
        self.peak = self.base
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self):
        while self.running:
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.005)

    def __exit__(self, *args):
        self.running = False
        self.thread.join()
        self.mb = (self.peak - self.base) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="exported model (default: untrained PET)")
    parser.add_argument("--rows", type=int, default=32, help="rows timed per method")
    parser.add_argument("--chunk-sizes", default="8,32")
    parser.add_argument("--full", action="store_true", help="compute the full J")
    parser.add_argument("--save", help="save the full Jacobian here (.npy)")
    args = parser.parse_args()
    setup_threads()

    model_path = args.model or untrained_pet("/tmp/antisymmetry_bench_pet.pt")
    loaded = load_force_model(model_path)
    atoms = water_box()
    force_model = loaded.structure_forces(atoms, DIRECT_FORCE)
    n3 = 3 * len(atoms)
    rows = torch.arange(args.rows)
    params = sum(p.numel() for p in loaded.model.parameters())
    print(f"model: {model_path} ({params / 1e6:.2f}M parameters, {loaded.dtype})")
    print(f"system: {len(atoms)} atoms, {n3} rows; timing {args.rows} rows per method")
    print(f"threads: {torch.get_num_threads()}")

    # one direct force evaluation (no graph): the unit of cost; TorchScript's
    # profiling executor needs a few calls before it settles
    for _ in range(4):
        force_model.forces_numpy([atoms.positions])
    t_force = (
        wall_seconds(
            lambda: [force_model.forces_numpy([atoms.positions]) for _ in range(3)]
        )
        / 3
    )
    print(f"one direct force evaluation: {t_force * 1e3:.0f} ms")

    results = {}

    def timed_rows(label, force_model, strategy_rows):
        positions = force_model.positions.clone().requires_grad_(True)
        forces = force_model.forces(positions)
        # warm-up of the backward paths (first calls are slower)
        _vjp_rows(forces, positions, rows[:2], batched=False)
        with PeakRSS() as memory:
            with WallClock() as clock:
                block = strategy_rows(forces, positions)
            elapsed = clock.seconds
        results[label] = (elapsed / len(rows), memory.mb)
        return block

    def loop(forces, positions):
        return _vjp_rows(forces, positions, rows, batched=False)

    def batched(chunk):
        def run(forces, positions):
            return torch.cat(
                [
                    _vjp_rows(forces, positions, rows[i : i + chunk], batched=True)
                    for i in range(0, len(rows), chunk)
                ]
            )

        return run

    naive = loaded.structure_forces(atoms, DIRECT_FORCE)
    naive.jit_optimized = True  # TorchScript's default executor
    for _ in range(3):
        naive.forces_numpy([atoms.positions])
    reference = timed_rows("(a) one backward per row, default executor", naive, loop)
    del naive
    block = timed_rows("one backward per row, plain executor", force_model, loop)
    assert torch.allclose(block, reference, atol=1e-4), "rows differ"
    for chunk in [int(c) for c in args.chunk_sizes.split(",")]:
        block = timed_rows(
            f"batched VJP chunk {chunk}, plain executor", force_model, batched(chunk)
        )
        assert torch.allclose(block, reference, atol=1e-4), "batched rows differ"

    # central differences: 2 forward evaluations per column, batched 8 per call
    reference_positions = atoms.positions
    displaced = []
    for column in range(args.rows):
        for sign in (1.0, -1.0):
            p = reference_positions.copy().reshape(-1)
            p[column] += sign * 1e-2
            displaced.append(p.reshape(-1, 3))
    with PeakRSS() as memory:
        elapsed = wall_seconds(
            lambda: force_model.forces_numpy(displaced, batch_size=8)
        )
    results["(b) central differences, 2 evals/column"] = (
        elapsed / args.rows,
        memory.mb,
    )

    best = min(v[0] for k, v in results.items() if "plain" in k)
    print()
    print(
        f"{'method':<40} {'s/row':>8} {'full J (s)':>11} {'x cost':>7} {'peak MB':>8}"
    )
    for name, (per_row, mb) in results.items():
        print(
            f"{name:<40} {per_row:8.3f} {per_row * n3:11.0f} "
            f"{per_row / best:7.2f} {mb:8.0f}"
        )
    print(
        "(x cost: relative to the fastest plain-executor VJP path; full J extrapolated)"
    )

    if args.full:
        with WallClock() as clock:
            jacobian = exact_jacobian(force_model, strategy="loop")
        elapsed = clock.seconds
        lam = lambda_from_jacobian(jacobian)
        print(f"full exact Jacobian: {elapsed:.0f} s, lambda = {lam:.5g}")
        if args.save:
            np.save(args.save, jacobian)
            print(f"saved to {args.save}")


if __name__ == "__main__":
    main()
