"""Force evaluation cost: direct (pet_nc) and hybrid (pet_m) vs conservative (pet).

192-atom water box, default PET hypers, float32, CPU, exported TorchScript models
through metatomic's ASE calculator, all in one process. The direct model uses
``non_conservative=True`` (direct forces *and* stress: the setting that really skips
the backward pass; ``"forces"`` on a periodic box still back-propagates for the
stress). Run: ``python benchmarks/inference_speed.py [--repeat N]``.
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np
from common import (
    default_model,
    export,
    interleaved_medians,
    print_table,
    water_frames,
)
from metatomic.torch import ModelOutput
from metatomic_ase import MetatomicCalculator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()

    atoms = water_frames(1)[0]
    with tempfile.TemporaryDirectory() as tmp:
        paths = {
            name: export(default_model(name), Path(tmp) / f"{name}.pt")
            for name in ("pet", "pet_nc", "pet_m")
        }
        both = {"non_conservative_force": ModelOutput(sample_kind="atom")}
        setups = {
            "pet, conservative F+stress": MetatomicCalculator(str(paths["pet"])),
            "pet_nc, direct F+stress": MetatomicCalculator(
                str(paths["pet_nc"]), non_conservative=True
            ),
            "pet_m, conservative F+stress": MetatomicCalculator(str(paths["pet_m"])),
            "pet_m, conservative + direct F": MetatomicCalculator(
                str(paths["pet_m"]), additional_outputs=both
            ),
            "pet_m, direct F+stress": MetatomicCalculator(
                str(paths["pet_m"]), non_conservative=True
            ),
        }

        rng = np.random.default_rng(0)

        def evaluate(calculator):
            def run():
                # new positions every call: ASE calculators cache their results
                work = atoms.copy()
                work.positions += rng.normal(0, 1e-3, (len(work), 3))
                work.calc = calculator
                work.get_forces()
                work.get_stress()

            return run

        calls = {name: evaluate(calculator) for name, calculator in setups.items()}
        timings = interleaved_medians(calls, args.repeat)
    reference = timings["pet, conservative F+stress"]
    rows = [
        {
            "model": name,
            "ms/step": f"{1000 * t:.1f}",
            "ms/atom": f"{1000 * t / len(atoms):.3f}",
            "speed-up vs pet": f"{reference / t:.2f}x",
        }
        for name, t in timings.items()
    ]
    print_table(f"Force evaluation, {len(atoms)}-atom water, default PET", rows)


if __name__ == "__main__":
    main()
