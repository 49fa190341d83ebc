"""``mtt-nc read``: finished MD runs read again over a chosen part, in windows, and
several independent runs pooled; real runs of ``mtt-nc md`` on the analytic models."""

import contextlib
import csv
import io
import json
import math
from pathlib import Path

import pytest

from metatrain_nc.cli import main
from metatrain_nc.dynamics.reading import load_run, pool_readings, read_run

#: 8 ethanol molecules fused into one cluster at rest, equilibrated at 1000 K (the
#: system of test_findings.py, where the species exchange energy within 1 ps)
CLUSTER = Path(__file__).parent / "data" / "ethanol_cluster_1000K.extxyz"
SVR = ["--ensemble", "svr", "--tau", "10", "--temperature", "1000"]


def _md(model, outdir, *extra):
    args = ["md", str(model), str(CLUSTER), "-o", str(outdir), "--steps", "1000"]
    args += ["--timestep", "1", "--stride", "1", "--no-chemiscope"]
    args += ["--velocities", "structure", "--trajectory-every", "1000"]
    with contextlib.redirect_stderr(io.StringIO()):
        assert main(args + list(extra)) == 0


@pytest.fixture(scope="module")
def runs(models, tmp_path_factory):
    """1 ps runs from the cluster: SVR (tau 10 fs, 1000 K) with the conservative
    model's forces and with the rotational model's direct forces, seeds 1 and 2 each,
    and an NVE run with direct forces."""
    folder = tmp_path_factory.mktemp("read")
    out = {}
    for seed in (1, 2):
        for name in ("c", "nc"):
            out[name, seed] = folder / f"svr-{name}-{seed}"
            thermostat = [*SVR, "--seed", str(seed)]
            _md(models[name], out[name, seed], "--forces", "direct", *thermostat)
    out["nve"] = folder / "nve"
    _md(models["nc"], out["nve"], "--forces", "direct")
    return out


def test_reads_a_run_as_its_own_summary_did(runs, capsys):
    folder = runs["nc", 1]
    summary = json.loads((folder / "summary.json").read_text())
    assert set(summary["species_scale"]) == {"C", "H", "O"}
    reading = read_run(load_run(folder))
    # the default part is the run's own analysed part: the same verdicts exactly
    # (the window starts where the run's equilibration ended)
    checked = dict(summary["equipartition"], equilibration_fraction=0.0)
    assert reading["equipartition"] == checked
    assert checked["resolved"] is True  # the direct forces split the species
    assert reading["window_ps"] == pytest.approx([0.5, 1.0])
    # a run written before the corrections were stored: recovered from its check
    del summary["species_scale"]
    (folder / "summary.json").write_text(json.dumps(summary))
    again = read_run(load_run(folder))["equipartition"]
    for symbol, entry in summary["equipartition"]["species"].items():
        assert again["species"][symbol]["mean"] == pytest.approx(entry["mean"])
    assert main(["read", str(folder)]) == 0
    printed = capsys.readouterr().out
    assert "0.50-1.00 ps, 501 records" in printed
    assert "H-O split" in printed and "H-C split" in printed
    assert "sigma, resolved" in printed


def test_reads_a_window_and_windows(runs, capsys):
    folder = runs["c", 2]
    with open(folder / "md_log.csv") as handle:
        rows = list(csv.DictReader(handle))

    def mean_between(start_fs, end_fs):
        inside = [
            float(r["temperature_K"])
            for r in rows
            if start_fs - 1e-6 <= float(r["time_fs"]) <= end_fs + 1e-6
        ]
        return sum(inside) / len(inside), len(inside)

    reading = read_run(load_run(folder), 0.1, 0.3)
    mean, count = mean_between(100, 300)
    assert reading["n_records"] == count == 201
    assert reading["equipartition"]["temperature"]["mean"] == pytest.approx(mean)
    assert reading["summary"]["mean_temperature_K"] == pytest.approx(mean)

    assert main(["read", str(folder), "--from", "0", "--windows", "0.25"]) == 0
    table = capsys.readouterr().out.split("in windows of 0.25 ps:")[1]
    windows = [line.split() for line in table.splitlines()[2:]]
    assert [w[0] for w in windows] == ["0.00-", "0.25-", "0.50-", "0.75-"]
    # each window's mean temperature is the mean of its own records
    for fields in windows:
        start = float(fields[0].rstrip("-"))
        end = float(fields[1])
        assert float(fields[2]) == pytest.approx(
            mean_between(1000 * start, 1000 * end)[0], abs=0.051
        )


