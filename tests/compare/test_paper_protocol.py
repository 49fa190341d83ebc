"""``mtt-nc compare --protocol paper``: units, resume, tables, marks and bad input.

The analytic models of the tests (float64, milliseconds per call) on the 72-atom
ethanol cluster of the dynamics tests: a hybrid model whose direct head adds a
rotational field (modes conservative, direct, mts) and a conservative-only one.
The physics of the equipartition finding is tested in
``tests/dynamics/test_findings.py``; here, that the protocol runs it, keeps it and
reports it.
"""

import contextlib
import io
import json
import math
from pathlib import Path

import ase.build
import ase.io
import numpy as np
import pytest

from metatrain_nc.cli import main
from metatrain_nc.compare.nvt_reading import findings, verdict
from metatrain_nc.dynamics.diffusion import diffusion_coefficients, unwrap
from metatrain_nc.dynamics.relax import success_interval

from ..analytic_models import export_pair_model
from ..dynamics.conftest import molecules_in_box

CLUSTER = (
    Path(__file__).parents[1] / "dynamics" / "data" / "ethanol_cluster_1000K.extxyz"
)
QUICK = [
    "--protocol", "paper", "--quick",
    "--timestep", "0.5", "--stride", "2",
    "--equilibration", "10", "--nvt-time", "50",
    "--gas-structures", "2", "--relax-structures", "1", "--relax-steps", "25",
    "--thermostats", "svr:10",
]  # fmt: skip


def _run(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def analytic_models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("paper_models")
    return {
        "hybrid": export_pair_model(
            str(folder / "hybrid.pt"), nonconservative_strength=0.005
        ),
        "energy": export_pair_model(str(folder / "energy.pt"), direct_forces=False),
    }


@pytest.fixture(scope="module")
def structures(tmp_path_factory):
    """Test structures: 8 separate ethanol molecules (the MD starts from CLUSTER)."""
    atoms = molecules_in_box(ase.build.molecule("CH3CH2OH"), n_side=2, spacing=8.0)
    path = tmp_path_factory.mktemp("paper_structures") / "box.xyz"
    ase.io.write(path, atoms)
    return path


@pytest.fixture(scope="module")
def protocol(analytic_models, structures, tmp_path_factory):
    """The quick protocol with both models, then resumed with one more thermostat."""
    out = tmp_path_factory.mktemp("paper") / "protocol"
    models = [analytic_models["hybrid"], analytic_models["energy"]]
    first = _run(
        ["compare", *models, "--names", "M,C", "--structures", structures]
        + ["--md-structure", CLUSTER, "-o", out, *QUICK]
    )
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "units").glob("*.json")}
    # a run cut short leaves a staging folder: resume must remove it
    leftover = out / "runs" / "nvt" / ".nvt-M-direct-langevin100.partial-x"
    leftover.mkdir()
    (leftover / "trajectory.extxyz").write_text("half a frame")
    resumed_argv = ["compare", *models, "--names", "M,C", "--structures", structures]
    resumed_argv += ["--md-structure", CLUSTER]
    resumed_argv += ["-o", out, *QUICK[:-1], "langevin:100,svr:10", "--resume"]
    resumed_argv += ["--parts", "nvt"]
    second = _run(resumed_argv)
    return {
        "out": out,
        "first": first,
        "second": second,
        "stamps": stamps,
        "models": models,
        "structures": structures,
    }


