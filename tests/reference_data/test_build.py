"""``mtt-nc reference`` end to end with real ASE calculators (EMT; CHGNet on water):
splits disjoint by trajectory, provenance in every frame, labels that the reference
reproduces, resume after an interruption, failing references, bad input."""

import json
import shutil
import sys
from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

from metatrain_nc.cli import main
from metatrain_nc.reference_data import build_reference_set

from ..conftest import ETHANOL, WATER
from . import calculators

EMT_SPEC = "tests.reference_data.calculators:emt"
PROVENANCE = [
    "reference",
    "reference_version",
    "method",
    "sampler",
    "sampling",
    "seed",
    "units",
    "trajectory",
    "frame",
    "trajectory_seed",
    "temperature_K",
    "start_frame",
    "sample_step",
    "strain",
    "split",
]
SMALL = dict(
    trajectories=3,
    temperatures="300:600",
    frames_per_trajectory=3,
    equilibration_steps=4,
    interval_steps=2,
    progress=False,
)


@pytest.fixture
def copper(tmp_path):
    """Two frames of a periodic 32-atom copper box."""
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
    rattled = atoms.copy()
    rattled.rattle(0.05, seed=1)
    path = tmp_path / "cu.xyz"
    ase.io.write(path, [atoms, rattled])
    return path


def read_split(folder: Path, split: str):
    return ase.io.read(folder / f"{split}.xyz", ":")


def test_build_writes_trajectory_disjoint_splits_with_provenance(tmp_path, copper):
    out = tmp_path / "set"
    summary = build_reference_set(EMT_SPEC, str(copper), str(out), **SMALL)
    assert summary.complete and not summary.failures
    assert summary.frames == {"train": 3, "validation": 3, "test": 3}
    frames = {s: read_split(out, s) for s in ("train", "validation", "test")}
    trajectories = {
        s: {int(a.info["trajectory"]) for a in f} for s, f in frames.items()
    }
    assert trajectories == {"train": {2}, "validation": {1}, "test": {0}}
    everything = [a for f in frames.values() for a in f]
    for atoms in everything:
        missing = [k for k in PROVENANCE if k not in atoms.info]
        assert not missing, missing
        assert atoms.info["reference"] == EMT_SPEC
        assert atoms.info["reference_version"].startswith("ase ")
        assert atoms.info["units"] == "energy:eV forces:eV/A stress:eV/A^3"
        assert np.abs(atoms.info["strain"]).max() > 0
        assert atoms.get_stress().shape == (6,)
    # the labels are the reference's at the stored (strained) geometry
    rng = np.random.default_rng(0)
    for i in rng.choice(len(everything), 3, replace=False):
        stored = everything[i]
        fresh = stored.copy()
        fresh.calc = EMT()
        np.testing.assert_allclose(fresh.get_forces(), stored.get_forces(), atol=1e-4)
        assert fresh.get_potential_energy() == pytest.approx(
            stored.get_potential_energy(), abs=1e-6
        )
        np.testing.assert_allclose(fresh.get_stress(), stored.get_stress(), atol=1e-7)
    # the frames of a trajectory are sampled by dynamics (they move, in time order)
    train = frames["train"]
    assert [a.info["sample_step"] for a in train] == [6, 8, 10]
    assert np.abs(train[0].positions - train[1].positions).max() > 1e-3
    temperatures = sorted(float(a.info["temperature_K"]) for a in everything)
    assert temperatures[0] == 300.0 and temperatures[-1] == 600.0
    plan = json.loads((out / "plan.json").read_text())
    assert [t["split"] for t in plan["trajectories"]] == ["test", "validation", "train"]


@pytest.mark.parametrize("after", [10, 40], ids=["in-sampling", "in-labelling"])
def test_interrupted_build_resumes_to_the_same_set(tmp_path, copper, after):
    whole = tmp_path / "whole"
    build_reference_set(EMT_SPEC, str(copper), str(whole), **SMALL)

    out = tmp_path / "resumed"
    spec = "tests.reference_data.calculators:interrupting"
    calculators.Interrupting.after = after
    try:
        with pytest.raises(KeyboardInterrupt):
            build_reference_set(spec, str(copper), str(out), **SMALL)
        assert not (out / "train.xyz").exists()
        calculators.Interrupting.after = 10**9
        summary = build_reference_set(spec, str(copper), str(out), **SMALL)
    finally:
        calculators.Interrupting.after = 10
    assert summary.complete
    for split in ("train", "validation", "test"):
        expected, resumed = read_split(whole, split), read_split(out, split)
        assert len(resumed) == len(expected) == 3
        for a, b in zip(expected, resumed, strict=True):
            np.testing.assert_allclose(b.positions, a.positions, atol=1e-6)
            np.testing.assert_allclose(b.get_forces(), a.get_forces(), atol=1e-6)


