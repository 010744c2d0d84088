"""The fast splat against a slow, obviously-correct loop written from DESIGN.md steps 5-8 (issue item 8)."""
import math

import torch

import glsplat
from glsplat.splat import EPS, SCALE, SIGMA

HEIGHT, WIDTH = 8, 10


def reference_splat(colors, clip, rast, faces):
    """DESIGN.md steps 5-8, one sample and one tap at a time, in torch scalar ops (autograd works).

    colors ``[B, K, H, W, 4]`` straight RGBA, clip ``[B, V, 4]``, rast from ``glsplat.rasterize``,
    faces ``[F, 3]``. Returns premultiplied RGBA ``[B, H, W, 4]``.
    """
    batch, layers, height, width = rast.tri_id.shape
    dtype = colors.dtype
    zero = torch.zeros(4, dtype=dtype)
    out = []
    for b in range(batch):
        # S+, S0, S-: one premultiplied RGBA accumulator (weight in alpha) per target pixel.
        acc = {name: [[zero for _ in range(width)] for _ in range(height)] for name in "+0-"}

        def depths(i, j):
            """Window depths of pixel (i, j)'s layers; outside the image all 1.0."""
            if 0 <= i < height and 0 <= j < width:
                return [float(rast.depth[b, l, i, j]) for l in range(layers)]
            return [1.0] * layers

        for l in range(layers):
            for i in range(height):
                for j in range(width):
                    face = int(rast.tri_id[b, l, i, j]) - 1
                    if face < 0:  # background: alpha 0, contributes nothing
                        continue
                    # Step 5: the splat position, blended from the clip-space corners.
                    b0, b1 = float(rast.bary[b, l, i, j, 0]), float(rast.bary[b, l, i, j, 1])
                    weights = (b0, b1, 1 - b0 - b1)
                    point = sum(wk * clip[b, int(faces[face, k])] for k, wk in enumerate(weights))
                    x = (point[0] / point[3] + 1) / 2 * width
                    y = (1 - point[1] / point[3]) / 2 * height
                    rgb, alpha = colors[b, l, i, j, :3], colors[b, l, i, j, 3]
                    sample = torch.cat([rgb, torch.ones(1, dtype=dtype)])
                    z_p = depths(i, j)
                    for dy in (-1, 0, 1):
                        for dx in (-1, 0, 1):
                            qi, qj = i + dy, j + dx
                            # Step 6: Gaussian of the offset from the splat to q's center.
                            d2 = (qj + 0.5 - x) ** 2 + (qi + 0.5 - y) ** 2
                            weight = SCALE * torch.exp(-d2 / (2 * SIGMA**2)) * alpha
                            # Step 7: which buffer at q.
                            z_q = depths(qi, qj)
                            dist_a = [abs(z_p[m] - z_q[0]) for m in range(layers)]
                            dist_b = [abs(z_q[m] - z_p[0]) for m in range(layers)]
                            A = min(range(layers), key=lambda m: dist_a[m])  # first argmin
                            B = min(range(layers), key=lambda m: dist_b[m])
                            s = -B if dist_b[B] < dist_a[A] else A
                            name = "+" if s > l else ("0" if s == l else "-")
                            if 0 <= qi < height and 0 <= qj < width:
                                acc[name][qi][qj] = acc[name][qi][qj] + weight * sample
        # Step 8: normalize each buffer by max(weight, 1), composite back to front.
        image = []
        for i in range(height):
            row = []
            for j in range(width):
                norm = {n: acc[n][i][j] / torch.clamp(acc[n][i][j][3], min=1.0) for n in "+0-"}
                pixel = norm["-"]
                pixel = norm["0"] + (1 - norm["0"][3]) * pixel
                pixel = norm["+"] + (1 - norm["+"][3]) * pixel
                row.append(pixel)
            image.append(torch.stack(row))
        out.append(torch.stack(image))
    return torch.stack(out)


def random_scene(seed, batch=2, count=5):
    """Random overlapping triangles with perspective, some clockwise; float64 leaf clip."""
    g = torch.Generator().manual_seed(seed)
    rand = lambda *shape: torch.rand(*shape, generator=g, dtype=torch.float64)
    center = rand(batch, count, 1, 2) * 1.0 - 0.5
    radius = 0.5 + 0.7 * rand(batch, count, 1, 1)
    angles = rand(batch, count, 1) * 2 * math.pi + torch.tensor([0.0, 2.1, 4.2], dtype=torch.float64)
    xy = center + radius * torch.stack([angles.cos(), angles.sin()], -1)
    z = rand(batch, count, 3, 1) * 1.6 - 0.8
    w = 0.5 + 2.5 * rand(batch, count, 3, 1)
    clip = torch.cat([torch.cat([xy, z], -1) * w, w], -1).reshape(batch, -1, 4)
    faces = torch.arange(3 * count).reshape(count, 3)
    faces[3] = faces[3].flip(-1)  # one back face, culled
    return clip.requires_grad_(True), faces, g


