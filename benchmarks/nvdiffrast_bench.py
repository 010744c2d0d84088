"""An nvdiffrast-style pipeline through glsplat.nvdiffrast against glsplat.render, same scene: a markdown table.

    .venv/bin/python benchmarks/nvdiffrast_bench.py [--size 512] [--repeats 9] [--clock cpu --threads 1]

Spot (textured, 5,856 triangles) at one view, vertices requiring grad, loss = MSE to a constant
target. nvdiffrast style, as its samples write it: ``rasterize`` -> ``interpolate`` of the UVs (with
their own index) -> ``texture`` (bilinear: 'auto' without derivatives, wrap) -> ``antialias``.
glsplat: ``render`` with ``UnlitShader`` over a black background (the same picture). The two
pipelines run alternately, so that a shared machine's load falls on both; times are medians in ms
after one warm-up run of each, per op and in all. ``--clock cpu`` times the process's CPU seconds
instead of the wall clock (with ``--threads 1`` and ``LP_NUM_THREADS=1``, a measure of the work done
that a busy shared machine disturbs much less).
``benchmarks/bench.py`` appends this table to its results (issue 15).
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

import glsplat
import glsplat.memory
import glsplat.nvdiffrast as dr

OPS = ("rasterize", "interpolate", "texture", "antialias")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall-clock time (default) or this process's CPU time")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    glsplat.memory.keep_freed_memory()

    mesh = glsplat.load_example("spot").normalized()
    camera = glsplat.Camera.orbit(30.0, 15.0, 2.5, image_size=(args.size, args.size))
    glctx = dr.RasterizeCudaContext()
    tri = mesh.faces.to(torch.int32)
    uv_tri = mesh.uv_faces.to(torch.int32)
    # nvdiffrast's textures are bottom-up (texel row 0 is v = 0); glsplat's row 0 is the top.
    tex = mesh.texture.flip(0)[None].contiguous()
    target = torch.full((1, args.size, args.size, 3), 0.5)

    def nvdiffrast_style(verts, times):
        marks = [clock()]
        pos = camera.project(verts)
        rast, _ = dr.rasterize(glctx, pos, tri, (args.size, args.size))
        marks.append(clock())
        uv, _ = dr.interpolate(mesh.uvs, rast, uv_tri)
        marks.append(clock())
        color = dr.texture(tex, uv) * (rast[..., 3:] > 0)
        marks.append(clock())
        image = dr.antialias(color, rast, pos, tri)
        marks.append(clock())
        for name, start, end in zip(OPS, marks, marks[1:]):
            times.setdefault(name, []).append((end - start) * 1e3)
        return image

    def glsplat_render(verts, times):
        textured = glsplat.Mesh(verts, mesh.faces, uvs=mesh.uvs, uv_faces=mesh.uv_faces, texture=mesh.texture)
        image = glsplat.render(glctx.context, textured, camera, shader=glsplat.UnlitShader(), background=(0, 0, 0))
        return image[..., :3]

    pipelines = {"glsplat.nvdiffrast: rasterize, interpolate, texture, antialias": nvdiffrast_style,
                 "glsplat.render (UnlitShader, textured)": glsplat_render}
    times = {name: {} for name in pipelines}
    for run in range(args.repeats + 1):
        for name, pipeline in pipelines.items():
            verts = mesh.verts.clone().requires_grad_(True)
            record = times[name] if run else {}  # the first run warms up
            start = clock()
            image = pipeline(verts, record)
            middle = clock()
            torch.nn.functional.mse_loss(image, target).backward()
            end = clock()
            record.setdefault("forward", []).append((middle - start) * 1e3)
            record.setdefault("backward", []).append((end - middle) * 1e3)
            record.setdefault("total", []).append((end - start) * 1e3)
    print(f"Spot, {args.size}x{args.size}, 1 view, {torch.get_num_threads()} torch threads, "
          f"OpenGL: {glctx.context.renderer}; {'wall-clock' if args.clock == 'wall' else 'CPU'} ms, "
          f"medians of {args.repeats} runs, the two pipelines alternating")
    print()
    print("| pipeline | " + " | ".join(OPS) + " | forward ms | backward ms | **forward + backward ms** |")
    print("|---|" + "--:|" * (len(OPS) + 3))
    for name, record in times.items():
        cells = [f"{statistics.median(record[op]):.1f}" if op in record else "" for op in OPS]
        cells += [f"{statistics.median(record['forward']):.1f}", f"{statistics.median(record['backward']):.1f}",
                  f"**{statistics.median(record['total']):.1f}**"]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