def test_a_finished_build_is_not_redone(tmp_path, copper):
    out = tmp_path / "set"
    build_reference_set(EMT_SPEC, str(copper), str(out), **SMALL)
    before = (out / "train.xyz").read_bytes()
    again = build_reference_set(EMT_SPEC, str(copper), str(out), **SMALL)
    assert again.sampling_seconds_per_step is None
    assert again.labelling_seconds_per_frame is None
    assert (out / "train.xyz").read_bytes() == before


def test_verify_relabels_and_sees_a_changed_label(tmp_path, copper, capsys):
    out = tmp_path / "set"
    args = [EMT_SPEC, str(copper), "--out", str(out), "--trajectories", "3",
            "--frames-per-trajectory", "2", "--equilibration-steps", "2",
            "--interval-steps", "2"]  # fmt: skip
    assert _cli([*args, "--verify", "3"]) == 0
    line = capsys.readouterr().out.splitlines()[-1]
    assert line.startswith("relabelled ")
    assert float(line.split("forces ")[1].split()[0]) < 1e-6
    from metatrain_nc.reference_data.verify import verify_labels

    frames = ase.io.read(out / "test.xyz", ":")
    frames[0].calc.results["forces"][0, 0] += 0.01
    ase.io.write(out / "test.xyz", frames)
    check = verify_labels([out / "test.xyz"], EMT_SPEC, count=2)
    assert check["max_force_difference"] == pytest.approx(0.01, abs=1e-6)


