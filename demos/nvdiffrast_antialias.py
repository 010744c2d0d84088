"""docs/images/nvdiffrast_antialias.png: glsplat.nvdiffrast's antialias, before and after, on an edge crop.

    .venv/bin/python demos/nvdiffrast_antialias.py [--out docs/images/nvdiffrast_antialias.png]

Spot at 128 x 128 through the nvdiffrast-style pipeline (rasterize -> interpolate -> antialias), one
color over a white background; a 24 x 24 crop of its left edge, enlarged 10 times, without and with antialias.
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
    camera = glsplat.Camera.orbit(30.0, 15.0, 2.5, image_size=(128, 128))
    glctx = dr.RasterizeCudaContext()
    pos, tri = camera.project(mesh.verts), mesh.faces.to(torch.int32)
    rast, _ = dr.rasterize(glctx, pos, tri, (128, 128))
    color = torch.tensor([[0.85, 0.35, 0.1]]).expand(mesh.verts.shape[0], 3).contiguous()
    color, _ = dr.interpolate(color, rast, tri)
    color = torch.where(rast[..., 3:] > 0, color, 1.0)  # white background
    smooth = dr.antialias(color, rast, pos, tri)
    mask = rast[0, ..., 3].flip(0) > 0
    rows = mask.any(1).nonzero().squeeze(1)
    i = int(rows[len(rows) // 2])
    j = int(mask[i].nonzero()[0])  # the left silhouette, halfway down
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
