"""benchmarks/pretrain_finetune.py without training: its bad-input checks, the run
plan, the data split, the checkpoint bookkeeping, and the report (tables,
time-to-accuracy, figure) built from synthetic stored results."""

import importlib.util
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "pretrain_finetune.py"


def _load():
    spec = importlib.util.spec_from_file_location("pretrain_finetune", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


pf = _load()


def _cli(*args):
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["--datasets", "ethanol,benzene"], "unknown dataset(s) benzene"),
        (["--fractions", "0.5,1"], "strictly between 0 and 1"),
        (["--fractions", "0"], "strictly between 0 and 1"),
        (["--budgets", "5,-1"], "budgets must be positive"),
        (["--budgets", "0"], "budgets must be positive"),
        (["--budgets", "five"], "comma-separated float"),
        (["--finetune", "pet_nc"], "unknown fine-tuning architecture"),
    ],
)
def test_bad_input_writes_nothing(tmp_path, args, message):
    out = tmp_path / "new"
    result = _cli("--out", str(out), *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert not out.exists()


def test_refuses_an_out_of_other_settings(tmp_path):
    out = tmp_path / "results"
    out.mkdir()
    settings = pf.make_settings(**{**pf.QUICK, "budgets": [2.0]})
    (out / pf.SETTINGS_FILE).write_text(json.dumps(settings))
    before = sorted(p.name for p in out.iterdir())
    result = _cli("--quick", "--out", str(out))
    assert result.returncode == 2
    assert "other settings" in result.stderr and "budgets_min" in result.stderr
    assert sorted(p.name for p in out.iterdir()) == before
    # a folder of something else
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("user data")
    result = _cli("--quick", "--out", str(other))
    assert result.returncode == 2 and "not a folder of this benchmark" in result.stderr
    assert sorted(p.name for p in other.iterdir()) == ["keep.txt"]
    # --report on a folder without results
    result = _cli("--report", "--out", str(tmp_path / "missing"))
    assert result.returncode == 2 and "holds no results" in result.stderr


def test_settings_checks():
    base = dict(pf.DEFAULTS)
    with pytest.raises(pf.InputError, match="duplicates"):
        pf.make_settings(**{**base, "seeds": [0, 0]})
    with pytest.raises(pf.InputError, match="threads"):
        pf.make_settings(**base, threads=0)
    with pytest.raises(pf.InputError, match="reference-factor"):
        pf.make_settings(**base, reference_factor=0.5)
    settings = pf.make_settings(**base)
    assert settings["budgets_min"] == [5.0, 10.0, 20.0]


def test_plan_shares_finetuning_curves():
    settings = pf.make_settings(**pf.DEFAULTS)
    runs = {run.name: run for run in pf.plan_runs(settings)}
    # 7 distinct pre-training times f B, two fine-tuning architectures each
    assert len(runs) == 2 + 7 * 2
    assert runs["pet_c"].duration == 1.5 * 20 * 60
    assert 300.0 in runs["pet_c"].wanted and 1200.0 in runs["pet_c"].wanted
    assert runs["pet_nc"].duration == 0.75 * 20 * 60
    assert runs["pet_nc"].wanted == [75.0, 150.0, 225.0, 300.0, 450.0, 600.0, 900.0]
    # f B = 300 s serves f 0.25 at 20 min and f 0.5 at 10 min: one curve
    shared = runs["pet_m_from_nc_300s"]
    assert shared.pretrain == 300.0
    assert shared.wanted == [300.0, 900.0] and shared.duration == 900.0
    assert sorted(shared.serves) == [(0.25, 1200.0), (0.5, 600.0)]
    assert pf.finetune_run_name("pet", 0.25, 20.0) == ("pet_from_nc_300s", 900.0)
    assert pf.finetune_run_name("pet_m", 0.5, 0.75) == ("pet_m_from_nc_22.5s", 22.5)
    cost = pf.plan_cost(settings)
    assert cost["runs"] == 2 * 3 * 16
    assert 13 * 3600 < cost["wall_s"] < 15 * 3600


def test_split_keeps_the_test_frames(tmp_path):
    import ase.io

    dataset = pf.DATASETS["ethanol"]
    first = pf.write_split(dataset, 0, tmp_path / "s0")
    second = pf.write_split(dataset, 1, tmp_path / "s1")
    assert first["test"].read_text() == second["test"].read_text()
    assert first["train"].read_text() != second["train"].read_text()
    frames = {part: ase.io.read(path, ":") for part, path in first.items()}
    assert [len(frames[p]) for p in ("train", "validation", "test")] == [80, 10, 10]
    energies = [
        [atoms.get_potential_energy() for atoms in frames[p]]
        for p in ("train", "validation", "test")
    ]
    assert not set(energies[0]) & set(energies[1])
    assert not set(energies[0]) & set(energies[2])
    assert frames["test"][0].get_forces().shape == (9, 3)


def _checkpoint(folder: Path, epoch: int, when: float, complete: bool = True):
    path = folder / f"model_{epoch}.ckpt"
    if complete:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("data.pkl", b"x" * 100)
    else:
        path.write_bytes(b"PK\x03\x04 cut short")
    os.utime(path, (when, when))
    return path


def test_checkpoint_tracker_keeps_what_counts(tmp_path):
    folder = tmp_path / "outputs" / "2026-01-01" / "00-00-00"
    folder.mkdir(parents=True)
    start = time.time() - 100.0
    tracker = pf.CheckpointTracker(tmp_path, start, [2.5, 5.0, 9.0])
    paths = []
    for epoch, t in enumerate([1.0, 2.0, 3.0, 4.0, 4.8]):
        paths.append(_checkpoint(folder, epoch, start + t))
        tracker.scan()
    # complete and decided: epochs 0..2; 0 and 2 are nobody's last checkpoint
    assert not paths[0].exists() and paths[1].exists() and not paths[2].exists()
    _checkpoint(folder, 5, start + 5.2)  # after the duration: does not count
    checkpoints = tracker.finish(duration=5.1)
    assert [c["epoch"] for c in checkpoints] == [0, 1, 2, 3, 4]
    assert [c["kept"] for c in checkpoints] == [False, True, False, False, True]
    assert not (folder / "model_5.ckpt").exists() and not paths[3].exists()
    assert pf.checkpoint_at(checkpoints, 2.5)["epoch"] == 1
    assert pf.checkpoint_at(checkpoints, 9.0)["epoch"] == 4
    assert pf.checkpoint_at(checkpoints, 0.5) is None
    # a last checkpoint cut short by the stop is dropped
    other = tmp_path / "cut"
    folder = other / "outputs" / "a" / "b"
    folder.mkdir(parents=True)
    tracker = pf.CheckpointTracker(other, start, [10.0])
    _checkpoint(folder, 0, start + 1.0)
    _checkpoint(folder, 1, start + 2.0, complete=False)
    checkpoints = tracker.finish(duration=10.0)
    assert [(c["epoch"], c["kept"]) for c in checkpoints] == [(0, True)]


def test_time_to_reach():
    times = [10.0, 20.0, 30.0, 40.0]
    assert pf.time_to_reach(times, [100.0, 80.0, 60.0, 40.0], 70.0) == 25.0
    assert pf.time_to_reach(times, [100.0, 80.0, 60.0, 40.0], 100.0) == 10.0
    assert pf.time_to_reach(times, [100.0, 80.0, 60.0, 40.0], 39.0) is None
    # a time without a model yet is skipped, not interpolated across
    assert pf.time_to_reach(times, [float("nan"), 50.0, 40.0, 30.0], 70.0) == 20.0


def _store(out: Path, settings: dict, conservative, finetuned) -> None:
    """Synthetic run.json / eval.json files: ``conservative(t, seed)`` gives the
    errors of (a) at t seconds, ``finetuned(budget_min, seed)`` those of (b)."""
    for seed in settings["seeds"]:
        seed_dir = out / "ethanol" / f"seed{seed}"
        for run in pf.plan_runs(settings):
            run_dir = seed_dir / run.name
            run_dir.mkdir(parents=True)
            info = {
                "run": {"name": run.name},
                "wall_s": run.duration,
                "cpu_s": 2 * run.duration,
                "load_before": 0.1,
                "epochs": 10,
                "first_checkpoint_s": 5.0,
                "seconds_per_epoch": 1.0 if run.arch != "pet_nc" else 0.5,
                "checkpoints": [],
            }
            (run_dir / "run.json").write_text(json.dumps(info))
            if not run.evaluate:
                continue
            points = []
            for wanted in run.wanted:
                if run.pretrain is None:
                    value = conservative(wanted, seed)
                else:
                    budget_min = (run.pretrain + wanted) / 60.0
                    value = finetuned(budget_min, seed)
                points.append(
                    {
                        "wanted_s": wanted,
                        "epoch": 1,
                        "force_rmse": value,
                        "energy_mae": value / 100.0,
                        "energy_rmse": value / 80.0,
                        "force_mae": value / 2,
                    }
                )
            evaluation = {
                "points": points,
                "evaluations": len(points),
                "cpu_s": 1.0,
                "wall_s": 1.0,
            }
            (run_dir / "eval.json").write_text(json.dumps(evaluation))


def test_report_from_stored_results(tmp_path):
    settings = pf.make_settings(
        budgets=[1.0, 2.0],
        fractions=[0.5],
        seeds=[0, 1],
        datasets=["ethanol"],
        finetune=["pet_m"],
    )
    out = tmp_path / "results"
    out.mkdir()
    (out / pf.SETTINGS_FILE).write_text(json.dumps(settings))
    offset = {0: 10.0, 1: -10.0}

    def conservative(t, seed):  # linear: time-to-accuracy is exact
        return 1000.0 - 5.0 * t + offset[seed]

    def finetuned(budget_min, seed):  # (a)'s error at 1.5 B (1 min), 1.25 B (2 min)
        return conservative({1.0: 90.0, 2.0: 150.0}[budget_min], seed)

    _store(out, settings, conservative, finetuned)
    doc = tmp_path / "docs" / "pf.md"
    doc.parent.mkdir()
    doc.write_text(
        f"# Title\n\nintro kept\n\n{pf.BEGIN}\nold table\n{pf.END}\n\ndiscussion kept\n"
    )
    assert pf.main(["--report", "--out", str(out), "--doc", str(doc)]) == 0
    text = doc.read_text()
    assert text.startswith("# Title\n\nintro kept\n") and "old table" not in text
    assert text.rstrip().endswith("discussion kept")
    assert "| 1 | (b) pet_nc 0.5 -> pet_m | 550.0 (540.0-560.0) |" in text
    assert "| 1 | (a) pet, conservative | 700.0 (690.0-710.0) |" in text
    summary = json.loads((out / "summary.json").read_text())["summary"]["ethanol"]
    by_budget = {r["budget_min"]: r for r in summary["rows"] if r["arch"] == "pet_m"}
    tta = by_budget[1.0]["tta_force_rmse"]
    assert tta["reached"] and tta["ratio"] == pytest.approx(1.5)
    assert tta["per_seed"] == pytest.approx([1.5, 1.5])
    assert by_budget[2.0]["tta_force_rmse"]["ratio"] == pytest.approx(1.25)
    assert by_budget[2.0]["tta_energy_mae"]["ratio"] == pytest.approx(1.25)
    assert "| 1.50 (1.50-1.50) |" in text
    assert summary["best"]["pet_m"]["overall"] == 0.5
    assert "best f overall **0.5**" in text
    assert doc.with_suffix(".png").stat().st_size > 10_000
    assert "CPU time of these results" in text

    # (b) better than anything (a) reaches: a lower bound
    out2 = tmp_path / "results2"
    out2.mkdir()
    (out2 / pf.SETTINGS_FILE).write_text(json.dumps(settings))
    _store(out2, settings, conservative, lambda budget, seed: 1.0)
    text = pf.write_report(out2, settings, tmp_path / "pf2.md")
    # (a) runs 1.5 x 2 min: at least 3 min / 1 min and 3 min / 2 min
    assert "| > 3.00 (never) |" in text and "| > 1.50 (never) |" in text
