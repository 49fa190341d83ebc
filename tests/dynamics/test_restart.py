"""Restart points: an MD run cut short continues, with ``resume``, on the trajectory
the uninterrupted run follows (thermostat noise included), and nothing the user had
is lost when a continuation is refused."""

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import ase.io
import numpy as np
import pytest

from metatrain_nc.dynamics import restart
from metatrain_nc.dynamics.md import MDSettings, run_md
from metatrain_nc.errors import UserInputError
from metatrain_nc.force_models import load_force_model

#: an MTS run under SVR (the thermostat's random numbers must continue too)
SETTINGS = dict(
    forces="mts",
    timestep_fs=1.0,
    stride=2,
    steps=40,
    ensemble="svr",
    tau_fs=10.0,
    trajectory_every=5,
    chemiscope=False,
    plots=False,
)


class CutShort(KeyboardInterrupt):
    """What stops the run in these tests (as Ctrl-C would)."""


def _log(folder):
    with open(folder / "md_log.csv") as handle:
        rows = list(csv.DictReader(handle))
    return np.array([[float(v) for v in row.values()] for row in rows])


def _cut_short(model, atoms, outdir, settings, point_step, stop_step):
    """Run with a restart point at every step, stop at ``stop_step`` and leave the
    point of ``point_step`` as the last one saved (as a process killed between
    points leaves it: frames written after the point stay in the trajectory)."""
    staging = restart.staging_folder(outdir)
    kept = outdir.parent / "point.npz"

    def progress(row):
        if row["step"] == point_step + 1:  # the point of point_step is saved
            shutil.copy(staging / restart.RESTART_FILE, kept)
        if row["step"] == stop_step:
            raise CutShort

    with pytest.raises(CutShort):
        run_md(model, atoms, outdir, settings, progress=progress, restart_interval_s=0)
    os.replace(kept, staging / restart.RESTART_FILE)
    return staging


@pytest.fixture
def runs(models, ethanol_box, tmp_path):
    """The uninterrupted run and the model of the runs."""
    model = load_force_model(models["nc"])
    whole = run_md(model, ethanol_box, tmp_path / "whole", MDSettings(**SETTINGS))
    return model, whole


def test_a_run_cut_short_continues_on_the_uninterrupted_trajectory(
    runs, ethanol_box, tmp_path
):
    model, whole = runs
    settings = MDSettings(**SETTINGS)
    outdir = tmp_path / "cut"
    staging = _cut_short(model, ethanol_box, outdir, settings, 17, 27)
    assert not outdir.exists()
    frames_before = ase.io.read(staging / "trajectory.extxyz", ":")
    assert frames_before[-1].info["step"] == 25  # written after the point of step 17

    summary = run_md(model, ethanol_box, outdir, settings, resume=True)

    assert summary["status"] == "completed"
    assert summary["continued_at_steps"] == [17]
    assert not staging.exists() and not (outdir / restart.RESTART_FILE).exists()
    np.testing.assert_allclose(_log(outdir), _log(tmp_path / "whole"), atol=1e-10)
    frames = ase.io.read(outdir / "trajectory.extxyz", ":")
    expected = ase.io.read(tmp_path / "whole" / "trajectory.extxyz", ":")
    assert [f.info["step"] for f in frames] == [f.info["step"] for f in expected]
    np.testing.assert_allclose(frames[-1].positions, expected[-1].positions, atol=1e-9)
    np.testing.assert_allclose(
        frames[-1].get_momenta(), expected[-1].get_momenta(), atol=1e-9
    )
    for key in ("mean_temperature_K", "conserved_fluctuation_meV_per_atom"):
        assert summary[key] == pytest.approx(whole[key], rel=1e-9, abs=1e-12)
    assert summary["topology"] == whole["topology"]
    # the calls of both parts, and one more evaluation of the forces at the point
    assert summary["model_forward_passes"] == whole["model_forward_passes"] + 1
    assert summary["model_backward_passes"] == whole["model_backward_passes"] + 1


def test_sigterm_stops_at_the_end_of_a_step_with_a_point_there(
    runs, ethanol_box, tmp_path
):
    """SIGTERM (what a batch system or a session's end sends) does not lose the
    steps since the last point: the step ends, a point is saved, the run stops."""
    model, whole = runs
    settings = MDSettings(**SETTINGS)
    outdir = tmp_path / "cut"
    handler = signal.getsignal(signal.SIGTERM)

    def progress(row):
        if row["step"] == 12:
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(restart.Stopped, match=r"SIGTERM: stopped at step 12"):
        run_md(
            model, ethanol_box, outdir, settings, progress=progress,
            restart_interval_s=3600,
        )  # fmt: skip
    assert signal.getsignal(signal.SIGTERM) == handler  # put back
    assert restart.load(restart.staging_folder(outdir)).step == 12
    summary = run_md(model, ethanol_box, outdir, settings, resume=True)
    assert summary["continued_at_steps"] == [12]
    np.testing.assert_allclose(_log(outdir), _log(tmp_path / "whole"), atol=1e-10)


