"""Bad input to pet_nc / pet_m: clear errors naming the problem and the fix."""

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


def test_unknown_hyperparameter(tmp_path, ethanol_frames):
    write_options(
        tmp_path / "options.yaml",
        "pet_nc",
        str(ethanol_frames),
        model={"direct_force_heed": "edge"},
    )
    log = _failure(run_mtt(["train", "options.yaml"], cwd=tmp_path, check=False))
    assert "direct_force_heed" in log


def test_bad_head_name(tmp_path, ethanol_frames):
    write_options(
        tmp_path / "options.yaml",
        "pet_m",
        str(ethanol_frames),
        model={"direct_force_head": "bonds"},
    )
    log = _failure(run_mtt(["train", "options.yaml"], cwd=tmp_path, check=False))
    assert "direct_force_head" in log
    assert "edge" in log and "atom" in log


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
    checkpoint = torch.load(tiny_pet_nc.checkpoint, weights_only=False)
    checkpoint["model_ckpt_version"] = 99
    torch.save(checkpoint, tmp_path / "future.ckpt")
    log = _failure(run_mtt(["export", "future.ckpt"], cwd=tmp_path, check=False))
    assert "version 99" in log or "99" in log
