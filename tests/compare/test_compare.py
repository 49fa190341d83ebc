"""``mtt-nc compare`` end to end: tiny real models, analytic models, bad input."""

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import ase.io
import pytest

from metatrain_nc.compare import CompareSettings, compare
from metatrain_nc.compare.models import describe_model
from metatrain_nc.errors import UserInputError

from ..analytic_models import analytic_lambda, export_pair_model

#: seconds, not minutes: a few MD steps, one structure for lambda and relaxations
FAST = dict(
    nve_time_fs=20.0,
    nvt_time_fs=10.0,
    lambda_structures=1,
    relax_structures=1,
    relax_steps=10,
    cost_repeats=1,
    square_loops=1,
)


def _finite_numbers(value, path=""):
    """Every number in a JSON document, with its path."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _finite_numbers(v, f"{path}/{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _finite_numbers(v, f"{path}/{i}")
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield path, value


def test_compare_tiny_models(tiny_compare):
    out, result = tiny_compare.out, tiny_compare.result
    assert result.returncode == 0, result.stderr
    assert f"{out}/report.md" in result.stdout
    report = json.loads((out / "report.json").read_text())
    assert report["failures"] == []
    models = report["models"]
    assert list(models) == ["pet_c", "pet_nc", "pet_m"]
    assert models["pet_c"]["info"]["heads"] == ["conservative"]
    assert models["pet_nc"]["info"]["heads"] == ["direct"]
    assert models["pet_m"]["info"]["md_modes"] == ["conservative", "direct", "mts"]

    for name, model in models.items():
        heads = model["info"]["heads"]
        # every section, every head / mode, with finite numbers
        assert set(model["accuracy"]["forces"]) == set(heads)
        assert model["accuracy"]["energy"]["rmse"] > 0
        assert set(model["antisymmetry"]) == set(heads)
        assert set(model["nve"]) == set(model["info"]["md_modes"])
        nvt = {r["mode"]: r for r in report["nvt"] if r["model"] == name}
        assert set(nvt) == set(model["info"]["md_modes"])
        (relax,) = [r for r in report["relax"] if r["model"] == name]
        assert set(relax["summary"]) == set(heads)
        assert "conservative" in model["cost"]["ms"] or "direct" in model["cost"]["ms"]
        for where, number in _finite_numbers(model):
            assert math.isfinite(number), f"{name}{where} = {number}"
        for runs, steps in ((model["nve"], 10), (nvt, 5)):
            for mode, run in runs.items():
                assert (out / run["folder"] / "md_log.csv").is_file()
                if mode == "direct" and run["status"] == "runaway":
                    # a 2-epoch direct head heats thousands of K in femtoseconds:
                    # the run stops at the bound and says so, the report goes on
                    assert "runaway" in run["message"]
                    continue
                assert run["status"] == "completed", (name, mode, run["message"])
                # 20 fs (NVE) and 10 fs (NVT) in outer steps of 0.5 fs x stride 4
                assert run["outer_steps_done"] == steps
        for head in model["antisymmetry"].values():
            assert (out / head["folder"] / "summary.json").is_file()

    # physics: conservative forces have a symmetric Jacobian, direct ones do not
    lam = {
        (name, head): r["lambda_mean"]
        for name, m in models.items()
        for head, r in m["antisymmetry"].items()
    }
    assert lam[("pet_c", "conservative")] < 1e-4
    assert lam[("pet_m", "conservative")] < 1e-4
    assert lam[("pet_nc", "direct")] > 1e-3
    assert lam[("pet_m", "direct")] > 1e-3
    # MTS evaluates the conservative forces once per outer step only
    mts = models["pet_m"]["nve"]["mts"]
    assert mts["model_backward_passes"] == mts["outer_steps_done"] + 1
    assert mts["model_forward_passes"] == 4 * mts["outer_steps_done"] + 1
    # cost ratios against the conservative-only model, measured in this run
    assert report["settings"]["equilibration_fs"] == 10
    assert report["cost_reference"] == "pet_c"
    assert models["pet_c"]["cost"]["speedup"]["conservative"] == pytest.approx(1.0)
    assert models["pet_nc"]["cost"]["speedup"]["direct"] > 0

    # the report files: tables for every section and embedded figures
    markdown = (out / "report.md").read_text()
    for title in ("Accuracy", "Cost", "antisymmetry", "NVE", "NVT", "Geometry"):
        assert title in markdown
    # NVT: species splits of every run with their error bars; 10 fs runs are far
    # too short for error bars (<= 3 records analysed), and the report says so
    modes = [mode for m in models.values() for mode in m["info"]["md_modes"]]
    assert len(report["nvt"]) == len(modes)  # a row per mode of every model
    for run in report["nvt"]:
        assert 0 < run["equipartition"]["n_records"] <= 3
        assert run["equipartition"]["resolved"] is None
    assert "Nothing can be resolved: too few records" in markdown
    for figure in ("nve_temperature.png", "nvt_temperature.png", "lambda_pairs.png"):
        assert (out / figure).stat().st_size > 1000
        assert figure in markdown
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 3
    assert len(report["files"]["chemiscope"]) >= 5
    for name in report["files"]["chemiscope"]:
        assert (out / name).stat().st_size > 100


@pytest.fixture(scope="module")
def analytic(tmp_path_factory):
    folder = tmp_path_factory.mktemp("analytic")
    return {
        "c": export_pair_model(str(folder / "c.pt"), direct_forces=False),
        "nc": export_pair_model(str(folder / "nc.pt"), nonconservative_strength=0.01),
        "nc_kcal": export_pair_model(
            str(folder / "nc_kcal.pt"),
            nonconservative_strength=0.01,
            energy_unit="kcal/mol",
        ),
        "no_carbon": export_pair_model(
            str(folder / "hw.pt"), atomic_types=(1, 8), direct_forces=False
        ),
    }


def _settings(**overrides):
    return CompareSettings.quick(**dict(FAST, **overrides))


def test_units_species_and_missing_labels(analytic, ethanol_frames, tmp_path):
    """Different units are converted; a model that cannot run loses only its own
    sections; structures without labels skip the accuracy table only."""
    frames = [
        ase.Atoms(a.numbers, a.positions) for a in ase.io.read(ethanol_frames, ":3")
    ]
    unlabelled = tmp_path / "unlabelled.xyz"
    ase.io.write(unlabelled, frames)
    result = compare(
        [analytic["nc"], analytic["nc_kcal"], analytic["no_carbon"]],
        ethanol_frames,
        tmp_path / "out",
        _settings(stages=("accuracy", "cost", "antisymmetry", "nve")),
        names=["ev", "kcal", "no_carbon"],
        progress=False,
        log=lambda message: None,
    )
    models = result["models"]
    assert any("different energy units" in note for note in result["notes"])
    assert models["ev"]["accuracy"]["forces"]["direct"]["rmse"] == pytest.approx(
        models["kcal"]["accuracy"]["forces"]["direct"]["rmse"], rel=1e-9
    )
    assert models["ev"]["nve"]["mts"]["drift_meV_per_atom_per_ps"] == pytest.approx(
        models["kcal"]["nve"]["mts"]["drift_meV_per_atom_per_ps"], rel=1e-6, abs=1e-9
    )
    for stage in ("accuracy", "cost", "antisymmetry", "nve"):
        assert "species ['C']" in models["no_carbon"][stage]["error"]
    assert len(result["failures"]) == 4
    assert "failed" in (Path(result["output_dir"]) / "report.md").read_text()

    partial = compare(
        [analytic["c"], analytic["nc"]],
        unlabelled,
        tmp_path / "unlabelled_out",
        _settings(stages=("accuracy", "antisymmetry")),
        progress=False,
    )
    assert "no 'energy'/'forces' labels" in partial["accuracy_note"]
    assert all("skipped" in m["accuracy"] for m in partial["models"].values())
    assert partial["models"]["c"]["antisymmetry"]["conservative"]["lambda_mean"] < 1e-10
    assert partial["models"]["nc"]["antisymmetry"]["direct"][
        "lambda_mean"
    ] == pytest.approx(analytic_lambda(frames[0], 0.01), rel=1e-6)
    assert partial["failures"] == []


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "metatrain_nc.cli", "compare", *map(str, args)],
        capture_output=True,
        text=True,
    )


def test_bad_input(analytic, ethanol_frames, tmp_path):
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("user data")
    common = ["--structures", ethanol_frames, "--quick", "--stages", "cost"]

    result = _cli(analytic["c"], *common, "-o", existing)
    assert result.returncode != 0
    assert "already exists" in result.stderr and "--force" in result.stderr
    assert (existing / "keep.txt").read_text() == "user data"

    a_file = tmp_path / "a_file"
    a_file.write_text("")
    result = _cli(analytic["c"], *common, "-o", a_file / "report")
    assert result.returncode != 0
    assert "cannot create the output folder" in result.stderr

    for args, message in [
        ([tmp_path / "missing.pt", *common], "does not exist"),
        ([analytic["c"], "--structures", tmp_path / "none.xyz"], "does not exist"),
        ([analytic["c"], *common, "--stride", "0"], "--stride must be >= 1"),
        ([analytic["c"], *common, "--names", "a,b"], "--names has 2 entries"),
        ([analytic["c"], "--structures", ethanol_frames, "--stages", "md"], "stage"),
    ]:
        out = tmp_path / f"out{len(list(tmp_path.iterdir()))}"
        result = _cli(*args, "-o", out)
        assert result.returncode != 0, args
        assert message in result.stderr, (message, result.stderr)
        assert not out.exists()
        leftovers = [p for p in tmp_path.iterdir() if p.name.startswith(".out")]
        assert not leftovers

    # a failing section gives a non-zero exit but keeps the report of the others
    result = _cli(analytic["c"], analytic["no_carbon"], *common, "-o", tmp_path / "r")
    assert result.returncode == 1
    assert "1 section(s) failed" in result.stderr
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert "ms" in report["models"]["c"]["cost"]


def test_settings_checks():
    with pytest.raises(UserInputError, match="unknown stage"):
        CompareSettings(stages=("accuracy", "bogus")).check()
    with pytest.raises(UserInputError, match="timestep"):
        CompareSettings(timestep_fs=0).check()
    quick = CompareSettings.quick(stride=8)
    assert quick.stride == 8 and quick.mts_outer_fs == 4.0
    assert quick.outer_steps(100.0) == 25
    # at least the time asked for: 5 fs in outer steps of 2 fs are 3 steps
    assert CompareSettings(stride=4).outer_steps(5.0) == 3
    assert CompareSettings(stride=4).outer_steps(0.1) == 1
    # the paper protocol is a preset of the same settings, with its own keys
    paper = CompareSettings.paper(quick=True, nvt_time_fs=100.0)
    assert paper.protocol == "paper" and paper.stages == ("nvt", "gas", "bulk")
    assert paper.outer_steps(paper.nvt_time_fs) == 50
    saved = paper.as_dict()
    assert saved["production_fs"] == 100.0 and saved["parts"] == ["nvt", "gas", "bulk"]
    assert "nve_time_fs" not in saved and "production_fs" not in quick.as_dict()
    with pytest.raises(UserInputError, match="unknown protocol part"):
        CompareSettings.paper(stages=("nve",)).check()


def test_resume_runs_only_the_new_units(analytic, ethanol_frames, tmp_path):
    """The standard protocol's units are stored as they finish: --resume runs only
    the stages not done yet (or of models added), with the same settings."""
    out = tmp_path / "out"
    options = dict(progress=False, log=lambda message: None)
    first = compare(
        [analytic["c"]], ethanol_frames, out, _settings(stages=("cost",)), **options
    )
    unit = out / "units" / "cost-c.json"
    stamp = unit.stat().st_mtime_ns
    with pytest.raises(UserInputError, match="continue it with --resume"):
        compare([analytic["c"]], ethanol_frames, out, _settings(), **options)
    with pytest.raises(UserInputError, match="settings.seed"):
        settings = _settings(stages=("cost",), seed=3)
        compare([analytic["c"]], ethanol_frames, out, settings, resume=True, **options)
    settings = _settings(stages=("cost", "accuracy"))
    second = compare(
        [analytic["c"]], ethanol_frames, out, settings, resume=True, **options
    )
    assert unit.stat().st_mtime_ns == stamp
    assert second["models"]["c"]["cost"] == first["models"]["c"]["cost"]
    assert second["models"]["c"]["accuracy"]["forces"]["conservative"]["rmse"] > 0
    assert second["failures"] == []
    # a model may join a comparison later; the ones already run keep their units
    third = compare(
        [analytic["c"], analytic["nc"]],
        ethanol_frames,
        out,
        _settings(stages=("cost",)),
        resume=True,
        **options,
    )
    assert (
        unit.stat().st_mtime_ns == stamp and (out / "units" / "cost-nc.json").is_file()
    )
    assert set(third["models"]) == {"c", "nc"}
    # but a model already run cannot change its file
    with pytest.raises(UserInputError, match="'models'"):
        compare(
            [analytic["nc_kcal"], analytic["nc"]],
            ethanol_frames,
            out,
            _settings(stages=("cost",)),
            resume=True,
            names=["c", "nc"],
            **options,
        )


def test_unreadable_checkpoint_is_an_error(tmp_path):
    from metatrain_nc.compare.models import describe_model

    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(UserInputError, match="cannot load metatrain checkpoint"):
        describe_model(str(bad))


def test_a_stock_pet_checkpoint_names_its_architecture():
    """Stock ``pet`` exports record no architecture: the force layer reads it from
    the checkpoint (once), so reports and summaries name it."""
    from metatrain_nc.compare.models import describe_model

    from ..conftest import ROOT

    entry = describe_model(str(ROOT / "recipes" / "demo" / "pretrained" / "pet_c.ckpt"))
    assert entry.architecture == "pet" and entry.heads == ["conservative"]


def test_stock_pet_with_a_direct_target_is_a_hybrid(ethanol_frames, tmp_path):
    """Stock ``pet`` trained on energy, forces and an explicit
    ``non_conservative_force`` target has both heads: compared like ``pet_m``."""
    from ..conftest import add_direct_force_target, run_mtt, write_options

    write_options(tmp_path / "options.yaml", "pet", str(ethanol_frames), epochs=1)
    add_direct_force_target(tmp_path / "options.yaml")
    run_mtt(["train", "options.yaml"], cwd=tmp_path)

    result = compare(
        [tmp_path / "model.pt"],
        ethanol_frames,
        tmp_path / "report",
        _settings(stages=("accuracy", "nve")),
        names=["pet_hybrid"],
        progress=False,
        log=lambda message: None,
    )
    model = result["models"]["pet_hybrid"]
    assert model["info"]["md_modes"] == ["conservative", "direct", "mts"]
    forces = model["accuracy"]["forces"]
    assert forces["conservative"]["rmse"] != forces["direct"]["rmse"]
    assert set(model["nve"]) >= {"conservative", "direct", "mts"}
    assert result["failures"] == []
    # the exported model does not record its architecture, the checkpoint does
    assert describe_model(str(tmp_path / "model.ckpt")).architecture == "pet"


#: a module of ASE calculator factories, written into tmp_path for the subprocess
LJ_FACTORY = """
from ase.calculators.lj import LennardJones


