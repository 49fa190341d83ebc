"""Does a reference potential hold liquid water in NVE? (``mtt-nc reference`` picks its
reference by this run.)

Velocity Verlet at ``--timestep`` (0.5 fs) over ``--duration`` (2 ps) of the 192-atom
water box, real masses, started from a frame of a reference build's trajectory (the
reference's own equilibrated liquid) with Maxwell-Boltzmann velocities at 300 K.
Records every step (energies, temperature per species) and a frame every
``--frame-every`` steps; resumable: run the same command again after an interruption
and it continues from the last committed chunk. At the end it writes
``summary.json`` and ``report.md`` into ``--out``:

- conserved-energy drift (meV/atom/ps, linear fit with its standard error) and the
  drift ratio of the public drift benchmarks (energy change over the run from the fit,
  divided by the standard deviation of the kinetic energy);
- mean temperature and per-species temperatures (block-averaged errors);
- liquid or not: the O self-diffusion coefficient (Einstein relation) and the O-O
  radial distribution function (first peak, first minimum).

    python benchmarks/reference_nve.py --reference metatrain_nc.references:chgnet \\
        --start data-build/water_chgnet/trajectories/001.extxyz --out docs/reference_nve

CPU: one process, ~1-2 s per step for CHGNet on 192 atoms (4000 steps: 1-2 h).
"""

import argparse
import json
import sys
import time
from pathlib import Path

import ase.io
import numpy as np
import torch
from ase import units
from ase.md.verlet import VelocityVerlet

from metatrain_nc.dynamics.diffusion import diffusion_coefficients
from metatrain_nc.dynamics.statistics import block_average, summarise
from metatrain_nc.dynamics.structures import thermalize_momenta
from metatrain_nc.force_models.calculator import ModelCalculator
from metatrain_nc.force_models.loading import load_force_model
from metatrain_nc.reference_data.store import FrameLog

#: steps per committed chunk
CHUNK = 20


def species_temperatures(atoms) -> dict:
    """Kinetic temperature of each species (K): ``2 K_s / (3 N_s k_B)``."""
    velocities = atoms.get_velocities()
    masses = atoms.get_masses()
    out = {}
    for symbol in sorted(set(atoms.get_chemical_symbols())):
        mask = np.array(atoms.get_chemical_symbols()) == symbol
        kinetic = 0.5 * float((masses[mask, None] * velocities[mask] ** 2).sum())
        out[symbol] = 2.0 * kinetic / (3.0 * mask.sum() * units.kB)
    return out


def record(atoms, step: int, dt: float) -> dict:
    potential = float(atoms.get_potential_energy())
    kinetic = float(atoms.get_kinetic_energy())
    row = {
        "step": step,
        "time_fs": step * dt,
        "potential_eV": potential,
        "kinetic_eV": kinetic,
        "total_eV": potential + kinetic,
        "conserved_eV": potential + kinetic,
        "temperature_K": float(atoms.get_temperature()),
    }
    for symbol, value in species_temperatures(atoms).items():
        row[f"temperature_{symbol}_K"] = value
    return row


def oo_rdf(frames, r_max: float = 6.0, bins: int = 120):
    """O-O g(r) averaged over frames (ASE's ``get_rdf``, minimum image)."""
    from ase.geometry.rdf import get_rdf

    g, r = get_rdf(list(frames), r_max, bins, elements=(8, 8))
    return r, g


def snapshot(atoms, time_fs: float):
    """A frame of the log: a copy of ``atoms`` without calculator, at ``time_fs``."""
    frame = atoms.copy()
    frame.calc = None
    frame.info["time_fs"] = time_fs
    return frame


def save_chunk(log, rows_path: Path, rows, frames, atoms, step: int, **state) -> None:
    """After a chunk of steps: every record so far to ``rows_path``, the chunk's
    ``frames`` and the state to restart from (and ``state``) to the frame log."""
    with open(rows_path, "w") as stream:
        stream.writelines(json.dumps(r) + "\n" for r in rows)
    log.append(
        frames,
        step=step,
        records=len(rows),
        positions=atoms.positions.tolist(),
        momenta=atoms.get_momenta().tolist(),
        **state,
    )


