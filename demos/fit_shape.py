"""Deform an icosphere into a mesh's shape from its images, by gradient descent through glsplat.

The target mesh (Spot, then the Utah teapot by default) is normalized (bounding box centered at
0, longest side 1) and rendered, gray and Lambert-lit under two fixed lights, from ``--views``
cameras spread over a sphere. An icosphere (radius 0.5) is deformed with Adam to match those
images, coarse to fine (subdivided half way by default): shaded color and silhouette (alpha)
errors, plus Laplacian, edge-length and face-normal regularizers. The fit is measured against the true mesh in the same normalized
frame: Chamfer distance (mean, not squared; a fraction of the object's size) and normal
consistency, before (the sphere) and after.

Writes, into the output folder (default out/fit_shape/):
  fit_shape_table.md        the before/after table (also printed)
  fit_shape_{mesh}.png      target | sphere | fit (rows), four views around it 20 degrees up
  fit_shape_losses.png      the loss terms over the steps, per mesh
  fit_shape_{mesh}.obj      the fitted mesh

    python demos/fit_shape.py                          # spot and teapot, 96 px, 12 views, 300 steps
    python demos/fit_shape.py --level 3 --subdivide-at # no coarse to fine
    python demos/fit_shape.py --mesh teapot --steps 500 --size 128
    python demos/fit_shape.py --mesh path/to/mesh.obj --views 16
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import matplotlib
import torch
import trimesh
from tqdm import tqdm

import demo_common
import glsplat
from glsplat.fitting.metrics import surface_distance
from glsplat.images import save_image
from glsplat.fitting.shape import ShapeWeights, fit_shape, fitting_shader, icosphere, novel_views, side_by_side, view_cameras

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the headless backend)


def plot_losses(histories: dict[str, dict[str, list[float]]], path: Path) -> None:
    """One panel per mesh: every loss term (unweighted) and the weighted total against the step, log scale."""
    fig, axes = plt.subplots(1, len(histories), figsize=(5 * len(histories), 3.6), squeeze=False)
    for ax, (name, history) in zip(axes[0], histories.items()):
        for term, values in history.items():
            ax.plot(values, label=term, lw=2 if term == "total" else 1)
        ax.set(title=name, xlabel="step", ylabel="loss (terms unweighted, total weighted)", yscale="log")
        ax.legend(fontsize=7)
    demo_common.save_figure(fig, path)


def markdown_table(rows: list[dict]) -> str:
    lines = ["| mesh | views | size | vertices | Chamfer before | Chamfer after | normal consistency before | "
             "normal consistency after | time (s) |", "|---|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for r in rows:
        lines.append(f"| {r['mesh']} | {r['views']} | {r['size']} | {r['vertices']} | {r['chamfer_before']:.4f} | "
                     f"{r['chamfer_after']:.4f} | {r['normal_before']:.3f} | {r['normal_after']:.3f} | {r['seconds']:.0f} |")
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    parser = demo_common.parser(__doc__, "fit_shape")
    demo_common.add_training(parser, size=96, lr=0.01, lr_help="Adam's learning rate (decays to a tenth)")
    parser.add_argument("--mesh", nargs="+", default=["spot", "teapot"],
                        help=f"meshes to fit: {', '.join(demo_common.EXAMPLES)} (shipped), {', '.join(demo_common.SHARED)} "
                        f"(from the optional folder {demo_common.MESHES}, skipped when absent), or mesh file paths")
    parser.add_argument("--views", type=int, default=12, help="fitting views (cameras on a sphere)")
    parser.add_argument("--steps", type=int, default=300, help="Adam steps")
    parser.add_argument("--level", type=int, default=2, help="icosphere subdivision level of the template")
    parser.add_argument("--subdivide-at", type=int, nargs="*", default=None,
                        help="steps at which to subdivide the mesh (coarse to fine); default: half way; "
                             "give no value to keep the template's level")
    parser.add_argument("--layers", type=int, default=1, help="depth layers to peel")
    defaults = ShapeWeights()
    for term in ("image", "silhouette", "laplacian", "edge", "normal"):
        parser.add_argument(f"--w-{term}", type=float, default=getattr(defaults, term), help=f"weight of the {term} loss")
    parser.add_argument("--samples", type=int, default=10000, help="surface samples per mesh for the metrics")
    args = parser.parse_args(argv)
    if args.subdivide_at is None:
        args.subdivide_at = [args.steps // 2]
    if args.views < 1 or args.size < 8 or args.steps < 1 or args.level < 0:
        parser.error("need --views >= 1, --size >= 8, --steps >= 1, --level >= 0")
    return args


def fit_one(ctx, name: str, target: glsplat.Mesh, args, bar: tqdm) -> tuple[dict, dict, list[glsplat.Mesh]]:
    """Fit the sphere to ``target``; the table row, the loss history and (target, sphere, fit)."""
    cameras = view_cameras(args.views, (args.size, args.size))
    shader = fitting_shader()
    with torch.no_grad():
        targets = glsplat.render(ctx, target, camera=cameras, shader=shader, layers=args.layers)
    template = icosphere(args.level)
    weights = ShapeWeights(args.w_image, args.w_silhouette, args.w_laplacian, args.w_edge, args.w_normal)

    def callback(step, mesh, losses):
        bar.update()
        bar.set_postfix(mesh=name, loss=f"{losses['total']:.4g}")

    start = time.perf_counter()
    fit = fit_shape(ctx, template, targets, cameras, shader=shader, steps=args.steps, lr=args.lr, weights=weights,
                    layers=args.layers, subdivide_at=tuple(args.subdivide_at), callback=callback)
    seconds = time.perf_counter() - start
    chamfer_before, normal_before = surface_distance(template, target, args.samples)
    chamfer_after, normal_after = surface_distance(fit.mesh, target, args.samples)
    row = dict(mesh=name, views=args.views, size=args.size, vertices=len(fit.mesh.verts), seconds=seconds,
               chamfer_before=chamfer_before, chamfer_after=chamfer_after,
               normal_before=normal_before, normal_after=normal_after)
    return row, fit.losses, [target, template, fit.mesh]


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    targets = [target for target in map(demo_common.load_geometry, args.mesh) if target is not None]
    ctx = glsplat.Context()
    torch.manual_seed(0)
    rows, histories = [], {}
    bar = tqdm(total=len(targets) * args.steps, unit="step", desc="fitting")
    for name, target in targets:
        row, history, meshes = fit_one(ctx, name, target, args, bar)
        rows.append(row)
        histories[name] = history
        save_image(args.out / f"fit_shape_{name}.png", side_by_side(ctx, meshes, novel_views()))
        fitted = meshes[-1]
        trimesh.Trimesh(fitted.verts.numpy(), fitted.faces.numpy(), process=False).export(args.out / f"fit_shape_{name}.obj")
    bar.close()

    table = markdown_table(rows)
    command = " ".join(["python demos/fit_shape.py", *(sys.argv[1:] if argv is None else argv)])
    setting = (f"`{command}`"
               f": icosphere level {args.level} (radius 0.5) subdivided at steps {args.subdivide_at}, {args.steps} Adam steps, lr {args.lr}, {args.views} views "
               f"at {args.size}x{args.size} px, layers={args.layers}. Metrics on {args.samples} surface samples "
               "per mesh, in the frame of the normalized target (longest side 1); Chamfer = mean distance, both "
               "directions averaged; normal consistency = mean |cos| of nearest-point normals.")
    print(table)
    (args.out / "fit_shape_table.md").write_text(f"{setting}\n\n{table}\n")
    plot_losses(histories, args.out / "fit_shape_losses.png")
    print(f"wrote {args.out}/fit_shape_table.md, fit_shape_losses.png, "
          + ", ".join(f"fit_shape_{r['mesh']}.png/.obj" for r in rows))
    return rows


if __name__ == "__main__":
    main()
