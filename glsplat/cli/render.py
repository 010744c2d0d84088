"""``glsplat render MESH --out img.png``: render a mesh file from one or more views."""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from . import (UsageError, add_command, add_layers, add_orbit, add_size, check_layers, check_orbit, check_output, load,
               orbit_camera)


BACKGROUND_HELP = (
    "'transparent' (the default for formats with alpha, e.g. PNG) keeps the alpha channel: the "
    "mesh's exact silhouette, which fit-pose and view use as the target's mask, whatever the mesh's "
    "color; a color (a name such as white or black, or #rrggbb; white is the default for formats "
    "without alpha, e.g. JPEG) writes opaque RGB composited over it")


def register(subparsers) -> None:
    parser = add_command(subparsers, "render", run, help="render a mesh file to PNG",
                         description="Render MESH (any format trimesh reads; textured OBJ keeps its texture; "
                                     "untextured meshes are gray) Phong-lit by a headlight, orbiting it for "
                                     "--views > 1. PNGs keep alpha (--background transparent), so a "
                                     "render is a ready target for 'glsplat fit-pose' and 'glsplat view'.")
    parser.add_argument("--out", type=Path, required=True,
                        help="output image (.png, .jpg, ...); with --views N > 1, view i goes to STEM_i.SUFFIX")
    parser.add_argument("--views", type=int, default=1, help="views on a circle around the mesh (default: 1)")
    add_size(parser, (512, 512), "image height and width in pixels (default: 512 512)")
    add_layers(parser, 1)
    add_orbit(parser, "the first view's azimuth in degrees about +y; 0 looks from -z")
    parser.add_argument("--background", metavar="COLOR", help=BACKGROUND_HELP)
    parser.add_argument("--no-cull", dest="cull", action="store_false",
                        help="draw back faces too (for open or inconsistently wound meshes)")


def background_color(name: str | None, out: Path) -> tuple[float, float, float] | None:
    """``None`` for transparent, else an RGB color in [0, 1], from --background and --out's format."""
    from PIL import ImageColor

    from ..images import keeps_alpha

    if name is None:
        return None if keeps_alpha(out) else (1.0, 1.0, 1.0)
    if name.lower() == "transparent":
        if not keeps_alpha(out):
            raise UsageError(f"--background transparent: {out.suffix} files have no alpha channel; "
                             f"write a .png or give a color")
        return None
    try:
        return tuple(c / 255 for c in ImageColor.getrgb(name)[:3])
    except ValueError:
        raise UsageError(f"--background: 'transparent', a color name or #rrggbb, got {name!r}") from None


def run(args: argparse.Namespace) -> int:
    import glsplat
    from glsplat.images import save_image

    if args.views < 1:
        raise UsageError("--views must be at least 1")
    check_layers(args)
    if min(args.size) < 1:
        raise UsageError("--size must be positive")
    check_orbit(args)
    check_output(args.out, image=True)
    background = background_color(args.background, args.out)
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
