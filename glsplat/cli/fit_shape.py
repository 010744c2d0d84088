"""``glsplat fit-shape MESH --out fit.obj``: deform an icosphere to match renders of a mesh."""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from . import (UsageError, add_adam, add_command, add_silhouette, add_size, check_adam, check_output, load,
               progress_bar)

# Formats trimesh writes with faces.
FORMATS = (".obj", ".ply", ".stl", ".off", ".glb")

DESCRIPTION = """\
Render MESH (normalized: centered, longest side 1; gray, Lambert-lit) from --views cameras on a sphere,
deform an icosphere with Adam until its renders match (color, silhouette and smoothness terms), and
write the fitted mesh in MESH's own coordinates, plus OUT.png: target, sphere and fit from four other
views. Prints the Chamfer distance (mean, as a fraction of the object's size) and the normal
consistency to MESH before and after."""


def register(subparsers) -> None:
    parser = add_command(subparsers, "fit-shape", run, description=DESCRIPTION,
                         help="fit an icosphere to renders of a mesh")
    parser.add_argument("--out", type=Path, required=True, help=f"fitted mesh file ({', '.join(FORMATS)})")
    parser.add_argument("--views", type=int, default=12, help="fitting views (default: 12)")
    add_size(parser, (96, 96), "image height and width in pixels (default: 96 96)")
    parser.add_argument("--level", type=int, default=2,
                        help="icosphere subdivision level, 0-5, subdivided once more half way (default: 2)")
    add_adam(parser, steps=300, lr=0.01)
    add_silhouette(parser)
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bar (shown on a terminal, with the loss): print only the results")


def check(args: argparse.Namespace) -> None:
    """Refuse option values that cannot work, before any loading or rendering."""
    if args.views < 1:
        raise UsageError("--views must be at least 1")
    if min(args.size) < 8:
        raise UsageError("--size must be at least 8 pixels each way")
    check_adam(args)
    if not 0 <= args.level <= 5:
        raise UsageError("--level must be between 0 and 5")
    check_output(args.out)
    if args.out.suffix.lower() not in FORMATS:
        raise UsageError(f"--out: cannot write {args.out.suffix or 'files without an extension'}; use one of {', '.join(FORMATS)}")


def run(args: argparse.Namespace) -> int:
    import trimesh

    import glsplat
    from glsplat.fitting.metrics import surface_distance
    from glsplat.images import save_image
    from glsplat.fitting.shape import fit_shape, fitting_shader, icosphere, novel_views, side_by_side, view_cameras

    check(args)
    loaded = load(args.mesh)
    lo, hi = loaded.verts.min(0).values, loaded.verts.max(0).values
    center, scale = (lo + hi) / 2, (hi - lo).max()
    if not scale > 0:
        raise UsageError(f"{args.mesh}: the mesh has no extent")
    target = glsplat.Mesh((loaded.verts - center) / scale, loaded.faces)

    ctx = glsplat.Context()
    cameras = view_cameras(args.views, tuple(args.size))
    shader = fitting_shader()
    with torch.no_grad():
        targets = glsplat.render(ctx, target, camera=cameras, shader=shader)
    template = icosphere(args.level)
    with progress_bar(args, "fit-shape") as bar:
        def progress(step, mesh, losses):
            bar.set_postfix(loss=f"{losses['total']:.4g}", refresh=False)
            bar.update()

        fit = fit_shape(ctx, template, targets, cameras, shader=shader, steps=args.steps, lr=args.lr,
                        subdivide_at=(args.steps // 2,), silhouette=args.silhouette, callback=progress)

    before = surface_distance(template, target)
    after = surface_distance(fit.mesh, target)
    print(f"Chamfer distance: {before[0]:.4f} -> {after[0]:.4f}   "
          f"normal consistency: {before[1]:.3f} -> {after[1]:.3f}   (target normalized to longest side 1)")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    verts = fit.mesh.verts * scale + center
    trimesh.Trimesh(verts.numpy(), fit.mesh.faces.numpy(), process=False).export(args.out)
    grid = side_by_side(ctx, [target, template, fit.mesh], novel_views(), shader)
    picture = args.out.with_suffix(".png")
    save_image(picture, grid)
    print(args.out)
    print(picture)
    return 0
