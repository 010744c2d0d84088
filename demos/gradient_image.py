"""Where do gradients come from? The image's derivative with respect to moving Spot sideways.

Panels: the render; d(image)/d(x-translation) from the splat (forward-mode, exact for the
renderer); the same derivative by central finite differences of a 16x supersampled hard render
(the ground truth the splat approximates); and from a plain rasterizer, which is zero everywhere.
Red: the pixel gets brighter as Spot moves right; blue: darker.

    .venv/bin/python demos/gradient_image.py --out docs/images/gradient.png
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

import glsplat
from glsplat.images import to_uint8

SUPER = 4  # supersampling factor per axis for the finite-difference reference


def diverging(values: np.ndarray, scale: float) -> np.ndarray:
    """Blue (negative) / white (zero) / red (positive) RGB image of values in [-scale, scale]."""
    v = np.clip(values / scale, -1, 1)[..., None]
    white, red, blue = np.ones(3), np.array([0.8, 0.1, 0.1]), np.array([0.1, 0.25, 0.8])
    rgb = np.where(v > 0, white + v * (red - white), white - v * (blue - white))
    return to_uint8(torch.from_numpy(rgb))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("out/gradient.png"), help="PNG to write")
    parser.add_argument("--size", type=int, default=192, help="image height and width in pixels")
    args = parser.parse_args()

    ctx = glsplat.Context()
    spot = glsplat.load_example("spot").normalized()
    # Directional light only: then shading does not change under translation, and all of the
    # derivative is visibility (silhouettes) and the texture sliding across pixels.
    shader = glsplat.LambertShader([glsplat.DirectionalLight((-0.4, 0.8, -0.6))], ambient=0.35)

    def camera(scale: int) -> glsplat.Camera:
        return glsplat.Camera.look_at((0.9, 0.4, -1.9), fov_y=32, image_size=(args.size * scale, args.size * scale))

    cameras = {1: camera(1), SUPER: camera(SUPER)}

    def image(tx: torch.Tensor, hard: bool = False, scale: int = 1) -> torch.Tensor:
        verts = spot.verts + torch.stack([tx, torch.zeros_like(tx), torch.zeros_like(tx)])
        out = glsplat.render(ctx, spot.replace(verts=verts), camera=cameras[scale], shader=shader, hard=hard,
                             background=(1.0, 1.0, 1.0))
        out = out[0, ..., :3]
        if scale > 1:
            out = F.avg_pool2d(out.permute(2, 0, 1)[None], scale)[0].permute(1, 2, 0)
        return out

    def splat_derivative(h: float = 1e-4) -> torch.Tensor:
        """d(image)/d(tx) of the splat: a central difference in float64 with the raster held fixed,
        which is what the splat differentiates (its backward pass is not itself differentiable, so
        torch's double-backward jvp does not apply)."""
        cam = cameras[1]
        faces = spot.faces
        rast = glsplat.rasterize(ctx, cam.project(spot.verts), faces, cam.image_size)
        mesh = spot.replace(verts=spot.verts.double(), texture=spot.texture.double())

        def splat_image(tx: float) -> torch.Tensor:
            verts = mesh.verts + torch.tensor([tx, 0.0, 0.0], dtype=torch.float64)
            frags = glsplat.Fragments(rast, mesh.replace(verts=verts[None]), cam)
            rgba = glsplat.splat(frags.scatter(shader(frags)), cam.project(verts), rast, faces)
            return glsplat.over_background(rgba, (1.0, 1.0, 1.0))[0, ..., :3]

        return ((splat_image(h) - splat_image(-h)) / (2 * h)).float()

    zero = torch.zeros(())
    start = time.perf_counter()
    render = image(zero)
    splat_grad = splat_derivative()
    step = 0.5 * 2 * np.tan(np.radians(16)) * 2.1 / args.size  # about half a pixel at Spot's depth
    with torch.no_grad():
        fd = (image(zero + step, True, SUPER) - image(zero - step, True, SUPER)) / (2 * step)
    plain = torch.autograd.functional.jvp(lambda t: image(t, hard=True), zero, torch.ones(()), strict=False)[1]
    seconds = time.perf_counter() - start

    splat_d, fd_d, plain_d = (g.mean(-1).numpy() for g in (splat_grad, fd, plain))
    magnitude = np.abs(fd_d)
    scale = np.percentile(magnitude[magnitude > 1e-6], 90)  # saturate the strongest edges
    cosine = float((splat_d * fd_d).sum() / (np.linalg.norm(splat_d) * np.linalg.norm(fd_d)))
    panels = [to_uint8(render), diverging(splat_d, scale),
              diverging(fd_d, scale), diverging(plain_d, scale)]
    titles = ["render", "splat d/dx", "finite diff. (16x SS)", "plain raster d/dx"]
    label = 16
    sheet = Image.new("RGB", (args.size * len(panels), args.size + label), "white")
    draw = ImageDraw.Draw(sheet)
    for k, (panel, title) in enumerate(zip(panels, titles)):
        sheet.paste(Image.fromarray(panel), (k * args.size, label))
        draw.text((k * args.size + 4, 2), title, fill="black")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out)
    print(f"wrote {args.out} ({seconds:.1f} s); cosine(splat, finite differences) = {cosine:.3f}; "
          f"plain raster derivative: max |d/dx| = {np.abs(plain_d).max():.1e}")


if __name__ == "__main__":
    main()