def make_lj():
    return LennardJones(sigma=1.2, epsilon=0.01, rc=4.0, smooth=True)
"""


def test_ase_calculator_next_to_an_exported_model(analytic, ethanol_frames, tmp_path):
    """An ASE calculator (``module:callable``) in the same report as an exported
    model: every section, through the force-model layer, in float64."""
    import os

    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "calcs.py").write_text(LJ_FACTORY)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(
        [str(modules)] + [p for p in [os.environ.get("PYTHONPATH")] if p]
    )
    out = tmp_path / "report"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "metatrain_nc.cli",
            "compare",
            "calcs:make_lj",  # first, yet not the cost reference
            analytic["c"],
            "--names",
            "lj,pair",
            "--structures",
            ethanol_frames,
            "-o",
            out,
            "--quick",
            "--float64",
            "--nve-time",
            "20",
            "--nvt-time",
            "10",
            "--relax-steps",
            "10",
            "--lambda-structures",
            "1",
            "--relax-structures",
            "1",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["failures"] == [] and report["settings"]["float64"] is True
    lj, pair = report["models"]["lj"], report["models"]["pair"]
    assert lj["info"]["model_kind"] == "ase"
    assert pair["info"]["model_kind"] == "metatomic"
    assert lj["info"]["path"] == "calcs:make_lj"
    assert lj["info"]["heads"] == lj["info"]["md_modes"] == ["conservative"]
    assert pair["info"]["dtype"] == "float64"
    # every section has the calculator's rows
    assert lj["accuracy"]["forces"]["conservative"]["rmse"] > 0
    assert lj["cost"]["ms"]["conservative"] > 0
    assert lj["antisymmetry"]["conservative"]["method"] == "finite-difference"
    assert lj["antisymmetry"]["conservative"]["lambda_mean"] < 1e-4
    assert pair["antisymmetry"]["conservative"]["method"] == "exact"
    nvt = [r for r in report["nvt"] if r["model"] == "lj"]
    for run in [lj["nve"]["conservative"], *nvt]:
        assert run["status"] == "completed" and (out / run["folder"]).is_dir()
    assert [r["mode"] for r in nvt] == ["conservative"]
    assert lj["nve"]["conservative"]["model_forward_passes"] == 41  # 40 steps + 1
    relax = [r for r in report["relax"] if r["model"] == "lj"]
    assert set(relax[0]["summary"]) == {"conservative"}
    # the exported model, not the analytic potential, is the cost reference
    assert report["cost_reference"] == "pair"
    markdown = (out / "report.md").read_text()
    assert "| lj | LennardJones (ASE calculator) | conservative |" in markdown
    for table_row in (
        "| lj | conservative |",
        "| lj | conservative | bulk (0.05 eV/Å) | LBFGS |",
    ):
        assert table_row in markdown


def test_ase_calculators_direct_and_too_large_for_finite_differences(
    analytic, ethanol_frames, tmp_path
):
    """A calculator object declared direct; lambda by finite differences is exact
    only: beyond max_exact_rows the calculator's section is skipped with a note."""
    from ase.calculators.lj import LennardJones

    from metatrain_nc.force_models import load_force_model

    lj = LennardJones(sigma=1.2, epsilon=0.01, rc=4.0, smooth=True)
    result = compare(
        [analytic["nc"], load_force_model(lj, direct=True)],
        ethanol_frames,
        tmp_path / "out",
        _settings(stages=("accuracy", "antisymmetry"), max_exact_rows=12),
        names=["pair", "lj"],
        progress=False,
        log=lambda message: None,
    )
    assert result["failures"] == []
    lj_result = result["models"]["lj"]
    assert lj_result["info"]["heads"] == ["direct"]
    assert set(lj_result["accuracy"]["forces"]) == {"direct"}
    assert "antisymmetry" not in lj_result
    assert "finite differences" in lj_result["skipped"]["antisymmetry"]
    assert any("antisymmetry section of 'lj' is skipped" in n for n in result["notes"])
    assert result["models"]["pair"]["antisymmetry"]["direct"]["method"] == "stochastic"
    assert "is skipped" in (Path(result["output_dir"]) / "report.md").read_text()


