"""Reference trajectories of the multiple-time-step integrator, for
``tests/dynamics/test_force_split.py``.

``integrator_reference.npz`` was produced by this script with the integrator as it
was *before* the force-split protocol (``MultipleTimeStep(atoms, dt, model,
forces=..., fast=...)`` loading the models itself and branching on the force mode;
``plugin/metatrain_nc/dynamics/integrator.py`` and ``force_models/`` unchanged since
commit 480ec27). The test runs the same cases through the force-split
implementations (:mod:`metatrain_nc.force_models.force_split`) and asks for the same
trajectories to 1e-10 (float64 models only: the analytic metatomic pair models of
``tests/analytic_models.py`` and ASE Lennard-Jones calculators).

Every case: 40 outer steps from a stored start (positions, momenta); recorded at
step 0 and after every outer step: positions (A), velocities (ASE units), the forces
``step()`` returns (eV/A; at step 0 those of the first evaluation), the potential
and conserved energies (eV); and the model calls of the whole run.

The case ``hybrid_mts_s4_langevin_fixed`` (Langevin with ``FixAtoms``) was
regenerated alone after the fix of the thermostat's energy under constraints (the
O-step counted the momentum its noise gave the fixed atoms, which the constraint
then zeroed: its conserved energy moved by 0.29 eV over the 40 steps; now the
thermostat's energy is the kinetic-energy change after the constraints, and the start
momenta are put under the constraints when the integrator is built). Its positions,
forces, potential energies and calls are the pre-refactor record unchanged; its
conserved energies and its step-0 velocities (atom 0 now at rest) are new. The other
cases are the pre-refactor record.

Regenerate (only to extend the cases; the stored file is the pre-refactor record)::

    OMP_NUM_THREADS=1 python tests/dynamics/data/make_integrator_reference.py

or regenerate some cases only, from the stored start structures, leaving the others
as they are in the file::

    OMP_NUM_THREADS=1 python tests/dynamics/data/make_integrator_reference.py CASE...
"""

import functools
import sys
import tempfile
from pathlib import Path

import ase
import ase.build
import numpy as np
from ase import units
from ase.calculators.lj import LennardJones
from ase.constraints import FixAtoms

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "integrator_reference.npz"
STEPS = 40
#: strength (eV/A^2) of the rotation field of the hybrid analytic model (as the
#: ``models`` fixture of tests/dynamics/conftest.py)
STRENGTH = 0.005

#: name -> (system, slow model, fast model or None, forces, stride, outer step in fs,
#: ensemble, fixed atoms). Models: "nc" (analytic hybrid: energy + direct head),
#: "energy" (analytic, energy only), "lj" (Lennard-Jones, conservative), "lj_direct"
#: (another Lennard-Jones declared direct).
CASES = {
    "hybrid_mts_s4_nve": ("methanol", "nc", None, "mts", 4, 2.0, "nve", ()),
    "hybrid_mts_s1_svr": ("methanol", "nc", None, "mts", 1, 0.5, "svr", ()),
    "hybrid_mts_s4_langevin_fixed": (
        "methanol",
        "nc",
        None,
        "mts",
        4,
        2.0,
        "langevin",
        (0,),
    ),
    "hybrid_conservative_s4_nve": (
        "methanol",
        "nc",
        None,
        "conservative",
        4,
        2.0,
        "nve",
        (),
    ),
    "hybrid_direct_s4_svr": ("methanol", "nc", None, "direct", 4, 2.0, "svr", ()),
    "pair_metatomic_mts_s4_nve": (
        "methanol",
        "energy",
        "nc",
        "mts",
        4,
        2.0,
        "nve",
        (),
    ),
    "pair_ase_mts_s4_nve": ("argon", "lj", "lj_direct", "mts", 4, 20.0, "nve", ()),
    "pair_ase_mts_s1_langevin": (
        "argon",
        "lj",
        "lj_direct",
        "mts",
        1,
        5.0,
        "langevin",
        (),
    ),
    "ase_conservative_s4_nve": (
        "argon",
        "lj",
        None,
        "conservative",
        4,
        20.0,
        "nve",
        (),
    ),
    "ase_direct_s4_langevin": (
        "argon",
        "lj_direct",
        None,
        "direct",
        4,
        20.0,
        "langevin",
        (),
    ),
}
#: thermostat of the svr/langevin cases: target (K), tau (fs), rng seed
THERMOSTAT = (300.0, 20.0, 7)
ARGON_THERMOSTAT = (60.0, 200.0, 7)


def lennard_jones(direct: bool):
    """The slow (``direct=False``) or fast (declared direct) Lennard-Jones calculator
    of argon (eV, A)."""
    if direct:
        return LennardJones(sigma=3.38, epsilon=0.0098, rc=7.0, smooth=True)
    return LennardJones(sigma=3.405, epsilon=0.0104, rc=8.5, smooth=True)


def export_models(folder: Path) -> dict:
    """The analytic metatomic models (paths), as the dynamics tests' fixture."""
    sys.path.insert(0, str(HERE.parents[2]))
    from tests.analytic_models import export_pair_model

    return {
        "nc": export_pair_model(
            str(folder / "nc.pt"), nonconservative_strength=STRENGTH
        ),
        "energy": export_pair_model(str(folder / "energy.pt"), direct_forces=False),
    }


def load(name: str, paths: dict):
    """A force model by its case name (a fresh one: its call counters at zero)."""
    from metatrain_nc.force_models import load_force_model

    if name == "lj":
        return load_force_model(lennard_jones(False))
    if name == "lj_direct":
        return load_force_model(lennard_jones(True), direct=True)
    return load_force_model(paths[name])


