"""An nvdiffrast-style pipeline through glsplat.nvdiffrast against glsplat.render, same scene: a markdown table.

    .venv/bin/python benchmarks/nvdiffrast_bench.py [--size 512] [--repeats 7]

Spot (textured, 5,856 triangles) at one view, vertices requiring grad, loss = MSE to a constant
target. nvdiffrast style: ``rasterize`` -> ``interpolate`` of the UVs (with their own index) ->
a bilinear texture lookup (``glsplat.sample_texture``; nvdiffrast's ``texture`` is a separate module) ->
``antialias``. glsplat: ``render`` with ``UnlitShader`` over a black background. Times are medians in ms
of forward and forward+backward after one warm-up run.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

import glsplat
import glsplat.memory
import glsplat.nvdiffrast as dr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    glsplat.memory.keep_freed_memory()

    mesh = glsplat.load_example("spot").normalized()
    camera = glsplat.Camera.orbit(30.0, 15.0, 2.5, image_size=(args.size, args.size))
    glctx = dr.RasterizeCudaContext()
    tri = mesh.faces.to(torch.int32)
    uv_tri = mesh.uv_faces.to(torch.int32)
    # nvdiffrast's textures are bottom-up: texel row 0 is v = 0; glsplat.sample_texture's row 0 is the top.
    texture = mesh.texture
    target = torch.full((1, args.size, args.size, 3), 0.5)

    def nvdiffrast_style(verts):
        pos = camera.project(verts)
        rast, _ = dr.rasterize(glctx, pos, tri, (args.size, args.size))
        uv, _ = dr.interpolate(mesh.uvs, rast, uv_tri)
        color = glsplat.sample_texture(texture, uv[0])[None] * (rast[..., 3:] > 0)
        return dr.antialias(color, rast, pos, tri)

    def glsplat_render(verts):
        mesh_v = glsplat.Mesh(verts, mesh.faces, uvs=mesh.uvs, uv_faces=mesh.uv_faces, texture=texture)
        return glsplat.render(glctx.context, mesh_v, camera, shader=glsplat.UnlitShader(), background=(0, 0, 0))[..., :3]

    rows = []
    for name, pipeline in (("glsplat.nvdiffrast: rasterize, interpolate, texture (bilinear), antialias", nvdiffrast_style),
                           ("glsplat.render (UnlitShader, textured)", glsplat_render)):
        forward, total = [], []
        for run in range(args.repeats + 1):
            verts = mesh.verts.clone().requires_grad_(True)
            start = time.perf_counter()
            image = pipeline(verts)
            middle = time.perf_counter()
            torch.nn.functional.mse_loss(image, target).backward()
            end = time.perf_counter()
            if run:  # the first run warms up
                forward.append((middle - start) * 1e3)
                total.append((end - start) * 1e3)
        rows.append((name, statistics.median(forward), statistics.median(total)))
    print(f"Spot, {args.size}x{args.size}, 1 view, {torch.get_num_threads()} torch threads, "
          f"OpenGL: {glctx.context.renderer}; medians of {args.repeats} runs")
    print()
    print("| pipeline | forward ms | forward + backward ms |")
    print("|---|--:|--:|")
    for name, fwd, tot in rows:
        print(f"| {name} | {fwd:.1f} | {tot:.1f} |")


if __name__ == "__main__":
    main()