def _compare(ctx, seed, layers):
    clip, faces, g = random_scene(seed)
    rast = glsplat.rasterize(ctx, clip, faces, (HEIGHT, WIDTH), layers=layers)
    covered = rast.tri_id > 0
    assert covered[:, -1].any(), "the deepest layer should be non-empty"
    colors = torch.rand((*rast.tri_id.shape, 4), generator=g, dtype=torch.float64)
    colors[..., 3] = 0.3 + 0.7 * colors[..., 3]  # alpha != 1 too: tap weight = gauss * alpha
    colors.requires_grad_(True)
    probe = torch.randn((2, HEIGHT, WIDTH, 4), generator=g, dtype=torch.float64)

    fast = glsplat.splat(colors, clip, rast, faces, silhouette="splat")
    fast_grads = torch.autograd.grad((fast * probe).sum(), (colors, clip))
    ref = reference_splat(colors, clip, rast, faces)
    ref_grads = torch.autograd.grad((ref * probe).sum(), (colors, clip))

    assert fast.shape == ref.shape == (2, HEIGHT, WIDTH, 4)
    assert fast.dtype == torch.float64
    assert ref[..., 3].max() > 0.5 and (ref[..., 3] == 0).any()  # covered and background pixels
    assert (fast - ref).abs().max() < 1e-10
    for got, want in zip(fast_grads, ref_grads):
        assert want.abs().max() > 1e-3  # gradients are really there
        assert (got - want).abs().max() < 1e-10
    return rast


def test_matches_reference_one_layer(ctx):
    _compare(ctx, seed=0, layers=1)


def test_matches_reference_three_layers(ctx):
    rast = _compare(ctx, seed=1, layers=3)
    # The scene exercises the layer rule: S+ and S- both receive samples somewhere.
    clip, faces, _ = random_scene(1)
    colors = torch.ones((*rast.tri_id.shape, 4), dtype=torch.float64)
    buffers = glsplat.splat_buffers(colors, clip, rast, faces, silhouette="splat")
    assert buffers.front[..., 3].max() > 0.05 and buffers.back[..., 3].max() > 0.05


def test_design_constants():
    assert SIGMA == 0.5 and EPS == 0.05
    tap = lambda d2: SCALE * math.exp(-d2 / (2 * SIGMA**2))
    assert round(tap(0), 4) == 0.6503
    assert round(tap(1), 4) == 0.0880
    assert round(tap(2), 4) == 0.0119
    assert abs(tap(0) + 4 * tap(1) + 4 * tap(2) - 1.05) < 1e-12


def test_single_centered_splat_has_design_taps(ctx):
    """One opaque sample (alpha 0 everywhere else) spreads exactly the DESIGN taps around it."""
    clip = torch.tensor([[-3.0, -3.0, 0.0, 1.0], [3.0, -3.0, 0.0, 1.0], [0.0, 3.0, 0.0, 1.0]],
                        dtype=torch.float64)
    faces = torch.tensor([[0, 1, 2]])
    rast = glsplat.rasterize(ctx, clip, faces, (HEIGHT, WIDTH))
    assert (rast.tri_id == 1).all()
    colors = torch.zeros((1, 1, HEIGHT, WIDTH, 4), dtype=torch.float64)
    colors[0, 0, 4, 6] = torch.tensor([0.2, 0.4, 0.8, 1.0])
    alpha = glsplat.splat(colors, clip, rast, faces, silhouette="splat")[0, ..., 3]
    expected = torch.zeros(HEIGHT, WIDTH, dtype=torch.float64)
    expected[3:6, 5:8] = torch.tensor([[0.0119, 0.0880, 0.0119],
                                       [0.0880, 0.6503, 0.0880],
                                       [0.0119, 0.0880, 0.0119]], dtype=torch.float64)
    assert (alpha - expected).abs().max() < 1e-4
    assert abs(alpha.sum().item() - 1.05) < 1e-5
