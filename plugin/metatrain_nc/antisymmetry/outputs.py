"""Files written by the evaluator: JSON summary, CSV tables, PNG figures, chemiscope.

Everything is written into a temporary sibling folder that is renamed to the output
folder at the end (:class:`~metatrain_nc.files.StagedFolder`), so a failure never
leaves partial results (nor destroys old ones unless ``force`` was given and the new
results are complete).
"""

import os
from pathlib import Path
from typing import Any, Dict, List, Union

import numpy as np

from ..files import StagedFolder, write_csv, write_json

FILES = {
    "summary": "summary.json",
    "structures": "structures.csv",
    "atoms": "atoms.csv",
    "pair_bins": "pair_bins.csv",
    "pair_figure": "lambda_pairs.png",
    "structure_figure": "lambda_structures.png",
    "chemiscope": "chemiscope.json.gz",
}


def write_tables(report, folder: Path) -> None:
    """structures.csv, atoms.csv (exact path) and pair_bins.csv (exact path)."""
    rows = []
    for s in report.structures:
        rotation = s.rotation_loop["work_eV"] if s.rotation_loop else ""
        squares = s.square_loops or {}
        rows.append(
            [
                s.index,
                s.n_atoms,
                s.method,
                s.lambda_,
                "" if s.error is None else s.error,
                "" if s.probes is None else s.probes,
                rotation,
                squares.get("mean_abs_work_eV", ""),
                squares.get("max_force_floor_eV_per_A", ""),
            ]
        )
    write_csv(
        folder / FILES["structures"],
        [
            "index",
            "n_atoms",
            "method",
            "lambda",
            "lambda_error",
            "probes",
            "rotation_loop_work_eV",
            "square_loop_mean_abs_work_eV",
            "square_loop_max_force_floor_eV_per_A",
        ],
        rows,
    )
    atom_rows = []
    for s, atoms in zip(report.structures, report.frames, strict=True):
        if s.per_atom is None:
            continue
        pairs = s.pairs
        for i, symbol in enumerate(atoms.get_chemical_symbols()):
            row = [s.index, i, symbol, float(s.per_atom[i])]
            if pairs is not None:
                row += [pairs.onsite_block_norm[i], pairs.onsite_anti_norm[i]]
            else:
                row += ["", ""]
            atom_rows.append(row)
    if atom_rows:
        write_csv(
            folder / FILES["atoms"],
            [
                "structure",
                "atom",
                "symbol",
                "lambda_i",
                "onsite_block_norm_eV_per_A2",
                "onsite_anti_norm_eV_per_A2",
            ],
            atom_rows,
        )
    bins = report.pair_bins()
    if bins:
        keys = [
            "r_min",
            "r_max",
            "r_center",
            "count",
            "mean_block_norm",
            "mean_anti_norm",
            "lambda",
        ]
        header = [
            "r_min_A",
            "r_max_A",
            "r_center_A",
            "count",
            "mean_block_norm_eV_per_A2",
            "mean_anti_norm_eV_per_A2",
            "lambda_ij",
        ]
        rows = [[bins[k][b] for k in keys] for b in range(len(bins["r_center"]))]
        write_csv(folder / FILES["pair_bins"], header, rows)


