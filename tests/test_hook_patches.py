"""Every patch the start-up hook makes to metatrain applies, or it is an error.

A patch that wraps a name metatrain no longer calls would "apply" and change
nothing: the hook then records a failure, this suite fails for the installed
metatrain, and ``mtt-nc doctor`` fails and says what to do.
"""

import argparse
import copy
import types

import _metatrain_nc_hook as hook
import pytest

from metatrain_nc import doctor, train_patches

PATCHES = [
    "metatrain.utils.architectures: _patch_architectures",
    "metatrain.cli.train: patch_train_cli",
    "metatrain.cli.train: patch_train_loading",
]

#: a ``cli/train.py`` where metatrain moved the call the hook wraps: the name is
#: still imported, but ``train_model`` reaches the function another way
MOVED_CALL = """
from metatrain.utils import io
from metatrain.utils.io import model_from_checkpoint


def train_model(options, output="model.pt", restart_from=None):
    return _load(restart_from)


def _load(path):
    return io.model_from_checkpoint(path, context="finetune")
"""

#: the call moved into a helper of the same module: the wrapped name is reached
HELPER_CALL = MOVED_CALL.replace("io.model_from_checkpoint(", "model_from_checkpoint(")


def fake_cli_train(source: str) -> types.ModuleType:
    module = types.ModuleType("metatrain.cli.train")
    exec(compile(source, "<cli/train.py>", "exec"), module.__dict__)
    return module


def test_every_patch_applied_to_the_installed_metatrain():
    import metatrain.cli.train  # noqa: F401
    import metatrain.utils.architectures  # noqa: F401

    assert hook.expected_patches() == PATCHES
    assert hook.STATE["patches"] == {name: "applied" for name in PATCHES}
    assert [e for e in hook.STATE["errors"] if e.startswith("patching")] == []


def test_a_moved_call_is_a_failed_patch():
    with pytest.raises(train_patches.PatchError, match="metatrain moved the call"):
        train_patches.patch_train_loading(fake_cli_train(MOVED_CALL))
    module = fake_cli_train(HELPER_CALL)
    train_patches.patch_train_loading(module)
    assert module.model_from_checkpoint.__wrapped__ is not None


@pytest.mark.parametrize("how", ["failed", "not applied"])
def test_doctor_fails_when_a_patch_did_not_apply(how, monkeypatch, capsys):
    import metatrain.cli.train  # noqa: F401

    state = copy.deepcopy(hook.STATE)
    monkeypatch.setattr(hook, "STATE", state)
    if how == "failed":
        hook._apply_patches(fake_cli_train(MOVED_CALL))
        why = "no function of metatrain.cli.train calls `model_from_checkpoint`"
        name = "metatrain.cli.train: patch_train_loading"
    else:  # e.g. imported before the hook was installed
        del state["patches"]["metatrain.cli.train: patch_train_cli"]
        why = "metatrain.cli.train was imported without the hook's patching loader"
        name = "metatrain.cli.train: patch_train_cli"
    assert doctor.run(argparse.Namespace(quiet=False)) == 1
    out = capsys.readouterr().out
    assert f"the start-up hook's patch {name} did not apply ({why}" in out
    assert "fix: use a metatrain this release supports" in out
    assert "ok: metatrain finds" not in out


def test_doctor_lists_the_patches(capsys):
    assert doctor.run(argparse.Namespace(quiet=False)) == 0
    out = capsys.readouterr().out
    for name in PATCHES:
        line = next(line for line in out.splitlines() if name in line)
        assert line.split()[-1] == "applied", line
