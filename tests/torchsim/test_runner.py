"""``run_replicas`` / ``mtt-nc md --engine torch-sim``: per-replica monitors,
verdicts and runaway stops."""

import json

import pytest

from metatrain_nc.cli import main
from metatrain_nc.dynamics.md import MDSettings
from metatrain_nc.dynamics.structures import maxwell_boltzmann
from metatrain_nc.torchsim import run_replicas


def _settings(**kwargs):
    base = dict(
        timestep_fs=4.0,
        stride=8,
        steps=125,
        temperature_K=200.0,
        trajectory_every=25,
        chemiscope=False,
        plots=False,
    )
    base.update(kwargs)
    return MDSettings(**base)


@pytest.fixture(scope="module")
def drift_runs(ts_models, relaxed_box, tmp_path_factory):
    """2 replicas, 0.5 ps NVE, direct and MTS forces (as tests/dynamics)."""
    folder = tmp_path_factory.mktemp("drift")
    return {
        forces: run_replicas(
            ts_models["nc"],
            relaxed_box,
            folder / forces,
            _settings(forces=forces),
            replicas=2,
        )
        for forces in ("direct", "mts")
    }


def _energy_warnings(summary):
    """The warnings other than the bonded-topology check's: the analytic pair energy
    is no chemistry, and its ethanol molecules fall apart by covalent radii."""
    return [w for w in summary["warnings"] if w["kind"] != "topology"]


def test_direct_drift_is_flagged_and_mts_is_not(drift_runs):
    for summary in drift_runs["direct"]["replica_summaries"]:
        assert summary["drift_check"]["resolved"] is True
        assert summary["drift_meV_per_atom_per_ps"] > 1.0
        assert summary["drift_error_meV_per_atom_per_ps"] > 0
        (warning,) = _energy_warnings(summary)
        assert warning["kind"] == "energy_drift"
        assert warning["message"].startswith("the conserved energy drifts by")
        assert (
            "direct forces do not conserve energy: use --forces mts"
            in (warning["message"])
        )
    for summary in drift_runs["mts"]["replica_summaries"]:
        assert summary["drift_check"]["resolved"] is False
        assert abs(summary["drift_meV_per_atom_per_ps"]) < 0.05
        assert _energy_warnings(summary) == []
        assert summary["status"] == "completed"


def test_replica_folders_have_the_ase_outputs(drift_runs):
    top = drift_runs["mts"]
    assert top["n_replicas"] == 2 and top["engine"] == "torch-sim"
    for k, summary in enumerate(top["replica_summaries"]):
        folder = summary["output_dir"]
        on_disk = json.load(open(f"{folder}/summary.json"))
        assert on_disk["replica"] == k and on_disk["settings"]["seed"] == k
        assert on_disk["outer_steps_done"] == 125
        lines = open(f"{folder}/md_log.csv").read().splitlines()
        assert lines[0].startswith("step,time_fs,potential_eV")
        assert "temperature_H_K" in lines[0]
        assert len(lines) == 1 + 126
    first, second = top["replica_summaries"]
    assert first["mean_temperature_K"] != second["mean_temperature_K"]


def test_runaway_replica_stops_alone(ts_models, relaxed_box, tmp_path):
    """One replica much hotter than the bound stops at once; the others run on."""
    starts = []
    for k in range(3):
        atoms = relaxed_box.copy()
        maxwell_boltzmann(atoms, 3000.0 if k == 1 else 200.0, k)
        starts.append(atoms)
    top = run_replicas(
        ts_models["nc"],
        starts,
        tmp_path / "out",
        _settings(steps=10, velocities="structure", max_temperature_K=1500.0),
    )
    statuses = [r["status"] for r in top["replicas"]]
    assert statuses == ["completed", "runaway", "completed"]
    stopped = top["replica_summaries"][1]
    assert stopped["message"].startswith("runaway: temperature")
    assert "above the bound 1500 K at step 0" in stopped["message"]
    assert stopped["outer_steps_done"] == 0
    assert [r["outer_steps_done"] for r in top["replicas"]] == [10, 0, 10]
    assert top["replica_outer_steps"] == 20


def test_command_line(ts_models, relaxed_box, tmp_path, capsys):
    import ase.io

    structure = tmp_path / "box.xyz"
    ase.io.write(structure, relaxed_box)
    out = tmp_path / "md"
    argv = ["md", ts_models["nc"], str(structure), "-o", str(out), "--steps", "4"]
    argv += ["--timestep", "2", "--stride", "4", "--engine", "torch-sim"]
    argv += ["--replicas", "2", "--ensemble", "langevin", "--no-chemiscope"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "replica 1: completed: 4 outer steps" in printed
    assert sorted(p.name for p in out.iterdir()) == [
        "replica_000",
        "replica_001",
        "summary.json",
    ]
    assert (out / "replica_001" / "trajectory.extxyz").exists()
    assert main([*argv, "--stride", "auto", "--force"]) == 2
