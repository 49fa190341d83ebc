"""What the report says about NVT splits, and its viewer blocks, without any model."""

import base64
import gzip
import json
import re

import ase
import ase.io
import numpy as np
import pytest

from metatrain_nc.compare.results import lambda_entries, md_entries
from metatrain_nc.compare.sections import build_blocks, nvt_findings
from metatrain_nc.dynamics.outputs import run_dataset
from metatrain_nc.reports.render import render_html, render_markdown
from metatrain_nc.reports.viewer import MAX_FRAMES, VIEWER_START


def _split(difference, error, n_records=100):
    sigma = abs(difference) / error
    return {
        "difference": difference,
        "error": error,
        "n_blocks": 12,
        "sigma": sigma if n_records >= 32 else None,
        "resolved": sigma > 4.0 if n_records >= 32 else None,
    }


def _run(split, deviation=0.0, error=5.0, folder="md/run", n_records=100):
    """An NVT run with one H-O split ``split = (difference, error)``."""
    splits = {"H-O": _split(*split, n_records=n_records)}
    sigma = abs(deviation) / error
    enough = n_records >= 32
    return {
        "status": "completed",
        "deviation_temperature_K": deviation,
        "inner_steps_per_s": 10.0,
        "folder": folder,
        "equipartition": {
            "sigma_threshold": 4.0,
            "equilibration_fraction": 0.5,
            "n_records": n_records,
            "splits": splits,
            "max_split_pair": "H-O",
            "resolved": any(s["resolved"] for s in splits.values()) if enough else None,
            "temperature": {
                "mean": 300.0 + deviation,
                "target": 300.0,
                "error": error,
                "deviation": deviation,
                "sigma": sigma if enough else None,
                "resolved": sigma > 4.0 if enough else None,
            },
        },
    }


def _data(models, stages=("nvt",)):
    return {
        "settings": {
            "stages": list(stages),
            "stride": 4,
            "temperature_K": 300.0,
            "tau_fs": 20.0,
            "nvt_time_fs": 200.0,
            "nve_time_fs": 250.0,
            "timestep_fs": 0.25,
            "mts_outer_timestep_fs": 1.0,
            "square_eps_A": 0.05,
        },
        "structures": {"path": "test.xyz", "count": 2},
        "md_structure": {"n_atoms": 9, "formula": "H2O"},
        "versions": {"metatrain-nc": "0"},
        "elapsed_s": 6.0,
        "quick": False,
        "notes": [],
        # the runs of every model, as report.json lists them (a row per run)
        "models": {
            name: {key: v for key, v in model.items() if key != "nvt"}
            for name, model in models.items()
        },
        "nvt": [
            dict(run, model=name, mode=mode, ensemble="svr", tau_fs=20.0)
            for name, model in models.items()
            for mode, run in model.get("nvt", {}).items()
        ],
    }


def _paragraphs(models):
    return " ".join(nvt_findings(_data(models)))


def test_nvt_says_which_split_is_resolved():
    """A direct-force split beyond 4 standard errors, next to an equilibrated
    conservative run: resolved by itself."""
    text = _paragraphs(
        {
            "C": {"info": {}, "nvt": {"conservative": _run((2.0, 5.0))}},
            "NC": {"info": {}, "nvt": {"direct": _run((-50.0, 10.0))}},
        }
    )
    assert text.startswith("SVR τ=20 fs: Resolved (beyond 4 standard errors)")
    assert "NC direct: H-O -50.0 ± 10.0 K, 5.0σ" in text
    assert "Not resolved: C conservative: H-O +2.0 ± 5.0 K, 0.4σ" in text
    assert "Not equilibrated" not in text and "off the target" not in text
    assert "--nvt-time" not in text


def test_nvt_says_plainly_when_nothing_is_resolved():
    text = _paragraphs(
        {
            "C": {"info": {}, "nvt": {"conservative": _run((2.0, 5.0))}},
            "M": {
                "info": {},
                "nvt": {"direct": _run((-10.0, 6.0)), "mts": _run((1.0, 6.0))},
            },
        }
    )
    assert text.startswith("SVR τ=20 fs: Nothing is resolved (beyond 4 standard")
    assert "M direct: H-O -10.0 ± 6.0 K, 1.7σ" in text
    assert "0.2 ps runs are too short: run longer (--nvt-time)." in text
    assert "Resolved" not in text