def run(args) -> int:
    torch.set_num_threads(args.threads)
    if args.frame_every % CHUNK:
        raise SystemExit(f"--frame-every must be a multiple of {CHUNK}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = FrameLog(out, "trajectory").open()
    rows_path = out / "records.jsonl"
    n_steps = int(round(args.duration * 1000.0 / args.timestep))
    model = load_force_model(args.reference)
    atoms = ase.io.read(args.start, args.start_index)
    atoms.calc = None
    atoms.set_constraint()
    atoms.set_masses()  # real masses (a reference build samples with heavier H)
    if "step" in log.state:
        step = int(log.state["step"])
        atoms.positions = np.array(log.state["positions"])
        atoms.set_momenta(np.array(log.state["momenta"]))
        rows = [json.loads(line) for line in rows_path.read_text().splitlines()]
        rows = rows[: int(log.state["records"])]
    else:
        rng = np.random.default_rng(args.seed)
        thermalize_momenta(atoms, args.temperature, rng=rng)
        atoms.set_momenta(atoms.get_momenta() - atoms.get_momenta().mean(0))
        step, rows = 0, []
    atoms.calc = ModelCalculator(model, "conservative")
    dynamics = VelocityVerlet(atoms, timestep=args.timestep * units.fs)
    if not rows:
        rows.append(record(atoms, 0, args.timestep))
    began, steps_now = time.perf_counter(), 0
    while step < n_steps:
        chunk = min(CHUNK, n_steps - step)
        new_rows = []
        for _ in range(chunk):
            dynamics.run(1)
            step += 1
            steps_now += 1
            new_rows.append(record(atoms, step, args.timestep))
        rows.extend(new_rows)
        frames = []
        if step % args.frame_every == 0:
            frames.append(snapshot(atoms, step * args.timestep))
        save_chunk(log, rows_path, rows, frames, atoms, step)
        rate = (time.perf_counter() - began) / steps_now
        print(
            f"step {step}/{n_steps}  T {rows[-1]['temperature_K']:.0f} K  "
            f"E {rows[-1]['total_eV']:.4f} eV  {rate:.2f} s/step",
            flush=True,
        )
    report(args, out, rows, log.read(), len(atoms))
    return 0


def report(args, out: Path, rows, frames, n_atoms: int) -> None:
    summary = summarise(rows, n_atoms)
    kinetic = np.array([r["kinetic_eV"] for r in rows])
    duration = summary["duration_ps"]
    drift = summary["drift_meV_per_atom_per_ps"]
    summary["drift_ratio"] = abs(drift * duration * n_atoms / 1000.0) / float(
        kinetic.std(ddof=1)
    )
    for key in [k for k in rows[0] if k.startswith("temperature")]:
        mean, error, _ = block_average([r[key] for r in rows[len(rows) // 2 :]])
        summary[f"second_half_{key}"] = [mean, error]
    d = diffusion_coefficients(
        np.array([f.positions for f in frames]),
        np.array([f.info["time_fs"] for f in frames]) / 1000.0,
        frames[0].numbers,
        frames[0].get_masses(),
        cell=frames[0].cell.array,
    )
    summary["diffusion_A2_per_ps"] = d
    r, g = oo_rdf(frames[len(frames) // 2 :])
    peak = int(np.argmax(g))
    minimum = peak + int(np.argmin(g[peak : peak + 40]))
    summary["oo_rdf"] = {
        "first_peak_A": float(r[peak]),
        "first_peak_g": float(g[peak]),
        "first_minimum_A": float(r[minimum]),
        "first_minimum_g": float(g[minimum]),
    }
    summary["settings"] = {
        k: v for k, v in vars(args).items() if k not in ("func",) and v is not None
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    np.savetxt(out / "oo_rdf.txt", np.c_[r, g], header="r_A g_OO", fmt="%.4f")
    o = d.get("O", {})
    lines = [
        f"# NVE of {args.reference} on 64 H2O",
        "",
        f"Velocity Verlet, {args.timestep} fs, {duration:.2f} ps, real masses, from "
        f"frame {args.start_index} of `{args.start}` with Maxwell-Boltzmann "
        f"velocities at {args.temperature} K (seed {args.seed}).",
        "",
        "| quantity | value |",
        "|---|---|",
        f"| conserved-energy drift | {drift:.3f} +/- "
        f"{summary['drift_error_meV_per_atom_per_ps']:.3f} meV/atom/ps |",
        f"| drift ratio (drift over the run / std of kinetic energy) | "
        f"{summary['drift_ratio']:.3f} |",
        f"| energy fluctuation about the fit | "
        f"{summary['conserved_fluctuation_meV_per_atom']:.3f} meV/atom |",
        f"| mean temperature | {summary['mean_temperature_K']:.1f} K |",
    ]
    for key in [k for k in summary if k.startswith("second_half_temperature")]:
        mean, error = summary[key]
        name = key.replace("second_half_", "")
        lines.append(f"| {name}, second half | {mean:.1f} +/- {error:.1f} K |")
    lines += [
        f"| O self-diffusion | {o.get('D_A2_per_ps', float('nan')):.3f} +/- "
        f"{o.get('error_A2_per_ps', float('nan')):.3f} A^2/ps (experiment at 300 K: "
        "0.23) |",
        f"| O-O g(r) first peak | {summary['oo_rdf']['first_peak_g']:.2f} at "
        f"{summary['oo_rdf']['first_peak_A']:.2f} A |",
        f"| O-O g(r) first minimum | {summary['oo_rdf']['first_minimum_g']:.2f} at "
        f"{summary['oo_rdf']['first_minimum_A']:.2f} A |",
    ]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", default="metatrain_nc.references:chgnet")
    parser.add_argument("--start", required=True, help="structure file")
    parser.add_argument("--start-index", type=int, default=-1)
    parser.add_argument("--out", required=True)
    parser.add_argument("--timestep", type=float, default=0.5, help="fs")
    parser.add_argument("--duration", type=float, default=2.0, help="ps")
    parser.add_argument("--temperature", type=float, default=300.0, help="K")
    parser.add_argument("--frame-every", type=int, default=20, help="steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