def test_modes_restrict_the_md_runs(analytic, ethanol_frames, tmp_path):
    """``--modes`` runs only the chosen force modes (e.g. MTS at another stride);
    a mode no model has, or an unknown one, is refused before any work."""
    options = dict(progress=False, log=lambda message: None)
    out = tmp_path / "mts_only"
    settings = _settings(stages=("nve",), modes=("mts",), stride=2)
    result = compare([analytic["nc"]], ethanol_frames, out, settings, **options)
    assert set(result["models"]["nc"]["nve"]) == {"mts"}
    assert result["settings"]["modes"] == ["mts"]
    assert sorted(p.name for p in (out / "md").iterdir()) == ["nc-nve-mts"]
    # without --modes every mode runs, and the settings do not name them
    everything = compare(
        [analytic["nc"]], ethanol_frames, tmp_path / "all", _settings(stages=("nve",)),
        **options,
    )  # fmt: skip
    assert set(everything["models"]["nc"]["nve"]) == {"conservative", "direct", "mts"}
    assert "modes" not in everything["settings"]
    with pytest.raises(UserInputError, match="no model has these force modes"):
        compare(
            [analytic["c"]], ethanol_frames, tmp_path / "none",
            _settings(stages=("nve",), modes=("direct",)), **options,
        )  # fmt: skip
    assert not (tmp_path / "none").exists()
    with pytest.raises(UserInputError, match="unknown force mode"):
        _settings(modes=("respa",)).check()


