"""Bad input to pet_nc / pet_m: clear errors naming the problem and the fix."""

import pytest
import torch

from ..conftest import run_mtt, write_options


def _failure(result) -> str:
    assert result.returncode != 0
    return result.stdout + result.stderr


def test_dataset_without_forces(tmp_path, ethanol_frames):
    write_options(
        tmp_path / "options.yaml",
        "pet_nc",
        str(ethanol_frames),
        energy={"forces": False},
    )
    log = _failure(run_mtt(["train", "options.yaml"], cwd=tmp_path, check=False))
    assert "no force labels" in log
    assert "forces: {key: forces}" in log
    assert not (tmp_path / "model.ckpt").exists()


@pytest.mark.parametrize(
    "architecture, model, expected",
    [
        ("pet_nc", {"direct_force_heed": "edge"}, ["direct_force_heed"]),
        (
            "pet_m",
            {"direct_force_head": "bonds"},
            ["direct_force_head", "edge", "atom"],
        ),
    ],
    ids=["unknown_hyperparameter", "bad_head_name"],
)
def test_bad_hyperparameter(tmp_path, ethanol_frames, architecture, model, expected):
    write_options(
        tmp_path / "options.yaml", architecture, str(ethanol_frames), model=model
    )
    log = _failure(run_mtt(["train", "options.yaml"], cwd=tmp_path, check=False))
    for text in expected:
        assert text in log


def test_restart_from_another_architecture(tmp_path, ethanol_frames, tiny_pet_nc):
    # a stock-pet checkpoint given to pet_nc's --restart
    pet_dir = tmp_path / "pet"
    pet_dir.mkdir()
    write_options(pet_dir / "options.yaml", "pet", str(ethanol_frames), epochs=1)
    run_mtt(["train", "options.yaml"], cwd=pet_dir)
    write_options(tmp_path / "options.yaml", "pet_nc", str(ethanol_frames))
    log = _failure(
        run_mtt(
            ["train", "options.yaml", "--restart", str(pet_dir / "model.ckpt")],
            cwd=tmp_path,
            check=False,
        )
    )
    assert "was written by the 'pet' architecture" in log
    assert "but the options ask for 'pet_nc'" in log
    assert "finetune.read_from" in log
    assert not (tmp_path / "model.ckpt").exists()


def test_newer_checkpoint_refused(tmp_path, tiny_pet_nc):
    import metatomic.torch  # noqa: F401  (registers the classes a checkpoint holds)

    checkpoint = torch.load(tiny_pet_nc.checkpoint, weights_only=False)
    checkpoint["model_ckpt_version"] = 99
    torch.save(checkpoint, tmp_path / "future.ckpt")
    log = _failure(run_mtt(["export", "future.ckpt"], cwd=tmp_path, check=False))
    assert "version 99" in log or "99" in log
