"""The README's first command, in its quick form, so that the README cannot rot."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_demo_quick(tmp_path):
    """Trains PET-C, PET-NC and PET-M for 3 epochs with ``mtt train`` and the demo
    recipes, exports them with ``mtt export`` and runs ``mtt-nc compare``."""
    out = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo.py"), "--quick", "--out", out],
        capture_output=True,
        text=True,
        # 3-5 min on two idle cores; the bound is for a hung run, not for speed (a
        # busy machine with the other xdist worker beside it took more than 15 min)
        timeout=1800,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("pet_c", "pet_nc", "pet_m"):
        assert (out / "training" / name / f"{name}.ckpt").is_file()
        assert (out / "models" / f"{name}.pt").is_file()  # from `mtt export`
    report = json.loads((out / "report" / "report.json").read_text())
    assert list(report["models"]) == ["PET-C", "PET-NC", "PET-M"]
    assert report["models"]["PET-M"]["info"]["md_modes"] == [
        "conservative",
        "direct",
        "mts",
    ]
    # the printed table has one row per model and force mode, with numbers
    rows = [line.split() for line in result.stdout.splitlines()]
    modes = {(r[0], r[1]) for r in rows if r and r[0].startswith("PET-")}
    assert modes == {
        ("PET-C", "conservative"),
        ("PET-NC", "direct"),
        ("PET-M", "conservative"),
        ("PET-M", "direct"),
        ("PET-M", "mts"),
    }
    assert f"report: {out / 'report' / 'report.md'}" in result.stdout

    # cut short: one NVT run and the report missing; --resume runs only what is
    # missing, reusing the trained and exported models and the finished runs
    units = out / "report" / "units"
    (lost,) = units.glob("nvt-PET-NC*.json")
    lost.unlink()
    (out / "report" / "report.json").unlink()
    kept = {p.name: p.stat().st_mtime_ns for p in units.glob("*.json")}
    models = {p.name: p.stat().st_mtime_ns for p in (out / "models").glob("*.pt")}
    resumed = _demo("--quick", "--resume", "--out", out)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "[models] training" not in resumed.stdout
    assert "mtt export" not in resumed.stdout
    assert lost.is_file() and (out / "report" / "report.json").is_file()
    assert {p.name: p.stat().st_mtime_ns for p in units.glob("*.json")} == {
        **kept,
        lost.name: lost.stat().st_mtime_ns,
    }
    assert {p.name: p.stat().st_mtime_ns for p in (out / "models").glob("*.pt")} == (
        models
    )
    # more runs of PET-M's MTS NVT run from other seeds, added to the finished demo
    # with --resume: the same settings but the seed, read as one
    replicas = _demo("--quick", "--resume", "--mts-replicas", "2", "--out", out)
    assert replicas.returncode == 0, replicas.stdout + replicas.stderr
    main_run = json.loads((out / "report/md/PET-M-svr-mts/summary.json").read_text())
    added = out / "replicas" / "PET-M-svr-mts-seed1" / "summary.json"
    replica = json.loads(added.read_text())
    assert replica["status"] == "completed"
    assert replica["settings"]["seed"] == main_run["settings"]["seed"] + 1 == 1
    for key in ("forces", "timestep_fs", "stride", "steps", "ensemble", "tau_fs"):
        assert replica["settings"][key] == main_run["settings"][key], key
    assert "[demo] NVT: PET-M mts" in replicas.stdout
    assert "2 runs (seeds 0, 1)" in replicas.stdout
    # a resume with other options is refused before anything changes
    before = sorted(str(p) for p in out.rglob("*"))
    other = _demo("--quick", "--nvt-time", "7", "--resume", "--out", out)
    assert other.returncode != 0 and "--nvt-time not given (now 7)" in other.stderr
    assert sorted(str(p) for p in out.rglob("*")) == before


def _demo(*arguments):
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo.py"), *map(str, arguments)],
        capture_output=True,
        text=True,
        timeout=1800,
    )


def test_demo_pretrained_models_are_shipped():
    """The default demo starts from the committed checkpoints after active learning
    and the CHGNet-labelled water's test split; the toy models stay for tests."""
    import ase.io

    for name in ("pet_c", "pet_nc", "pet_m"):
        shipped = f"recipes/water_chgnet_al2{'_long' if name == 'pet_m' else ''}"
        assert (ROOT / shipped / "pretrained" / f"{name}.ckpt").stat().st_size > 1e5
    test = ase.io.read(ROOT / "recipes/data/water_chgnet/test.xyz.gz", ":")
    assert len(test) == 76 and all(len(atoms) == 192 for atoms in test)
    # the test split is one trajectory, never trained on
    assert {atoms.info["trajectory"] for atoms in test} == {test[0].info["trajectory"]}
    toys = ROOT / "recipes" / "demo" / "pretrained"
    indices = (toys / "test_indices.txt").read_text().split()
    assert len(indices) == 4 and all(0 <= int(i) < 40 for i in indices)


