#!/usr/bin/env python
"""Batched rasterization: one layered GL draw per depth layer for a batch vs one draw per view.

"old" is the same code limited to one view per pass (``ctx.max_views = 1``: one draw and one
read-back per view and per layer, as before batching); "new" lets a pass take the whole batch.
Both are timed in one process, interleaved, after warm-up; the table shows medians of
``glsplat.rasterize`` (corner gather, GL draws, read-back, tri_id conversion), and of the GL part
alone (``Context._draw_gbuffers``) for the new path. The last column is the new batch-8 cost
over 8 batch-1 renders of the same mesh, size and layers (< 1: batching pays).

    .venv/bin/python benchmarks/raster_batch.py
    .venv/bin/python benchmarks/raster_batch.py --meshes spot --sizes 512 --repeats 9
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

import glsplat

HERE = Path(__file__).resolve().parent
MESHES = {"spot": None, "bunny": HERE.parents[1] / "shared" / "meshes" / "stanford-bunny.obj"}
# The framing of benchmarks/bench.py: views evenly spaced around the mesh, view 0 facing Spot.
DISTANCE, ELEVATION, FOV_Y = 2.5, 15.0, 30.0


def cameras(batch: int, size: int) -> glsplat.Camera:
    azimuth = torch.arange(batch, dtype=torch.float32) * (360.0 / batch)
    return glsplat.Camera.orbit(azimuth, ELEVATION, DISTANCE, fov_y=FOV_Y, image_size=(size, size))


def load(name: str) -> glsplat.Mesh:
    mesh = glsplat.load_example("spot") if MESHES[name] is None else glsplat.load_mesh(MESHES[name])
    return mesh.normalized()


def time_interleaved(runs: dict, repeats: int) -> dict:
    """Median seconds of each callable, run round-robin after one warm-up round."""
    times = {name: [] for name in runs}
    for round_ in range(repeats + 1):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            if round_:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meshes", nargs="+", choices=sorted(MESHES), default=["spot", "bunny"])
    parser.add_argument("--sizes", nargs="+", type=int, default=None,
                        help="square image sizes (default: 512 for Spot, 256 and 512 for the bunny)")
    parser.add_argument("--layers", nargs="+", type=int, default=[1, 3])
    parser.add_argument("--batch", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds after warm-up (default: 5)")
    args = parser.parse_args(argv)

    ctx = glsplat.Context()
    max_views = ctx.max_views
    print(f"renderer: {ctx.renderer}; torch threads: {torch.get_num_threads()}; "
          f"max views per pass: {max_views}; repeats: {args.repeats}\n")
    print("| mesh | size | layers | batch | old ms | new ms | new / old | new GL ms | batch-8 / (8 x batch-1) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in args.meshes:
        if MESHES[name] is not None and not MESHES[name].is_file():
            print(f"skipping {name}: {MESHES[name]} is absent (the optional shared mesh folder)")
            continue
        mesh = load(name)
        faces = mesh.faces
        sizes = args.sizes or ([512] if name == "spot" else [256, 512])
        for size in sizes:
            for layers in args.layers:
                single_ms = None
                for batch in args.batch:
                    clip = cameras(batch, size).project(mesh.verts[None].expand(batch, -1, -1)).float()
                    corners = np.take(clip.numpy(), faces.reshape(-1).numpy(), axis=1)

                    def rasterize(views):
                        ctx.max_views = views
                        glsplat.rasterize(ctx, clip, faces, (size, size), layers=layers)

                    def draw():
                        ctx.max_views = max_views
                        ctx._draw_gbuffers(corners, size, size, layers, True)

                    ms = {key: 1e3 * t for key, t in time_interleaved(
                        {"old": lambda: rasterize(1), "new": lambda: rasterize(max_views), "gl": draw},
                        args.repeats).items()}
                    ctx.max_views = max_views
                    if batch == 1:
                        single_ms = ms["new"]
                    share = (f"{ms['new'] / (batch * single_ms):.2f}"
                             if batch == 8 and single_ms is not None else "")
                    print(f"| {name} | {size} | {layers} | {batch} | {ms['old']:.1f} | {ms['new']:.1f} | "
                          f"{ms['new'] / ms['old']:.2f} | {ms['gl']:.1f} | {share} |", flush=True)


if __name__ == "__main__":
    main()
