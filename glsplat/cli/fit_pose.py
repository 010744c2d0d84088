"""``glsplat fit-pose MESH --target IMAGE --out pose.json``: fit a mesh's rotation and translation to an image.

The camera is ``glsplat render``'s (2.5 units from the origin, 40-degree field of view, at
--azimuth/--elevation), and the pose applies to the mesh after normalisation (centred, longest
side 1): ``p = R @ v + t``. So ``glsplat render MESH --out t.png`` followed by
``glsplat fit-pose MESH --target t.png --init-rotation 0 20 0`` recovers the identity.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from . import UsageError
from .render import load, orbit_camera

DEFAULT_SIZE = (128, 128)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "fit-pose", help="fit a mesh's pose (rotation + translation) to a target image",
        description="Fit the rotation and translation of MESH so that its render (Phong-lit, the camera of "
                    "'glsplat render') matches a target: an image file (RGBA: alpha is the silhouette; RGB: "
                    "composited over --background), or a render at --target-rotation/--target-translation. "
                    "Writes the fitted pose as JSON and a target | fit | difference PNG.")
    parser.add_argument("mesh", type=Path, help="mesh file, or 'spot' for the built-in example")
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
    parser.add_argument("--size", type=int, nargs=2, metavar=("H", "W"),
                        help="image size (default: the target image's, or 128 128 for a target pose)")
    parser.add_argument("--steps", type=int, default=150, help="Adam steps (default: 150)")
    parser.add_argument("--lr", type=float, default=0.03, help="Adam's initial learning rate (default: 0.03)")
    parser.add_argument("--layers", type=int, default=1, help="depth layers to peel (default: 1)")
    parser.add_argument("--blur", type=float, default=2.0,
                        help="loss blur in pixels at the first step, falling to 0 by mid-run (default: 2)")
    parser.add_argument("--background", type=float, nargs=3, default=(1.0, 1.0, 1.0), metavar=("R", "G", "B"),
                        help="background colour in [0, 1] behind an RGB target (default: 1 1 1)")
    parser.add_argument("--azimuth", type=float, default=0.0, help="camera azimuth in degrees (default: 0)")
    parser.add_argument("--elevation", type=float, default=15.0, help="camera elevation in degrees (default: 15)")
    parser.set_defaults(func=run)


def rotation(degrees) -> torch.Tensor:
    """``[1, 3, 3]`` from an axis-angle vector given in degrees."""
    import glsplat

    return glsplat.axis_angle_to_matrix(torch.tensor([[math.radians(d) for d in degrees]]))


def load_target(path: Path, size) -> tuple[torch.Tensor, bool]:
    """The image as ``[1, H, W, 4]`` premultiplied RGBA, and whether it had an alpha channel."""
    if not path.is_file():
        raise UsageError(f"no such target image: {path}")
    try:
        with Image.open(path) as image:
            has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
            array = np.asarray(image.convert("RGBA"), dtype=np.float32) / 255
    except (UnidentifiedImageError, OSError) as error:
        raise UsageError(f"{path}: could not read an image ({error})") from error
    if size is not None and tuple(size) != array.shape[:2]:
        raise UsageError(f"--size {size[0]} {size[1]} does not match the target image, which is "
                         f"{array.shape[0]} x {array.shape[1]} (H x W)")
    rgba = torch.from_numpy(array)[None]
    return torch.cat([rgba[..., :3] * rgba[..., 3:], rgba[..., 3:]], -1), has_alpha


def check(args: argparse.Namespace) -> None:
    if args.size is not None and not all(8 <= s <= 4096 for s in args.size):
        raise UsageError("--size must be between 8 and 4096 pixels")
    if args.steps < 1:
        raise UsageError("--steps must be at least 1")
    if not args.lr > 0:
        raise UsageError("--lr must be positive")
    if args.layers < 1:
        raise UsageError("--layers must be at least 1")
    if args.blur < 0:
        raise UsageError("--blur must not be negative")
    if not all(0 <= c <= 1 for c in args.background):
        raise UsageError("--background colours must be in [0, 1]")


def comparison(target: torch.Tensor, fitted: torch.Tensor, background) -> np.ndarray:
    """target | fit | difference (amplified 2x, on black), ``uint8 [H, 3W, 3]``."""
    import glsplat

    shown = [glsplat.over_background(x, background)[0, ..., :3] for x in (target, fitted)]
    row = torch.cat(shown + [((shown[1] - shown[0]).abs() * 2)], 1)
    return (row.clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy()


def run(args: argparse.Namespace) -> int:
    import glsplat
    from glsplat.fitting import fit_pose, posed

    check(args)
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

    fit = fit_pose(ctx, mesh, target, camera, rotation(args.init_rotation), torch.tensor([args.init_translation]),
                   steps=args.steps, lr=args.lr, layers=args.layers, shader=shader, background=background,
                   start_sigma=args.blur)
    with torch.no_grad():
        fitted = glsplat.render(ctx, posed(mesh, fit.rotation, fit.translation), camera=camera, shader=shader)
    result = {
        "mesh": str(args.mesh),
        "convention": "p = R @ v + t for v on the normalized mesh (centred, longest side 1)",
        "rotation": fit.rotation[0].tolist(),
        "translation": fit.translation[0].tolist(),
        "initial_loss": fit.losses[0, 0].item(),
        "final_loss": fit.losses[-1, 0].item(),
        "steps": args.steps,
        "image_size": list(size),
        "camera": {"azimuth": args.azimuth, "elevation": args.elevation, "distance": 2.5, "fov_y": 40.0},
    }
    if args.target is None:
        result["rotation_error_degrees"] = glsplat.rotation_angle(fit.rotation, target_rotation)[0].item()
        result["translation_error"] = (fit.translation - target_translation).norm().item()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    image_path = args.image if args.image is not None else args.out.with_suffix(".png")
    image_path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(comparison(target, fitted, args.background)).save(image_path)
    summary = f"loss {result['initial_loss']:.4g} -> {result['final_loss']:.4g}"
    if "rotation_error_degrees" in result:
        summary += f", rotation error {result['rotation_error_degrees']:.2f} deg, translation error {result['translation_error']:.4f}"
    print(f"{summary}\n{args.out}\n{image_path}")
    return 0
