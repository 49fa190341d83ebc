"""MD speed: conservative, direct and multiple-time-step forces (ratios, one process).

192-atom water box, default-size untrained ``pet_m`` (energy, non_conservative_force
and non_conservative_stress outputs; the weights do not change the cost), float32,
the integrator of ``metatrain_nc.dynamics``. Reports MD steps (of the inner time step)
per second (median over the outer steps of ``--repeats`` interleaved runs) for
``conservative`` (velocity Verlet, energy + backward every step), ``direct``
(forward only) and ``mts`` with stride 8, and the ratios to conservative (theory for
MTS: F / (1 + (F - 1) / M) with F the direct speed-up).

The cost of one evaluation follows the number of neighbour pairs, i.e. the
configuration. The untrained model's forces are arbitrary (and its two heads unrelated,
so MTS corrections are large): with a realistic 0.5 fs step the three runs drift into
different, denser configurations within tens of steps and their costs then differ by
up to 10% for reasons that have nothing to do with the integrators. The default inner
step (``--timestep-fs 0.05``) keeps every run near the starting configuration, and
every repeat starts again from it, so the ratios measure the integrators' cost.

With ``--student`` a fourth mode, ``mts+student``, runs the same model as the slow
(teacher) model and a small untrained ``pet_nc`` (the demo size: d_pet 32, 2 GNN
layers, 1 attention layer, cutoff 4.5 A unless ``--student-cutoff``) as the fast model
of the inner steps (``MultipleTimeStep(..., fast=student)``): the cost of distilled
fast forces, to compare with the conservative steps of the teacher.

A second table compares one force evaluation through our provider against
metatomic's ASE calculator (conservative + direct in one call; direct only).

    python benchmarks/md_speed.py [--inner-steps 32] [--repeats 3] [--stride 8]
                                  [--student]
"""

import argparse
import statistics
import sys
import tempfile
from pathlib import Path
from typing import List

import torch
from ase import units
from ase.neighborlist import neighbor_list

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import default_model, export, median_time, print_table, water_frames  # noqa: E402

from metatrain_nc.cli_options import add_options, option, switch  # noqa: E402
from metatrain_nc.dynamics.integrator import MultipleTimeStep  # noqa: E402
from metatrain_nc.dynamics.structures import maxwell_boltzmann  # noqa: E402
from metatrain_nc.force_models import MetatomicModel  # noqa: E402

#: hypers of the student of ``--student`` (the demo models' size, 46k parameters)
STUDENT_HYPERS = dict(
    d_pet=32,
    d_head=32,
    d_node=32,
    d_feedforward=64,
    num_heads=2,
    num_gnn_layers=2,
    num_attention_layers=1,
)


def make_dynamics(
    model, atoms, forces: str, stride: int, timestep_fs: float, fast=None
) -> MultipleTimeStep:
    """A warmed-up integrator (neighbour lists built, TorchScript profiled)."""
    atoms = atoms.copy()
    maxwell_boltzmann(atoms, 300.0, seed=0)
    dyn = MultipleTimeStep(
        atoms,
        timestep_fs * units.fs * stride,
        model,
        forces=forces,
        stride=stride,
        fast=fast,
    )
    dyn.run(1)
    return dyn