def test_pools_independent_runs(runs, capsys):
    conservative = [read_run(load_run(runs["c", seed])) for seed in (1, 2)]
    pooled = pool_readings(conservative)
    assert pooled["seeds"] == [1, 2] and pooled["independent"]
    assert not pooled["differences"]
    for pair, entry in pooled["splits"].items():
        values = [r["equipartition"]["splits"][pair] for r in conservative]
        weights = [1 / v["error"] ** 2 for v in values]
        pairs = zip(weights, values, strict=True)
        mean = sum(w * v["difference"] for w, v in pairs) / sum(weights)
        assert entry["mean"] == pytest.approx(mean)
        assert entry["error"] >= 1 / math.sqrt(sum(weights)) - 1e-12
        # conservative forces under a thermostat share the heat evenly
        assert entry["resolved"] is False
    # direct forces do not, whichever seed
    direct = pool_readings([read_run(load_run(runs["nc", seed])) for seed in (1, 2)])
    assert direct["splits"]["H-O"]["resolved"] is True
    assert direct["splits"]["H-O"]["mean"] < -300
    assert main(["read", str(runs["c", 1]), str(runs["c", 2])]) == 0
    assert "pooled over 2 runs (seeds 1, 2)" in capsys.readouterr().out

    # the same run twice is not two independent runs
    assert not pool_readings([conservative[0], conservative[0]])["independent"]
    assert main(["read", str(runs["c", 1]), str(runs["c", 1])]) == 0
    assert "not independent" in capsys.readouterr().out


def test_pooling_widens_errors_of_runs_that_disagree():
    def reading(seed, split, error):
        check = {
            "temperature": {"deviation": 0.0, "error": 1.0},
            "species": {"H": {}, "O": {}},
            "splits": {"H-O": {"difference": split, "error": error}},
        }
        settings = {"forces": "mts", "ensemble": "svr", "seed": seed}
        return {"settings": settings, "equipartition": check, "model": "m"}

    agree = pool_readings([reading(0, 10.0, 2.0), reading(1, 12.0, 2.0)])
    assert agree["splits"]["H-O"]["scale"] == 1.0
    assert agree["splits"]["H-O"]["error"] == pytest.approx(2.0 / math.sqrt(2))
    assert agree["splits"]["H-O"]["resolved"] is True  # 11 +- 1.4: 7.8 sigma
    # 27.4 +- 5.5 and 4.1 +- 2.6 (chi2 ~15 for 1 degree of freedom): ~3.9x wider
    split = pool_readings([reading(0, 27.4, 5.5), reading(1, 4.1, 2.6)])["splits"]
    assert split["H-O"]["scale"] == pytest.approx(math.sqrt(split["H-O"]["chi2"]))
    assert split["H-O"]["scale"] > 3.5 and split["H-O"]["resolved"] is False
    other = reading(1, 4.1, 2.6)
    other["settings"]["forces"] = "direct"
    refused = pool_readings([reading(0, 27.4, 5.5), other])
    assert refused["differences"] == ["forces"] and refused["splits"] is None


def test_reads_the_drift_of_an_nve_run(runs, capsys):
    folder = runs["nve"]
    summary = json.loads((folder / "summary.json").read_text())
    whole = read_run(load_run(folder), 0.0)
    assert whole["equipartition"] is None
    assert whole["summary"]["drift_meV_per_atom_per_ps"] == pytest.approx(
        summary["drift_meV_per_atom_per_ps"]
    )
    assert whole["drift_check"]["resolved"] is True  # direct forces heat in NVE
    assert summary["drift_check"]["resolved"] is True
    assert main(["read", str(folder), "--from", "0"]) == 0
    assert "drift ratio" in capsys.readouterr().out
    # an NVE run and a thermostatted one are not pooled
    assert main(["read", str(folder), str(runs["c", 1])]) == 0
    assert "not pooled: the 2 runs differ in ensemble" in capsys.readouterr().out


def test_bad_input(runs, tmp_path, capsys):
    run = runs["c", 1]

    def fails(*args):
        assert main(["read", *map(str, args)]) == 2
        return capsys.readouterr().err

    assert "does not exist" in fails(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no summary.json or md_log.csv" in fails(empty)
    assert "--resume" in fails(empty)
    assert "outside" in fails(run, "--from", "5")
    assert "the run covers 0-1.000 ps" in fails(run, "--from", "5")
    assert "must come after" in fails(run, "--from", "0.3", "--to", "0.1")
    assert "positive" in fails(run, "--windows", "0")
    # an existing --json file is kept
    kept = tmp_path / "reading.json"
    kept.write_text("mine")
    assert "already exists" in fails(run, "--json", kept)
    assert kept.read_text() == "mine"
    # a bad folder among good ones: nothing read, nothing written
    new = tmp_path / "new.json"
    assert "does not exist" in fails(run, tmp_path / "nowhere", "--json", new)
    assert not new.exists()
    assert main(["read", str(run), "--json", str(kept), "--force"]) == 0
    data = json.loads(kept.read_text())
    assert data["runs"][0]["n_records"] == 501 and data["pooled"] is None
