"""The ``glsplat`` command line: one module per subcommand, each with ``register(subparsers)``.

A subcommand's ``register`` adds its parser and sets ``func=run`` on it; ``run(args)`` returns an
exit status. User mistakes (a missing file, a mesh trimesh cannot read, a bad size) are raised as
``UsageError``, ``FileNotFoundError`` or ``ValueError`` and reported in one line without a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import math
import sys
from pathlib import Path

# Subcommand modules of this package, in the order ``--help`` lists them.
SUBCOMMANDS = ["render", "fit-pose", "fit-shape", "view"]


class UsageError(Exception):
    """A mistake in the command line or its inputs, reported as ``glsplat: error: ...``."""


# Image sides the commands that fit to images accept (--size, --target): below the minimum there is
# too little silhouette to fit to; above the maximum a render (~100 bytes a pixel) and its window
# grow past what an interactive fit can use.
MIN_SIZE, MAX_SIZE = 8, 4096


def check_size(size) -> None:
    """--size within ``MIN_SIZE..MAX_SIZE`` each way."""
    if not all(MIN_SIZE <= s <= MAX_SIZE for s in size):
        raise UsageError(f"--size must be between {MIN_SIZE} and {MAX_SIZE} pixels")


def read_target(path: Path):
    """--target as premultiplied RGBA ``[H, W, 4]`` and whether the file had alpha; refused when
    missing or smaller than ``MIN_SIZE`` either way."""
    from ..images import load_image

    if not path.is_file():
        raise UsageError(f"--target: no such target image: {path}")
    rgba, has_alpha = load_image(path)
    if min(rgba.shape[:2]) < MIN_SIZE:
        raise UsageError(f"--target: {path} is {rgba.shape[0]} x {rgba.shape[1]} pixels (H x W); "
                         f"a target needs at least {MIN_SIZE} each way")
    return rgba, has_alpha


def check_output(path: Path, option: str = "--out", image: bool = False) -> None:
    """Refuse an output path that cannot be written: a directory, or (``image``) no image extension."""
    if path.is_dir():
        raise UsageError(f"{option}: {path} is a directory; give a file name")
    if image:
        from ..images import image_format

        try:
            image_format(path)
        except ValueError as error:
            raise UsageError(f"{option}: {error}") from None


def add_command(subparsers, name: str, run, **kwargs) -> argparse.ArgumentParser:
    """Subcommand ``name``'s parser (``kwargs`` go to ``add_parser``: help, description, ...), with the
    MESH argument every command takes; ``args.func`` is ``run``."""
    parser = subparsers.add_parser(name, **kwargs)
    parser.add_argument("mesh", type=Path, help="mesh file, or 'spot' for the built-in example")
    parser.set_defaults(func=run)
    return parser


def add_size(parser: argparse.ArgumentParser, default, help: str) -> None:
    """--size H W, the image (or render) size in pixels."""
    parser.add_argument("--size", type=int, nargs=2, default=default, metavar=("H", "W"), help=help)


def add_adam(parser: argparse.ArgumentParser, steps: int, lr: float, lr_help: str = "Adam learning rate") -> None:
    """--steps and --lr of a fit by Adam (checked by :func:`check_adam`)."""
    parser.add_argument("--steps", type=int, default=steps, help=f"Adam steps (default: {steps})")
    parser.add_argument("--lr", type=float, default=lr, help=f"{lr_help} (default: {lr:g})")


def check_adam(args: argparse.Namespace) -> None:
    if args.steps < 1:
        raise UsageError("--steps must be at least 1")
    if not args.lr > 0:
        raise UsageError("--lr must be positive")


def add_layers(parser: argparse.ArgumentParser, default: int, why: str = "") -> None:
    """--layers, the depth layers to peel (at least 1)."""
    parser.add_argument("--layers", type=int, default=default, help=f"depth layers to peel (default: {default}{why})")


def add_silhouette(parser: argparse.ArgumentParser) -> None:
    """--silhouette, the splat's silhouette gradients (glsplat.splat's ``silhouette=``)."""
    parser.add_argument("--silhouette", choices=("edge", "splat"), default="edge",
                        help="silhouette gradients: glued to contour edges, or the paper's splat (default: edge)")


def check_layers(args: argparse.Namespace) -> None:
    if args.layers < 1:
        raise UsageError("--layers must be at least 1")


def add_orbit(parser: argparse.ArgumentParser, azimuth_help: str = "camera azimuth in degrees about +y; 0 looks "
              "from -z") -> None:
    """--azimuth and --elevation of :func:`orbit_camera` (checked by :func:`check_orbit`)."""
    parser.add_argument("--azimuth", type=float, default=0.0, help=f"{azimuth_help} (default: 0)")
    parser.add_argument("--elevation", type=float, default=15.0, help="camera elevation in degrees (default: 15)")


def check_orbit(args: argparse.Namespace) -> None:
    if not math.isfinite(args.azimuth):
        raise UsageError("--azimuth must be a finite number of degrees")
    if not -90 < args.elevation < 90:
        raise UsageError(f"--elevation must be strictly between -90 and 90 degrees (the camera's up is +y), "
                         f"got {args.elevation:g}")


def orbit_camera(azimuth: float, elevation: float, size: tuple[int, int]):
    """The command line's camera (render, fit-pose; the viewer's home view is the same) at ``azimuth``
    and ``elevation`` (degrees) for images of ``size`` (H, W): :meth:`Camera.orbit`'s default framing."""
    from ..camera import Camera

    return Camera.orbit(azimuth, elevation, image_size=size)


def load(path: Path):
    """The MESH argument as a :class:`glsplat.Mesh` (not normalized): a file, or 'spot'."""
    from ..mesh import load_example, load_mesh

    if str(path) == "spot":
        return load_example("spot")
    if not path.is_file():
        raise UsageError(f"no such mesh file: {path}")
    return load_mesh(path)


def progress_bar(args: argparse.Namespace, name: str):
    """A progress bar on stderr for ``args.steps`` steps of command ``name``; shown on a terminal unless
    --quiet. Use as a context manager; ``bar.set_postfix(loss=...)`` and ``bar.update()`` per step."""
    from tqdm import tqdm

    return tqdm(total=args.steps, desc=name, unit="step", file=sys.stderr, disable=args.quiet or not sys.stderr.isatty())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="glsplat", description="Differentiable mesh rendering: render, fit and view meshes.")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for name in SUBCOMMANDS:
        importlib.import_module(f"{__name__}.{name.replace('-', '_')}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except (UsageError, FileNotFoundError, ValueError) as error:
        print(f"glsplat: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
