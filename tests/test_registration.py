"""The start-up hook, in fresh interpreters: what the unmodified metatrain sees."""

import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def python(code: str, env_path=None, flags=()) -> subprocess.CompletedProcess:
    env = None
    if env_path is not None:
        import os

        env = dict(os.environ, PYTHONPATH=os.pathsep.join(str(p) for p in env_path))
    return subprocess.run(
        [sys.executable, *flags, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def fake_distribution(root: Path, name: str, entry_points: str, version="1.0"):
    """A minimal installed distribution (dist-info) with entry points in ``root``."""
    info = root / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    )
    (info / "entry_points.txt").write_text(entry_points)


def test_metatrain_lists_and_aliases_plugin_architectures():
    result = python(
        """
        import sys
        import metatrain.utils.architectures as arch
        names = arch.find_all_architectures()
        assert "pet_nc" in names and "pet_m" in names, names
        assert "pet" in names
        import metatrain.pet_nc, metatrain_nc.pet_nc
        assert sys.modules["metatrain.pet_nc"] is sys.modules["metatrain_nc.pet_nc"]
        assert metatrain.pet_nc.__spec__.name == "metatrain_nc.pet_nc"
        import metatrain.pet_m.model as a, metatrain_nc.pet_m.model as b
        assert a is b
        path = arch.get_architecture_path("pet_nc")
        assert (path / "documentation.py").is_file(), path
        assert arch.get_architecture_name(path / "model.py") == "pet_nc"
        assert arch.get_default_hypers("pet_m")["training"]["learning_rate"] == 1e-3
        from metatrain.utils.io import model_from_checkpoint  # binds the patched list
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_nothing_heavy_at_startup():
    result = python(
        """
        import sys
        assert "_metatrain_nc_hook" in sys.modules
        heavy = ("torch", "metatrain", "importlib.metadata", "importlib.abc")
        heavy = [m for m in heavy if m in sys.modules]
        print(heavy)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_never_shadows_metatrain_architecture(tmp_path):
    # a third party registers 'pet' and a new name pointing at the same module
    package = tmp_path / "third_party_arch"
    package.mkdir()
    (package / "__init__.py").write_text("from metatrain.pet import *  # noqa\n")
    fake_distribution(
        tmp_path,
        "third-party-arch",
        "[metatrain.architectures]\n"
        "pet = third_party_arch\n"
        "my_pet = third_party_arch\n",
    )
    result = python(
        """
        import sys
        import metatrain.utils.architectures as arch
        import _metatrain_nc_hook as hook
        import metatrain.pet
        assert metatrain.pet.__spec__.name == "metatrain.pet", metatrain.pet.__spec__
        assert "pet" in hook.STATE["refused"], hook.STATE
        import metatrain.my_pet
        assert sys.modules["metatrain.my_pet"] is sys.modules["third_party_arch"]
        assert "my_pet" in arch.find_all_architectures()
        print("ok")
        """,
        env_path=[tmp_path],
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_unsupported_metatrain_gives_clear_error(tmp_path):
    fake_distribution(tmp_path, "metatrain", "", version="2099.1")
    result = python("import metatrain_nc.pet_nc", env_path=[tmp_path])
    assert result.returncode != 0
    assert "metatrain-nc needs metatrain>=2026.4.1,<2026.5" in result.stderr
    assert "2099.1 is installed" in result.stderr
    assert "pip install" in result.stderr


def test_doctor_ok():
    result = subprocess.run(
        [sys.executable, "-m", "metatrain_nc.cli", "doctor"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "start-up hook loaded: yes" in result.stdout
    assert "pet_nc" in result.stdout and "seen by metatrain" in result.stdout
    assert "antisymmetry" in result.stdout


def test_doctor_without_site():
    paths = [sysconfig.get_paths()["purelib"], ROOT / "plugin"]
    result = python(
        "from metatrain_nc.cli import main; raise SystemExit(main(['doctor']))",
        env_path=paths,
        flags=("-S",),
    )
    assert result.returncode == 1
    assert "start-up hook loaded: no" in result.stdout
    assert "without site (-S)" in result.stdout
    assert "does not see the registered architecture 'pet_nc'" in result.stdout
