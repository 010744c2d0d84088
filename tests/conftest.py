from pathlib import Path

import pytest
import torch

import glsplat

MESHES = Path(__file__).resolve().parents[2] / "shared" / "meshes"


@pytest.fixture(scope="session")
def ctx():
    """One OpenGL context for the whole session, as a user's process would have."""
    return glsplat.Context()


@pytest.fixture(scope="session")
def spot():
    return glsplat.load_example("spot").normalized()


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
