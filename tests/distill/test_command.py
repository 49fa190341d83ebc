"""``mtt-nc distill`` end to end on small real teachers (seconds to minutes), and every
bad argument refused before any work, leaving nothing behind."""

import json
from pathlib import Path

import ase.io
import pytest
from ase.build import bulk

from metatrain_nc.cli import main
from metatrain_nc.distill.stages import student_options

from ..conftest import ROOT, WATER

DEMO_TEACHER = ROOT / "recipes" / "demo" / "pretrained" / "pet_c.ckpt"


def test_quick_run_with_the_demo_teacher(tmp_path, capsys):
    out = tmp_path / "distill"
    code = main(
        ["distill", "--teacher", str(DEMO_TEACHER), "--structures", str(WATER),
         "--out", str(out), "--quick"]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["quick"] and report["cpu_time_min"] > 0
    # mtt-nc reference with the teacher: 3 trajectories x 4 frames, one held out
    assert report["data"]["train"] == 8 and report["data"]["test"] == 4
    assert report["data"]["atoms"] == 192 and report["data"]["stress"]
    train = ase.io.read(out / "data" / "train.xyz", ":")
    assert train[0].info["reference"] == str(out / "teacher" / "teacher.pt")
    assert "stress" in train[0].calc.results
    (size,) = report["students"]
    student = report["students"][size]
    assert Path(student["model"]).is_file()  # exported by mtt train
    assert student["force_rmse_meV_per_A"] > 0 and student["ms_per_call"] > 0
    assert student["stride_scan"]["rows"][0]["status"] == "reference"
    assert set(report["nve"]) == {"teacher", size}
    assert report["nve"]["teacher"]["status"] == "completed"
    assert "| student | parameters |" in (out / "report.md").read_text()
    page = (out / "report.html").read_text()  # the same blocks, one HTML file
    assert "<th>student</th>" in page and f"<td>{size}" in page
    assert str(out / "report.md") in captured.out


def _emt_teacher_and_its_set(folder: Path) -> None:
    """``my_teacher:make`` (EMT) in ``folder`` and its labelled set ``set/`` (``mtt-nc
    reference``: 3 trajectories of 32 Cu atoms, 4 frames each)."""
    (folder / "my_teacher.py").write_text(
        "from ase.calculators.emt import EMT\n\ndef make():\n    return EMT()\n"
    )
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
    ase.io.write(folder / "cu.xyz", atoms)
    code = main(
        ["reference", "my_teacher:make", "cu.xyz", "--out", "set", "--no-progress",
         "--trajectories", "3", "--temperatures", "300:900",
         "--frames-per-trajectory", "4", "--equilibration-steps", "4",
         "--interval-steps", "4"]
    )  # fmt: skip
    assert code == 0


def test_a_calculator_teacher_found_in_the_current_folder(
    tmp_path, monkeypatch, capsys
):
    """A module:callable teacher that lives where the user runs the command is found
    by every step (mtt-nc md subprocesses, the timing), here with its reference set
    given as --data."""
    monkeypatch.chdir(tmp_path)
    # its labelled set first (mtt-nc reference), then the distillation on it (--data)
    _emt_teacher_and_its_set(tmp_path)
    code = main(
        ["distill", "--teacher", "my_teacher:make", "--data", "set",
         "--out", "run", "--quick"]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err[-3000:]
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["data"]["train"] == 4 and report["data"]["test"] == 4
    assert report["teacher"]["model"] == "my_teacher:make"
    # the report says who labelled the given set, from the frames' provenance
    assert report["data"]["labelled_by"] == ["my_teacher:make"]
    assert "labelled by `my_teacher:make`" in (tmp_path / "run/report.md").read_text()
    assert report["nve"]["teacher"]["status"] == "completed"
    # a calculator's calls count as the teacher's calls (it has no backward pass)
    teacher_steps = report["nve"]["teacher"]["outer_steps_done"]
    assert report["nve"]["teacher"]["teacher_calls"] >= teacher_steps > 0
    # an honest cost: EMT on 32 atoms takes well over 10 us of wall clock
    assert report["teacher"]["ms_per_call"] > 0.01


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--structures", "missing.xyz"], "does not exist"),
        (["--structures", "one.xyz", "--start-frames", "0,20,5"], "frame 20"),
        (["--structures", "one.xyz", "--temperatures", "300"], "at least two"),
        (["--structures", "one.xyz", "--sizes", "huge"], "unknown student size"),
        (["--data", "."], "has no train.xyz"),
    ],
)
def test_bad_arguments_are_refused_before_any_work(
    tmp_path, monkeypatch, capsys, extra, message
):
    monkeypatch.chdir(tmp_path)
    ase.io.write("one.xyz", ase.io.read(WATER, 0))
    code = main(
        ["distill", "--teacher", str(DEMO_TEACHER), "--out", "run", "--quick", *extra]
    )
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_direct_only_teacher_is_refused_and_nothing_written(
    tmp_path, tiny_pet_nc_periodic, capsys
):
    out = tmp_path / "run"
    code = main(
        ["distill", "--teacher", str(tiny_pet_nc_periodic.checkpoint),
         "--structures", str(WATER), "--out", str(out), "--quick"]
    )  # fmt: skip
    assert code == 2
    assert "pet_nc model" in capsys.readouterr().err
    assert not out.exists()