def test_protocol_runs_every_unit_and_reports_both_tables(protocol):
    code, stdout, stderr = protocol["first"]
    assert code == 0, stderr
    out = protocol["out"]
    units = sorted(p.stem for p in (out / "units").glob("*.json"))
    # every force mode of each model under SVR, and both relaxation parts per model
    assert {
        "nvt-M-conservative-svr10",
        "nvt-M-direct-svr10",
        "nvt-M-mts-svr10",
        "nvt-C-conservative-svr10",
        "relax-gas-M",
        "relax-gas-C",
        "relax-bulk-M",
        "relax-bulk-C",
    } <= set(units)
    report = json.loads((out / "report.json").read_text())
    run = next(r for r in report["nvt"] if r["mode"] == "direct")
    assert run["status"] == "completed"
    species = run["equipartition"]["species"]
    assert set(species) == {"H", "C", "O"}
    assert all(s["error"] is not None and s["error"] > 0 for s in species.values())
    # equilibrated on its own under the local Langevin thermostat (the default),
    # the production run continues from its last frame
    assert run["equilibration"]["thermostat"] == "langevin:100"
    assert run["production_start_fs"] == 0.0
    assert Path(run["folder"] + ".equilibration", "summary.json").is_file()
    diffusion = run["diffusion"]
    assert set(diffusion) == {"H", "C", "O"}
    assert all(
        d["D_A2_per_ps"] > 0 and d["error_A2_per_ps"] > 0 for d in diffusion.values()
    )
    relax = next(r for r in report["relax"] if r["kind"] == "gas" and r["model"] == "M")
    assert relax["fmax_eV_per_A"] == 1e-5
    assert relax["dtype"] == "float64"
    assert set(relax["summary"]) == {"conservative", "direct"}
    lbfgs = relax["summary"]["direct"]["LBFGS"]
    assert lbfgs["trials"] == 2
    low, high = lbfgs["interval_95"]
    assert 0 <= low <= lbfgs["rate"] <= high <= 1
    for record in relax["records"]:
        assert record["stop_reason"] in (
            "converged",
            "energy_rising",
            "step_collapse",
            "force_stalled",
            "step_limit",
            "error",
        )
        # gas-phase starts: single molecules, no cell
        assert record["structure"] in (0, 1)
    assert all(n < 20 for n in relax["n_atoms"])
    markdown = (out / "report.md").read_text()
    assert "Thermostats (Table 2)" in markdown and "Relaxations (Table 7)" in markdown
    assert "+0.3 / -4.4 / +9.9" in markdown  # the paper's SVR direct row beside ours
    assert ("resolved (" in markdown) or ("within error (" in markdown)
    assert "[" in markdown and "% [" in markdown  # rates with intervals
    assert (out / "table2_deviations.png").stat().st_size > 0
    assert (out / "table7_success.png").stat().st_size > 0
    html = (out / "report.html").read_text()
    assert "data:image/png;base64" in html


def test_resume_runs_only_the_new_units(protocol):
    code, stdout, stderr = protocol["second"]
    assert code == 0, stderr
    out = protocol["out"]
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "units").glob("*.json")}
    for name, stamp in protocol["stamps"].items():
        assert stamps[name] == stamp, f"{name} was run again"
    new = set(stamps) - set(protocol["stamps"])
    assert new == {
        "nvt-M-conservative-langevin100.json",
        "nvt-M-direct-langevin100.json",
        "nvt-M-mts-langevin100.json",
        "nvt-C-conservative-langevin100.json",
    }
    assert not list((out / "runs" / "nvt").glob(".*partial*"))
    report = json.loads((out / "report.json").read_text())
    # the relaxations of the first part stay in the report
    assert len(report["relax"]) == 4
    assert len(report["nvt"]) == 8
    # in the paper's order, whichever part ran last: SVR before Langevin, gas
    # before bulk
    assert [r["ensemble"] for r in report["nvt"]] == ["svr"] * 4 + ["langevin"] * 4
    assert [r["kind"] for r in report["relax"]] == ["gas", "gas", "bulk", "bulk"]
    markdown = (out / "report.md").read_text()
    assert "Langevin τ=100 fs" in markdown
    # Langevin runs are compared with the SVR run for diffusion
    langevin = [r for r in report["nvt"] if r["ensemble"] == "langevin"]
    assert all(r["diffusion"] for r in langevin)
    assert "slow-down of D_H vs SVR" in markdown


def test_bad_protocol_input(protocol, tmp_path):
    out = protocol["out"]
    before = sorted(p.name for p in out.rglob("*"))
    models = protocol["models"]
    base = ["compare", *models, "--names", "M,C", "--structures"]
    base += [protocol["structures"], "--md-structure", CLUSTER]
    cases = [
        # an existing folder without --resume or --force
        (base + ["-o", out, *QUICK], "--resume"),
        # resume with other settings
        (base + ["-o", out, *QUICK, "--resume", "--seed", "5"], "settings.seed"),
        (
            base
            + ["-o", out, *QUICK, "--resume", "--equilibration-thermostat", "same"],
            "settings.equilibration_thermostat",
        ),
        (
            base + ["-o", tmp_path / "g", *QUICK, "--equilibration-thermostat", "x"],
            "--equilibration-thermostat must be",
        ),
        # options of the standard comparison
        (base + ["-o", tmp_path / "a", *QUICK, "--tau", "5"], "--tau"),
        # options of the paper protocol without it
        (
            base + ["-o", tmp_path / "b", "--quick", "--gas-structures", "2"],
            "--protocol paper",
        ),
        (base + ["-o", tmp_path / "c", *QUICK[:-1], "nose:10"], "svr or langevin"),
        (base + ["-o", tmp_path / "d", *QUICK[:-1], "svr"], "ENSEMBLE:TAU_FS"),
        (base + ["-o", tmp_path / "e", *QUICK, "--parts", "nvt,md"], "'md'"),
        (base + ["-o", tmp_path / "f", *QUICK, "--nvt-time", "10"], "too few"),
        # resume of a folder that is no protocol
        (base + ["-o", tmp_path, *QUICK, "--resume"], "protocol.json"),
    ]
    for argv, expected in cases:
        code, stdout, stderr = _run(argv)
        assert code == 2, (argv, stdout, stderr)
        assert expected in stderr, (expected, stderr)
    # a second process in the same folder would remove the first one's unfinished
    # runs: refused while the first holds the folder
    import fcntl
    import os

    held = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        code, stdout, stderr = _run(base + ["-o", out, *QUICK, "--resume"])
        assert code == 2 and "is working in" in stderr, stderr
    finally:
        os.close(held)
    assert sorted(p.name for p in out.rglob("*")) == before
    assert not any((tmp_path / name).exists() for name in "abcdefg")


