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
