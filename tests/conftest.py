import importlib.util
import sys
from pathlib import Path

import pytest
import torch

import glsplat

MESHES = Path(__file__).resolve().parents[2] / "shared" / "meshes"
ROOT = Path(__file__).resolve().parents[1]


def shared_mesh(name: str) -> Path:
    """A mesh of the optional ``../shared/meshes`` folder; skips the test when a plain clone lacks it."""
    path = MESHES / name
    if not path.is_file():
        pytest.skip(f"{name} is not here: the optional mesh folder {MESHES} is absent")
    return path


def load_script(path: str):
    """A script of the repository (``demos/fit_pose.py``, ...) imported as a module, for its functions;
    its folder goes on ``sys.path``, as for a script that Python runs (the demos import ``demo_common``)."""
    folder = str((ROOT / path).parent)
    if folder not in sys.path:
        sys.path.append(folder)
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
