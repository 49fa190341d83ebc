"""Checkpoints of the previous release, and how routed targets are marked.

``checkpoints/`` holds one checkpoint of each architecture written by metatrain-nc
0.1.0.dev0 (see ``helpers.STORED_CHECKPOINTS``: periodic water, forces and stress
routed to both direct heads). They load in every context, restart with ``mtt train
--restart`` and export with ``mtt export``; fine-tuning them is in
``test_finetune_across_periodicity.py``.

Routed targets are marked by an explicit field (``model_data["routed_targets"]``,
model checkpoint version 2), not recognised by their description: metatrain compares
descriptions when a run continues a checkpoint, so a reworded description must not
make a stored checkpoint incompatible, and a user's own target must never be taken
for a routed one.
"""

import ase.io
import numpy as np
import pytest
import torch
from metatomic.torch import load_atomistic_model
from metatrain.utils.architectures import get_default_hypers
from metatrain.utils.data import DatasetInfo, TargetInfo
from metatrain.utils.data.target_info import get_energy_target_info
from metatrain.utils.io import model_from_checkpoint

from metatrain_nc.direct import routing
from metatrain_nc.direct.model import DirectPET
from metatrain_nc.direct.routing import FORCE_OUTPUT, STRESS_OUTPUT
from metatrain_nc.direct.trainer import force_loss_factor
from metatrain_nc.pet_nc.model import PETNC

from ..conftest import TINY_MODEL, run_mtt, write_options
from .helpers import STORED_OPTIONS, evaluate, stored_checkpoint

ARCHITECTURES = ["pet_nc", "pet_m"]
BOTH_ROUTED = {FORCE_OUTPUT: "positions", STRESS_OUTPUT: "strain"}
V1_DESCRIPTIONS = {
    FORCE_OUTPUT: "direct forces, learned from the energy's force labels",
    STRESS_OUTPUT: "direct stress, learned from the energy's stress labels",
}


def water_dataset_info(**energy_gradients: bool) -> DatasetInfo:
    """The dataset info ``mtt train`` builds for water with energy, forces, stress."""
    gradients = dict(add_position_gradients=True, add_strain_gradients=True)
    gradients.update(energy_gradients)
    energy = get_energy_target_info("energy", {"unit": "eV"}, **gradients)
    return DatasetInfo(
        length_unit="angstrom", atomic_types=[1, 8], targets={"energy": energy}
    )


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_stored_checkpoint_is_of_the_previous_release(architecture, tmp_path):
    """What the fixture is: model format 1, routed targets known by description."""
    checkpoint = torch.load(
        stored_checkpoint(architecture, tmp_path), weights_only=False
    )
    assert checkpoint["architecture_name"] == architecture
    assert checkpoint["model_ckpt_version"] == 1
    assert checkpoint["trainer_ckpt_version"] == 2
    assert "routed_targets" not in checkpoint["model_data"]
    targets = checkpoint["model_data"]["dataset_info"].targets
    for name, description in V1_DESCRIPTIONS.items():
        assert targets[name].description == description


