"""Learn a texture from renders at many distances: mip-mapped ('linear-mipmap-linear') vs 'linear'.

glsplat's stand-in for nvdiffrast's earth sample (whose data file is not shipped). A quad carrying a
procedural high-frequency texture is seen from random directions at distances 1.3 to 12 (so one
pixel covers from a few to tens of texels). Targets are rendered with the true texture at 4x the
resolution with trilinear filtering and box-downsampled. A texture starting at gray 0.2 is then
fitted to the targets with Adam twice: sampled with 'linear-mipmap-linear' (uv_da from
interpolate's pixel derivatives) and with plain 'linear'. Bilinear
sampling of a minified texture reads four texels per pixel and skips the rest, so its gradients
reach a sparse, view-dependent subset of texels and the learned texture is noise; the mip stack
spreads each pixel's gradient over its whole footprint.

The pipeline is nvdiffrast's, through glsplat.nvdiffrast: rasterize, interpolate (uv and its pixel
derivatives), texture.

Prints a table (texture-space PSNR against the true texture, image PSNR on held-out views near
and far) and writes out/nvdiffrast_texture_mip/nvdiffrast_texture_mip.png (true and learned
textures, a held-out view).

    python demos/nvdiffrast_texture_mip.py            # 256^2 texture, 64^2 px, 400 steps: about a minute
    python demos/nvdiffrast_texture_mip.py --quick    # 64^2 texture, 32^2 px, 80 steps: seconds
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import matplotlib
import torch

import glsplat
import glsplat.nvdiffrast as dr

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the headless backend)

SUPERSAMPLE = 4
NEAR_FAR_SPLIT = 4.0  # held-out views closer than this count as 'near'

# The quad [-1, 1]^2 at z = 0, facing +z; uv (0, 0) at its (-1, -1) corner.
VERTS = torch.tensor([[-1.0, -1.0, 0.0], [1.0, -1.0, 0.0], [1.0, 1.0, 0.0], [-1.0, 1.0, 0.0]])
UVS = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
FACES = torch.tensor([[0, 1, 2], [0, 2, 3]], dtype=torch.int32)


def procedural_texture(size: int) -> torch.Tensor:
    """float32 ``[1, size, size, 3]`` in [0, 1]: fine checks, rings and color bands of many frequencies."""
    t = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    v, u = torch.meshgrid(t, t, indexing="ij")
    checks = ((u * size / 4).floor() + (v * size / 4).floor()) % 2          # 4-texel checks
    rings = 0.5 + 0.5 * torch.sin(2 * math.pi * ((u - 0.3) ** 2 + (v - 0.6) ** 2).sqrt() * size / 6)
    bands = 0.5 + 0.5 * torch.sin(2 * math.pi * (u * 3 + v * 17))
    coarse = 0.5 + 0.5 * torch.sin(2 * math.pi * u) * torch.cos(2 * math.pi * v)
    rgb = torch.stack([0.6 * checks + 0.4 * coarse, 0.7 * rings + 0.3 * (1 - coarse), 0.5 * bands + 0.5 * checks], -1)
    return rgb.clamp(0, 1)[None]


def random_cameras(n: int, res: int, generator: torch.Generator,
                   max_distance: float) -> tuple[glsplat.Camera, torch.Tensor]:
    """``n`` cameras looking at the quad from up to 55 degrees off its normal; and their distances ``[n]``."""
    theta = torch.rand(n, generator=generator) * math.radians(55)
    phi = torch.rand(n, generator=generator) * 2 * math.pi
    dist = 1.3 + torch.rand(n, generator=generator) * (max_distance - 1.3)
    direction = torch.stack([theta.sin() * phi.cos(), theta.sin() * phi.sin(), theta.cos()], -1)
    target = torch.cat([(torch.rand(n, 2, generator=generator) - 0.5) * 0.6, torch.zeros(n, 1)], -1)
    camera = glsplat.Camera.look_at(target + direction * dist[:, None], target, fov_y=45.0,
                                    image_size=(res, res), near=0.1, far=50.0)
    return camera, dist


def uv_and_derivatives(glctx, camera: glsplat.Camera, res: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The quad's ``rast`` ``[B, res, res, 4]``, ``uv`` ``[B, res, res, 2]`` and ``uv_da`` ``[B, res, res, 4]``
    (du/dX, du/dY, dv/dX, dv/dY) as nvdiffrast code makes them: rasterize, then interpolate with
    pixel derivatives. nvdiffrast's row order: row 0 at the bottom."""
    rast, rast_db = dr.rasterize(glctx, camera.project(VERTS), FACES, [res, res])
    uv, uv_da = dr.interpolate(UVS, rast, FACES, rast_db=rast_db, diff_attrs="all")
    return rast, uv, uv_da


