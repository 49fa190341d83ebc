"""Stock ``pet`` fine-tuned from a ``pet_nc`` / ``pet_m`` checkpoint with the
unmodified ``mtt train`` (``training.finetune.read_from``), and what is refused."""

import ase.io
import pytest
import torch
from metatomic.torch import ModelOutput, load_atomistic_model, systems_to_torch
from metatomic_ase import MetatomicCalculator
from metatrain.pet import PET
from metatrain.utils.io import model_from_checkpoint
from metatrain.utils.neighbor_lists import get_system_with_neighbor_lists

from metatrain_nc.direct.conversion import to_stock_pet

from ..conftest import run_mtt, write_options


def energies(model, frames) -> torch.Tensor:
    model.eval()
    systems = [
        get_system_with_neighbor_lists(
            systems_to_torch(atoms, dtype=torch.float32),
            model.requested_neighbor_lists(),
        )
        for atoms in frames
    ]
    result = model(systems, {"energy": ModelOutput(sample_kind="system")})
    return result["energy"].block().values.detach().ravel()


@pytest.mark.parametrize("fixture", ["tiny_pet_nc", "tiny_pet_m"])
def test_conversion_keeps_the_energy(fixture, request, ethanol_frames):
    """The stock PET predicts the same energies as the model it comes from."""
    source = request.getfixturevalue(fixture)
    checkpoint = torch.load(source.checkpoint, weights_only=False)
    direct = model_from_checkpoint(checkpoint, context="finetune")
    pet, done = to_stock_pet(direct)
    assert type(pet) is PET
    assert list(pet.dataset_info.targets) == ["energy"]
    assert pet.dataset_info.targets["energy"].gradients == ["positions"]
    assert "backend.pair_force_head.0.0.weight" in done["dropped"]
    assert not any(k.startswith("backend.pair_force_head") for k in pet.state_dict())
    frames = ase.io.read(ethanol_frames, ":3")
    torch.testing.assert_close(energies(pet, frames), energies(direct, frames))


def test_finetune_pet_nc_as_stock_pet(tiny_pet_nc, tmp_path, ethanol_frames):
    write_options(
        tmp_path / "options.yaml",
        "pet",
        str(ethanol_frames),
        epochs=1,
        training={
            "finetune": {"read_from": str(tiny_pet_nc.checkpoint), "method": "full"},
            # no step at all: the weights must stay exactly where pet_nc left them
            "learning_rate": 0.0,
        },
    )
    result = run_mtt(["train", "options.yaml"], cwd=tmp_path)
    log = result.stdout + result.stderr
    assert (
        "Converting the pet_nc model to stock pet: kept the backbone and the energy "
        "head" in log
    )
    assert "dropped the direct heads (non_conservative_force;" in log
    # stock pet trains conservative forces
    assert "validation forces RMSE" in log

    checkpoint = torch.load(tmp_path / "model.ckpt", weights_only=False)
    assert checkpoint["architecture_name"] == "pet"
    targets = checkpoint["model_data"]["dataset_info"].targets
    assert list(targets) == ["energy"]
    assert targets["energy"].gradients == ["positions"]
    # backbone and energy head: pet_nc's weights, bit for bit (a fresh PET would
    # have random ones)
    before = torch.load(tiny_pet_nc.checkpoint, weights_only=False)
    before = before["best_model_state_dict"]
    after = checkpoint["best_model_state_dict"]
    backend = [k for k in after if k.startswith("backend.")]
    assert len(backend) > 10
    assert any(k.startswith("backend.gnn_layers") for k in backend)
    assert any("last_layers" in k and "energy" in k for k in backend)
    for key in backend:
        assert torch.equal(before[key], after[key]), key
    assert not any(k.startswith("backend.pair_force_head") for k in after)

    # the exported model is a plain conservative PET
    exported = tmp_path / "model.pt"
    outputs = load_atomistic_model(str(exported)).capabilities().outputs
    assert "energy" in outputs and "non_conservative_force" not in outputs
    atoms = ase.io.read(ethanol_frames, 0)
    atoms.calc = MetatomicCalculator(str(exported))
    forces = atoms.get_forces()
    delta = 1e-3
    moved = atoms.copy()
    moved.calc = MetatomicCalculator(str(exported))
    moved.positions[0, 0] += delta
    e_plus = moved.get_potential_energy()
    moved.positions[0, 0] -= 2 * delta
    e_minus = moved.get_potential_energy()
    finite_difference = -(e_plus - e_minus) / (2 * delta)
    assert abs(finite_difference - forces[0, 0]) < 5e-3 + 0.05 * abs(forces[0, 0])


def test_restart_as_stock_pet_is_refused(tiny_pet_nc, tmp_path, ethanol_frames):
    write_options(tmp_path / "options.yaml", "pet", str(ethanol_frames), epochs=1)
    result = run_mtt(
        ["train", "options.yaml", "--restart", str(tiny_pet_nc.checkpoint)],
        cwd=tmp_path,
        check=False,
    )
    log = result.stdout + result.stderr
    assert result.returncode != 0
    assert "`--restart` continues a run with its own architecture" in log
    assert f"training.finetune.read_from: {tiny_pet_nc.checkpoint}" in log
    assert not (tmp_path / "model.ckpt").exists()


def test_finetune_as_another_architecture_is_refused(tiny_pet_nc):
    """Refused by the patched ``train_model`` before any data is read."""
    import metatrain.cli.train

    options = {
        "architecture": {
            "name": "soap_bpnn",
            "training": {"finetune": {"read_from": str(tiny_pet_nc.checkpoint)}},
        }
    }
    with pytest.raises(ValueError, match="which 'soap_bpnn' cannot fine-tune") as info:
        metatrain.cli.train.train_model(options)
    assert "as pet_m, pet_nc or stock pet" in str(info.value)


def test_only_the_name_in_cli_train_is_wrapped():
    """``metatrain.utils.io.model_from_checkpoint`` (``load_model``, ``mtt export``)
    is metatrain's own; the wrapper in ``cli/train.py`` is idle outside a run."""
    import _metatrain_nc_hook as hook
    import metatrain.cli.train
    import metatrain.utils.io

    from metatrain_nc.train_patches import RUN

    wrapped = metatrain.cli.train.model_from_checkpoint
    assert wrapped.__wrapped__ is metatrain.utils.io.model_from_checkpoint
    assert "__wrapped__" not in vars(metatrain.utils.io.model_from_checkpoint)
    assert RUN["architecture"] is None
    assert not [e for e in hook.STATE["errors"] if "cli.train" in e]
