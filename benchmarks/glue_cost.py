"""The edge glue's cost: silhouette="edge" against "splat" on Spot, back to back (README, issue 17).

Prints the medians of alternating runs of (1) the splat's forward + backward alone on one raster
(random colors, a random weight image) and (2) ``render`` + backward of untextured Spot, each with
both silhouette modes.

    python benchmarks/glue_cost.py [--size 512] [--layers 1] [--repeats 25] [--clock cpu --threads 1]

``--clock cpu`` times the process's CPU seconds instead of the wall clock (with ``--threads 1`` and
``LP_NUM_THREADS=1``, a measure of the work done that a busy shared machine disturbs much less).
"""
import argparse
import statistics
import time

import torch

import glsplat
from glsplat.silhouette import GLUE_BORDER


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=25)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall-clock time (default) or this process's CPU time")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    size = (args.size, args.size)

    ctx = glsplat.Context()
    mesh = glsplat.load_example("spot").normalized()
    plain = glsplat.Mesh(mesh.verts, mesh.faces)
    camera = glsplat.Camera.orbit(30.0, 15.0, 2.5, image_size=size)
    clip = camera.project(mesh.verts).detach()
    rast = glsplat.rasterize(ctx, clip, mesh.faces, size, layers=args.layers, border=GLUE_BORDER)
    colors = torch.rand(rast.index.shape[0], 4)
    colors[:, 3] = 1
    weights = torch.rand(1, *size, 4)

    def splat_once(mode: str) -> float:
        vertices = clip.clone().requires_grad_(True)
        start = clock()
        (glsplat.splat(colors, vertices, rast, mesh.faces, silhouette=mode) * weights).sum().backward()
        return clock() - start

    def render_once(mode: str) -> float:
        verts = plain.verts.clone().requires_grad_(True)
        start = clock()
        image = glsplat.render(ctx, glsplat.Mesh(verts, plain.faces), camera, layers=args.layers, silhouette=mode)
        (image * weights).sum().backward()
        return clock() - start

    print(f"Spot {args.size}x{args.size}, {args.layers} layer(s), {torch.get_num_threads()} torch thread(s), "
          f"{args.clock} clock, medians of {args.repeats} alternating runs (ms)")
    for name, run in (("splat forward + backward", splat_once), ("render + backward", render_once)):
        times = {"splat": [], "edge": []}
        for _ in range(3):  # warm-up
            run("splat"), run("edge")
        for _ in range(args.repeats):
            for mode in times:
                times[mode].append(run(mode) * 1e3)
        base, edge = statistics.median(times["splat"]), statistics.median(times["edge"])
        print(f"{name}: splat {base:.1f}, edge {edge:.1f} ({100 * (edge / base - 1):+.0f}%)")
    ctx.release()


if __name__ == "__main__":
    main()