def steps_per_second(dyn: MultipleTimeStep, inner_steps: int) -> List[float]:
    """Inner MD steps per second of each outer step (``>= inner_steps`` in all)."""
    from metatrain_nc.force_models.timing import wall_seconds

    rates = []
    for _ in range(max(-(-inner_steps // dyn.stride), 1)):
        rates.append(dyn.stride / wall_seconds(lambda: dyn.run(1)))
    return rates


def neighbour_pairs(atoms, cutoff: float) -> int:
    """Ordered pairs of atoms closer than ``cutoff`` (A)."""
    return len(neighbor_list("i", atoms, cutoff))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_options(
        parser,
        (
            option("--inner-steps", default=32),
            option("--repeats", default=3),
            option("--stride", default=8),
            option(
                "--timestep-fs",
                default=0.05,
                help="inner time step; small so that every mode stays near the "
                "start (the untrained model's forces are arbitrary, see the module "
                "docstring)",
            ),
            option("--threads", default=2),
            switch(
                "--student", "also MTS with a small pet_nc student as the fast model"
            ),
            option("--student-cutoff", default=4.5),
            switch("--skip-md", "only the force-evaluation table"),
        ),
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    atoms = water_frames(1)[0]
    atoms.calc = None
    with tempfile.TemporaryDirectory() as tmp:
        path = export(default_model("pet_m"), Path(tmp) / "pet_m.pt")
        model = MetatomicModel(path)
        n_params = sum(p.numel() for p in model.model.parameters())
        print(
            f"default-size pet_m, {n_params / 1e6:.2f}M parameters, {len(atoms)} atoms"
        )

        student = None
        if args.student:
            small = default_model(
                "pet_nc", cutoff=args.student_cutoff, **STUDENT_HYPERS
            )
            student = MetatomicModel(export(small, Path(tmp) / "student.pt"))
            n_small = sum(p.numel() for p in student.model.parameters())
            print(f"student pet_nc, {n_small / 1e3:.0f}k parameters")
        modes = [] if args.skip_md else ["conservative", "direct", "mts"]
        if student is not None and modes:
            modes.append("mts+student")
        # interleaved repeats: a slow spell of the machine hits every mode alike.
        # Every repeat starts again from the same structure and velocities.
        samples = {mode: [] for mode in modes}
        # what an evaluation costs follows the number of pairs: report it at the end
        cutoff = max(o.cutoff for o in model.model.requested_neighbor_lists())
        pairs = {}
        for _ in range(args.repeats):
            for mode in modes:
                stride = args.stride if mode.startswith("mts") else 1
                dynamics = make_dynamics(
                    model,
                    atoms,
                    "mts" if mode.startswith("mts") else mode,
                    stride,
                    args.timestep_fs,
                    fast=student if mode == "mts+student" else None,
                )
                inner = (
                    args.inner_steps
                    if mode != "conservative"
                    else max(args.inner_steps // 2, 1)
                )
                samples[mode].append(steps_per_second(dynamics, inner))
                pairs[mode] = neighbour_pairs(dynamics.atoms, cutoff)
        # median over every outer step of every repeat: robust to short slow spells
        rates = {
            mode: statistics.median(sum(runs, [])) for mode, runs in samples.items()
        }
        if len(modes) and args.repeats > 1:
            print("per repeat: ms per inner step (x conservative in the same repeat)")
            for i in range(args.repeats):
                ms = {
                    mode: 1e3 / statistics.median(r[i]) for mode, r in samples.items()
                }
                print(
                    f"  {i + 1}: "
                    + ", ".join(
                        f"{mode} {ms[mode]:.0f}"
                        + (
                            ""
                            if mode == "conservative"
                            else f" ({ms['conservative'] / ms[mode]:.2f}x)"
                        )
                        for mode in modes
                    )
                )
        rows = []
        for mode, rate in rates.items():
            label = f"{mode} (M={args.stride})" if mode.startswith("mts") else mode
            rows.append(
                {
                    "forces": label,
                    "steps/s": f"{rate:.2f}",
                    "ms/step": f"{1000 / rate:.0f}",
                    "x conservative": f"{rate / rates['conservative']:.2f}",
                    "pairs at the end": str(pairs[mode]),
                }
            )
        if rates:
            f = rates["direct"] / rates["conservative"]
            theory = f / (1 + (f - 1) / args.stride)
            print_table("MD steps (inner time step) per second", rows)
            print(f"MTS theory from the direct speed-up: {theory:.2f}x")
            start = neighbour_pairs(atoms, cutoff)
            print(f"pairs within {cutoff} A at the start: {start}")

        from metatomic.torch import ModelOutput
        from metatomic_ase import MetatomicCalculator

        both_calc = MetatomicCalculator(
            str(path),
            additional_outputs={
                "non_conservative_force": ModelOutput(sample_kind="atom")
            },
            do_gradients_with_energy=True,
        )
        direct_calc = MetatomicCalculator(str(path), non_conservative=True)

        def with_calculator(calculator, outputs):
            def run():
                calculator.reset()  # no cached results: a real evaluation
                probe = atoms.copy()
                probe.calc = calculator
                probe.get_forces()

            return run

        from metatrain_nc.force_models.timing import time_force_model

        timings = {
            "provider: F_c + F_nc (one call)": time_force_model(
                model, atoms, conservative=True, direct=True, repeats=3
            ).seconds_per_call,
            "metatomic-ase: F_c + F_nc (additional_outputs)": median_time(
                with_calculator(both_calc, None), 3
            ),
            "provider: F_nc (forward only)": time_force_model(
                model, atoms, conservative=False, direct=True, repeats=3
            ).seconds_per_call,
            "metatomic-ase: F_nc (non_conservative=True)": median_time(
                with_calculator(direct_calc, None), 3
            ),
        }
        print_table(
            "one force evaluation",
            [{"call": k, "ms": f"{1000 * v:.0f}"} for k, v in timings.items()],
        )


if __name__ == "__main__":
    main()
