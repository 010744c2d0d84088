"""``glsplat render MESH --out img.png``: render a mesh file from one or more views."""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
from PIL import Image

from . import UsageError


def register(subparsers) -> None:
    parser = subparsers.add_parser("render", help="render a mesh file to PNG",
                                   description="Render MESH (any format trimesh reads; textured OBJ keeps its texture) "
                                               "Phong-lit over a white background, orbiting it for --views > 1.")
    parser.add_argument("mesh", type=Path, help="mesh file, or 'spot' for the built-in example")
    parser.add_argument("--out", type=Path, required=True,
                        help="output PNG; with --views N > 1, view i goes to STEM_i.png")
    parser.add_argument("--views", type=int, default=1, help="views on a circle around the mesh (default: 1)")
    parser.add_argument("--size", type=int, nargs=2, default=(512, 512), metavar=("H", "W"),
                        help="image height and width in pixels (default: 512 512)")
    parser.add_argument("--layers", type=int, default=1, help="depth layers to peel (default: 1)")
    parser.add_argument("--elevation", type=float, default=15.0, help="camera elevation in degrees (default: 15)")
    parser.set_defaults(func=run)


def orbit_camera(azimuth: float, elevation: float, size: tuple[int, int]):
    """The command line's camera: 2.5 units from the origin, 40 degrees field of view, which
    frames a mesh normalized to a longest side of 1."""
    import glsplat

    return glsplat.Camera.orbit(azimuth, elevation, 2.5, fov_y=40.0, image_size=size)


def load(path: Path):
    import glsplat

    if str(path) == "spot":
        return glsplat.load_example("spot")
    if not path.is_file():
        raise UsageError(f"no such mesh file: {path}")
    return glsplat.load_mesh(path)


def run(args: argparse.Namespace) -> int:
    import glsplat

    if args.views < 1:
        raise UsageError("--views must be at least 1")
    if args.layers < 1:
        raise UsageError("--layers must be at least 1")
    if min(args.size) < 1:
        raise UsageError("--size must be positive")
    mesh = load(args.mesh).normalized()
    ctx = glsplat.Context()
    shader = glsplat.PhongShader()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for i in range(args.views):
        camera = orbit_camera(360.0 * i / args.views, args.elevation, tuple(args.size))
        with torch.no_grad():
            image = glsplat.render(ctx, mesh, camera=camera, shader=shader, layers=args.layers, background=(1.0, 1.0, 1.0))
        out = args.out if args.views == 1 else args.out.with_name(f"{args.out.stem}_{i}{args.out.suffix or '.png'}")
        array = (image[0, ..., :3].clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy()
        Image.fromarray(array).save(out)
        print(out)
    return 0