def test_nvt_names_a_split_that_is_still_changing():
    """The PET-NC 20 ps case: a resolved split whose halves differ beyond their
    error is named as not stationary (its mean mixes a transient with what follows);
    a stationary one is not."""
    growing = _run((134.0, 28.0))
    split = growing["equipartition"]["splits"]["H-O"]
    split.update(change={"value": 115.0, "error": 23.8}, stationary=False)
    steady = _run((2.0, 5.0))
    steady["equipartition"]["splits"]["H-O"].update(
        change={"value": -3.0, "error": 6.0}, stationary=True
    )
    models = {
        "C": {"info": {}, "nvt": {"conservative": steady}},
        "NC": {"info": {}, "nvt": {"direct": growing}},
    }
    text = _paragraphs(models)
    assert "Not stationary" in text
    assert "NC direct: H-O changed by +115.0 ± 23.8 K" in text
    assert "C conservative" not in text.split("Not stationary")[1]
    split["stationary"] = True
    assert "Not stationary" not in _paragraphs(models)


def test_nvt_split_of_a_conservative_run_means_not_equilibrated():
    """The demo's case: every run has a resolved split, the conservative ones too;
    the direct runs' splits are read against them, and nothing is left."""
    models = {
        "PET-C": {"info": {}, "nvt": {"conservative": _run((-83.1, 11.0))}},
        "PET-NC": {"info": {}, "nvt": {"direct": _run((-50.3, 10.4), 20.4, 3.9)}},
        "PET-M": {
            "info": {},
            "nvt": {
                "conservative": _run((-151.3, 14.5)),
                "direct": _run((-87.7, 12.1)),
            },
        },
    }
    paragraphs = nvt_findings(_data(models))
    assert paragraphs[0].startswith(
        "SVR τ=20 fs: Not equilibrated: the conservative runs of"
    )
    assert "PET-C: H-O -83.1 ± 11.0 K, 7.6σ; PET-M: H-O -151.3" in paragraphs[0]
    assert (
        "Against the conservative run from the same start: Nothing is"
        in (paragraphs[1])
    )
    # PET-M direct against PET-M's own conservative run, PET-NC against PET-C's
    assert "PET-M direct vs PET-M: H-O +63.6 ± 18.9 K, 3.4σ" in paragraphs[1]
    assert "PET-NC direct vs PET-C: H-O +32.8 ± 15.1 K, 2.2σ" in paragraphs[1]
    assert paragraphs[1].endswith("run longer (--nvt-time).")
    assert "PET-NC direct: 320.4 ± 3.9 K, +20.4 K, 5.2σ" in paragraphs[2]
    assert paragraphs[2].endswith(
        "The direct forces of a direct or MTS run do work faster than the "
        "thermostat restores the target."
    )

    markdown = render_markdown(build_blocks(_data(models), figures={}))
    header = next(line for line in markdown.splitlines() if "largest split" in line)
    assert "split - conservative split (K)" in header and "D_H" not in header
    row = next(line for line in markdown.splitlines() if "| PET-NC | direct" in line)
    assert "H-O: -50.3 ± 10 | resolved (4.8σ)" in row
    assert "32.8 ± 15 (vs PET-C conservative), within error (2.2σ)" in row


def test_nvt_conservative_models_only():
    text = _paragraphs(
        {"C": {"info": {}, "nvt": {"conservative": _run((2.0, 5.0), -30.0, 5.0)}}}
    )
    assert "Nothing is resolved" in text
    assert "C conservative: 270.0 ± 5.0 K, -30.0 K, 6.0σ" in text
    assert "has not equilibrated (or its time step is too long)" in text
    assert "Direct forces" not in text and "--nvt-time" not in text


