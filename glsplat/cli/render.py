"""``glsplat render MESH --out img.png``: render a mesh file from one or more views."""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

from . import UsageError, check_output


BACKGROUND_HELP = (
    "'transparent' (the default for formats with alpha, e.g. PNG) keeps the alpha channel: the "
    "mesh's exact silhouette, which fit-pose and view use as the target's mask, whatever the mesh's "
    "colour; a colour (a name such as white or black, or #rrggbb; white is the default for formats "
    "without alpha, e.g. JPEG) writes opaque RGB composited over it")


def register(subparsers) -> None:
    parser = subparsers.add_parser("render", help="render a mesh file to PNG",
                                   description="Render MESH (any format trimesh reads; textured OBJ keeps its texture; "
                                               "untextured meshes are grey) Phong-lit by a headlight, orbiting it for "
                                               "--views > 1. PNGs keep alpha (--background transparent), so a "
                                               "render is a ready target for 'glsplat fit-pose' and 'glsplat view'.")
    parser.add_argument("mesh", type=Path, help="mesh file, or 'spot' for the built-in example")
    parser.add_argument("--out", type=Path, required=True,
                        help="output image (.png, .jpg, ...); with --views N > 1, view i goes to STEM_i.SUFFIX")
    parser.add_argument("--views", type=int, default=1, help="views on a circle around the mesh (default: 1)")
    parser.add_argument("--size", type=int, nargs=2, default=(512, 512), metavar=("H", "W"),
                        help="image height and width in pixels (default: 512 512)")
    parser.add_argument("--layers", type=int, default=1, help="depth layers to peel (default: 1)")
    parser.add_argument("--azimuth", type=float, default=0.0,
                        help="the first view's azimuth in degrees about +y; 0 looks from -z (default: 0)")
    parser.add_argument("--elevation", type=float, default=15.0, help="camera elevation in degrees (default: 15)")
    parser.add_argument("--background", metavar="COLOUR", help=BACKGROUND_HELP)
    parser.add_argument("--no-cull", dest="cull", action="store_false",
                        help="draw back faces too (for open or inconsistently wound meshes)")
    parser.set_defaults(func=run)


def check_view(args: argparse.Namespace) -> None:
    """--azimuth and --elevation of the command line's orbit camera."""
    if not math.isfinite(args.azimuth):
        raise UsageError("--azimuth must be a finite number of degrees")
    if not -90 < args.elevation < 90:
        raise UsageError(f"--elevation must be strictly between -90 and 90 degrees (the camera's up is +y), "
                         f"got {args.elevation:g}")


def background_colour(name: str | None, out: Path) -> tuple[float, float, float] | None:
    """``None`` for transparent, else an RGB colour in [0, 1], from --background and --out's format."""
    from PIL import ImageColor

    from ..images import keeps_alpha

    if name is None:
        return None if keeps_alpha(out) else (1.0, 1.0, 1.0)
    if name.lower() == "transparent":
        if not keeps_alpha(out):
            raise UsageError(f"--background transparent: {out.suffix} files have no alpha channel; "
                             f"write a .png or give a colour")
        return None
    try:
        return tuple(c / 255 for c in ImageColor.getrgb(name)[:3])
    except ValueError:
        raise UsageError(f"--background: 'transparent', a colour name or #rrggbb, got {name!r}") from None


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
    from glsplat.images import save_image

    if args.views < 1:
        raise UsageError("--views must be at least 1")
    if args.layers < 1:
        raise UsageError("--layers must be at least 1")
    if min(args.size) < 1:
        raise UsageError("--size must be positive")
    check_view(args)
    check_output(args.out, image=True)
    background = background_colour(args.background, args.out)
    mesh = load(args.mesh).normalized()
    ctx = glsplat.Context()
    shader = glsplat.PhongShader()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for i in range(args.views):
        camera = orbit_camera(args.azimuth + 360.0 * i / args.views, args.elevation, tuple(args.size))
        with torch.no_grad():
            image = glsplat.render(ctx, mesh, camera=camera, shader=shader, layers=args.layers,
                                   cull_backfaces=args.cull)
        out = args.out if args.views == 1 else args.out.with_name(f"{args.out.stem}_{i}{args.out.suffix}")
        save_image(out, image[0], background)
        print(out)
    return 0