def test_demo_refuses_bad_nvt_time(tmp_path):
    out = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo.py"), "--nvt-time", "-5",
         "--out", str(out)],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert result.returncode != 0
    assert "--nvt-time must be positive" in result.stderr
    assert not out.exists()
    replicas = _demo("--mts-replicas", "0", "--out", out)
    assert replicas.returncode != 0
    assert "--mts-replicas must be at least 1, got 0" in replicas.stderr
    assert not out.exists()


def test_demo_refuses_existing_folder(tmp_path):
    (tmp_path / "keep.txt").write_text("user data")
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo.py"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "exists" in result.stderr and "--resume" in result.stderr
    assert (tmp_path / "keep.txt").read_text() == "user data"
    # nor is a folder that holds no demo resumed
    resumed = _demo("--resume", "--out", tmp_path)
    assert resumed.returncode != 0 and "holds no demo" in resumed.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_demo_reads_every_committed_long_run(monkeypatch):
    """The lines the default demo prints about the committed long NVT runs: one per
    run of the listed models in every committed report (the paper protocol's and the
    demo's own 20 ps comparison), with the time it analysed (what follows its
    equilibration), its largest species split and that split's verdict."""
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    import demo

    lines = demo.long_run_lines()
    committed = [
        (folder, models)
        for folder, models in demo.LONG_RUNS
        if (ROOT / folder / "report.json").is_file()
    ]
    assert len(committed) >= 4  # the paper protocol's four are committed
    for folder, models in committed:
        report = json.loads((ROOT / folder / "report.json").read_text())
        sigma = report["settings"]["sigma"]
        runs = [r for r in report["nvt"] if r["model"] in models]
        shown = [line for line in lines if f"({folder}/)" in line]
        assert runs and len(shown) == len(runs), folder
        for run, line in zip(runs, shown, strict=True):
            assert line.startswith(f"[demo]   {run['model']} {run['mode']}")
            check = run["equipartition"]
            analysed = run["simulated_time_ps"] * (1 - check["equilibration_fraction"])
            pair = check["max_split_pair"]
            value, error = (check["splits"][pair][k] for k in ("difference", "error"))
            assert (
                f", {analysed:g} ps analysed: {pair} {value:+.1f} ± {error:.1f} K, "
                in line
            )
            word = "resolved" if abs(value) > sigma * error else "within error"
            assert f"K, {word} (" in line
    assert lines[-1].startswith("[demo]   run the demo's comparison that long")


