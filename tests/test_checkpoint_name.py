"""A checkpoint's architecture is read once, without unpickling the checkpoint.

The start-up hook's checks of ``mtt train`` (``--restart`` across architectures, a
fine-tuning by an architecture that cannot continue a checkpoint) need one string
of the checkpoint; metatrain then loads the whole checkpoint itself. The checks used
to ``torch.load`` it too: a whole extra unpickling (model, optimizer, scheduler) per
check.
"""

import os
import pickle

import pytest
import torch
import yaml
from omegaconf import OmegaConf

from metatrain_nc import checkpoint_name, train_patches

from .architectures.helpers import STORED_OPTIONS, stored_checkpoint
from .conftest import write_options

REFUSAL = "`--restart` continues a run with its own architecture"


class Unpickled(Exception):
    """Raised by the ``torch.load`` of these tests."""


@pytest.fixture
def torch_load_calls(monkeypatch):
    """``torch.load`` records the files it is asked for, then raises."""
    calls = []

    def load(f, *args, **kwargs):
        calls.append(os.fspath(f))
        raise Unpickled(os.fspath(f))

    monkeypatch.setattr(torch, "load", load)
    return calls


@pytest.mark.parametrize("architecture", ["pet_nc", "pet_m"])
def test_name_without_unpickling(architecture, tmp_path, torch_load_calls):
    path = stored_checkpoint(architecture, tmp_path)
    assert checkpoint_name.architecture_of(path) == architecture
    assert torch_load_calls == []


def test_each_checkpoint_is_read_once(tmp_path, monkeypatch):
    path = stored_checkpoint("pet_nc", tmp_path)
    reads = []
    original = checkpoint_name._read
    monkeypatch.setattr(
        checkpoint_name, "_read", lambda p: reads.append(p) or original(p)
    )
    options = {
        "architecture": {
            "name": "soap_bpnn",
            "training": {"finetune": {"read_from": str(path)}},
        }
    }
    with pytest.raises(ValueError, match="which 'soap_bpnn' cannot fine-tune"):
        train_patches.check_finetune_architecture(options)
    with pytest.raises(ValueError, match=REFUSAL):
        train_patches.check_restart_architecture(options, path)
    assert checkpoint_name.architecture_of(path) == "pet_nc"
    assert reads == [str(path)]
    # a new file at the same path is read again
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert checkpoint_name.architecture_of(path) == "pet_nc"
    assert len(reads) == 2


def test_hook_checks_do_not_unpickle(tmp_path, torch_load_calls):
    path = stored_checkpoint("pet_nc", tmp_path)
    with pytest.raises(ValueError, match=REFUSAL):
        train_patches.check_restart_architecture(
            {"architecture": {"name": "pet_m"}}, path
        )
    assert torch_load_calls == []


def test_not_a_checkpoint_is_left_to_metatrain(tmp_path):
    path = tmp_path / "model.ckpt"
    path.write_text("not a checkpoint")
    with pytest.raises(pickle.UnpicklingError):
        checkpoint_name.architecture_of(path)
    # the checks step aside: metatrain's own error, when it loads it, is the one
    train_patches.check_restart_architecture({"architecture": {"name": "pet_m"}}, path)


def test_mtt_train_restart_unpickles_the_checkpoint_once(
    tmp_path, monkeypatch, water_frames, torch_load_calls
):
    """The whole patched ``train_model``, up to the moment metatrain loads the
    checkpoint (where the recording ``torch.load`` stops the run)."""
    import metatrain.cli.train

    path = stored_checkpoint("pet_m", tmp_path)
    options_file = write_options(
        tmp_path / "options.yaml", "pet_m", str(water_frames), **STORED_OPTIONS
    )
    options = OmegaConf.create(yaml.safe_load(options_file.read_text()))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(Exception) as failure:
        metatrain.cli.train.train_model(options, restart_from=str(path))
    assert isinstance(failure.value.__cause__, Unpickled), failure.value
    assert torch_load_calls == [str(path)]  # metatrain's own load, only
