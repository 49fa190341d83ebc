"""Does the force-model layer slow the metatomic path? Side by side in one process.

192-atom water box, default-size untrained ``pet_m`` (float32, CPU, exported). Each
round times, interleaved, one force evaluation of:

- ``layer``: :class:`metatrain_nc.force_models.MetatomicModel` (what every tool uses);
- ``previous``: the ``ModelForces`` class of ``dynamics/forces.py`` as it was before
  the layer (read from git at :data:`PREVIOUS_COMMIT`);
- ``metatomic-ase``: metatomic's own ``MetatomicCalculator``,

for conservative forces (forward + backward), direct forces (forward only) and both
heads from one call (the MTS outer step; not available in metatomic-ase). Then a short
MTS run (M = 8, 0.05 fs inner step, as ``md_speed.py``) with the layer and with the
previous integrator's force provider. Medians over ``--repeat`` interleaved rounds;
ratios are ``previous / layer`` (> 1: the layer is faster).
Run: ``python benchmarks/force_layer_overhead.py [--repeat 10]``.
"""

import argparse
import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from common import ROOT, default_model, export, print_table, water_frames
from metatomic_ase import MetatomicCalculator

from metatrain_nc.force_models import ForceResult, MetatomicModel

#: the last commit with the pre-layer force provider
PREVIOUS_COMMIT = "0137fe2"


def previous_model_forces(folder: Path):
    """The pre-layer ``ModelForces`` class, loaded from git."""
    source = subprocess.run(
        ["git", "show", f"{PREVIOUS_COMMIT}:plugin/metatrain_nc/dynamics/forces.py"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    source = source.replace("from ..errors", "from metatrain_nc.errors")
    source = source.replace("from ..model_loading", "from metatrain_nc.model_loading")
    path = folder / "previous_forces.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("previous_forces", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["previous_forces"] = module
    spec.loader.exec_module(module)
    return module.ModelForces


def timed(function) -> float:
    """Wall-clock seconds of ``function()`` (the package's timing module)."""
    from metatrain_nc.force_models.timing import wall_seconds

    return wall_seconds(function)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--md-steps", type=int, default=3, help="outer MTS steps")
    args = parser.parse_args()

    atoms = water_frames(1)[0]
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = str(export(default_model("pet_m"), Path(tmp) / "pet_m.pt"))
        layer = MetatomicModel(path)
        previous = previous_model_forces(Path(tmp))(path)
        calculator = MetatomicCalculator(path, non_conservative=False)
        direct_calculator = MetatomicCalculator(path, non_conservative=True)

        def moved():
            work = atoms.copy()
            work.positions += rng.normal(0, 1e-3, (len(work), 3))
            return work

        def ase_call(calc):
            def run():
                work = moved()
                work.calc = calc
                work.get_forces()

            return run

        setups = {}
        for name, provider in (("layer", layer), ("previous", previous)):
            for label, c, d in [
                ("conservative", True, False),
                ("direct", False, True),
                ("both", True, True),
            ]:
                setups[f"{name}, {label}"] = lambda p=provider, c=c, d=d: p.evaluate(
                    moved(), conservative=c, direct=d
                )
        setups["metatomic-ase, conservative"] = ase_call(calculator)
        setups["metatomic-ase, direct"] = ase_call(direct_calculator)
        for function in setups.values():
            function()  # warm-up
        rounds = {name: [] for name in setups}
        for _ in range(args.repeat):
            for name, function in setups.items():
                rounds[name].append(timed(function))
        times = {name: float(np.median(t)) for name, t in rounds.items()}
        rows = []
        for name, t in times.items():
            head = name.split(", ")[1]
            ratio = times.get(f"previous, {head}", float("nan")) / t
            rows.append(
                {
                    "provider, forces": name,
                    "ms": f"{1000 * t:.1f}",
                    "previous / this": f"{ratio:.3f}",
                }
            )
        print_table(f"One evaluation, {len(atoms)}-atom water, pet_m", rows)
        md_rows(path, layer, previous, atoms, args)


def md_rows(path, layer, previous, atoms, args) -> None:
    """Whole MTS outer steps with each provider (interleaved repeats)."""
    from ase import units

    from metatrain_nc.dynamics.integrator import MultipleTimeStep
    from metatrain_nc.dynamics.structures import maxwell_boltzmann

    start = atoms.copy()
    maxwell_boltzmann(start, 300.0, 0)

    def run(provider):
        work = start.copy()
        dyn = MultipleTimeStep(work, 0.4 * units.fs, provider, forces="mts", stride=8)
        return timed(lambda: dyn.run(args.md_steps)) / (8 * args.md_steps)

    class Wrapped(MetatomicModel):
        """The previous provider behind the layer's interface (its evaluate)."""

        def __init__(self, old):
            self.__dict__.update(layer.__dict__)
            self._old = old

        def _evaluate(self, atoms, conservative, direct, stress):
            old = self._old.evaluate(atoms, conservative, direct, stress)
            return ForceResult(**vars(old))

    wrapped = Wrapped(previous)
    rounds = {"layer": [], "previous": []}
    for _ in range(max(2, args.repeat // 3)):
        rounds["layer"].append(run(layer))
        rounds["previous"].append(run(wrapped))
    ms = {k: 1000 * float(np.median(v)) for k, v in rounds.items()}
    print_table(
        "MTS (M = 8) ms per inner step",
        [
            {
                "provider": k,
                "ms/step": f"{v:.1f}",
                "previous / this": f"{ms['previous'] / v:.3f}",
            }
            for k, v in ms.items()
        ],
    )


if __name__ == "__main__":
    main()
