"""``pet_nc`` through the unmodified ``mtt``: training, export, evaluation."""

import ase.io
import numpy as np
import torch
from metatomic.torch import load_atomistic_model
from metatomic_ase import MetatomicCalculator

from ..conftest import add_direct_force_target, run_mtt, write_options
from .helpers import evaluate


def test_exported_outputs_molecules(tiny_pet_nc):
    model = load_atomistic_model(str(tiny_pet_nc.exported))
    outputs = model.capabilities().outputs
    assert "energy" in outputs
    assert "non_conservative_force" in outputs
    # ethanol is not periodic: no direct stress head
    assert "non_conservative_stress" not in outputs
    assert outputs["non_conservative_force"].unit == "eV/angstrom"


def test_training_log_reports_direct_forces(tiny_pet_nc):
    assert "validation non_conservative_force RMSE" in tiny_pet_nc.log
    # the routed labels made it to the loss, weighed like conservative forces
    losses = tiny_pet_nc.log.split("Using the following loss functions")[1]
    assert "non_conservative_force:" in losses.split("Base learning rate")[0]
    assert "Direct forces are weighed in the units of -dE/dr" in tiny_pet_nc.log


def test_checkpoint_is_pet_nc(tiny_pet_nc):
    checkpoint = torch.load(tiny_pet_nc.checkpoint, weights_only=False)
    assert checkpoint["architecture_name"] == "pet_nc"
    targets = checkpoint["model_data"]["dataset_info"].targets
    # the energy head is trained without gradients: no backward pass in training
    assert targets["energy"].gradients == []
    assert "non_conservative_force" in targets


def test_zero_net_force_inside_model(tiny_pet_nc, ethanol_frames):
    frames = ase.io.read(ethanol_frames, ":5")
    # move and rotate frames so that nothing is symmetric by accident
    rng = np.random.default_rng(0)
    for atoms in frames:
        atoms.rotate(rng.uniform(0, 360), rng.normal(size=3), center="COM")
        atoms.positions += rng.normal(size=3)
    forces = evaluate(tiny_pet_nc.exported, frames, ["non_conservative_force"])
    values = forces["non_conservative_force"].reshape(len(frames), -1, 3)
    net = values.sum(dim=1)
    scale = values.abs().max()
    assert scale > 0
    assert torch.all(net.abs() < 1e-5 * max(1.0, float(scale)))


def test_atom_head_zero_net_force(tiny_pet_nc_atom_head, ethanol_frames):
    checkpoint = torch.load(tiny_pet_nc_atom_head.checkpoint, weights_only=False)
    assert checkpoint["model_data"]["model_hypers"]["direct_force_head"] == "atom"
    frames = ase.io.read(ethanol_frames, ":3")
    values = evaluate(
        tiny_pet_nc_atom_head.exported, frames, ["non_conservative_force"]
    )
    net = values["non_conservative_force"].reshape(3, -1, 3).sum(dim=1)
    assert torch.all(net.abs() < 1e-4)


def test_ase_calculator_direct_forces(tiny_pet_nc, ethanol_frames):
    atoms = ase.io.read(ethanol_frames, 0)
    direct = MetatomicCalculator(str(tiny_pet_nc.exported), non_conservative="forces")
    conservative = MetatomicCalculator(str(tiny_pet_nc.exported))
    atoms.calc = direct
    f_direct = atoms.get_forces()
    atoms.calc = conservative
    f_energy_head = atoms.get_forces()
    raw = evaluate(tiny_pet_nc.exported, [atoms], ["non_conservative_force"])
    np.testing.assert_allclose(
        f_direct, raw["non_conservative_force"].reshape(-1, 3).numpy(), atol=1e-5
    )
    # the direct head is not the gradient of the energy head
    assert not np.allclose(f_direct, f_energy_head, atol=1e-3)


def test_periodic_direct_stress(tiny_pet_nc_periodic, water_frames):
    model = load_atomistic_model(str(tiny_pet_nc_periodic.exported))
    outputs = model.capabilities().outputs
    assert "non_conservative_stress" in outputs
    atoms = ase.io.read(water_frames, 0)
    atoms.calc = MetatomicCalculator(
        str(tiny_pet_nc_periodic.exported), non_conservative=True
    )
    stress = atoms.get_stress(voigt=False)
    forces = atoms.get_forces()
    assert stress.shape == (3, 3)
    np.testing.assert_allclose(stress, stress.T, atol=1e-8)
    assert np.all(np.isfinite(stress))
    assert np.abs(forces.sum(axis=0)).max() < 1e-4


def test_eval_direct_forces_with_mtt_eval(tiny_pet_nc, tmp_path):
    (tmp_path / "eval.yaml").write_text(
        f"""
systems: {{read_from: {tiny_pet_nc.data}, length_unit: angstrom}}
targets:
  energy: {{key: energy, unit: eV, forces: off, stress: off}}
  non_conservative_force:
    key: forces
    quantity: force
    unit: eV/A
    sample_kind: atom
    type: {{cartesian: {{rank: 1}}}}
"""
    )
    result = run_mtt(
        ["eval", str(tiny_pet_nc.exported), "eval.yaml", "-o", "out.xyz"], cwd=tmp_path
    )
    assert "non_conservative_force RMSE" in result.stdout + result.stderr
    frames = ase.io.read(tmp_path / "out.xyz", ":")
    assert len(frames) == 20


def test_explicit_non_conservative_force_target(tmp_path, ethanol_frames):
    """The stock-pet hybrid recipe (energy without forces plus an explicit
    non_conservative_force target) trains pet_nc unchanged: nothing is routed."""
    write_options(
        tmp_path / "options.yaml",
        "pet_nc",
        str(ethanol_frames),
        epochs=1,
        energy={"forces": False},
    )
    add_direct_force_target(tmp_path / "options.yaml")
    result = run_mtt(["train", "options.yaml"], cwd=tmp_path)
    assert "validation non_conservative_force RMSE" in result.stdout + result.stderr
    checkpoint = torch.load(tmp_path / "model.ckpt", weights_only=False)
    target = checkpoint["model_data"]["dataset_info"].targets["non_conservative_force"]
    assert target.description == ""  # the user's target, not a routed one
    frames = ase.io.read(ethanol_frames, ":2")
    values = evaluate(tmp_path / "model.pt", frames, ["non_conservative_force"])
    net = values["non_conservative_force"].reshape(2, -1, 3).sum(dim=1)
    assert torch.all(net.abs() < 1e-4)
