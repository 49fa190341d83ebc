"""The start-up hook, in fresh interpreters, with the unmodified metatrain.

What is checked: nothing heavy at start-up; metatrain lists, imports (as aliases) and
locates registered architectures; a third-party architecture goes through ``mtt
train``, ``mtt export``, ``mtt eval``, ``--restart``, fine-tuning and ``load_model``;
metatrain's own names are never shadowed; the hook steps aside for names metatrain
lists itself; regular (non-editable) installs and spawned child interpreters work;
an unsupported metatrain gives the plugin's message; a broken hook never breaks
start-up.
"""

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import ase.io
import pytest
import torch
import yaml

from .conftest import TINY_MODEL
from .registration_fixtures import (
    ETHANOL,
    ROOT,
    SITE_PACKAGES,
    THIRD_PARTY_MODULE,
    THIRD_PARTY_NAME,
    environment,
    fake_distribution,
    mtt,
    python,
    regular_install,
    shadow_environment,
    site_packages_of,
    third_party_architecture,
)


def ok(result) -> str:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def write_options(path: Path, name: str, epochs: int = 1, **training) -> Path:
    options = {
        "seed": 0,
        "architecture": {
            "name": name,
            "model": TINY_MODEL,
            "training": {
                "batch_size": 5,
                "num_epochs": epochs,
                "num_workers": 0,
                "log_interval": 1,
                "checkpoint_interval": 1000,
                **training,
            },
        },
        "training_set": {
            "systems": {"read_from": "data.xyz", "length_unit": "angstrom"},
            "targets": {"energy": {"key": "energy", "unit": "eV"}},
        },
        "validation_set": 0.2,
        "test_set": 0.0,
    }
    path.write_text(yaml.safe_dump(options, sort_keys=False))
    return path


def test_nothing_heavy_at_startup():
    out = ok(
        python(
            """
            import sys
            import _metatrain_nc_hook as hook
            assert sys.meta_path[0] is hook.FINDER, sys.meta_path
            assert hook.STATE["installed"] and hook.STATE["registered"] is None
            heavy = ["torch", "metatrain", "metatrain_nc", "importlib.metadata",
                     "importlib.abc", "importlib.resources"]
            print([name for name in heavy if name in sys.modules])
            """
        )
    )
    assert out.strip() == "[]"


def test_metatrain_lists_aliases_and_locates_plugin_architectures():
    out = ok(
        python(
            """
            import sys
            import metatrain.utils.architectures as arch
            names = arch.find_all_architectures()
            assert {"pet_nc", "pet_m", "pet", "soap_bpnn"} <= set(names), names
            assert len(names) == len(set(names)), names

            import metatrain.pet_nc, metatrain_nc.pet_nc
            assert sys.modules["metatrain.pet_nc"] is sys.modules["metatrain_nc.pet_nc"]
            assert metatrain.pet_nc.__spec__.name == "metatrain_nc.pet_nc"
            import metatrain.pet_m.model as alias, metatrain_nc.pet_m.model as real
            assert alias is real

            path = arch.get_architecture_path("pet_nc")
            assert path.samefile(metatrain_nc.pet_nc.__path__[0]), path
            assert arch.get_architecture_name(path / "model.py") == "pet_nc"
            assert arch.get_architecture_name(path) == "pet_nc"
            pet = arch.get_architecture_path("pet")
            assert arch.get_architecture_name(pet) == "pet"

            documentation = arch.preload_documentation_module("pet_m")
            assert "ModelHypers" in dir(documentation)
            assert arch.get_default_hypers("pet_m")["name"] == "pet_m"

            # the OmegaConf resolvers import the architecture through metatrain
            from omegaconf import OmegaConf
            import metatrain.utils.omegaconf  # registers the resolvers
            conf = OmegaConf.create(
                {"architecture": {"name": "pet_nc"},
                 "device": "${default_device:}", "precision": "${default_precision:}"}
            )
            print(conf.device, conf.precision)

            from metatrain.utils.io import model_from_checkpoint  # noqa: F401
            import metatrain.utils.io as io
            assert "pet_nc" in io.find_all_architectures()
            """
        )
    )
    assert out.split() == ["cpu", "32"]


def test_hook_module_is_the_source_in_editable_installs():
    out = ok(
        python(
            "import _metatrain_nc_hook, metatrain_nc; print(metatrain_nc.__file__);"
            "print(_metatrain_nc_hook.__file__)"
        )
    )
    package, hook = (Path(line) for line in out.split())
    if not package.is_relative_to(ROOT):
        pytest.skip("metatrain-nc is not installed from this checkout")
    # an editable install must not leave a stale copy of the hook in site-packages
    assert hook.read_bytes() == (ROOT / "plugin" / "_metatrain_nc_hook.py").read_bytes()


