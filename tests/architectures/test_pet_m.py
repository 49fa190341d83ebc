"""``pet_m``: conservative and direct heads in one model, fine-tuning from pet_nc."""

import ase.io
import numpy as np
import torch
from metatomic.torch import ModelOutput, load_atomistic_model
from metatomic_ase import MetatomicCalculator

from ..conftest import run_mtt, write_options
from .helpers import evaluate


def test_exported_outputs(tiny_pet_m):
    outputs = load_atomistic_model(str(tiny_pet_m.exported)).capabilities().outputs
    assert {"energy", "non_conservative_force"} <= set(outputs)


def test_checkpoint_keeps_conservative_energy(tiny_pet_m):
    checkpoint = torch.load(tiny_pet_m.checkpoint, weights_only=False)
    assert checkpoint["architecture_name"] == "pet_m"
    targets = checkpoint["model_data"]["dataset_info"].targets
    assert targets["energy"].gradients == ["positions"]
    assert "non_conservative_force" in targets


def test_training_log_has_both_heads(tiny_pet_m):
    log = tiny_pet_m.log
    assert "validation energy_positions_gradients RMSE" in log or (
        "validation forces RMSE" in log
    )
    assert "validation non_conservative_force RMSE" in log


def test_one_evaluation_returns_both_forces(tiny_pet_m, ethanol_frames):
    atoms = ase.io.read(ethanol_frames, 0)
    calculator = MetatomicCalculator(
        str(tiny_pet_m.exported),
        additional_outputs={"non_conservative_force": ModelOutput(sample_kind="atom")},
    )
    atoms.calc = calculator
    conservative = atoms.get_forces()
    direct = (
        calculator.additional_outputs["non_conservative_force"]
        .block()
        .values.detach()
        .reshape(-1, 3)
        .numpy()
    )
    raw = evaluate(tiny_pet_m.exported, [atoms], ["non_conservative_force"])
    np.testing.assert_allclose(
        direct, raw["non_conservative_force"].reshape(-1, 3), atol=1e-6
    )
    assert conservative.shape == direct.shape == (9, 3)
    assert not np.allclose(conservative, direct, atol=1e-4)
    # conservative forces are -dE/dr: check against finite differences
    delta = 1e-3
    moved = atoms.copy()
    moved.calc = MetatomicCalculator(str(tiny_pet_m.exported))
    moved.positions[0, 0] += delta
    e_plus = moved.get_potential_energy()
    moved.positions[0, 0] -= 2 * delta
    e_minus = moved.get_potential_energy()
    finite_difference = -(e_plus - e_minus) / (2 * delta)
    assert abs(finite_difference - conservative[0, 0]) < 5e-3 + 0.05 * abs(
        conservative[0, 0]
    )


def test_restart(tiny_pet_m, tmp_path, ethanol_frames):
    write_options(tmp_path / "options.yaml", "pet_m", str(ethanol_frames), epochs=3)
    run_mtt(
        ["train", "options.yaml", "--restart", str(tiny_pet_m.checkpoint)],
        cwd=tmp_path,
    )
    checkpoint = torch.load(tmp_path / "model.ckpt", weights_only=False)
    assert checkpoint["architecture_name"] == "pet_m"
    # continued from epoch 1 of the first run: only epoch 2 was trained here
    assert checkpoint["epoch"] == 2


def test_finetune_pet_nc_into_pet_m(tiny_pet_nc, tmp_path, ethanol_frames):
    write_options(
        tmp_path / "options.yaml",
        "pet_m",
        str(ethanol_frames),
        epochs=1,
        training={
            "finetune": {"read_from": str(tiny_pet_nc.checkpoint), "method": "full"},
            "direct_forces_weight": 0.1,
            # tiny steps: the weights must stay where pet_nc left them
            "learning_rate": 1e-7,
        },
    )
    result = run_mtt(["train", "options.yaml"], cwd=tmp_path)
    log = result.stdout + result.stderr
    assert "Converting the pet_nc model to pet_m" in log
    checkpoint = torch.load(tmp_path / "model.ckpt", weights_only=False)
    assert checkpoint["architecture_name"] == "pet_m"
    assert checkpoint["model_data"]["dataset_info"].targets["energy"].gradients == [
        "positions"
    ]
    # the direct head started from pet_nc's weights, not from scratch
    start = torch.load(tiny_pet_nc.checkpoint, weights_only=False)
    before = start["best_model_state_dict"]
    after = checkpoint["best_model_state_dict"]
    shared = [k for k in before if k.startswith("backend.") and k in after]
    assert len(shared) > 10
    assert "backend.pair_force_head.0.0.weight" in shared
    for key in shared:
        assert torch.allclose(before[key], after[key], atol=1e-4), key
    exported = load_atomistic_model(str(tmp_path / "model.pt"))
    assert {"energy", "non_conservative_force"} <= set(exported.capabilities().outputs)
    # the export names the new architecture, not the one it was fine-tuned from
    # (tools read it to know that the conservative head is trained)
    assert exported.metadata().extra["architecture"] == "pet_m"
    # the pet_m log reports conservative forces again
    assert "energy_positions_gradients" in log or "forces" in log