# -- the pieces ------------------------------------------------------------------
def test_diffusion_of_a_random_walk():
    """Brownian motion with D = 0.5 A^2/ps: the estimate agrees within its error,
    whether the positions were wrapped into the box or not, with or without a drift of
    the whole system."""
    rng = np.random.default_rng(3)
    frames, atoms, dt, d_true = 2000, 64, 0.005, 0.5
    steps = rng.normal(0.0, math.sqrt(2 * d_true * dt), (frames, atoms, 3))
    positions = np.cumsum(steps, axis=0)
    numbers = np.array([1] * 32 + [8] * 32)
    masses = np.where(numbers == 1, 1.0, 16.0)
    times = dt * np.arange(frames)
    cell = np.diag([6.0, 6.0, 6.0])
    free = diffusion_coefficients(positions, times, numbers, masses)
    wrapped = diffusion_coefficients(positions % 6.0, times, numbers, masses, cell)
    drifting = positions + 3.0 * times[:, None, None]  # the whole system moves
    moved = diffusion_coefficients(drifting, times, numbers, masses)
    for symbol in ("H", "O"):
        d = free[symbol]
        assert abs(d["D_A2_per_ps"] - d_true) < 4 * d["error_A2_per_ps"]
        assert d["error_A2_per_ps"] < 0.2 * d_true
        assert wrapped[symbol]["D_A2_per_ps"] == pytest.approx(d["D_A2_per_ps"])
        # removing the centre of mass changes D by O(1/N) only; the drift is gone
        assert abs(moved[symbol]["D_A2_per_ps"] - d_true) < 4 * d["error_A2_per_ps"]
    assert np.allclose(
        unwrap(positions % 6.0, cell), positions - positions[0] + (positions[0] % 6.0)
    )


def test_success_interval_covers_the_rate():
    """The Wilson interval holds the true rate in ~95% of binomial samples, and stays
    inside [0, 1] at 0 and n successes."""
    rng = np.random.default_rng(0)
    for p, n in ((0.3, 20), (0.8, 12), (0.05, 40)):
        hits = 0
        for k in rng.binomial(n, p, 4000):
            _, low, high = success_interval(int(k), n)
            hits += low <= p <= high
        assert 0.92 < hits / 4000 < 0.99
    rate, low, high = success_interval(0, 10)
    assert rate == 0 and low == 0 and 0.2 < high < 0.35
    rate, low, high = success_interval(10, 10)
    assert rate == 1 and high == 1 and 0.65 < low < 0.8


def test_marks_and_findings():
    assert verdict(5.0, 1.0, 2.0).startswith("resolved (5.0σ)")
    assert verdict(-1.5, 1.0, 2.0).startswith("within error")
    assert verdict(1.0, None, 2.0) == "-"

    def run(model, mode, difference, error):
        split = {"difference": difference, "error": error}
        return {
            "model": model,
            "mode": mode,
            "ensemble": "svr",
            "tau_fs": 10.0,
            "status": "completed",
            "equipartition": {"max_split_pair": "H-O", "splits": {"H-O": split}},
        }

    sentences = findings(
        [run("A", "conservative", 1.0, 1.0), run("A", "mts", -2.0, 1.5)], 2.0
    )
    assert sentences[0].startswith("SVR τ=10 fs: Nothing is resolved (beyond 2")
    sentences = findings(
        [run("A", "direct", 30.0, 5.0), run("A", "mts", 1.0, 1.0)], 2.0
    )
    assert "Resolved (" in sentences[0] and "A direct: H-O +30.0" in sentences[0]
    assert "Not resolved: A mts" in sentences[0]
    # a conservative run with a resolved split: not equilibrated; the direct run is
    # then read against it (difference of the splits, errors combined)
    sentences = findings(
        [run("A", "conservative", -50.0, 7.0), run("A", "direct", -60.0, 9.0)], 2.0
    )
    assert "Not equilibrated: the conservative run of A: H-O -50.0" in sentences[0]
    assert "Against the conservative run from the same start" in sentences[1]
    assert "A direct vs A: H-O -10.0 ± 11.4 K" in sentences[1]
    assert "Nothing is resolved" in sentences[1]