def test_nvt_too_short_for_error_bars():
    models = {"NC": {"info": {}, "nvt": {"direct": _run((-50.0, 10.0), n_records=5)}}}
    text = _paragraphs(models)
    assert text.startswith("SVR τ=20 fs: Nothing can be resolved: too few records")
    assert "5 analysed per run" in text and "--nvt-time" in text
    markdown = render_markdown(build_blocks(_data(models), figures={}))
    assert "| too few records |" in markdown


def test_nvt_without_equipartition_is_unchanged():
    """A report.json written before the splits were kept: the table alone."""
    run = _run((1.0, 1.0))
    del run["equipartition"]
    data = _data({"C": {"info": {}, "nvt": {"conservative": run}}})
    assert nvt_findings(data) == []
    assert "| C | conservative | SVR τ=20 fs | - |" in render_markdown(
        build_blocks(data, figures={})
    )


# -- viewer blocks -------------------------------------------------------------------
def _lambda_dataset(path):
    import chemiscope

    atoms = ase.Atoms("OH2", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    dataset = chemiscope.create_input(
        structures=[atoms],
        properties={
            "lambda_i": {"target": "atom", "values": [0.1, float("nan"), 0.3]},
            "lambda": {"target": "structure", "values": [0.2]},
        },
        environments=chemiscope.all_atomic_environments([atoms], 3.5),
    )
    path.parent.mkdir(parents=True)
    with gzip.open(path, "wt") as stream:
        json.dump(dataset, stream)


def _md_run(folder, n_frames, both_heads=False):
    """An MD run folder as ``mtt-nc md`` writes it: trajectory and log (``both_heads``:
    conservative and direct forces in every frame, as a hybrid model's run)."""
    folder.mkdir(parents=True)
    frames, rows = [], []
    for step in range(n_frames):
        atoms = ase.Atoms(
            "OH2",
            positions=np.array([[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
            + 0.01 * step,
            cell=[5, 5, 5],
            pbc=True,
        )
        atoms.info.update(
            step=step, time_fs=2.0 * step, temperature_K=300.0 + step, potential_eV=-1
        )
        if both_heads:
            atoms.arrays["forces_conservative"] = np.ones((3, 3))
            atoms.arrays["forces_direct"] = np.zeros((3, 3))
            atoms.arrays["force_difference"] = np.full(3, 3**0.5)
        frames.append(atoms)
        rows.append(
            f"{step},{2.0 * step},-1.0,0.1,-0.9,{-0.9 + 0.003 * step},"
            f"{300.0 + step},{310.0 + step},{290.0 + step}"
        )
    ase.io.write(folder / "trajectory.extxyz", frames, format="extxyz")
    header = (
        "step,time_fs,potential_eV,kinetic_eV,total_eV,conserved_eV,"
        "temperature_K,temperature_H_K,temperature_O_K"
    )
    (folder / "md_log.csv").write_text("\n".join([header] + rows) + "\n")


def test_trajectory_dataset_is_a_small_subsample(tmp_path):
    _md_run(tmp_path / "run", 95)
    dataset = run_dataset(tmp_path / "run", "a run", MAX_FRAMES)
    structures = dataset["structures"]
    assert 2 < len(structures) <= MAX_FRAMES
    properties = dataset["properties"]
    times = properties["time"]["values"]
    assert times[0] == 0.0 and times[-1] == 2.0 * 94  # the last frame is kept
    assert np.all(np.diff(times) > 0)
    # per-frame values from the log, joined by step
    assert properties["temperature H"]["values"][-1] == pytest.approx(310.0 + 94)
    # conserved energy change in meV/atom from the start: 3 meV per step / 3 atoms
    assert properties["conserved energy change"]["values"][-1] == pytest.approx(94.0)
    assert structures[-1]["x"][0] == pytest.approx(0.94, abs=1e-6)
    assert dataset["settings"]["map"]["y"]["property"] == "conserved energy change"


def test_viewer_dataset_leaves_out_the_atoms(tmp_path):
    """The md file of a hybrid run has per-atom force differences and arrows; the
    report's viewer of the same run, frame properties only (built without them)."""
    _md_run(tmp_path / "run", 5, both_heads=True)
    full = run_dataset(tmp_path / "run", "a run")
    assert full["properties"]["|F_c - F_nc|"]["target"] == "atom"
    assert "shapes" in full and "environments" in full
    frames_only = run_dataset(tmp_path / "run", "a run", atoms=False)
    assert {p["target"] for p in frames_only["properties"].values()} == {"structure"}
    assert "shapes" not in frames_only and "environments" not in frames_only
    assert frames_only["properties"]["time"] == full["properties"]["time"]


def _nve_run(folder):
    rates = {"heating_rate_K_per_ps": 1.0, "heating_rate_error_K_per_ps": 0.1}
    rates.update(drift_meV_per_atom_per_ps=1.0, drift_error_meV_per_atom_per_ps=0.1)
    return dict(rates, status="completed", inner_steps_per_s=1.0, folder=folder)


def test_viewer_blocks_in_markdown_and_html(tmp_path):
    """Datasets are embedded (gzip, base64) with the chemiscope script once; the
    Markdown links the chemiscope files; a missing dataset is left out, saying so."""
    _lambda_dataset(tmp_path / "antisymmetry" / "NC-direct" / "chemiscope.json.gz")
    _md_run(tmp_path / "md" / "NC-nve-direct", 3)
    models = {
        "NC": {
            "info": {},
            "antisymmetry": {
                "direct": {
                    "lambda_mean": 0.2,
                    "lambda_max": 0.2,
                    "method": "exact",
                    "folder": "antisymmetry/NC-direct",
                }
            },
            "nve": {
                "direct": _nve_run("md/NC-nve-direct"),
                # its folder is gone: left out of the viewer
                "mts": _nve_run("md/NC-nve-mts"),
            },
        }
    }
    data = _data(models, stages=("antisymmetry", "nve"))
    assert lambda_entries(data) == [
        ("NC, direct forces", "lambda", "antisymmetry/NC-direct/chemiscope.json.gz")
    ]
    assert [e[2] for e in md_entries(data)] == ["md/NC-nve-direct", "md/NC-nve-mts"]
    blocks = build_blocks(data, figures={})
    markdown = render_markdown(blocks)
    assert "(antisymmetry/NC-direct/chemiscope.json.gz)" in markdown
    assert "(md/NC-nve-direct/trajectory.chemiscope.json.gz)" in markdown

    html = render_html(blocks, tmp_path)
    assert html.count(VIEWER_START) == 2
    assert html.count("id='chemiscope-library'") == 1
    assert "data-datasets='1'" in html  # the lambda viewer; the MD one: 1 of 2
    assert "Left out of the viewer: NC, mts forces, NVE" in html
    embedded = re.findall(
        r"<script type='application/gzip\+base64' id='viewer-lambda-data-0'>(.*?)<",
        html,
    )
    dataset = json.loads(gzip.decompress(base64.b64decode(embedded[0])))
    # shown with the atoms coloured by lambda_i; NaN kept for chemiscope to hide
    assert dataset["settings"]["structure"][0]["color"]["property"] == "lambda_i"
    assert np.isnan(dataset["properties"]["lambda_i"]["values"][1])


def test_report_without_datasets_has_no_viewer(tmp_path):
    """Skipped stages or missing files: no viewer and no viewer script; a section
    whose datasets all fail to read says so."""
    data = _data({"C": {"info": {}, "cost": {"error": "no"}}}, stages=("cost",))
    html = render_html(build_blocks(data, figures={}), tmp_path)
    assert VIEWER_START not in html and "chemiscope-library" not in html

    data = _data(
        {
            "C": {
                "info": {},
                "antisymmetry": {
                    "conservative": {
                        "lambda_mean": 0.0,
                        "lambda_max": 0.0,
                        "method": "exact",
                        "folder": "antisymmetry/gone",
                    }
                },
            }
        },
        stages=("antisymmetry",),
    )
    html = render_html(build_blocks(data, figures={}), tmp_path)
    assert VIEWER_START not in html and "chemiscope-library" not in html
    assert "No chemiscope dataset could be read: C, conservative forces" in html