def render(glctx, camera: glsplat.Camera, tex: torch.Tensor, res: int, filter_mode: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``[B, res, res, 3]`` image of the quad with ``tex`` (black background) and its coverage
    ``[B, res, res, 1]``, rows top first."""
    rast, uv, uv_da = uv_and_derivatives(glctx, camera, res)
    covered = (rast[..., 3:] > 0).to(tex.dtype)
    color = dr.texture(tex, uv, uv_da, filter_mode=filter_mode) * covered
    return color.flip(1), covered.flip(1)


def box_downsample(img: torch.Tensor, factor: int) -> torch.Tensor:
    b, h, w, c = img.shape
    return img.view(b, h // factor, factor, w // factor, factor, c).mean((2, 4))


def psnr(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    err = (a - b) ** 2
    mse = err.mean() if mask is None else (err * mask).sum() / (mask.sum() * a.shape[-1])
    return float(10 * torch.log10(1 / mse))


def fit(glctx, filter_mode: str, targets: torch.Tensor, cameras: glsplat.Camera, tex_size: int, res: int,
        steps: int, batch: int, lr: float, seed: int) -> tuple[torch.Tensor, float]:
    """The texture ``[1, S, S, 3]`` learned from ``targets`` with ``filter_mode``, and the seconds taken."""
    tex = torch.full((1, tex_size, tex_size, 3), 0.2, requires_grad=True)
    optimizer = torch.optim.Adam([tex], lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: 0.1 ** (i / steps))
    generator = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    for _ in range(steps):
        pick = torch.randint(len(targets), (batch,), generator=generator)
        image, _ = render(glctx, cameras[pick], tex, res, filter_mode)
        loss = ((image - targets[pick]) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        with torch.no_grad():
            tex.clamp_(0, 1)
    return tex.detach(), time.perf_counter() - start


def run(tex_size: int = 256, res: int = 64, steps: int = 400, views: int = 96, batch: int = 4,
        max_distance: float = 12.0, lr: float = 0.03, seed: int = 0, out: Path | None = None) -> dict:
    """Fit with both filters; returns ``{filter: {"texture": dB, "near": dB, "far": dB, "seconds": s}}``."""
    torch.manual_seed(seed)
    glctx = dr.RasterizeGLContext()
    true_tex = procedural_texture(tex_size)
    generator = torch.Generator().manual_seed(seed)
    train_cams, _ = random_cameras(views, res * SUPERSAMPLE, generator, max_distance)
    test_cams, test_dist = random_cameras(32, res * SUPERSAMPLE, generator, max_distance)

    def targets_for(cams):
        with torch.no_grad():
            hi, _ = render(glctx, cams, true_tex, res * SUPERSAMPLE, "linear-mipmap-linear")
        return box_downsample(hi, SUPERSAMPLE)

    train_targets, test_targets = targets_for(train_cams), targets_for(test_cams)
    # Cameras at the working resolution (same views; only the image size differs).
    train_cams = glsplat.Camera(train_cams.R, train_cams.t, train_cams.projection, (res, res))
    test_cams = glsplat.Camera(test_cams.R, test_cams.t, test_cams.projection, (res, res))
    near = test_dist < NEAR_FAR_SPLIT

    results, learned, renders = {}, {}, {}
    for filter_mode in ("linear-mipmap-linear", "linear"):
        tex, seconds = fit(glctx, filter_mode, train_targets, train_cams, tex_size, res, steps, batch, lr, seed)
        with torch.no_grad():
            images, mask = render(glctx, test_cams, tex, res, filter_mode)
        results[filter_mode] = {
            "texture": psnr(tex, true_tex),
            "near": psnr(images[near], test_targets[near], mask[near]),
            "far": psnr(images[~near], test_targets[~near], mask[~near]),
            "seconds": seconds,
        }
        learned[filter_mode], renders[filter_mode] = tex, images

    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        view = int(torch.nonzero(~near)[0]) if (~near).any() else 0
        panels = [("true texture", true_tex[0]), ("learned, linear-mipmap-linear", learned["linear-mipmap-linear"][0]),
                  ("learned, linear", learned["linear"][0]), ("held-out view: target", test_targets[view]),
                  ("rendered, linear-mipmap-linear", renders["linear-mipmap-linear"][view]),
                  ("rendered, linear", renders["linear"][view])]
        fig, axes = plt.subplots(2, 3, figsize=(11, 7.6))
        for ax, (title, img) in zip(axes.flat, panels):
            ax.imshow(img.clamp(0, 1).numpy(), interpolation="nearest", origin="upper")
            ax.set_title(title, fontsize=10)
            ax.axis("off")
        fig.suptitle(f"texture {tex_size}² learned from {views} views at {res}² px, distance 1.3-{max_distance:g} "
                     f"(held-out view at distance {float(test_dist[view]):.1f})", fontsize=10)
        fig.tight_layout()
        fig.savefig(out / "nvdiffrast_texture_mip.png", dpi=90)
        plt.close(fig)
    return results


def table(results: dict) -> str:
    lines = ["| filter_mode | texture PSNR (dB) | held-out near PSNR (dB) | held-out far PSNR (dB) | fit time (s) |",
             "|---|---|---|---|---|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['texture']:.2f} | {r['near']:.2f} | {r['far']:.2f} | {r['seconds']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="64^2 texture, 32^2 px, 80 steps (seconds)")
    parser.add_argument("--tex-size", type=int, default=256, help="texture side in texels (a power of two)")
    parser.add_argument("--res", type=int, default=64, help="render side in pixels")
    parser.add_argument("--steps", type=int, default=400, help="Adam steps per filter mode")
    parser.add_argument("--views", type=int, default=96, help="number of training views")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (these tensors are small: more threads mostly add overhead)")
    parser.add_argument("--out", type=Path, default=Path("out/nvdiffrast_texture_mip"), help="output folder")
    args = parser.parse_args()
    if args.quick:
        args.tex_size, args.res, args.steps, args.views = 64, 32, 80, 48
    torch.set_num_threads(args.threads)
    results = run(args.tex_size, args.res, args.steps, args.views, seed=args.seed, out=args.out)
    print(table(results))
    print(f"wrote {args.out / 'nvdiffrast_texture_mip.png'}")


if __name__ == "__main__":
    main()