def test_a_continuation_with_other_settings_is_refused_and_keeps_the_run(
    runs, ethanol_box, tmp_path
):
    model, _ = runs
    settings = MDSettings(**SETTINGS)
    outdir = tmp_path / "cut"
    staging = _cut_short(model, ethanol_box, outdir, settings, 10, 12)
    saved = (staging / restart.RESTART_FILE).read_bytes()

    other = MDSettings(**dict(SETTINGS, tau_fs=20.0))
    with pytest.raises(UserInputError, match=r"settings\.tau_fs.*--force"):
        run_md(model, ethanol_box, outdir, other, resume=True)
    with pytest.raises(UserInputError, match="--resume"):  # a new run over it
        run_md(model, ethanol_box, outdir, settings, restart_interval_s=60)
    assert (staging / restart.RESTART_FILE).read_bytes() == saved
    assert not outdir.exists()

    # --force starts again from the start structure
    summary = run_md(model, ethanol_box, outdir, other, force=True, resume=True)
    assert summary["continued_at_steps"] == []
    assert summary["outer_steps_done"] == SETTINGS["steps"]
    assert not staging.exists()


def test_an_unreadable_restart_point_is_reported_and_kept(runs, ethanol_box, tmp_path):
    model, _ = runs
    staging = restart.staging_folder(tmp_path / "cut")
    staging.mkdir()
    (staging / restart.RESTART_FILE).write_bytes(b"not a restart point")
    with pytest.raises(UserInputError, match="cannot be read.*--force"):
        run_md(
            model, ethanol_box, tmp_path / "cut", MDSettings(**SETTINGS), resume=True
        )
    assert (staging / restart.RESTART_FILE).read_bytes() == b"not a restart point"
    summary = run_md(
        model,
        ethanol_box,
        tmp_path / "cut",
        MDSettings(**SETTINGS),
        force=True,
        restart_interval_s=60,
    )  # --force starts again over it
    assert summary["status"] == "completed" and not staging.exists()


def test_resuming_a_finished_run_returns_it_without_running(
    runs, ethanol_box, tmp_path
):
    model, whole = runs
    before = model.n_forward
    summary = run_md(
        model, ethanol_box, tmp_path / "whole", MDSettings(**SETTINGS), resume=True
    )
    assert model.n_forward == before and summary["already_finished"]
    assert summary["wall_time_s"] == whole["wall_time_s"]
    # another model or settings in a finished folder: refused, kept
    with pytest.raises(UserInputError, match="steps"):
        run_md(
            model,
            ethanol_box,
            tmp_path / "whole",
            MDSettings(**dict(SETTINGS, steps=50)),
            resume=True,
        )
    assert (
        json.loads((tmp_path / "whole" / "summary.json").read_text())[
            "outer_steps_done"
        ]
        == SETTINGS["steps"]
    )


def test_killed_cli_run_continues_with_resume(models, ethanol_box_file, tmp_path):
    """``mtt-nc md`` killed (SIGKILL, as at the end of a session) continues with
    ``--resume`` to the log of an uninterrupted run."""
    command = [
        sys.executable, "-m", "metatrain_nc.cli", "md", models["nc"],
        str(ethanol_box_file), "--forces", "mts", "--timestep", "1", "--stride", "2",
        "--steps", "3000", "--ensemble", "svr", "--tau", "10", "--log-every", "10",
        "--trajectory-every", "50", "--no-chemiscope",
    ]  # fmt: skip
    whole = tmp_path / "whole"
    subprocess.run([*command, "-o", str(whole)], check=True, capture_output=True)

    outdir = tmp_path / "cut"
    staging = restart.staging_folder(outdir)
    process = subprocess.Popen(
        [*command, "-o", str(outdir), "--restart-interval", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while process.poll() is None and time.monotonic() < deadline:
        point = restart.load(staging) if staging.exists() else None
        if point is not None and point.step >= 200:
            break
        time.sleep(0.2)
    assert process.poll() is None, "the run ended before it could be cut short"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not outdir.exists() and staging.exists()

    refused = subprocess.run(
        [*command, "-o", str(outdir)], capture_output=True, text=True
    )
    assert refused.returncode != 0 and "--resume" in refused.stderr

    done = subprocess.run(
        [*command, "-o", str(outdir), "--resume"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "continued from step" in done.stdout
    again = subprocess.run(
        [*command, "-o", str(outdir), "--resume"], capture_output=True, text=True
    )
    assert again.returncode == 0 and "had finished: nothing to run" in again.stdout
    summary = json.loads((outdir / "summary.json").read_text())
    (continued,) = summary["continued_at_steps"]
    assert continued >= 200
    log, expected = _log(outdir), _log(whole)
    assert log.shape == expected.shape
    # the records up to the restart point are the killed run's own
    np.testing.assert_array_equal(
        log[log[:, 0] <= continued], expected[: len(log[log[:, 0] <= continued])]
    )
    # after it, the same trajectory to round-off (a new process's sums may differ
    # in the last bit, which chaos amplifies over picoseconds, as after any
    # restart): compared over the next 200 fs
    window = (log[:, 0] > continued) & (log[:, 0] <= continued + 200)
    assert window.sum() >= 10
    np.testing.assert_allclose(log[window], expected[window], rtol=1e-8, atol=1e-8)
