"""Screenshots of the interactive viewer for the README, taken by driving it under a private Xvfb.

    .venv/bin/python demos/viewer_screenshots.py --out docs/images

Opens ``glsplat view spot`` (target: Spot turned 20 degrees and moved 0.08 to the right), turns
and zooms the view, runs a few optimization steps so the loss plot has a curve, stops, and
saves the render, the dLoss/dImage heat map, the gradient arrows and the S+/S0/S-/alpha panel as
viewer_*.png.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import glsplat
from glsplat.viewer import FitProblem, PoseTarget
from glsplat.viewer.virtual_display import virtual_display

PANELS = {"render": "render", "heatmap": "heat: dL/dimage", "arrows": "arrows", "buffers": "buffers"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("docs/images"), help="output folder (default: docs/images)")
    parser.add_argument("--size", type=int, default=256, help="render size in pixels; the window is twice that")
    parser.add_argument("--steps", type=int, default=12, help="optimization steps before the pictures (default: 12)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    from glsplat.viewer import Viewer

    spot = glsplat.load_example("spot").normalized()
    problem = FitProblem(spot, PoseTarget(), (args.size, args.size), layers=2)
    with virtual_display():
        viewer = Viewer(problem, window_size=(2 * args.size, 2 * args.size))
        try:
            viewer.drag(-0.3 * args.size, 0.08 * args.size)  # a three-quarter view, slightly from above
            viewer.scroll(2)
            viewer.sync()
            viewer.press("O")
            deadline = time.monotonic() + 300
            while len(viewer.losses()) < args.steps and time.monotonic() < deadline:
                viewer.step(wait=0.05)
            viewer.press("O")
            viewer.sync()
            for name, panel in PANELS.items():
                viewer.show(panel)
                viewer.step()
                path = args.out / f"viewer_{name}.png"
                viewer.screenshot(path)
                print(path)
        finally:
            viewer.close()


if __name__ == "__main__":
    main()
