"""``glsplat fit-pose MESH --target IMAGE --out pose.json``: fit a mesh's rotation and translation to an image.

The camera is ``glsplat render``'s (2.5 units from the origin, 40-degree field of view, at
--azimuth/--elevation), and the pose applies to the mesh after normalization (centered, longest
side 1): ``p = R @ v + t``. So ``glsplat render MESH --out t.png`` followed by
``glsplat fit-pose MESH --target t.png --init-rotation 0 20 0`` recovers the identity.

Exit status 0 when the fit converged, 3 when it did not (the fitted silhouette overlaps the
target's by less than :data:`CONVERGED_IOU`, intersection over union); the pose is written either way.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch

from ..camera import ORBIT_DISTANCE, ORBIT_FOV_Y
from . import (UsageError, add_adam, add_command, add_layers, add_orbit, add_silhouette, add_size, check_adam,
               check_layers, check_orbit, check_output, check_size, load, orbit_camera, progress_bar, read_target)

DEFAULT_SIZE = (128, 128)
# A fit whose silhouette overlaps the target's less than this (intersection over union) did not converge.
CONVERGED_IOU = 0.9
# Exit status of a fit that did not converge.
NOT_CONVERGED = 3
# Mean mesh color this close (largest channel difference) to the background of an RGB target:
# the silhouette is hard to see, and fit-pose warns.
CLOSE_COLOR = 0.15

DESCRIPTION = f"""\
Fit the rotation and translation of MESH so that its render (Phong-lit, the camera of 'glsplat render')
matches a target: an image file (RGBA: alpha is the silhouette; RGB: composited over --background), or
a render at --target-rotation/--target-translation. Writes the fitted pose as JSON and a
target | fit | difference PNG, and prints the loss and the silhouette overlap (IoU) of fit and target.
Exit status 3: the fit did not converge (IoU below {CONVERGED_IOU}; start nearer with --init-rotation,
or raise --steps); 2: a mistake in the options. A progress bar with the loss shows on a terminal."""


def register(subparsers) -> None:
    parser = add_command(subparsers, "fit-pose", run, description=DESCRIPTION,
                         help="fit a mesh's pose (rotation + translation) to a target image")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--target", type=Path, metavar="IMAGE", help="target image (PNG, JPEG, ...)")
    target.add_argument("--target-rotation", type=float, nargs=3, metavar=("RX", "RY", "RZ"),
                        help="render the target at this axis-angle rotation, in degrees")
    parser.add_argument("--target-translation", type=float, nargs=3, default=(0.0, 0.0, 0.0), metavar=("TX", "TY", "TZ"),
                        help="with --target-rotation: the target's translation (default: 0 0 0)")
    parser.add_argument("--init-rotation", type=float, nargs=3, default=(0.0, 0.0, 0.0), metavar=("RX", "RY", "RZ"),
                        help="starting axis-angle rotation in degrees (default: 0 0 0)")
    parser.add_argument("--init-translation", type=float, nargs=3, default=(0.0, 0.0, 0.0), metavar=("TX", "TY", "TZ"),
                        help="starting translation (default: 0 0 0)")
    parser.add_argument("--out", type=Path, required=True, help="output JSON with the fitted pose")
    parser.add_argument("--image", type=Path, help="comparison PNG (default: --out with the suffix .png)")
    add_size(parser, None, "image size (default: the target image's, or 128 128 for a target pose)")
    add_adam(parser, steps=150, lr=0.03, lr_help="Adam's initial learning rate")
    add_layers(parser, 1)
    add_silhouette(parser)
    parser.add_argument("--blur", type=float, default=2.0,
                        help="loss blur in pixels at the first step, falling to 0 by mid-run (default: 2)")
    parser.add_argument("--background", type=float, nargs=3, default=(1.0, 1.0, 1.0), metavar=("R", "G", "B"),
                        help="background color in [0, 1] behind an RGB target (default: 1 1 1)")
    add_orbit(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar: print only the results")


def rotation(degrees) -> torch.Tensor:
    """``[1, 3, 3]`` from an axis-angle vector given in degrees."""
    from glsplat.transforms import axis_angle_to_matrix

    return axis_angle_to_matrix(torch.tensor([[math.radians(d) for d in degrees]]))


def load_target(path: Path, size) -> tuple[torch.Tensor, bool]:
    """The image as ``[1, H, W, 4]`` premultiplied RGBA, and whether it had an alpha channel."""
    rgba, has_alpha = read_target(path)
    if size is not None and tuple(size) != tuple(rgba.shape[:2]):
        raise UsageError(f"--size {size[0]} {size[1]} does not match the target image, which is "
                         f"{rgba.shape[0]} x {rgba.shape[1]} (H x W)")
    return rgba[None], has_alpha


def check(args: argparse.Namespace) -> None:
    if args.size is not None:
        check_size(args.size)
    check_adam(args)
    check_layers(args)
    if args.blur < 0:
        raise UsageError("--blur must not be negative")
    if not all(0 <= c <= 1 for c in args.background):
        raise UsageError("--background colors must be in [0, 1]")
    check_orbit(args)
    check_output(args.out)
    if args.image is not None:
        check_output(args.image, "--image", image=True)
    if args.target is not None and comparison_path(args).resolve() == args.target.resolve():
        raise UsageError(f"--image: the comparison picture would overwrite the target {args.target}; "
                         f"give --image (or --out) another name")


def comparison_path(args: argparse.Namespace) -> Path:
    """Where the target | fit | difference picture goes: --image, or --out with the suffix .png."""
    return args.image if args.image is not None else args.out.with_suffix(".png")


def silhouette_iou(fitted: torch.Tensor, target: torch.Tensor, background) -> float:
    """Intersection over union of the fit's coverage and the target's: alpha above 1/2, or for an
    opaque target (``background`` a color) the pixels that differ from ``background``, in the
    target and in the fit composited over it alike."""
    import glsplat

    if background is None:
        covered, fit = target[0, ..., 3] > 0.5, fitted[0, ..., 3] > 0.5
    else:
        color = torch.tensor(background)
        covered, fit = ((x[0, ..., :3] - color).abs().amax(-1) > 0.05
                        for x in (target, glsplat.over_background(fitted, background)))
    union = (covered | fit).sum().item()
    return (covered & fit).sum().item() / union if union else 1.0


def warn_if_mesh_matches_background(image: torch.Tensor, background) -> None:
    """One line on stderr when the mesh's mean color in ``image`` (premultiplied) is near ``background``."""
    alpha = image[0, ..., 3].sum().item()
    if alpha == 0:
        return
    color = image[0, ..., :3].sum((0, 1)) / alpha
    if (color - torch.tensor(background)).abs().max().item() < CLOSE_COLOR:
        print(f"glsplat: warning: --target has no alpha channel and the mesh's color "
              f"({' '.join(f'{c:.2f}' for c in color.tolist())}) is close to --background "
              f"({' '.join(f'{c:g}' for c in background)}): its silhouette barely shows; "
              f"use a target with alpha (glsplat render writes PNGs with alpha)", file=sys.stderr)