def starts(paths: dict) -> dict:
    """The start structures, with momenta (relaxed methanol under the analytic
    energy, a 6-atom argon cluster)."""
    from ase.optimize import LBFGS

    from metatrain_nc.dynamics.structures import maxwell_boltzmann
    from metatrain_nc.force_models import ModelCalculator

    methanol = ase.build.molecule("CH3OH")
    methanol.calc = ModelCalculator(paths["energy"], forces="conservative")
    LBFGS(methanol, logfile=None).run(fmax=1e-4, steps=500)
    methanol.calc = None
    maxwell_boltzmann(methanol, 300.0, 1)
    d = 3.82 / np.sqrt(2)  # LJ minimum distance 2^(1/6) sigma between neighbours
    argon = ase.Atoms(
        "Ar6",
        positions=[(d, 0, 0), (-d, 0, 0), (0, d, 0), (0, -d, 0), (0, 0, d), (0, 0, -d)],
    )
    argon.rattle(0.05, seed=2)
    maxwell_boltzmann(argon, 40.0, 3)
    return {"methanol": methanol, "argon": argon}


def run_case(case: str, make_dynamics, start: ase.Atoms):
    """Run ``make_dynamics(atoms)`` for :data:`STEPS` outer steps; the records."""
    atoms = start.copy()
    dyn = make_dynamics(atoms)
    record = {k: [] for k in ("positions", "velocities", "forces", "epot", "econs")}

    def observe(forces):
        record["positions"].append(atoms.get_positions())
        record["velocities"].append(atoms.get_velocities())
        record["forces"].append(np.array(forces))
        record["epot"].append(dyn.potential_energy())
        record["econs"].append(dyn.conserved_energy())

    observe(dyn.last.forces(_reported_head(CASES[case][3])))
    for _ in range(STEPS):
        forces = dyn.step()
        dyn.nsteps += 1
        observe(forces)
    return {key: np.array(value) for key, value in record.items()}


def _reported_head(forces: str) -> str:
    return "direct" if forces == "direct" else "conservative"


def start_of(case: str, structures: dict) -> ase.Atoms:
    """The start of ``case`` (a copy, with its constraint)."""
    system, *_, fixed = CASES[case]
    start = structures[system].copy()
    if fixed:
        start.set_constraint(FixAtoms(indices=list(fixed)))
    return start


def settings_of(case: str) -> dict:
    """The integrator's keyword arguments of ``case`` other than the models."""
    system, _, _, _, stride, dt_fs, ensemble, _ = CASES[case]
    target, tau_fs, seed = ARGON_THERMOSTAT if system == "argon" else THERMOSTAT
    return {
        "timestep": dt_fs * units.fs,
        "stride": stride,
        "ensemble": ensemble,
        "temperature_K": None if ensemble == "nve" else target,
        "tau": tau_fs * units.fs,
        "rng": seed,
    }


def stored_starts(data: dict) -> dict:
    """The start structures stored in ``data`` (as the test rebuilds them)."""
    structures = {}
    for system, atoms in (
        ("methanol", ase.build.molecule("CH3OH")),
        ("argon", ase.Atoms("Ar6")),
    ):
        atoms.set_positions(data[f"start_{system}_positions"])
        atoms.set_momenta(data[f"start_{system}_momenta"])
        structures[system] = atoms
    return structures


def main(cases=None) -> None:
    """Record ``cases`` (default: all, from new start structures); with ``cases``,
    only those are run again, from the stored starts, the rest of the file kept."""
    from metatrain_nc.dynamics.integrator import MultipleTimeStep

    unknown = sorted(set(cases or ()) - set(CASES))
    if unknown:
        raise SystemExit(f"unknown cases {unknown}; choose among {list(CASES)}")
    with tempfile.TemporaryDirectory() as tmp:
        paths = export_models(Path(tmp))
        if cases:
            with np.load(OUTPUT) as stored:
                data = {key: stored[key] for key in stored.files}
            structures = stored_starts(data)
        else:
            cases = list(CASES)
            structures = starts(paths)
            data = {}
            for system, atoms in structures.items():
                data[f"start_{system}_positions"] = atoms.get_positions()
                data[f"start_{system}_momenta"] = atoms.get_momenta()
        for case in cases:
            _, slow, fast, forces, *_ = CASES[case]
            slow_model = load(slow, paths)
            fast_model = None if fast is None else load(fast, paths)
            make = functools.partial(
                MultipleTimeStep,
                model=slow_model,
                forces=forces,
                fast=fast_model,
                **settings_of(case),
            )
            record = run_case(case, make, start_of(case, structures))
            calls = [slow_model.n_forward, slow_model.n_backward]
            calls.append(-1 if fast_model is None else fast_model.n_forward)
            record["calls"] = np.array(calls)
            for key, value in record.items():
                previous = data.get(f"{case}/{key}")
                if previous is not None and previous.shape == value.shape:
                    change = float(np.max(np.abs(value - previous), initial=0.0))
                    print(f"  {case}/{key}: largest change {change:.3g}")
                data[f"{case}/{key}"] = value
            print(case, calls, float(np.ptp(record["econs"])))
    np.savez_compressed(OUTPUT, **data)
    print(OUTPUT, OUTPUT.stat().st_size, "bytes")


if __name__ == "__main__":
    main(sys.argv[1:])