@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("context", ["restart", "finetune", "export"])
def test_stored_checkpoint_loads(architecture, context, tmp_path):
    path = stored_checkpoint(architecture, tmp_path)
    model = model_from_checkpoint(torch.load(path, weights_only=False), context)
    assert isinstance(model, DirectPET) and model.architecture_name == architecture
    assert model.routed_targets == BOTH_ROUTED
    assert model.routes.forces and model.routes.stress
    saved = model.get_checkpoint()
    assert saved["model_ckpt_version"] == 2
    assert saved["model_data"]["routed_targets"] == BOTH_ROUTED


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_stored_checkpoint_restarts(architecture, tmp_path, water_frames):
    stored = stored_checkpoint(architecture, tmp_path)
    options = dict(STORED_OPTIONS, epochs=2)
    write_options(tmp_path / "options.yaml", architecture, str(water_frames), **options)
    run_mtt(["train", "options.yaml", "--restart", str(stored)], cwd=tmp_path)
    checkpoint = torch.load(tmp_path / "model.ckpt", weights_only=False)
    assert checkpoint["architecture_name"] == architecture
    assert checkpoint["epoch"] == 1  # the stored run ended after epoch 0
    assert checkpoint["model_ckpt_version"] == 2
    assert checkpoint["model_data"]["routed_targets"] == BOTH_ROUTED


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_stored_checkpoint_exports(architecture, tmp_path, water_frames):
    stored = stored_checkpoint(architecture, tmp_path)
    run_mtt(["export", str(stored), "-o", "exported.pt"], cwd=tmp_path)
    exported = tmp_path / "exported.pt"
    outputs = load_atomistic_model(str(exported)).capabilities().outputs
    assert {"energy", FORCE_OUTPUT, STRESS_OUTPUT} <= set(outputs)
    frame = ase.io.read(water_frames, 0)
    values = evaluate(exported, [frame], ["energy", FORCE_OUTPUT, STRESS_OUTPUT])
    assert values[FORCE_OUTPUT].shape == (len(frame), 3, 1)
    assert values[STRESS_OUTPUT].shape == (1, 3, 3, 1)
    for value in values.values():
        assert np.all(np.isfinite(value.numpy()))


def test_a_user_target_with_the_routed_description_is_not_routed():
    """A ``non_conservative_force`` the user declares stays the user's, whatever its
    description says; the energy's force labels are then not routed to it."""
    info = water_dataset_info(add_strain_gradients=False)
    layout = routing._rank1_layout()
    info.targets[FORCE_OUTPUT] = TargetInfo(
        layout=layout,
        quantity="force",
        unit="eV/angstrom",
        description=routing.DESCRIPTIONS[FORCE_OUTPUT],
    )
    _, routes = routing.route_dataset_info(info, keep_conservative=False)
    assert not routes.forces and routes.routed == {}

    hypers = dict(get_default_hypers("pet_nc")["model"], **TINY_MODEL)
    model = PETNC(hypers, info)
    assert model.routed_targets == {}
    checkpoint = model.get_checkpoint()
    assert checkpoint["model_data"]["routed_targets"] == {}
    reloaded = PETNC.load_checkpoint(checkpoint, "finetune")
    assert reloaded.routed_targets == {} and not reloaded.routes.forces


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_reworded_descriptions_keep_stored_checkpoints_usable(
    architecture, tmp_path, monkeypatch
):
    """A later release rewording the routed targets' descriptions still restarts
    and fine-tunes the stored checkpoints (metatrain refuses a target whose
    description differs from the checkpoint's)."""
    for name in (FORCE_OUTPUT, STRESS_OUTPUT):
        monkeypatch.setitem(routing.DESCRIPTIONS, name, f"reworded {name}")
    path = stored_checkpoint(architecture, tmp_path)
    for context in ("restart", "finetune"):
        model = model_from_checkpoint(torch.load(path, weights_only=False), context)
        model = model.restart(water_dataset_info())
        assert model.routes.forces and model.routes.stress
        assert model.routed_targets == BOTH_ROUTED
        targets = model.dataset_info.targets
        for name, description in V1_DESCRIPTIONS.items():
            assert targets[name].description == description  # kept from the file
        # and the explicit mark survives the round trip through a checkpoint
        again = type(model).load_checkpoint(model.get_checkpoint(), "finetune")
        assert again.routed_targets == BOTH_ROUTED


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_restarted_scaler_knows_every_target(architecture, tmp_path):
    """metatrain's restarted scaler lists only new targets; without the old ones
    the direct-force loss factor fell back to 1 in every restart and fine-tuning
    (and adding a target failed with ``KeyError: 'energy'``)."""
    path = stored_checkpoint(architecture, tmp_path)
    loaded = model_from_checkpoint(torch.load(path, weights_only=False), "restart")
    factor = force_loss_factor(loaded)
    assert factor > 10.0  # (force scale / energy scale)^2 of water, in eV and A
    model = loaded.restart(water_dataset_info())
    assert {"energy", FORCE_OUTPUT, STRESS_OUTPUT} <= set(model.scaler.target_infos)
    assert force_loss_factor(model) == pytest.approx(factor)