def comparison(target: torch.Tensor, fitted: torch.Tensor, background) -> torch.Tensor:
    """target | fit | difference (amplified 2x, on black), opaque premultiplied RGBA ``[H, 3W, 4]``."""
    import glsplat

    shown = [glsplat.over_background(x, background)[0] for x in (target, fitted)]
    difference = torch.cat([(shown[1][..., :3] - shown[0][..., :3]).abs() * 2, shown[0][..., 3:]], -1)
    return torch.cat(shown + [difference], 1)


def run(args: argparse.Namespace) -> int:
    import glsplat
    from glsplat.fitting import fit_pose, posed
    from glsplat.images import save_image
    from glsplat.transforms import rotation_angle

    check(args)
    image_path = comparison_path(args)
    mesh = load(args.mesh).normalized()
    if args.target is not None:
        target, has_alpha = load_target(args.target, args.size)
        size = tuple(target.shape[1:3])
    else:
        has_alpha = True
        size = tuple(args.size) if args.size is not None else DEFAULT_SIZE
    background = None if has_alpha else args.background
    ctx = glsplat.Context()
    camera = orbit_camera(args.azimuth, args.elevation, size)
    shader = glsplat.PhongShader()
    if args.target is None:
        target_rotation, target_translation = rotation(args.target_rotation), torch.tensor([args.target_translation])
        with torch.no_grad():
            target = glsplat.render(ctx, posed(mesh, target_rotation, target_translation), camera=camera, shader=shader)
    elif not has_alpha:
        target = glsplat.over_background(target, background)
        with torch.no_grad():
            start = glsplat.render(ctx, posed(mesh, rotation(args.init_rotation), torch.tensor([args.init_translation])),
                                   camera=camera, shader=shader)
        warn_if_mesh_matches_background(start, background)

    with progress_bar(args, "fit-pose") as bar:
        def progress(step, image, losses):
            bar.set_postfix(loss=f"{losses.sum().item():.4g}", refresh=False)
            bar.update()

        fit = fit_pose(ctx, mesh, target, camera, rotation(args.init_rotation), torch.tensor([args.init_translation]),
                       steps=args.steps, lr=args.lr, layers=args.layers, shader=shader, background=background,
                       start_sigma=args.blur, silhouette=args.silhouette, callback=progress)
    with torch.no_grad():
        fitted = glsplat.render(ctx, posed(mesh, fit.rotation, fit.translation), camera=camera, shader=shader)
        final_loss = ((fitted if background is None else glsplat.over_background(fitted, background)) - target).square().mean().item()
    iou = silhouette_iou(fitted, target, background)
    result = {
        "mesh": str(args.mesh),
        "convention": "p = R @ v + t for v on the normalized mesh (centered, longest side 1)",
        "rotation": fit.rotation[0].tolist(),
        "translation": fit.translation[0].tolist(),
        "initial_loss": fit.losses[0, 0].item(),
        "final_loss": final_loss,
        "silhouette_iou": iou,
        "converged": iou >= CONVERGED_IOU,
        "steps": args.steps,
        "image_size": list(size),
        "camera": {"azimuth": args.azimuth, "elevation": args.elevation, "distance": ORBIT_DISTANCE, "fov_y": ORBIT_FOV_Y},
    }
    if args.target is None:
        result["rotation_error_degrees"] = rotation_angle(fit.rotation, target_rotation)[0].item()
        result["translation_error"] = (fit.translation - target_translation).norm().item()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    image_path.parent.mkdir(parents=True, exist_ok=True)
    save_image(image_path, comparison(target, fitted, args.background), (0.0, 0.0, 0.0))
    summary = f"loss {result['initial_loss']:.4g} -> {result['final_loss']:.4g}, silhouette IoU {iou:.3f}"
    if "rotation_error_degrees" in result:
        summary += f", rotation error {result['rotation_error_degrees']:.2f} deg, translation error {result['translation_error']:.4f}"
    print(f"{summary}\n{args.out}\n{image_path}")
    if not result["converged"]:
        print(f"glsplat: warning: the fit did not converge (silhouette IoU {iou:.3f} < {CONVERGED_IOU}): "
              f"start nearer with --init-rotation, or raise --steps; exit status {NOT_CONVERGED}", file=sys.stderr)
        return NOT_CONVERGED
    return 0
