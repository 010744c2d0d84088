"""What the demos share: their command line's common options, and how they save a figure."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

# The optional folder of larger meshes beside the repository (absent on most machines), its meshes by
# short name, and glsplat.load_example's meshes.
MESHES = Path(__file__).resolve().parents[2] / "shared" / "meshes"
SHARED = {"teapot": MESHES / "teapot.obj", "suzanne": MESHES / "suzanne.obj", "bunny": MESHES / "stanford-bunny.obj",
          "fandisk": MESHES / "fandisk.obj"}
EXAMPLES = ("spot", "blob", "capsule", "torus")


def load_geometry(name: str):
    """A short name and the :class:`glsplat.Mesh` (one of ``EXAMPLES``, of ``SHARED``, or a file path),
    normalized, geometry only; None, with a message, for a mesh of the shared folder that is absent."""
    import glsplat

    if name in EXAMPLES:
        mesh = glsplat.load_example(name)
    else:
        path = SHARED.get(name, Path(name))
        if name in SHARED and not path.is_file():
            print(f"skipping {name}: {path} is absent (the optional shared mesh folder)", file=sys.stderr)
            return None
        mesh = glsplat.load_mesh(path)
        name = name if name in SHARED else path.stem
    return name, glsplat.Mesh(mesh.verts, mesh.faces).normalized()


def parser(doc: str, out: str) -> argparse.ArgumentParser:
    """A demo's command line, described by the first paragraph of ``doc`` (the demo's docstring),
    with defaults shown in ``--help`` and ``--out``, the output folder (default ``out/<out>``)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("out") / out, help="output folder")
    return parser


def add_training(parser: argparse.ArgumentParser, *, size: int, lr: float, lr_help: str = "Adam's learning rate",
                 seed: str | None = None) -> None:
    """``--size`` (image height and width in pixels) and ``--lr``; and ``--seed`` (default 0), the seed
    for what ``seed`` names, when given."""
    parser.add_argument("--size", type=int, default=size, help="image height and width in pixels")
    parser.add_argument("--lr", type=float, default=lr, help=lr_help)
    if seed is not None:
        parser.add_argument("--seed", type=int, default=0, help=f"seed for {seed}")


def add_epochs(parser: argparse.ArgumentParser, *, epochs: int, epochs_help: str, batch: int, batch_help: str) -> None:
    """``--epochs`` and ``--batch`` of a network's training."""
    parser.add_argument("--epochs", type=int, default=epochs, help=epochs_help)
    parser.add_argument("--batch", type=int, default=batch, help=batch_help)


def pose_scene(size: int):
    """The pose demos' camera (looking at the origin from 2.5 units, slightly above, at Spot's face)
    for ``size`` x ``size`` images, and their Phong shader."""
    import glsplat

    camera = glsplat.Camera.look_at((0.0, 0.5, -2.5), (0.0, 0.0, 0.0), (0.0, 1.0, 0.0), fov_y=30.0,
                                    image_size=(size, size), near=0.5, far=5.0)
    lights = [glsplat.DirectionalLight(direction=(0.4, 0.8, -0.6), color=(0.6, 0.6, 0.6)),
              glsplat.PointLight(color=(0.35, 0.35, 0.35))]
    return camera, glsplat.PhongShader(lights=lights, ambient=0.25, specular=0.2)


def save_figure(fig, path: Path) -> None:
    """Write a matplotlib figure (laid out tightly, 100 dpi) and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