def test_resume_continues_an_md_run_cut_short(
    analytic, ethanol_frames, tmp_path, monkeypatch
):
    """A comparison stopped in the middle of an NVT run continues that run from its
    last restart point on --resume (not from its start), and keeps the runs the
    unit had finished: the same records as an uninterrupted comparison."""
    from metatrain_nc.dynamics import restart

    options = dict(progress=False, log=lambda message: None)
    settings = _settings(stages=("nvt",), nvt_time_fs=40.0)
    whole = compare(
        [analytic["nc"]], ethanol_frames, tmp_path / "whole", settings, **options
    )

    class CutShort(KeyboardInterrupt):
        pass

    record = restart.RestartRecorder.__call__

    def cut_at_step_6_of_direct(self):  # points at steps 0, 1, ..., 6
        record(self)
        if "direct" in self.folder.name and self.saved == 7:
            raise CutShort

    monkeypatch.setattr(restart, "DEFAULT_INTERVAL_S", 0.0)
    monkeypatch.setattr(restart.RestartRecorder, "__call__", cut_at_step_6_of_direct)
    out = tmp_path / "cut"
    with pytest.raises(CutShort):
        compare([analytic["nc"]], ethanol_frames, out, settings, **options)
    md = out / "md"
    finished = {
        p.name: p.stat().st_mtime_ns for p in md.iterdir() if not p.name.startswith(".")
    }
    (staging,) = md.glob(".*.resumable")
    assert "direct" in staging.name and restart.load(staging).step == 6
    assert finished  # the conservative run of the unit had finished

    monkeypatch.setattr(restart.RestartRecorder, "__call__", record)
    again = compare(
        [analytic["nc"]], ethanol_frames, out, settings, resume=True, **options
    )
    assert again["failures"] == []
    for name, stamp in finished.items():  # taken as they were, not run again
        assert (md / name).stat().st_mtime_ns == stamp
    summary = json.loads(
        (md / staging.name[1 : -len(".resumable")] / "summary.json").read_text()
    )
    assert summary["continued_at_steps"] == [6]
    assert len(again["nvt"]) == len(whole["nvt"]) == 3  # conservative, direct, mts
    for run, expected in zip(again["nvt"], whole["nvt"], strict=True):
        assert run["outer_steps_done"] == expected["outer_steps_done"]
        assert run["mean_temperature_K"] == pytest.approx(
            expected["mean_temperature_K"], rel=1e-9
        )


def test_md_runs_show_their_progress(analytic, ethanol_frames, tmp_path, capfd):
    """A long NVT run is hours inside one unit: with progress on, each MD run has a
    bar of its outer steps; with progress off, nothing is printed."""
    settings = _settings(stages=("nvt",), nvt_time_fs=40.0, modes=("direct",))
    compare([analytic["nc"]], ethanol_frames, tmp_path / "on", settings)
    shown = capfd.readouterr().err
    # the run's 20 outer steps, counted as they go (tqdm shows a few of them)
    counts = re.findall(r"nc-svr-direct:.*?\| *(\d+)/20 ", shown)
    assert len(counts) >= 2 and int(counts[-1]) > 0
    compare(
        [analytic["nc"]],
        ethanol_frames,
        tmp_path / "off",
        settings,
        progress=False,
        log=lambda message: None,
    )
    assert "nc-svr-direct" not in capfd.readouterr().err
