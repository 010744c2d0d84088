"""Render Spot, glsplat's built-in example mesh, textured and Phong-lit from four views.

Writes, into the output folder (default out/demo/):
  spot_view{0..3}.png   the renders composited over white
  spot_alpha.png        the alpha channel of view 0: coverage, with a soft ~1 px silhouette edge
  spot_alpha_zoom.png   a 24 x 24 px crop of that alpha edge, 12x nearest-neighbor, so pixels show
  untextured.png        four procedural untextured meshes with the default PhongShader over white,
                        as users' own plain OBJ files look

    python demos/render_spot.py --out out/demo --size 512 --layers 1
"""
from __future__ import annotations

import time

import torch

import demo_common
import glsplat
from glsplat.images import save_image
from glsplat.transforms import axis_angle_to_matrix

# Spot's +y is up and her head points toward -z; azimuth 0 looks at her face.
AZIMUTHS = (0.0, 60.0, 180.0, 300.0)
ELEVATION = 15.0
DISTANCE = 2.5


def camera(azimuth: float, size: int) -> glsplat.Camera:
    return glsplat.Camera.orbit(azimuth, ELEVATION, DISTANCE, fov_y=30.0, image_size=(size, size))


def untextured_meshes() -> list[glsplat.Mesh]:
    """A torus, a capsule, a lumpy sphere and a box: plain triangles, no colors or UVs; normalized."""
    import trimesh

    capsule = glsplat.load_example("capsule")  # along z: tilted, so that it reads as a capsule
    capsule = capsule.replace(verts=capsule.verts @ axis_angle_to_matrix(torch.tensor([0.9, 0.5, 0.0])).T)
    box = trimesh.creation.box((1.0, 0.6, 0.4))
    box.unmerge_vertices()  # a vertex per face corner: flat faces, sharp edges
    box = glsplat.Mesh(torch.tensor(box.vertices, dtype=torch.float32), torch.tensor(box.faces))
    return [mesh.normalized() for mesh in (glsplat.load_example("torus"), capsule, glsplat.load_example("blob"), box)]


def zoom_on_edge(alpha: torch.Tensor, crop: int, scale: int) -> torch.Tensor:
    """A ``crop`` x ``crop`` window of ``alpha`` ``[H, W]`` centered on a silhouette pixel, enlarged."""
    partial = ((alpha > 0.02) & (alpha < 0.98)).nonzero()
    # The top of the silhouette (head and horns) has the most varied edge.
    i, j = partial[0].tolist() if len(partial) else (alpha.shape[0] // 2, alpha.shape[1] // 2)
    i = min(max(i - crop // 4, 0), alpha.shape[0] - crop)
    j = min(max(j - crop // 2, 0), alpha.shape[1] - crop)
    window = alpha[i:i + crop, j:j + crop]
    return window.repeat_interleave(scale, 0).repeat_interleave(scale, 1)


def main() -> None:
    parser = demo_common.parser(__doc__, "demo")
    parser.add_argument("--size", type=int, default=512, help="image height and width in pixels")
    parser.add_argument("--layers", type=int, default=1, help="depth layers to peel")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    ctx = glsplat.Context()
    print(f"OpenGL renderer: {ctx.renderer}")
    spot = glsplat.load_example("spot").normalized()
    # A key light from the upper front plus a dim headlight, so the back view isn't dark.
    lights = [glsplat.DirectionalLight(direction=(0.4, 0.8, -0.6), color=(0.6, 0.6, 0.6)),
              glsplat.PointLight(color=(0.35, 0.35, 0.35))]
    shader = glsplat.PhongShader(lights=lights, ambient=0.25, specular=0.2)
    # One warm-up render so the timings below don't include building the GL targets.
    glsplat.render(ctx, spot, camera=camera(0.0, args.size), shader=shader, layers=args.layers)

    written = []
    for view, azimuth in enumerate(AZIMUTHS):
        start = time.perf_counter()
        rgba = glsplat.render(ctx, spot, camera=camera(azimuth, args.size), shader=shader,
                              layers=args.layers)[0]
        seconds = time.perf_counter() - start
        path = args.out / f"spot_view{view}.png"
        save_image(path, rgba, background=(1.0, 1.0, 1.0))
        written.append(path)
        print(f"view {view} (azimuth {azimuth:5.1f} deg): {args.size}x{args.size}, "
              f"{args.layers} layer(s), {seconds * 1000:.0f} ms -> {path}")
        if view == 0:
            alpha = rgba[..., 3]

    path = args.out / "spot_alpha.png"
    save_image(path, alpha[..., None])
    written.append(path)
    path = args.out / "spot_alpha_zoom.png"
    save_image(path, zoom_on_edge(alpha, min(24, args.size), 12)[..., None])
    written.append(path)
    edge = ((alpha > 0) & (alpha < 1)).sum().item()
    print(f"alpha of view 0: {edge} pixels partly covered (the soft silhouette edge) -> {written[-2]}, {written[-1]}")

    # Users' own meshes: untextured, default shader, over white.
    view = glsplat.Camera.orbit(30.0, 25.0, DISTANCE, fov_y=30.0, image_size=(args.size * 3 // 4,) * 2)
    row = [glsplat.render(ctx, mesh, view, shader=glsplat.PhongShader(), layers=args.layers,
                          background=(1.0, 1.0, 1.0))[0, ..., :3] for mesh in untextured_meshes()]
    path = args.out / "untextured.png"
    save_image(path, torch.cat(row, 1))
    written.append(path)
    print(f"four untextured meshes, default PhongShader -> {path}")
    print(f"wrote {len(written)} PNGs to {args.out}/")


if __name__ == "__main__":
    main()