def test_regular_install(tmp_path):
    # an environment where metatrain-nc is installed from its wheel, not editable
    ours = ["_editable_impl_metatrain_nc.pth", "metatrain_nc_hook.pth"]
    ours += ["_metatrain_nc_hook.py", "metatrain_nc"]
    ours += [p.name for p in SITE_PACKAGES.glob("metatrain_nc-*.dist-info")]
    executable = shadow_environment(tmp_path / "env", leave_out=ours)
    site_packages = regular_install(site_packages_of(executable))
    out = ok(
        python(
            """
            import sys, _metatrain_nc_hook, metatrain_nc
            import metatrain.utils.architectures as arch
            print(_metatrain_nc_hook.__file__)
            print(metatrain_nc.__file__)
            print(arch.get_architecture_path("pet_m"))
            assert {"pet_m", "pet_nc"} <= set(arch.find_all_architectures())
            assert not any(str(ROOT) in path for path in sys.path), sys.path
            """.replace("ROOT", repr(str(ROOT / "plugin"))),
            executable=str(executable),
            cwd=tmp_path,
        )
    )
    for line in out.split():
        assert Path(line).is_relative_to(site_packages), out


def test_spawned_child_interpreters_see_the_architectures(tmp_path):
    # what data-loader workers (spawn) and torchrun's workers get: a new interpreter
    script = tmp_path / "spawn_check.py"
    script.write_text(
        textwrap.dedent(
            """
            import multiprocessing

            def names(_):
                from metatrain.utils.architectures import find_all_architectures
                return sorted(n for n in find_all_architectures() if "pet" in n)

            if __name__ == "__main__":
                with multiprocessing.get_context("spawn").Pool(1) as pool:
                    print(pool.map(names, [0])[0])
            """
        )
    )
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        env=environment(),
        timeout=300,
    )
    assert ok(result).strip() == "['pet', 'pet_m', 'pet_nc']"


def test_never_shadows_a_metatrain_architecture(tmp_path):
    third_party_architecture(
        tmp_path,
        extra_entry_points=(
            f"pet = {THIRD_PARTY_MODULE}\nutils = {THIRD_PARTY_MODULE}\n"
        ),
    )
    ok(
        python(
            f"""
            import sys
            import metatrain.utils.architectures as arch
            import _metatrain_nc_hook as hook
            import metatrain.pet, metatrain.utils
            assert metatrain.pet.__spec__.name == "metatrain.pet", metatrain.pet
            assert "metatrain has its own 'pet'" in hook.STATE["refused"]["pet"]
            assert "utils" in hook.STATE["refused"]
            names = arch.find_all_architectures()
            assert names.count("pet") == 1 and "utils" not in names, names
            import metatrain.{THIRD_PARTY_NAME} as alias
            assert alias is sys.modules["{THIRD_PARTY_MODULE}"]
            assert "{THIRD_PARTY_NAME}" in names
            """,
            pythonpath=[tmp_path],
        )
    )


def test_no_op_for_a_name_metatrain_lists_itself(tmp_path):
    # simulate a metatrain that reads entry points itself (upstream issue #879): its
    # own find_all_architectures already lists the third-party name
    third_party_architecture(tmp_path)
    ok(
        python(
            f"""
            import sys
            import _metatrain_nc_hook as hook

            class NativeListing:
                def find_spec(self, fullname, path=None, target=None):
                    if fullname != "metatrain.utils.architectures":
                        return None
                    from importlib.machinery import PathFinder
                    spec = PathFinder.find_spec(fullname, path)
                    real_exec = spec.loader.exec_module
                    def exec_module(module):
                        real_exec(module)
                        scan = module.find_all_architectures
                        module.find_all_architectures = (
                            lambda: scan() + ["{THIRD_PARTY_NAME}"]
                        )
                    spec.loader.exec_module = exec_module
                    return spec

            sys.meta_path.insert(1, NativeListing())
            import metatrain.utils.architectures as arch
            names = arch.find_all_architectures()
            assert names.count("{THIRD_PARTY_NAME}") == 1, names
            assert hook.STATE["native"] == ["{THIRD_PARTY_NAME}"], hook.STATE
            assert hook.FINDER.find_spec("metatrain.{THIRD_PARTY_NAME}") is None
            assert hook.FINDER.find_spec("metatrain.pet_nc") is not None
            assert "pet_nc" in names
            """,
            pythonpath=[tmp_path],
        )
    )


