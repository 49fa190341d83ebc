"""Fine-tuning across periodicity and label sets, as a user runs it (``mtt train``
with ``training.finetune: {read_from: model.ckpt, method: full}``).

Stock ``pet`` fine-tunes a model trained on periodic data with stress on molecules
(no stress labels), and the reverse. So must ``pet_nc`` and ``pet_m``: the routes
come from the *new* data set (a periodic ``pet_m`` used to fail with "can not find
gradients with respect to 'strain' in this block"), the head of a direct target the
new data lacks is dropped as metatrain drops any such head, and a data set without
the force labels a direct head needs fails with a message naming them.

The periodic models are the stored checkpoints of the previous release
(``helpers.STORED_CHECKPOINTS``); the molecular ones are the tiny ethanol models of
``tests/conftest.py``.
"""

from pathlib import Path

import ase.io
import numpy as np
import pytest
import torch
from metatomic.torch import load_atomistic_model

from metatrain_nc.direct.routing import FORCE_OUTPUT, STRESS_OUTPUT

from ..conftest import WATER, run_mtt, write_options
from .helpers import STORED_OPTIONS, evaluate, stored_checkpoint
from .test_mixed_periodicity import _water_cluster

ARCHITECTURES = ["pet_nc", "pet_m"]


@pytest.fixture(scope="module")
def water_clusters(tmp_path_factory) -> Path:
    """6 clusters of whole water molecules (H, O; no cell) with energy and forces,
    no stress: molecules made of the species of the periodic water models."""
    frames = ase.io.read(WATER, "4:10")
    clusters = []
    for frame in frames:
        cluster = _water_cluster(frame, np.full(6, np.nan))
        cluster.calc.results.pop("stress")
        clusters.append(cluster)
    path = tmp_path_factory.mktemp("clusters") / "clusters.xyz"
    ase.io.write(path, clusters, format="extxyz")
    return path


def finetune_options(path: Path, architecture: str, data: Path, source: Path, **kw):
    finetune = {"read_from": str(source), "method": "full"}
    training = {"batch_size": 2, "finetune": finetune}
    return write_options(
        path, architecture, str(data), epochs=1, training=training, **kw
    )


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_periodic_with_stress_to_molecules(architecture, tmp_path, water_clusters):
    stored = stored_checkpoint(architecture, tmp_path)
    finetune_options(
        tmp_path / "options.yaml",
        architecture,
        water_clusters,
        stored,
        model=STORED_OPTIONS["model"],
    )
    result = run_mtt(["train", "options.yaml"], cwd=tmp_path)
    log = result.stdout + result.stderr
    assert (
        "non_conservative_stress (learned from the energy's stress labels) is not "
        "trained in this run: the training set has no stress labels" in log
    )
    assert "validation non_conservative_force RMSE" in log

    checkpoint = torch.load(tmp_path / "model.ckpt", weights_only=False)
    assert checkpoint["architecture_name"] == architecture
    targets = checkpoint["model_data"]["dataset_info"].targets
    assert list(targets) == ["energy", FORCE_OUTPUT]  # the stress head is dropped
    assert checkpoint["model_data"]["routed_targets"] == {FORCE_OUTPUT: "positions"}
    conservative = ["positions"] if architecture == "pet_m" else []
    assert targets["energy"].gradients == conservative

    exported = tmp_path / "model.pt"
    outputs = load_atomistic_model(str(exported)).capabilities().outputs
    assert FORCE_OUTPUT in outputs and STRESS_OUTPUT not in outputs
    cluster = ase.io.read(water_clusters, 0)
    forces = evaluate(exported, [cluster], [FORCE_OUTPUT])[FORCE_OUTPUT]
    assert forces.shape == (len(cluster), 3, 1)
    assert torch.all(torch.isfinite(forces))


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_molecules_to_periodic_with_stress(
    architecture, request, tmp_path, water_frames
):
    source = request.getfixturevalue(f"tiny_{architecture}")  # ethanol: C, H, O
    finetune_options(
        tmp_path / "options.yaml",
        architecture,
        water_frames,
        source.checkpoint,
        stress=True,
    )
    result = run_mtt(["train", "options.yaml"], cwd=tmp_path)
    log = result.stdout + result.stderr
    assert "non_conservative_stress RMSE" in log
    # the scaler of the restarted model knows every target: the direct forces are
    # weighed against the energy as in the first training
    assert "Direct forces are weighed in the units of -dE/dr" in log
    assert "loss weight x 1 =" not in log

    checkpoint = torch.load(tmp_path / "model.ckpt", weights_only=False)
    targets = checkpoint["model_data"]["dataset_info"].targets
    assert set(targets) == {"energy", FORCE_OUTPUT, STRESS_OUTPUT}
    assert checkpoint["model_data"]["routed_targets"] == {
        FORCE_OUTPUT: "positions",
        STRESS_OUTPUT: "strain",
    }
    conservative = ["positions", "strain"] if architecture == "pet_m" else []
    assert targets["energy"].gradients == conservative
    outputs = load_atomistic_model(str(tmp_path / "model.pt")).capabilities().outputs
    assert {FORCE_OUTPUT, STRESS_OUTPUT} <= set(outputs)


def test_finetune_without_force_labels_names_them(tmp_path, water_clusters):
    stored = stored_checkpoint("pet_nc", tmp_path)
    finetune_options(
        tmp_path / "options.yaml",
        "pet_nc",
        water_clusters,
        stored,
        model=STORED_OPTIONS["model"],
        energy={"forces": False},
    )
    result = run_mtt(["train", "options.yaml"], cwd=tmp_path, check=False)
    log = result.stdout + result.stderr
    assert result.returncode != 0
    assert "the training set has no force labels (`forces` of the energy" in log
    assert not (tmp_path / "model.ckpt").exists()
