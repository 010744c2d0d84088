#!/usr/bin/env python
"""Silhouette gradients with and without edge glue (issue 17): the README's table and picture.

Pose gradients of L = sum(W * alpha) (W a smooth random weight image, 96 x 96, camera 2.6 away)
against central finite differences of an 8 x 8 supersampled hard render, for
``silhouette="splat"`` (the paper's) and ``"edge"`` (the default). Scored over stacked
components of four poses per mesh: cosine and least-squares slope (gain) for the rotation and the
translation, and their ratio; for the sphere turning about its center, |dL/drot| / |dL/dtrans|.

    .venv/bin/python benchmarks/edge_glue.py [--poses 4] [--image docs/images/edge_glue.png]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

import glsplat  # noqa: E402
from edge_glue_check import SUPER, PoseLoss, score, shapes  # noqa: E402

POSES = [(0.3, 0.5, 0.1), (-0.6, 0.2, 0.4), (1.0, -0.3, 0.2), (0.1, 1.2, -0.5)]


def table(ctx, poses: int) -> list[str]:
    lines = ["| mesh | silhouette | rotation cosine | translation cosine | rotation gain | translation gain "
             "| rotation / translation gain | sphere: \\|dL/drot\\| / \\|dL/dtrans\\| |",
             "|---|---|---|---|---|---|---|---|"]
    for name, (verts, faces) in shapes().items():
        grads, fds = {"splat": [], "edge": []}, []
        for seed, base in enumerate(POSES[:poses]):
            loss = PoseLoss(ctx, verts, faces, 96, base_rotation=base, seed=seed)
            if name != "sphere":
                fds.append(loss.fd_gradient(0.01, 0.005))
            for mode in grads:
                grads[mode].append(loss.splat_gradient(mode))
        for mode, g in grads.items():
            g = torch.stack(g)
            if name == "sphere":
                ratio = (g[:, :3].norm(dim=1) / g[:, 3:].norm(dim=1)).max()
                lines.append(f"| sphere (turning about its center) | {mode} | | | | | | {100 * float(ratio):.1f}% |")
                continue
            s = score(g, torch.stack(fds))
            lines.append(f"| {name} | {mode} | {s['rot_cos']:.4f} | {s['trans_cos']:.4f} | {s['rot_gain']:.3f} | "
                         f"{s['trans_gain']:.3f} | {s['ratio']:.3f} | |")
        print(*lines[-2:], sep="\n", flush=True)
    return lines


def per_pixel(ctx, verts, faces, size: int, base, axis: int, h: float = 0.02):
    """d alpha / d rotation about ``axis``, per pixel: [FD of the 8x hard render, splat, edge]."""
    loss = PoseLoss(ctx, verts, faces, size, base_rotation=base)
    e = torch.zeros(6, dtype=torch.float64)
    e[axis] = h

    def hard_alpha(pose):
        image = glsplat.render(ctx, loss.posed(pose), loss.camera_fine, faces=faces, shader=_alpha, hard=True)
        return F.avg_pool2d(image[:, None, ..., 3], SUPER)[0, 0]

    maps = [(hard_alpha(e) - hard_alpha(-e)) / (2 * h)]
    for mode in ("splat", "edge"):
        pose = torch.zeros(6, dtype=torch.float64, requires_grad=True)
        alpha = glsplat.render(ctx, loss.posed(pose), loss.camera, faces=faces, shader=_alpha,
                               silhouette=mode)[0, ..., 3].reshape(-1)
        rows = [torch.autograd.grad(alpha[i], pose, retain_graph=True)[0][axis] for i in range(alpha.numel())]
        maps.append(torch.stack(rows).view(size, size))
    return maps


def _alpha(frags):
    return torch.ones(frags.index.shape[0], 4, dtype=torch.float64)


def picture(ctx, path: Path, size: int = 48):
    """Rows: a sphere turning about its center, an 80-face ellipsoid; columns: FD, splat, edge (red +, blue -)."""
    from PIL import Image, ImageDraw

    all_shapes = shapes()
    rows = [per_pixel(ctx, *all_shapes["sphere"], size, (0.3, 0.5, 0.1), axis=1),
            per_pixel(ctx, *all_shapes["ellipsoid80"], size, (0.3, 0.5, 0.1), axis=1)]
    zoom, gap, top, left = 5, 6, 22, 0
    width = 3 * size * zoom + 2 * gap
    height = top + len(rows) * size * zoom + (len(rows) - 1) * gap
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for c, title in enumerate(["finite differences (8x8 supersampled)", 'silhouette="splat"', 'silhouette="edge"']):
        draw.text((c * (size * zoom + gap) + 4, 5), title, fill=(0, 0, 0))
    for r, maps in enumerate(rows):
        scale = float(maps[0].abs().max()) or 1.0
        if r == 0:  # the sphere's FD is ~0: scale by the splat's error instead
            scale = float(maps[1].abs().max())
        for c, m in enumerate(maps):
            v = (m / scale).clamp(-1, 1).numpy()
            rgb = np.stack([1 - np.clip(-v, 0, 1), 1 - np.abs(v), 1 - np.clip(v, 0, 1)], -1)  # red +, blue -
            tile = Image.fromarray((rgb * 255).astype(np.uint8)).resize((size * zoom, size * zoom), Image.NEAREST)
            canvas.paste(tile, (c * (size * zoom + gap), top + r * (size * zoom + gap)))
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    print(f"wrote {path}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--poses", type=int, default=4, help="poses per mesh (default: 4)")
    parser.add_argument("--image", type=Path, default=None, help="also draw the per-pixel picture here")
    parser.add_argument("--no-table", action="store_true", help="only the picture")
    args = parser.parse_args(argv)
    ctx = glsplat.Context()
    if not args.no_table:
        print("\n".join(table(ctx, args.poses)))
    if args.image is not None:
        picture(ctx, args.image)


if __name__ == "__main__":
    main()
