#!/usr/bin/env python
"""Resource lifetime: many renders with changing mesh sizes and resolutions in one process.

Each render is a forward + backward pass of a random sphere-like mesh (20 to 2,000 triangles)
at one of eight resolutions (more than the context's G-buffer cache holds, so buffers are
evicted and re-made) and 1 or 2 layers. Prints resident memory and live moderngl objects as it
goes; both should stay flat after warm-up.

    .venv/bin/python benchmarks/lifetime.py                  # 10,000 renders, a few minutes
    .venv/bin/python benchmarks/lifetime.py --renders 500 --every 100
"""
from __future__ import annotations

import argparse
import gc
import math
import time

import moderngl
import torch

import glsplat

SIZES = [(16, 16), (24, 40), (40, 24), (48, 48), (17, 31), (64, 32), (32, 64), (20, 20)]
GL_TYPES = (moderngl.Buffer, moderngl.Texture, moderngl.Framebuffer, moderngl.Renderbuffer,
            moderngl.VertexArray, moderngl.Program)


def rss_mb() -> float:
    """Resident set size of this process in MiB (Linux)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def live_gl_objects() -> int:
    """moderngl objects not yet released: the GL objects glsplat holds."""
    return sum(type(obj) in GL_TYPES and type(obj.mglo).__name__ != "InvalidObject"
               for obj in gc.get_objects())


def sphere(rings: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A UV sphere of radius 0.8 with ``rings`` rings and ``2 * rings`` segments."""
    theta = torch.linspace(0.05, math.pi - 0.05, rings)[:, None]
    phi = torch.linspace(0, 2 * math.pi, 2 * rings + 1)[:-1][None]
    verts = torch.stack([theta.sin() * phi.cos(), theta.cos().expand(rings, 2 * rings), theta.sin() * phi.sin()], -1)
    i, j = torch.meshgrid(torch.arange(rings - 1), torch.arange(2 * rings), indexing="ij")
    a, b = i * 2 * rings + j, i * 2 * rings + (j + 1) % (2 * rings)
    c, d = a + 2 * rings, b + 2 * rings
    faces = torch.cat([torch.stack([a, c, b], -1), torch.stack([b, c, d], -1)]).reshape(-1, 3)
    return 0.8 * verts.reshape(-1, 3), faces


def renders(ctx: glsplat.Context, count: int, seed: int = 0):
    """Yield after each of ``count`` renders (forward + backward), varying mesh, size and layers."""
    generator = torch.Generator().manual_seed(seed)
    for step in range(count):
        rings = int(torch.randint(3, 33, (1,), generator=generator))
        verts, faces = sphere(rings)
        verts = (verts + 0.01 * torch.randn(verts.shape, generator=generator)).requires_grad_(True)
        size = SIZES[step % len(SIZES)]
        camera = glsplat.Camera.look_at(eye=(0.0, 0.5, 3.0), image_size=size, near=1.0, far=5.0)
        img = glsplat.render(ctx, verts, camera, faces=faces, layers=1 + step % 2)
        img.square().mean().backward()
        yield step + 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--renders", type=int, default=10_000)
    parser.add_argument("--every", type=int, default=1_000, help="print a line every this many renders")
    args = parser.parse_args()
    ctx = glsplat.Context()
    start = time.perf_counter()
    print(f"{'renders':>8} {'RSS MiB':>8} {'GL objects':>10} {'seconds':>8}")
    for done in renders(ctx, args.renders):
        if done == 1 or done % args.every == 0:
            gc.collect()
            print(f"{done:>8} {rss_mb():>8.1f} {live_gl_objects():>10} {time.perf_counter() - start:>8.1f}", flush=True)


if __name__ == "__main__":
    main()
