"""docs/images/nvdiffrast_antialias.png: glsplat.nvdiffrast's antialias, before and after, on an edge crop.

    .venv/bin/python demos/nvdiffrast_antialias.py [--out docs/images/nvdiffrast_antialias.png]

Spot at 512 x 512 through the nvdiffrast-style pipeline (rasterize -> interpolate -> antialias), one
color over a white background; the 24 x 24 crop where antialias changes the most pixels, enlarged 10
times, without and with antialias.
"""
import argparse
from pathlib import Path

import numpy as np
import torch

import glsplat
import glsplat.nvdiffrast as dr
from glsplat.images import save_image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs/images/nvdiffrast_antialias.png"))
    args = parser.parse_args()
    mesh = glsplat.load_example("spot").normalized()
    camera = glsplat.Camera.orbit(30.0, 15.0, 2.5, image_size=(512, 512))
    glctx = dr.RasterizeCudaContext()
    pos, tri = camera.project(mesh.verts), mesh.faces.to(torch.int32)
    rast, _ = dr.rasterize(glctx, pos, tri, (512, 512))
    color = torch.tensor([[0.85, 0.35, 0.1]]).expand(mesh.verts.shape[0], 3).contiguous()
    color, _ = dr.interpolate(color, rast, tri)
    color = torch.where(rast[..., 3:] > 0, color, 1.0)  # white background
    smooth = dr.antialias(color, rast, pos, tri)
    # The 24 x 24 window where antialias changes the most pixels (nvdiffrast's method blends a
    # silhouette pixel only where the triangle covering its center owns the silhouette edge).
    changed = (smooth != color).any(-1)[0].flip(0).float()  # top-down rows
    counts = torch.nn.functional.avg_pool2d(changed[None, None], 24, stride=1)[0, 0]
    i, j = divmod(int(counts.argmax()), counts.shape[1])
    i, j = i + 12, j + 12
    covered = rast[..., 3] > 0
    across = int((covered[:, :, 1:] != covered[:, :, :-1]).sum() + (covered[:, 1:] != covered[:, :-1]).sum())
    print(f"{int(changed.sum())} pixels changed; {across} pixel pairs across the silhouette against the background")
    crops = []
    for image in (color, smooth):
        top = image[0].flip(0).clamp(0, 1).numpy()  # nvdiffrast's rows are bottom-up
        crop = top[i - 12:i + 12, j - 12:j + 12]
        crops.append(np.kron(crop, np.ones((10, 10, 1))))
    gap = np.ones((240, 8, 3))
    picture = np.concatenate([crops[0], gap, crops[1]], 1)
    save_image(args.out, torch.from_numpy(picture))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
