"""The ``glsplat`` command line: one module per subcommand, each with ``register(subparsers)``.

A subcommand's ``register`` adds its parser and sets ``func=run`` on it; ``run(args)`` returns an
exit status. User mistakes (a missing file, a mesh trimesh cannot read, a bad size) are raised as
``UsageError``, ``FileNotFoundError`` or ``ValueError`` and reported in one line without a traceback.
"""
from __future__ import annotations

import argparse
import importlib
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