@pytest.mark.parametrize(
    "reference, message",
    [
        ("tests.reference_data.calculators:nan_forces", "returned non-finite forces"),
        ("tests.reference_data.calculators:refusing", "refuses the structure"),
    ],
)
def test_failing_reference_is_reported_and_its_frames_not_written(
    tmp_path, copper, capsys, reference, message
):
    out = tmp_path / "set"
    code = main(
        [
            "reference",
            reference,
            str(copper),
            "--out",
            str(out),
            "--sampler",
            EMT_SPEC,
            "--trajectories",
            "3",
            "--frames-per-trajectory",
            "2",
            "--equilibration-steps",
            "2",
            "--interval-steps",
            "2",
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert message in err and "trajectory 0 frame 0" in err
    assert "--skip-failed" in err
    failures = json.loads((out / "failures.json").read_text())
    assert len(failures) == 6
    assert not list(out.glob("*.xyz*"))
    state = json.loads((out / "labelled.state.json").read_text())
    assert state["frames"] == 0 and state["done"] == []


def _cli(args):
    return main(["reference", *args, "--no-progress"])


def test_bad_input_is_refused_before_anything_is_written(tmp_path, copper, capsys):
    out = tmp_path / "set"
    base = [EMT_SPEC, str(copper), "--out", str(out), "--trajectories", "3"]
    assert _cli([*base, "--start-frames", "0,1,5"]) == 2
    assert "frame 5 does not exist" in capsys.readouterr().err
    assert _cli([*base, "--temperatures", "300,400"]) == 2
    assert "one per trajectory" in capsys.readouterr().err
    assert _cli([*base, "--test-trajectories", "1", "--validation-trajectories", "1"])
    assert "both" in capsys.readouterr().err
    assert _cli([EMT_SPEC, str(tmp_path / "none.xyz"), "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert _cli(["no_such_module:make", str(copper), "--out", str(out)]) == 2
    assert "cannot be imported" in capsys.readouterr().err
    assert not out.exists()

    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    assert _cli([EMT_SPEC, str(copper), "--out", str(other)]) == 2
    assert "no plan.json" in capsys.readouterr().err
    assert sorted(p.name for p in other.iterdir()) == ["notes.txt"]


def test_resume_with_other_settings_is_refused(tmp_path, copper, capsys):
    out = tmp_path / "set"
    build_reference_set(EMT_SPEC, str(copper), str(out), **SMALL)
    before = sorted(p.name for p in out.iterdir())
    code = _cli(
        [EMT_SPEC, str(copper), "--out", str(out), "--trajectories", "3",
         "--temperatures", "300:600", "--frames-per-trajectory", "3",
         "--equilibration-steps", "4", "--interval-steps", "2", "--max-strain", "0.05"]
    )  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert "max_strain" in err and "choose a new --out" in err
    assert sorted(p.name for p in out.iterdir()) == before


def test_workers_find_a_reference_module_in_the_current_folder(
    tmp_path, copper, monkeypatch, capsys
):
    (tmp_path / "localref.py").write_text(
        "from ase.calculators.emt import EMT\n\ndef make():\n    return EMT()\n"
    )
    monkeypatch.chdir(tmp_path)
    path_before = list(sys.path)
    code = _cli(
        ["localref:make", copper.name, "--out", "set", "--workers", "2",
         "--trajectories", "3", "--frames-per-trajectory", "2",
         "--equilibration-steps", "2", "--interval-steps", "2", "--gzip"]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "s per step per worker" in captured.out
    assert "train 2 frames" in captured.out
    assert sys.path == path_before  # found from the current folder, path unchanged
    for split in ("train", "validation", "test"):
        frames = ase.io.read(tmp_path / "set" / f"{split}.xyz.gz", ":")
        assert len(frames) == 2
        assert frames[0].info["reference"] == "localref:make"


def _build(reference: str, structures: Path, out: Path, **plan):
    """A small build labelled by a real reference: its summary and training frames."""
    summary = build_reference_set(
        reference, str(structures), str(out), progress=False, **plan
    )
    return summary, ase.io.read(out / "train.xyz", ":")


def _assert_relabelled(frames, calculator, stress: bool = False) -> None:
    """``calculator`` gives the stored forces (and stress) of ``frames`` again."""
    for stored in frames:
        fresh = stored.copy()
        fresh.calc = calculator
        np.testing.assert_allclose(fresh.get_forces(), stored.get_forces(), atol=1e-4)
        if stress:
            np.testing.assert_allclose(
                fresh.get_stress(), stored.get_stress(), atol=1e-5
            )


def test_chgnet_labels_water_reproducibly(tmp_path):
    """The shipped reference (CHGNet) on the bundled water: one short trajectory, two
    frames; relabelling gives the stored forces to 1e-4 eV/A."""
    structures = tmp_path / "water.xyz"
    shutil.copy(WATER, structures)
    summary, frames = _build(
        "metatrain_nc.references:chgnet",
        structures,
        tmp_path / "set",
        trajectories=1,
        temperatures="300",
        frames_per_trajectory=2,
        equilibration_steps=0,
        interval_steps=1,
        start_frames=[3],
    )
    assert summary.frames["train"] == 2
    assert frames[0].info["reference_version"].startswith("chgnet ")
    assert "CHGNet 0.3.0" in frames[0].info["method"]
    from metatrain_nc.references import chgnet

    _assert_relabelled(frames, chgnet(), stress=True)
    for stored in frames:
        assert np.abs(stored.get_forces()).max() > 0.5


def test_gfn2_xtb_labels_a_molecule_reproducibly(tmp_path):
    """The quantum-chemical reference (GFN2-xTB, tblite) on ethanol, a molecule: no
    stress, provenance names the method, relabelling gives the stored forces."""
    structures = tmp_path / "ethanol.xyz"
    ase.io.write(structures, ase.io.read(ETHANOL, "0:2"))
    summary, frames = _build(
        "metatrain_nc.references:gfn2_xtb",
        structures,
        tmp_path / "set",
        trajectories=3,
        temperatures="300:500",
        frames_per_trajectory=2,
        equilibration_steps=2,
        interval_steps=2,
        start_frames=[0, 1, 0],
    )
    assert sum(summary.frames.values()) == 6
    assert frames[0].info["reference"] == "metatrain_nc.references:gfn2_xtb"
    assert frames[0].info["reference_version"].startswith("tblite ")
    assert "GFN2-xTB" in frames[0].info["method"]
    assert "stress" not in frames[0].calc.results
    from metatrain_nc.references import gfn2_xtb

    _assert_relabelled(frames, gfn2_xtb())
    for stored in frames:
        assert np.abs(stored.get_forces()).max() > 0.1
