"""The README's first command, in its quick form, so that the README cannot rot."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_demo_quick(tmp_path):
    out = tmp_path / "demo"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "demo.py"),
            "--quick",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    table = (out / "accuracy.txt").read_text()
    lines = [line.split() for line in table.splitlines()[2:]]
    heads = {(row[0], row[1]) for row in lines}
    # both force heads of pet_m, and the direct head of pet_nc (its energy gradient
    # is not reported as forces)
    assert heads == {
        ("pet_nc.pt", "direct"),
        ("pet_m.pt", "conservative"),
        ("pet_m.pt", "direct"),
    }
    for row in lines:
        energy, force_mae, force_rmse = (float(x) for x in row[2:5])
        assert 0 < force_mae <= force_rmse
        assert energy > 0
    assert "Test-set errors" in result.stdout
    for name in ("pet_nc", "pet_m"):
        assert (out / name / f"{name}.pt").is_file()


def test_demo_refuses_existing_folder(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo.py"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "exists" in result.stderr