def test_an_existing_output_folder_is_kept(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("user data")
    code = main(
        ["distill", "--teacher", str(DEMO_TEACHER), "--structures", str(WATER),
         "--out", str(tmp_path), "--quick"]
    )  # fmt: skip
    assert code == 2 and "exists" in capsys.readouterr().err
    assert (tmp_path / "keep.txt").read_text() == "user data"


def test_student_options_drop_the_stress_of_molecules(tmp_path):
    train = tmp_path / "train.xyz"
    periodic = student_options("d8-L1-c3.5", 7, train, stress=True)
    molecule = student_options("d8-L1-c3.5", 7, train, stress=False)
    for options in (periodic, molecule):
        assert options["architecture"]["training"]["num_epochs"] == 7
        assert options["architecture"]["model"]["d_pet"] == 8
        assert options["training_set"]["systems"]["read_from"] == str(train)
    assert periodic["training_set"]["targets"]["energy"]["stress"] == {"key": "stress"}
    assert molecule["training_set"]["targets"]["energy"]["stress"] is False
    assert "stress" not in molecule["architecture"]["training"]["loss"]["energy"]


def test_student_options_take_the_learning_rate_and_batch_size(tmp_path):
    default = student_options("d16-L2-c4.5", 3, tmp_path / "t.xyz")
    chosen = student_options(
        "d16-L2-c4.5", 3, tmp_path / "t.xyz", learning_rate=1e-3, batch_size=10
    )
    assert default["architecture"]["training"]["learning_rate"] == 5e-3
    assert chosen["architecture"]["training"]["learning_rate"] == 1e-3
    assert chosen["architecture"]["training"]["batch_size"] == 10
    assert chosen["architecture"]["model"]["num_gnn_layers"] == 2


def test_a_failed_step_keeps_the_finished_ones_and_resumes(
    tmp_path, monkeypatch, capsys
):
    """Students that cannot train (options metatrain refuses) fail the run after its
    data step: the finished steps stay, the message says --resume; once the options
    are fixed, --resume runs the remaining steps only."""
    import yaml

    from metatrain_nc.distill.stages import STUDENT_OPTIONS

    monkeypatch.chdir(tmp_path)
    _emt_teacher_and_its_set(tmp_path)
    options = yaml.safe_load(STUDENT_OPTIONS.read_text())
    broken = yaml.safe_load(STUDENT_OPTIONS.read_text())
    broken["architecture"]["model"]["no_such_hyper"] = 1
    Path("students.yaml").write_text(yaml.safe_dump(broken))
    command = ["distill", "--teacher", "my_teacher:make", "--data", "set", "--out",
               "run", "--quick", "--student-options", "students.yaml"]  # fmt: skip
    assert main(command) == 2
    err = capsys.readouterr().err
    assert "step 'train_" in err and "run the same command with --resume" in err
    units = tmp_path / "run" / "units"
    assert sorted(p.stem for p in units.glob("*.json")) == ["data", "teacher"]
    data_record = (units / "data.json").stat().st_mtime_ns
    assert not (tmp_path / "run" / "report.json").exists()

    # the folder is not replaced or continued without --resume
    assert main(command) == 2
    assert "continue the distillation in it with --resume" in capsys.readouterr().err
    # nor with other settings
    assert main([*command, "--epochs", "7", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "was started with other ['settings.epochs']" in err
    assert "or choose another --out" in err  # distill's option, not compare's -o

    Path("students.yaml").write_text(yaml.safe_dump(options))
    assert main([*command, "--resume"]) == 0, capsys.readouterr().err[-3000:]
    assert (units / "data.json").stat().st_mtime_ns == data_record  # not run again
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    names = [job["name"] for job in report["commands"]]
    assert names[0].startswith("train_") and "accuracy" in names
    assert report["nve"]["teacher"]["status"] == "completed"
    assert report["cpu_time_min"] > 0 and report["wall_time_min"] > 0
