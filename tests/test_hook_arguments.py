"""The start-up hook finds ``train_model``'s arguments by name, not by position.

The hook wraps ``metatrain.cli.train.train_model`` (with
``metatrain_nc.train_patches.patch_train_cli``) to refuse a ``--restart`` across
architectures (a ``pet_nc`` checkpoint continued by a ``pet_m`` options file). It
must find ``options`` and ``restart_from`` however they are passed (metatrain's own
``mtt`` passes every argument by keyword) and wherever a metatrain version puts
them in the signature.
"""

from pathlib import Path
from types import SimpleNamespace
from typing import Optional, Union

import _metatrain_nc_hook as hook
import pytest

from metatrain_nc import train_patches

REFUSAL = "`--restart` continues a run with its own architecture"


def pet_m_options() -> dict:
    return {"architecture": {"name": "pet_m"}}


def future_train_model(calls: list):
    """A ``train_model`` as a future metatrain might write it: a new parameter
    before ``restart_from``, which is no longer the fifth."""

    def train_model(
        options: dict,
        output: Union[str, Path] = "model.pt",
        extensions: Union[str, Path] = "extensions/",
        checkpoint_dir: Union[str, Path] = ".",
        device: Optional[str] = None,
        restart_from: Optional[Union[str, Path]] = None,
    ) -> None:
        calls.append(restart_from)

    return train_model


def patched(train_model) -> SimpleNamespace:
    module = SimpleNamespace(train_model=train_model)
    train_patches.patch_train_cli(module)
    return module


def test_real_train_model_is_patched():
    import metatrain.cli.train

    assert "metatrain.cli.train" in hook.STATE["patched"]
    assert hook.STATE["patches"]["metatrain.cli.train: patch_train_cli"] == "applied"
    assert metatrain.cli.train.train_model.__wrapped__ is not None


@pytest.mark.parametrize("how", ["keyword", "position", "all keywords"])
def test_real_train_model_refuses_restart_across_architectures(tiny_pet_nc, how):
    """The patched ``train_model`` of the installed metatrain refuses before any
    training starts, with ``restart_from`` passed any way."""
    import metatrain.cli.train

    train_model = metatrain.cli.train.train_model
    checkpoint = str(tiny_pet_nc.checkpoint)
    with pytest.raises(ValueError, match=REFUSAL):
        if how == "keyword":
            train_model(pet_m_options(), restart_from=checkpoint)
        elif how == "position":
            train_model(pet_m_options(), "model.pt", "extensions/", ".", checkpoint)
        else:  # as metatrain's __main__ calls it: train_model(**args.__dict__)
            train_model(
                options=pet_m_options(),
                output="model.pt",
                extensions="extensions/",
                checkpoint_dir=".",
                restart_from=checkpoint,
            )


@pytest.mark.parametrize("how", ["keyword", "position"])
def test_restart_from_found_wherever_the_signature_puts_it(tiny_pet_nc, how):
    calls = []
    module = patched(future_train_model(calls))
    checkpoint = str(tiny_pet_nc.checkpoint)
    with pytest.raises(ValueError, match=REFUSAL):
        if how == "keyword":
            module.train_model(pet_m_options(), "model.pt", restart_from=checkpoint)
        else:
            module.train_model(
                pet_m_options(), "model.pt", "extensions/", ".", "cpu", checkpoint
            )
    assert calls == []  # refused before metatrain's function ran


def test_same_architecture_and_no_restart_go_through(tiny_pet_nc):
    calls = []
    module = patched(future_train_model(calls))
    checkpoint = str(tiny_pet_nc.checkpoint)
    options = {"architecture": {"name": "pet_nc"}}
    module.train_model(options, "model.pt", "extensions/", ".", "cpu", checkpoint)
    module.train_model(options=pet_m_options(), device="cpu")
    module.train_model(pet_m_options(), "model.pt", "extensions/", ".", "cpu")
    assert calls == [checkpoint, None, None]


def test_bad_call_gives_metatrain_error():
    calls = []
    module = patched(future_train_model(calls))
    with pytest.raises(TypeError, match="unexpected keyword argument 'epochs'"):
        module.train_model(pet_m_options(), epochs=3)
    assert calls == []


def test_arguments_through_var_keyword(tiny_pet_nc):
    calls = []

    def train_model(options, **kwargs):
        calls.append(kwargs.get("restart_from"))

    module = patched(train_model)
    with pytest.raises(ValueError, match=REFUSAL):
        module.train_model(pet_m_options(), restart_from=str(tiny_pet_nc.checkpoint))
    assert calls == []


def test_signature_without_restart_from_is_not_patched():
    def train_model(options, output="model.pt"):
        pass

    with pytest.raises(train_patches.PatchError, match="no parameter 'restart_from'"):
        patched(train_model)
