import importlib.util
from pathlib import Path

import pytest
import torch

import glsplat

MESHES = Path(__file__).resolve().parents[2] / "shared" / "meshes"
ROOT = Path(__file__).resolve().parents[1]


def load_script(path: str):
    """A script of the repository (``demos/fit_pose.py``, ...) imported as a module, for its functions."""
    spec = importlib.util.spec_from_file_location(Path(path).stem, ROOT / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