def write_figures(report, folder: Path) -> List[str]:
    """PNG figures (Agg backend); returns the names written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    bins = report.pair_bins()
    if bins and len(bins["r_center"]) > 0:
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(6, 6), sharex=True)
        r = bins["r_center"]
        block = np.where(bins["mean_block_norm"] > 0, bins["mean_block_norm"], np.nan)
        anti = np.where(bins["mean_anti_norm"] > 0, bins["mean_anti_norm"], np.nan)
        top.plot(r, block, "o-", ms=3, label=r"$|J_{ij}|$")
        top.plot(r, anti, "s-", ms=3, label=r"$|J_{ij} - J_{ji}^T|/2$")
        if np.any(np.isfinite(block)) or np.any(np.isfinite(anti)):
            top.set_yscale("log")
        top.set_ylabel(r"mean block norm (eV/$\AA^2$)")
        top.legend()
        bottom.plot(r, bins["lambda"], "o-", ms=3, color="C3")
        bottom.set_ylabel(r"$\lambda_{ij}$")
        bottom.set_xlabel(r"$r_{ij}$ (minimum image, $\AA$)")
        bottom.set_ylim(0, 1.05)
        top.set_title(f"{report.output}: pair blocks of the force Jacobian")
        fig.tight_layout()
        fig.savefig(folder / FILES["pair_figure"], dpi=120)
        plt.close(fig)
        written.append(FILES["pair_figure"])

    fig, ax = plt.subplots(figsize=(6, 3.5))
    index = [s.index for s in report.structures]
    errors = [s.error if s.error is not None else 0.0 for s in report.structures]
    ax.errorbar(index, report.lambdas, yerr=errors, fmt="o", ms=4, capsize=2)
    ax.set_xlabel("structure")
    ax.set_ylabel(r"$\lambda$")
    ax.set_title(f"antisymmetry ratio ({report.output})")
    fig.tight_layout()
    fig.savefig(folder / FILES["structure_figure"], dpi=120)
    plt.close(fig)
    written.append(FILES["structure_figure"])
    return written


FORCE_LABELS = {
    "non_conservative_force": "direct_forces",
    "conservative": "conservative_forces",
}


def chemiscope_dataset(report) -> Dict[str, Any]:
    """The chemiscope input (dict) with lambda per structure/atom and force arrows."""
    import chemiscope

    frames = [atoms.copy() for atoms in report.frames]
    for atoms in frames:
        atoms.calc = None
        for key in list(atoms.arrays):
            if key not in ("numbers", "positions"):
                del atoms.arrays[key]
        atoms.info = {}
    properties: Dict[str, Any] = {
        "index": {
            "target": "structure",
            "values": [s.index for s in report.structures],
            "description": "index in the input file",
        },
        "lambda": {
            "target": "structure",
            "values": report.lambdas.tolist(),
            "description": f"antisymmetry ratio of the {report.output} Jacobian",
        },
        "n_atoms": {
            "target": "structure",
            "values": [s.n_atoms for s in report.structures],
        },
    }
    with_atoms = all(s.per_atom is not None for s in report.structures)
    environments = None
    if with_atoms:
        properties["lambda_i"] = {
            "target": "atom",
            "values": np.concatenate([s.per_atom for s in report.structures]).tolist(),
            "description": "per-atom antisymmetry ratio (rows of atom i)",
        }
        properties["atom_index"] = {
            "target": "atom",
            "values": [i for s in report.structures for i in range(s.n_atoms)],
            "description": "index of the atom in its structure",
        }
        properties["atomic_number"] = {
            "target": "atom",
            "values": [int(z) for a in frames for z in a.numbers],
        }
        for name, force_label in FORCE_LABELS.items():
            if all(name in s.forces for s in report.structures):
                norms = [
                    np.linalg.norm(s.forces[name], axis=1) for s in report.structures
                ]
                properties[f"|{force_label}|"] = {
                    "target": "atom",
                    "values": np.concatenate(norms).tolist(),
                    "units": "eV/A",
                }
        environments = chemiscope.all_atomic_environments(frames, 3.5)
    shapes = {}
    names = [n for n in FORCE_LABELS if all(n in s.forces for s in report.structures)]
    for name in names:
        for atoms, s in zip(frames, report.structures, strict=True):
            atoms.arrays[FORCE_LABELS[name]] = s.forces[name]
    if len(names) == 2:
        for atoms, s in zip(frames, report.structures, strict=True):
            atoms.arrays["difference_forces"] = (
                s.forces["non_conservative_force"] - s.forces["conservative"]
            )
    keys = [FORCE_LABELS[n] for n in names]
    if len(names) == 2:
        keys.append("difference_forces")
    for key in keys:
        largest = max(float(np.abs(a.arrays[key]).max()) for a in frames)
        scale = 1.0 / largest if largest > 0 else 1.0
        shapes[key] = chemiscope.ase_vectors_to_arrows(
            frames, key, scale=scale, radius=0.05
        )
        for atoms in frames:
            del atoms.arrays[key]
    if with_atoms:  # the map shows atoms
        settings: Dict[str, Any] = {
            "map": {
                "x": {"property": "atomic_number"},
                "y": {"property": "lambda_i"},
                "color": {"property": "lambda_i"},
            }
        }
    else:
        settings = {"map": {"x": {"property": "index"}, "y": {"property": "lambda"}}}
    if keys:
        settings["structure"] = [{"shape": [keys[0]]}]
    meta = {
        "name": "metatrain-nc antisymmetry",
        "description": (
            f"Jacobian antisymmetry of {report.model['source']} ({report.output}); "
            "arrows scaled so that the largest is 1 A"
        ),
    }
    return chemiscope.create_input(
        structures=frames,
        properties=properties,
        environments=environments,
        shapes=shapes or None,
        settings=settings,
        metadata=meta,
    )


def write_chemiscope(report, path: Path) -> None:
    """Write the chemiscope dataset to ``path`` (must end with .json.gz); NaN stay
    NaN, as chemiscope writes them (it hides those points)."""
    write_json(path, chemiscope_dataset(report), indent=None, clean=False)


def write_report(report, outdir: Union[str, os.PathLike], force: bool = False) -> str:
    """Write all files of ``report`` into ``outdir`` atomically; return its path."""
    with StagedFolder(outdir, force) as folder:
        staging = folder.path
        summary = report.summary()
        write_tables(report, staging)
        summary["files"] = write_figures(report, staging)
        write_chemiscope(report, staging / FILES["chemiscope"])
        summary["files"] += [
            name
            for name in (
                FILES["structures"],
                FILES["atoms"],
                FILES["pair_bins"],
                FILES["chemiscope"],
            )
            if (staging / name).exists()
        ]
        summary["files"] = sorted(summary["files"] + [FILES["summary"]])
        write_json(staging / FILES["summary"], summary)
        return str(folder.commit())
