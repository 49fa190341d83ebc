"""Fixtures of the comparison tests: a tiny stock ``pet`` (the conservative model) and
one quick ``mtt-nc compare`` of the three tiny models, shared by the tests that read
its report."""

import subprocess
import sys
from types import SimpleNamespace

import pytest

from ..conftest import train_tiny


@pytest.fixture(scope="session")
def tiny_pet(tmp_path_factory, ethanol_frames):
    """A tiny stock ``pet`` (conservative) trained by ``mtt train`` on ethanol."""
    return train_tiny(tmp_path_factory.mktemp("pet"), "pet", ethanol_frames)


@pytest.fixture(scope="session")
def tiny_compare(tmp_path_factory, tiny_pet, tiny_pet_nc, tiny_pet_m, ethanol_frames):
    """``mtt-nc compare --quick`` of the tiny PET-C, PET-NC and PET-M (a checkpoint,
    exported on the fly), every stage: ``out`` (the report folder) and the
    ``result`` of the command."""
    out = tmp_path_factory.mktemp("compare") / "report"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "metatrain_nc.cli",
            "compare",
            str(tiny_pet.exported),
            str(tiny_pet_nc.exported),
            str(tiny_pet_m.checkpoint),  # checkpoints are exported on the fly
            "--names",
            "pet_c,pet_nc,pet_m",
            "--structures",
            str(ethanol_frames),
            "-o",
            str(out),
            "--quick",
            "--nve-time",
            "20",
            "--equilibration",  # SVR with each model's own forces before NVE
            "10",
            "--nvt-time",
            "10",
            "--relax-steps",
            "10",
        ],
        capture_output=True,
        text=True,
    )
    return SimpleNamespace(out=out, result=result)
