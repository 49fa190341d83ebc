"""scripts/reanalyse_nvt_units.py re-reads a compare folder's Langevin units from
their records with the current verdicts, as ``mtt-nc md`` writes them."""

import copy
import json

from metatrain_nc.cli import main

from ..script_loading import load_script


def _script():
    return load_script("reanalyse_nvt_units")


def test_reanalysis_restores_the_current_verdicts(
    models, ethanol_box_file, tmp_path, capsys
):
    folder = tmp_path / "compare"
    run = folder / "runs" / "nvt" / "nvt-C-conservative-langevin1000"
    args = ["md", str(models["c"]), str(ethanol_box_file), "-o", str(run)]
    args += ["--steps", "400", "--timestep", "1", "--forces", "conservative"]
    args += ["--ensemble", "langevin", "--tau", "1000", "--seed", "3"]
    assert main(args) == 0
    current = json.loads((run / "summary.json").read_text())
    checked = current["equipartition"]
    assert checked["temperature"]["error_widened_by"] > 1.0  # 0.2 ps, tau 1 ps
    # a unit as compare wrote it before the widening: block errors only
    stale = copy.deepcopy(checked)
    factor = stale["temperature"].pop("error_widened_by")
    stale["temperature"]["error"] /= factor
    unit = {
        "model": "C",
        "mode": "conservative",
        "ensemble": "langevin",
        "tau_fs": 1000.0,
        "status": "completed",
        "equipartition": stale,
        "warnings": [],
        "folder": str(run),
    }
    (folder / "units").mkdir()
    unit_path = folder / "units" / "nvt-C-conservative-langevin1000.json"
    unit_path.write_text(json.dumps(unit))
    # NVE units and failed runs are left alone
    other = dict(unit, ensemble="svr", equipartition=stale)
    other_path = folder / "units" / "nvt-C-conservative-svr10.json"
    other_path.write_text(json.dumps(other))

    assert _script().main([str(folder)]) == 0
    printed = capsys.readouterr().out
    assert "nvt-C-conservative-langevin1000.json" in printed and "svr" not in printed
    again = json.loads(unit_path.read_text())
    assert again["equipartition"] == checked
    assert again["warnings"] == current["warnings"]
    assert json.loads(other_path.read_text()) == other
    # a folder without NVT units is an error, not a silent success
    assert _script().main([str(tmp_path)]) == 2
    assert "no NVT units" in capsys.readouterr().err
