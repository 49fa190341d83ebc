"""``mtt-nc doctor`` in fresh interpreters: a working environment and broken ones."""

import subprocess
import sys

from .registration_fixtures import (
    ROOT,
    SITE_PACKAGES,
    THIRD_PARTY_MODULE,
    environment,
    fake_distribution,
    python,
    shadow_environment,
    third_party_architecture,
)

DOCTOR = "from metatrain_nc.cli import main; raise SystemExit(main(['doctor']))"


def test_doctor_ok_lists_architectures_evaluators_and_versions(tmp_path):
    # a third party registering metatrain's own name: refused, flagged, not fatal
    third_party_architecture(
        tmp_path, extra_entry_points=f"pet = {THIRD_PARTY_MODULE}\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "metatrain_nc.cli", "doctor"],
        capture_output=True,
        text=True,
        env=environment([tmp_path]),
        timeout=300,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "start-up hook loaded: yes, active: yes" in out
    for name in ("pet_nc", "pet_m", "nc_test_pet"):
        line = next(line for line in out.splitlines() if line.split()[:1] == [name])
        assert "seen by metatrain" in line, line
    refused = next(line for line in out.splitlines() if line.split()[:1] == ["pet"])
    assert "REFUSED: metatrain has its own 'pet'" in refused
    own = next(line for line in out.splitlines() if "metatrain's own" in line)
    assert "pet," in own and "soap_bpnn" in own and "pet_nc" not in own
    assert "antisymmetry" in out
    for patch in ("_patch_architectures", "patch_train_cli", "patch_train_loading"):
        line = next(line for line in out.splitlines() if f": {patch}" in line)
        assert line.split()[-1] == "applied", line
    for package in ("python", "torch", "metatrain ", "metatomic-torch"):
        assert f"  {package}" in out
    for package in ("metatomic-ase", "ase", "metatrain-nc"):
        assert f"  {package} " in out
    assert "ok: metatrain finds every architecture" in out


def test_doctor_without_site():
    # `python -S`: no .pth file is read; metatrain and the plugin found on PYTHONPATH
    result = python(DOCTOR, pythonpath=[SITE_PACKAGES, ROOT / "plugin"], flags=["-S"])
    assert result.returncode == 1, result.stdout + result.stderr
    assert "start-up hook loaded: no" in result.stdout
    assert "without the site module (-S)" in result.stdout
    assert "fix: run without -S" in result.stdout
    assert "does not see the architecture 'pet_nc'" in result.stdout


def test_doctor_when_the_pth_file_is_missing(tmp_path):
    executable = shadow_environment(
        tmp_path / "env", leave_out=["metatrain_nc_hook.pth"]
    )
    result = python(DOCTOR, executable=str(executable), cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "start-up hook loaded: no" in result.stdout
    assert "metatrain_nc_hook.pth is missing" in result.stdout
    assert "fix: reinstall" in result.stdout


def test_doctor_reports_a_hook_that_failed_at_startup(tmp_path):
    (tmp_path / "_metatrain_nc_hook.py").write_text("raise RuntimeError('boom')\n")
    result = python(DOCTOR, pythonpath=[tmp_path])
    assert result.returncode == 1, result.stdout + result.stderr
    assert "the start-up hook did not load (RuntimeError: boom)" in result.stdout


def test_doctor_when_disabled_or_metatrain_unsupported(tmp_path):
    fake_distribution(tmp_path, "metatrain", version="2099.1")
    result = python(
        DOCTOR, pythonpath=[tmp_path], extra_env={"METATRAIN_NC_DISABLE_HOOK": "1"}
    )
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert "disabled by METATRAIN_NC_DISABLE_HOOK" in out
    assert "unsupported metatrain" in out and "2099.1 is installed" in out
    assert "fix: pip install 'metatrain>=2026.4.1,<2026.5'" in out
