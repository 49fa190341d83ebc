"""metatrain's own reusable architecture test suites, run on pet_nc and pet_m.

The suites (``metatrain.utils.testing``) check inputs, outputs, autograd,
TorchScript, exported models, training and checkpoints the way metatrain checks its
own architectures. The dataset is overridden with bundled ethanol frames that carry
force labels (the suites' default file is not installed with metatrain, and our
trainers need forces). Reference checkpoints per version live in
``reference/<architecture>/checkpoints/``: a change that breaks loading them fails.
The training suites count epochs of restarts and fine-tunings: they train the tiny
model of the other tests (tests/conftest.py) on 20 frames, not the default PET on 100.
"""

import copy
from pathlib import Path

import pytest
from metatrain.utils.architectures import get_default_hypers
from metatrain.utils.testing import (
    ArchitectureTests,
    AutogradTests,
    CheckpointTests,
    ExportedTests,
    InputTests,
    TorchscriptTests,
    TrainingTests,
)

from ..conftest import ETHANOL, TINY_MODEL, write_frames

REFERENCE = Path(__file__).parent / "reference"


class _DirectTests(ArchitectureTests):
    @pytest.fixture(autouse=True)
    def _in_scratch_folder_with_references(self, monkeypatch, tmp_path):
        # the suites write checkpoints into, and look for reference checkpoints in
        # ``checkpoints/`` of, the working directory
        (tmp_path / "checkpoints").symlink_to(
            REFERENCE / self.architecture / "checkpoints"
        )
        monkeypatch.chdir(tmp_path)

    @pytest.fixture
    def dataset_path(self) -> str:
        return str(ETHANOL)

    @pytest.fixture
    def dataset_targets(self, dataset_path):
        return {
            "energy": {
                "quantity": "energy",
                "read_from": dataset_path,
                "reader": "ase",
                "key": "energy",
                "unit": "eV",
                "type": "scalar",
                "sample_kind": "system",
                "num_subtargets": 1,
                "forces": {"read_from": dataset_path, "reader": "ase", "key": "forces"},
                "stress": False,
                "virial": False,
            }
        }

    @pytest.fixture
    def minimal_model_hypers(self):
        hypers = copy.deepcopy(get_default_hypers(self.architecture)["model"])
        for key in ("d_pet", "d_head", "d_node", "d_feedforward"):
            hypers[key] = 1
        hypers["num_heads"] = 1
        hypers["num_attention_layers"] = 1
        hypers["num_gnn_layers"] = 1
        return hypers


class PETNCTests(_DirectTests):
    architecture = "pet_nc"


class PETMTests(_DirectTests):
    architecture = "pet_m"


class TestInputPETNC(InputTests, PETNCTests): ...


class TestInputPETM(InputTests, PETMTests): ...


class TestAutogradPETNC(AutogradTests, PETNCTests): ...


class TestTorchscriptPETNC(TorchscriptTests, PETNCTests):
    float_hypers = ["cutoff", "cutoff_width"]


class TestTorchscriptPETM(TorchscriptTests, PETMTests):
    float_hypers = ["cutoff", "cutoff_width"]


class TestExportedPETNC(ExportedTests, PETNCTests): ...


class TestExportedPETM(ExportedTests, PETMTests): ...


class _TinyTraining(TrainingTests):
    @pytest.fixture(scope="class")
    def training_frames(self, tmp_path_factory) -> str:
        folder = tmp_path_factory.mktemp("suite_training")
        return str(write_frames(ETHANOL, folder / "ethanol_20.xyz", 20))

    @pytest.fixture
    def dataset_path(self, training_frames) -> str:
        return training_frames

    @pytest.fixture
    def model_hypers(self):
        return dict(get_default_hypers(self.architecture)["model"], **TINY_MODEL)


class TestTrainingPETNC(_TinyTraining, PETNCTests): ...


class TestTrainingPETM(_TinyTraining, PETMTests): ...


class TestCheckpointsPETNC(CheckpointTests, PETNCTests): ...


class TestCheckpointsPETM(CheckpointTests, PETMTests): ...
