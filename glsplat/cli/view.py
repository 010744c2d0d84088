"""``glsplat view MESH``: the interactive viewer with a live gradient overlay."""
from __future__ import annotations

import argparse
import math
from pathlib import Path

from . import MAX_SIZE, MIN_SIZE, UsageError, add_command, add_layers, add_size, check_layers, check_size, load, read_target

DESCRIPTION = """\
Open a window on MESH (normalized to unit size), rendered by glsplat's differentiable renderer,
with the loss against a target and its gradients drawn live; the optimization runs in a
background thread, so the window stays responsive. The target is the same mesh at another pose
(--target-pose, re-rendered for every view; the default turns it 20 degrees and moves it 0.08
to the right) or an image (--target, meant for the home view: the first view of
`glsplat render MESH --out target.png`, whose alpha channel is the silhouette; an image of
another aspect than --size is refused, not stretched). --init-rotation starts the mesh turned.
Needs a display: on a server, run under xvfb-run."""


def register(subparsers) -> None:
    from ..viewer.keys import help_text

    parser = add_command(subparsers, "view", run, help="interactive viewer with a live gradient overlay",
                         description=DESCRIPTION, epilog=f"keys and mouse:\n{help_text()}",
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--target", type=Path, metavar="IMAGE",
                        help="target image (PNG/JPEG; with alpha it is compared as premultiplied RGBA, "
                             "without it against the render over white)")
    target.add_argument("--target-pose", type=float, nargs="+", metavar="V",
                        help="target = the mesh turned AZ degrees about +y and EL about +x, then moved by "
                             "TX TY TZ: give AZ EL or AZ EL TX TY TZ (default: 20 0 0.08 0 0)")
    add_size(parser, (256, 256), f"render height and width in pixels, {MIN_SIZE} to {MAX_SIZE} (default: 256 256); "
             "the window is larger")
    parser.add_argument("--init-rotation", type=float, nargs=3, default=(0.0, 0.0, 0.0), metavar=("RX", "RY", "RZ"),
                        help="start (and key R's reset) with the mesh at this axis-angle rotation, in degrees "
                             "(default: 0 0 0, the pose glsplat render draws)")
    add_layers(parser, 2, ", so S+ and S- show occlusion edges")
    parser.add_argument("--optimize", choices=("pose", "vertices"), default="pose",
                        help="what key O optimizes at first (key M switches; default: pose)")
    parser.add_argument("--screenshots", type=Path, default=Path("."), metavar="DIR",
                        help="where key P writes glsplat_view_NNN.png (default: the current directory)")


def pose_target(values: list[float] | None):
    from ..viewer import PoseTarget

    if values is None:
        return PoseTarget()
    if len(values) not in (2, 5):
        raise UsageError(f"--target-pose takes AZ EL or AZ EL TX TY TZ, got {len(values)} numbers")
    if not all(math.isfinite(v) for v in values):
        raise UsageError(f"--target-pose takes finite numbers, got {' '.join(f'{v:g}' for v in values)}")
    return PoseTarget(values[0], values[1], tuple(values[2:]) if len(values) == 5 else (0.0, 0.0, 0.0))


def image_target(path: Path, size: tuple[int, int]):
    """--target as an :class:`ImageTarget` of ``size``; refused when tiny or of another aspect."""
    from ..viewer import ImageTarget

    rgba, has_alpha = read_target(path)
    height, width = rgba.shape[:2]
    if abs(height * size[1] - width * size[0]) > 0.01 * height * size[1]:
        raise UsageError(f"--target: {path} is {height} x {width} pixels (H x W), another aspect than "
                         f"--size {size[0]} {size[1]}; it would be stretched: pass --size {height} {width}")
    return ImageTarget.from_image(rgba, has_alpha, size)


def run(args: argparse.Namespace) -> int:
    from ..viewer import FitProblem
    from ..viewer.app import NoDisplayError, Viewer

    check_size(args.size)
    check_layers(args)
    if not all(math.isfinite(v) for v in args.init_rotation):
        raise UsageError("--init-rotation takes finite degrees")
    size = tuple(args.size)
    target = image_target(args.target, size) if args.target is not None else pose_target(args.target_pose)
    mesh = load(args.mesh).normalized()
    problem = FitProblem(mesh, target, size, layers=args.layers, mode=args.optimize,
                         init_rotation=[math.radians(d) for d in args.init_rotation])
    try:
        viewer = Viewer(problem, screenshot_dir=args.screenshots)
    except NoDisplayError as error:
        raise UsageError(str(error)) from error
    viewer.run()
    return 0