def test_demo_reads_the_committed_replicas_as_one(tmp_path, monkeypatch):
    """The committed replicas of the demo's 20 ps runs: one line per group, after
    the demo's own runs, with the split error-weighted over the group's runs and
    its error widened when they disagree; a group whose runs are not all there is
    left out."""
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    import demo

    from metatrain_nc.dynamics.reading import load_run, pool_readings, read_run

    lines = demo.long_run_lines()
    shown = [line for line in lines if "read as one by `mtt-nc read`" in line]
    committed = [
        group
        for group in demo.LONG_REPLICAS
        if all((ROOT / f).is_dir() for f in (group[2], *group[3]))
    ]
    assert committed and len(shown) == len(committed)
    for (model, mode, main_run, replicas), line in zip(committed, shown, strict=True):
        folders = [ROOT / main_run] + [ROOT / r for r in replicas]
        pooled = pool_readings([read_run(load_run(f)) for f in folders])
        entry = pooled["splits"]["H-O"]
        assert line.startswith(f"[demo]   {model} {mode}")
        assert f"{len(folders)} runs" in line
        assert f"H-O {entry['mean']:+.1f} ± {entry['error']:.1f} K" in line
        word = "resolved" if abs(entry["mean"]) > 4 * entry["error"] else "within"
        assert f"K, {word}" in line
        assert ("error widened" in line) == (entry["scale"] > 1.0)
        # after the lines of the demo's own runs, before the paper protocol's
        index = lines.index(line)
        assert "(docs/demo_20ps/report/)" in lines[index - 1]

    main_run = "docs/demo_20ps/report/md/PET-C-svr-conservative"
    missing = (("PET-C", "conservative", main_run, (str(tmp_path / "absent"),)),)
    monkeypatch.setattr(demo, "LONG_REPLICAS", missing)
    assert not [x for x in demo.long_run_lines() if "by `mtt-nc read`" in x]


def test_demo_reads_the_committed_long_runs(tmp_path, monkeypatch):
    """After its short NVT runs the demo prints what the committed paper-protocol
    runs resolve, read from their report.json (a runaway with its message)."""
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    import demo

    split = {"difference": -78.8, "error": 6.2, "sigma": 12.7}
    growing = {"difference": 18.0, "error": 10.0, "sigma": 1.8, "stationary": False,
               "change": {"value": 43.3, "error": 9.8}}  # fmt: skip
    runs = [
        {"model": "other", "mode": "direct", "status": "completed",
         "simulated_time_ps": 5.5, "production_start_fs": 500.0,
         "equipartition": {"max_split_pair": "H-O", "splits": {"H-O": split},
                           "equilibration_fraction": 0.5 / 5.5}},
        {"model": "M", "mode": "direct", "status": "completed",
         "simulated_time_ps": 5.5, "production_start_fs": 500.0,
         "equipartition": {"max_split_pair": "H-O", "splits": {"H-O": split},
                           "equilibration_fraction": 0.5 / 5.5}},
        {"model": "M", "mode": "direct", "status": "completed",
         "simulated_time_ps": 20.5, "production_start_fs": 500.0,
         "equipartition": {"max_split_pair": "H-O", "splits": {"H-O": growing},
                           "equilibration_fraction": 0.5 / 20.5}},
        {"model": "M", "mode": "mts", "status": "runaway",
         "message": "runaway: temperature 5205 K above the bound"},
    ]  # fmt: skip
    folder = tmp_path / "run"
    folder.mkdir()
    report = {"settings": {"sigma": 4.0, "stride": 8}, "nvt": runs}
    (folder / "report.json").write_text(json.dumps(report))
    monkeypatch.setattr(demo, "ROOT", tmp_path)
    monkeypatch.setattr(demo, "LONG_RUNS", (("run", ("M",)), ("missing", ("M",))))
    lines = demo.long_run_lines()
    direct = "M direct, 5 ps analysed: H-O -78.8 ± 6.2 K, resolved (12.7σ) (run/)"
    assert any(direct in x for x in lines)
    assert any("M mts (stride 8): runaway: temperature 5205 K" in x for x in lines)
    # a split still building up says so
    growing = "M direct, 20 ps analysed: H-O +18.0 ± 10.0 K, within error (1.8σ), "
    assert any(
        growing + "not stationary: it changed by +43.3 ± 9.8 K between the run's "
        "halves" in x
        for x in lines
    )
    # only the models named for a folder are read from it
    assert not any("other" in x for x in lines)
    assert "--nvt-time 20000" in lines[-1]
