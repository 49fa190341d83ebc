"""Fixtures of the comparison tests: a tiny stock ``pet`` (the conservative model)."""

import pytest

from ..conftest import train_tiny


@pytest.fixture(scope="session")
def tiny_pet(tmp_path_factory, ethanol_frames):
    """A tiny stock ``pet`` (conservative) trained by ``mtt train`` on ethanol."""
    return train_tiny(tmp_path_factory.mktemp("pet"), "pet", ethanol_frames)