def test_unsupported_metatrain_gives_the_plugin_message(tmp_path):
    # a metadata folder claiming another metatrain version, first on sys.path
    fake_distribution(tmp_path / "path", "metatrain", version="2099.1")
    result = python("import metatrain_nc.pet_nc", pythonpath=[tmp_path / "path"])
    assert result.returncode != 0
    assert "UnsupportedMetatrainError" in result.stderr
    expected = "metatrain-nc needs metatrain>=2026.4.1,<2026.5, but metatrain 2099.1"
    assert expected in result.stderr
    assert "pip install 'metatrain>=2026.4.1,<2026.5'" in result.stderr

    # through the unmodified `mtt train`: the plugin's message, not metatrain's
    # generic "broken installation" one
    shutil.copy(ETHANOL, tmp_path / "data.xyz")
    write_options(tmp_path / "options.yaml", "pet_nc")
    result = mtt(
        ["train", "options.yaml"], cwd=tmp_path, pythonpath=[tmp_path / "path"]
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert expected in output
    assert "broken installation" not in output


def test_a_broken_hook_never_breaks_startup(tmp_path):
    (tmp_path / "_metatrain_nc_hook.py").write_text("raise RuntimeError('boom')\n")
    result = python("print('alive')", pythonpath=[tmp_path])
    assert result.returncode == 0
    assert result.stdout.strip() == "alive"
    assert result.stderr == ""


# ---- a third-party architecture through the unmodified `mtt` -----------------------


@pytest.fixture(scope="module")
def third_party_run(tmp_path_factory) -> SimpleNamespace:
    """A tiny third-party PET trained by ``mtt train`` on 10 ethanol frames."""
    root = tmp_path_factory.mktemp("third_party")
    third_party_architecture(root / "path")
    work = root / "train"
    work.mkdir()
    ase.io.write(work / "data.xyz", ase.io.read(ETHANOL, ":10"))
    write_options(work / "options.yaml", THIRD_PARTY_NAME)
    result = mtt(["train", "options.yaml"], cwd=work, pythonpath=[root / "path"])
    return SimpleNamespace(root=root, path=root / "path", work=work, result=result)


def checkpoint_architecture(path: Path) -> str:
    import metatomic.torch  # noqa: F401  (checkpoints hold metatomic classes)

    return torch.load(path, weights_only=False, map_location="cpu")["architecture_name"]


def test_third_party_mtt_train(third_party_run):
    ok(third_party_run.result)
    work = third_party_run.work
    assert checkpoint_architecture(work / "model.ckpt") == THIRD_PARTY_NAME
    assert (work / "model.pt").is_file()


def test_third_party_mtt_export_and_eval(third_party_run, tmp_path):
    ok(third_party_run.result)
    shutil.copy(third_party_run.work / "model.ckpt", tmp_path)
    shutil.copy(third_party_run.work / "data.xyz", tmp_path)
    paths = [third_party_run.path]
    ok(mtt(["export", "model.ckpt", "-o", "exported.pt"], tmp_path, paths))
    assert (tmp_path / "exported.pt").is_file()
    (tmp_path / "eval.yaml").write_text(
        yaml.safe_dump(
            {"systems": {"read_from": "data.xyz", "length_unit": "angstrom"}}
        )
    )
    ok(
        mtt(
            ["eval", "exported.pt", "eval.yaml", "-o", "predicted.xyz"], tmp_path, paths
        )
    )
    predicted = (tmp_path / "predicted.xyz").read_text()
    assert predicted.count("energy") >= 10  # one predicted energy per frame


def test_third_party_restart_and_finetune(third_party_run, tmp_path):
    ok(third_party_run.result)
    paths = [third_party_run.path]
    checkpoint = third_party_run.work / "model.ckpt"
    shutil.copy(third_party_run.work / "data.xyz", tmp_path)

    restart = tmp_path / "restart"
    restart.mkdir()
    shutil.copy(tmp_path / "data.xyz", restart)
    write_options(restart / "options.yaml", THIRD_PARTY_NAME, epochs=2)
    result = ok(
        mtt(["train", "options.yaml", "--restart", str(checkpoint)], restart, paths)
    )
    assert checkpoint_architecture(restart / "model.ckpt") == THIRD_PARTY_NAME

    finetune = tmp_path / "finetune"
    finetune.mkdir()
    shutil.copy(tmp_path / "data.xyz", finetune)
    write_options(
        finetune / "options.yaml",
        THIRD_PARTY_NAME,
        finetune={"read_from": str(checkpoint), "method": "full"},
    )
    result = mtt(["train", "options.yaml"], finetune, paths)
    assert "finetuning" in ok(result) + result.stderr
    assert checkpoint_architecture(finetune / "model.ckpt") == THIRD_PARTY_NAME


def test_third_party_load_model(third_party_run):
    ok(third_party_run.result)
    out = ok(
        python(
            f"""
            from metatrain.utils.io import load_model
            model = load_model({str(third_party_run.work / "model.ckpt")!r})
            print(type(model).__module__, type(model).__name__)
            """,
            pythonpath=[third_party_run.path],
        )
    )
    assert out.split() == [THIRD_PARTY_MODULE, "ThirdPartyPET"]
