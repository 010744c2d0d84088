"""Rasterization conventions, checked against a tiny pure-numpy reference rasterizer.

Conventions under test (DESIGN.md step 3 and the issue): images are row 0 = top; pixel (i, j) is
sampled at its center x = j + 0.5, y = i + 0.5 (y down), i.e. ndc = (2x/W - 1, 1 - 2y/H);
tri_id is face index + 1 (0 = background); bary are the perspective-correct weights of corners
0 and 1; depth is window depth ndc_z * 0.5 + 0.5 on a 24-bit grid, exactly 1.0 on background;
front faces run counter-clockwise in NDC; layer k is the k-th covering fragment in the order
(depth, face id).
"""
import math

import numpy as np
import pytest
import torch

import glsplat

H, W = 24, 32  # non-square on purpose: catches H/W swaps
DEPTH_STEPS = 16777215.0
EDGE_TOL_PX = 0.01  # pixel centers this close to an edge may go either way (fill rule, snapping)
DEPTH_TIE = 1e-6  # fragments this close in depth may be ordered either way (24-bit rounding)


# ----------------------------------------------------------------------------- reference
def _seg_distance(px, py, ax, ay, bx, by):
    """Distance from points (px, py) to the segment a-b (all in pixels)."""
    ex, ey = bx - ax, by - ay
    t = np.clip(((px - ax) * ex + (py - ay) * ey) / (ex * ex + ey * ey), 0.0, 1.0)
    return np.hypot(px - (ax + t * ex), py - (ay + t * ey))


def reference_rasterize(clip, faces, height, width, layers, cull):
    """Obviously-correct rasterizer: every pixel center against every triangle, in float64.

    Args: clip ``[V, 4]`` (w > 0 everywhere, no clipping needed), faces ``[F, 3]``.
    Returns tri_id ``[K, H, W]``, bary ``[K, H, W, 2]``, depth ``[K, H, W]`` and a bool
    ``[H, W]`` mask of ambiguous pixels (center within EDGE_TOL_PX of an edge, or two of the
    first K + 1 fragments tied in depth) that the comparison skips.
    """
    clip = np.asarray(clip, dtype=np.float64)
    faces = np.asarray(faces)
    ii, jj = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    cx, cy = jj + 0.5, ii + 0.5  # pixel centers, image coordinates (y down)
    nx, ny = 2 * cx / width - 1, 1 - 2 * cy / height  # the same points in NDC (y up)
    fragments = [[[] for _ in range(width)] for _ in range(height)]
    ambiguous = np.zeros((height, width), dtype=bool)
    for f, corners in enumerate(faces):
        c = clip[corners]
        assert (c[:, 3] > 0).all()
        ndc = c[:, :3] / c[:, 3:]
        (x0, y0, _), (x1, y1, _), (x2, y2, _) = ndc
        area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)  # > 0: counter-clockwise
        if area == 0 or (cull and area < 0):
            continue

        def edge(ax, ay, bx, by):
            return (bx - ax) * (ny - ay) - (by - ay) * (nx - ax)

        lam = np.stack([edge(x1, y1, x2, y2), edge(x2, y2, x0, y0), edge(x0, y0, x1, y1)]) / area
        inside = (lam >= 0).all(0)
        # Perspective-correct barycentrics: screen-space ones over w, renormalized.
        q = lam / c[:, 3, None, None]
        bary = q / q.sum(0)
        z = (lam * ndc[:, 2, None, None]).sum(0)  # NDC z is affine in screen space
        depth = np.round((z * 0.5 + 0.5) * DEPTH_STEPS) / DEPTH_STEPS
        # Edge ambiguity, measured in pixels.
        px = (ndc[:, 0] + 1) / 2 * width
        py = (1 - ndc[:, 1]) / 2 * height
        for a, b in ((0, 1), (1, 2), (2, 0)):
            ambiguous |= _seg_distance(cx, cy, px[a], py[a], px[b], py[b]) < EDGE_TOL_PX
        for i, j in zip(*np.nonzero(inside)):
            fragments[i][j].append((depth[i, j], f + 1, bary[0, i, j], bary[1, i, j]))

    tri_id = np.zeros((layers, height, width), dtype=np.int32)
    out_bary = np.zeros((layers, height, width, 2))
    out_depth = np.ones((layers, height, width))
    for i in range(height):
        for j in range(width):
            frags = sorted(fragments[i][j])
            depths = [d for d, *_ in frags[:layers + 1]]
            if any(b - a < DEPTH_TIE for a, b in zip(depths, depths[1:])):
                ambiguous[i, j] = True
            for k, (d, fid, b0, b1) in enumerate(frags[:layers]):
                tri_id[k, i, j], out_depth[k, i, j] = fid, d
                out_bary[k, i, j] = b0, b1
    return tri_id, out_bary, out_depth, ambiguous


def random_scene(generator, count, flip_some=False):
    """``count`` random, overlapping, CCW triangles with perspective (w differs per corner)."""
    rand = lambda *shape: torch.rand(*shape, generator=generator, dtype=torch.float64)
    center = rand(count, 1, 2) * 1.2 - 0.6
    radius = 0.35 + 0.5 * rand(count, 1, 1)
    angles = rand(count, 1) * 2 * math.pi + torch.tensor([0.0, 2.1, 4.2], dtype=torch.float64)
    angles = angles + 0.4 * (rand(count, 3) - 0.5)  # irregular, still counter-clockwise
    xy = center + radius * torch.stack([angles.cos(), angles.sin()], -1)
    z = rand(count, 3, 1) * 1.6 - 0.8  # tilted: faces interpenetrate
    w = 0.5 + 3.0 * rand(count, 3, 1)
    clip = torch.cat([torch.cat([xy, z], -1) * w, w], -1).reshape(-1, 4)
    faces = torch.arange(3 * count).reshape(count, 3)
    if flip_some:  # every other face clockwise
        faces[1::2] = faces[1::2].flip(-1)
    return clip.float(), faces


def compare(rast, b, ref):
    """Assert that the batch element ``b`` of ``rast`` equals the reference off ambiguous pixels."""
    tri_id, bary, depth, ambiguous = ref
    keep = torch.from_numpy(~ambiguous)
    got_id = rast.tri_id[b]
    assert keep.float().mean() > 0.9, "too many ambiguous pixels for a meaningful comparison"
    mismatch = (got_id != torch.from_numpy(tri_id)) & keep
    assert not mismatch.any(), f"tri_id differs at (k, i, j) = {mismatch.nonzero().tolist()[:10]}"
    covered = (got_id > 0) & keep
    assert covered.any()
    bary_err = (rast.bary[b].double() - torch.from_numpy(bary))[covered].abs().max()
    assert bary_err < 1e-4, f"barycentrics off by {bary_err}"
    depth_err = (rast.depth[b].double() - torch.from_numpy(depth))[keep.expand_as(got_id)].abs().max()
    assert depth_err < 1e-6, f"depth off by {depth_err}"


# ----------------------------------------------------------------------------- conventions
def _tiny_triangle(cx, cy, r=0.08, z=0.0, w=1.0):
    """CCW triangle around NDC (cx, cy)."""
    pts = [(cx + r * math.cos(a), cy + r * math.sin(a)) for a in (0.3, 2.4, 4.5)]
    return torch.tensor([[x * w, y * w, z * w, w] for x, y in pts])


def test_upper_left_lands_upper_left(ctx):
    faces = torch.tensor([[0, 1, 2]])
    for (cx, cy), rows, cols in [((-0.8, 0.8), (0, H // 4), (0, W // 4)),
                                 ((0.8, -0.8), (3 * H // 4, H), (3 * W // 4, W)),
                                 ((0.8, 0.8), (0, H // 4), (3 * W // 4, W))]:
        rast = glsplat.rasterize(ctx, _tiny_triangle(cx, cy), faces, (H, W))
        assert rast.tri_id.shape == (1, 1, H, W)
        hit = (rast.tri_id[0, 0] == 1).nonzero()
        assert len(hit) > 0
        assert hit[:, 0].min() >= rows[0] and hit[:, 0].max() < rows[1], (cx, cy, hit)
        assert hit[:, 1].min() >= cols[0] and hit[:, 1].max() < cols[1], (cx, cy, hit)


def test_pixel_centers_exact(ctx):
    """A tiny triangle around the center of pixel (i, j) covers exactly that pixel."""
    faces = torch.tensor([[0, 1, 2]])
    for i, j in [(0, 0), (3, 29), (20, 5), (H - 1, W - 1)]:
        ndc = (2 * (j + 0.5) / W - 1, 1 - 2 * (i + 0.5) / H)
        rast = glsplat.rasterize(ctx, _tiny_triangle(*ndc, r=0.02, w=2.0), faces, (H, W))
        assert (rast.tri_id[0, 0] == 1).nonzero().tolist() == [[i, j]]
        # Window depth of NDC z = 0 is 0 * 0.5 + 0.5.
        assert rast.depth[0, 0, i, j].item() == pytest.approx(0.5, abs=1e-6)


@pytest.mark.parametrize("layers", [1, 3])
def test_matches_reference(ctx, layers):
    generator = torch.Generator().manual_seed(layers)
    clip, faces = random_scene(generator, 6)
    rast = glsplat.rasterize(ctx, clip, faces, (H, W), layers=layers)
    ref = reference_rasterize(clip.double().numpy(), faces.numpy(), H, W, layers, cull=True)
    assert (torch.from_numpy(ref[0]) > 0).sum(0).max() >= min(layers, 3), "scene lacks overlap"
    compare(rast, 0, ref)


@pytest.mark.parametrize("cull", [True, False])
def test_matches_reference_mixed_winding(ctx, cull):
    generator = torch.Generator().manual_seed(7)
    clip, faces = random_scene(generator, 6, flip_some=True)
    rast = glsplat.rasterize(ctx, clip, faces, (H, W), layers=3, cull_backfaces=cull)
    compare(rast, 0, reference_rasterize(clip.double().numpy(), faces.numpy(), H, W, 3, cull))


def test_output_types_and_background(ctx):
    clip, faces = random_scene(torch.Generator().manual_seed(3), 2)
    rast = glsplat.rasterize(ctx, clip, faces, (H, W), layers=2)
    assert rast.tri_id.dtype == torch.int32 and rast.tri_id.shape == (1, 2, H, W)
    assert rast.bary.dtype == torch.float32 and rast.bary.shape == (1, 2, H, W, 2)
    assert rast.depth.dtype == torch.float32 and rast.depth.shape == (1, 2, H, W)
    background = rast.tri_id == 0
    assert background.any() and (~background).any()
    assert (rast.depth[background] == 1.0).all()
    assert (rast.depth[~background] < 1.0).all()
    assert (rast.bary[background] == 0).all()
    # Depth is on the 24-bit grid: each value is the float32 nearest to some k / (2**24 - 1).
    k = (rast.depth.double() * DEPTH_STEPS).round()
    assert torch.equal((k / DEPTH_STEPS).float(), rast.depth)
    assert len(rast.depth[~background].unique()) > 100  # a real gradient of depths, not a constant


# ----------------------------------------------------------------------------- culling
def test_backface_culling(ctx):
    ccw = _tiny_triangle(0.1, -0.1, r=0.6, z=0.5)  # behind
    cw = _tiny_triangle(0.0, 0.0, r=0.6, z=-0.5)[[0, 2, 1]]  # in front, clockwise
    clip = torch.cat([cw, ccw])
    faces = torch.tensor([[0, 1, 2], [3, 4, 5]])

    only_cw = glsplat.rasterize(ctx, cw, faces[:1], (H, W))
    assert (only_cw.tri_id == 0).all()
    shown = glsplat.rasterize(ctx, cw, faces[:1], (H, W), cull_backfaces=False)
    assert (shown.tri_id == 1).sum() > 50

    culled = glsplat.rasterize(ctx, clip, faces, (H, W), layers=2)
    unculled = glsplat.rasterize(ctx, clip, faces, (H, W), layers=2, cull_backfaces=False)
    both = (unculled.tri_id[0, 0] == 1) & (unculled.tri_id[0, 1] == 2)
    assert both.sum() > 50  # the CW face really is in front of the CCW one
    # Culled, the CW face is not a layer: the CCW face moves up to layer 0, layer 1 is empty.
    assert (culled.tri_id[0, 0][both] == 2).all()
    assert (culled.tri_id[0, 1] == 0).all()
    assert (culled.depth[0, 1] == 1.0).all()


# ----------------------------------------------------------------------------- batches
def test_batch_equals_single_calls(ctx):
    clip_a, faces = random_scene(torch.Generator().manual_seed(11), 5)
    clip_b, _ = random_scene(torch.Generator().manual_seed(12), 5)
    batch = glsplat.rasterize(ctx, torch.stack([clip_a, clip_b]), faces, (H, W), layers=2)
    assert batch.tri_id.shape == (2, 2, H, W)
    assert not torch.equal(batch.tri_id[0], batch.tri_id[1])
    for b, clip in enumerate([clip_a, clip_b]):
        single = glsplat.rasterize(ctx, clip[None], faces, (H, W), layers=2)
        assert torch.equal(batch.tri_id[b], single.tri_id[0])
        assert torch.equal(batch.bary[b], single.bary[0])
        assert torch.equal(batch.depth[b], single.depth[0])
        compare(batch, b, reference_rasterize(clip.double().numpy(), faces.numpy(), H, W, 2, True))


def _assert_same_as_single_views(ctx, batch, clip, faces, size, layers, cull=True):
    """Every view of ``batch`` equals rasterizing that view alone, bit for bit."""
    for b in range(clip.shape[0]):
        single = glsplat.rasterize(ctx, clip[b:b + 1], faces, size, layers=layers, cull_backfaces=cull)
        assert torch.equal(batch.tri_id[b], single.tri_id[0]), b
        assert torch.equal(batch.bary[b], single.bary[0]), b
        assert torch.equal(batch.depth[b], single.depth[0]), b


def test_batch_split_into_passes_equals_single_views(ctx, monkeypatch):
    """Seven views at most three per draw: passes of 3, 3 and 1 (padded to 3) views."""
    clip = torch.stack([random_scene(torch.Generator().manual_seed(20 + b), 6)[0] for b in range(7)])
    faces = random_scene(torch.Generator().manual_seed(20), 6)[1]
    monkeypatch.setattr(ctx, "max_views", 3)
    assert ctx._pass_views(7, H, W) == 3
    batch = glsplat.rasterize(ctx, clip, faces, (H, W), layers=2)
    assert batch.tri_id.shape == (7, 2, H, W)
    _assert_same_as_single_views(ctx, batch, clip, faces, (H, W), layers=2)
    compare(batch, 6, reference_rasterize(clip[6].double().numpy(), faces.numpy(), H, W, 2, True))


def test_views_per_pass_respect_limits(ctx, monkeypatch):
    monkeypatch.setattr(ctx, "max_views", 4)
    assert [ctx._pass_views(b, H, W) for b in (1, 4, 5, 8, 9)] == [1, 4, 3, 4, 3]
    monkeypatch.setattr(ctx, "max_views", 1)
    assert ctx._pass_views(8, H, W) == 1
    big = int(math.isqrt(glsplat.context.PASS_PIXELS // 2))
    monkeypatch.setattr(ctx, "max_views", 64)
    assert ctx._pass_views(8, big, big) == 2


def test_large_triangles_stay_in_their_view(ctx):
    """Triangles reaching far past the image edges (and past the other views' images, were they
    tiled) are clipped to their own view: the batch equals the views rendered one by one."""
    clip, faces = random_scene(torch.Generator().manual_seed(31), 8)
    views = []
    for b, (dx, dy, scale) in enumerate([(0.0, 0.0, 4.0), (1.5, -0.3, 6.0), (-0.4, 2.0, 5.0), (0.9, 0.9, 9.0)]):
        ndc = clip[:, :3] / clip[:, 3:]
        ndc = torch.cat([ndc[:, :1] * scale + dx, ndc[:, 1:2] * scale + dy, ndc[:, 2:]], 1)
        views.append(torch.cat([ndc * clip[:, 3:], clip[:, 3:]], 1))
    clip = torch.stack(views)
    batch = glsplat.rasterize(ctx, clip, faces, (H, W), layers=2)
    covered = (batch.tri_id[:, 0] > 0).flatten(1).float().mean(1)
    assert (covered > 0.2).all() and (covered < 1).any(), covered  # partly off-screen, not empty
    _assert_same_as_single_views(ctx, batch, clip, faces, (H, W), layers=2)


def test_batch_of_mixed_views_peels(ctx):
    """Three layers over views with different content: dense overlap, mixed winding, nothing on
    screen, a single triangle; each view matches the reference and its single-view render."""
    generator = torch.Generator().manual_seed(41)
    dense, faces = random_scene(generator, 6)
    mixed, mixed_faces = random_scene(torch.Generator().manual_seed(7), 6, flip_some=True)
    offscreen = dense + torch.tensor([10.0, 0.0, 0.0, 0.0]) * dense[:, 3:]  # x/w > 1 everywhere
    lonely = dense.clone()
    lonely[3:] = offscreen[3:]
    # One face list for all views, the identity (face f is vertices 3f..3f+2): the mixed view's
    # winding moves into the order of its vertices.
    assert torch.equal(faces.reshape(-1), torch.arange(18))
    mixed = mixed[mixed_faces.reshape(-1)]
    clip = torch.stack([dense, mixed, offscreen, lonely])
    batch = glsplat.rasterize(ctx, clip, faces, (H, W), layers=3)
    assert (batch.tri_id[2] == 0).all() and (batch.depth[2] == 1.0).all()
    assert batch.tri_id[0, 2].any() and (batch.tri_id[3] <= 1).all() and batch.tri_id[3, 0].any()
    _assert_same_as_single_views(ctx, batch, clip, faces, (H, W), layers=3)
    for b in (0, 1, 3):
        compare(batch, b, reference_rasterize(clip[b].double().numpy(), faces.numpy(), H, W, 3, True))


# ----------------------------------------------------------------------------- peeling ties
def test_coplanar_duplicates_peel_by_id(ctx):
    tri = _tiny_triangle(0.0, 0.0, r=0.7, z=0.2, w=1.5)
    clip = torch.cat([tri, tri])
    faces = torch.tensor([[0, 1, 2], [3, 4, 5]])
    rast = glsplat.rasterize(ctx, clip, faces, (H, W), layers=3)
    covered = rast.tri_id[0, 0] > 0
    assert covered.sum() > 100
    assert (rast.tri_id[0, 0][covered] == 1).all()
    assert (rast.tri_id[0, 1][covered] == 2).all()
    assert torch.equal(rast.depth[0, 0][covered], rast.depth[0, 1][covered])
    assert (rast.tri_id[0, 2] == 0).all() and (rast.depth[0, 2] == 1.0).all()
    assert (rast.tri_id[0, 1][~covered] == 0).all()


# ----------------------------------------------------------------------------- cameras
def _rotation(axis, angle):
    axis = torch.nn.functional.normalize(torch.tensor(axis, dtype=torch.float64), dim=0)
    k = torch.tensor([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return torch.eye(3, dtype=torch.float64) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k


def _covered_pixels(ctx, cam, points):
    """Pixels covered by the triangle ``points`` ``[3, 3]``, either winding."""
    clip = cam.project(points[None].to(cam.R.dtype)).float()
    rast = glsplat.rasterize(ctx, clip, torch.tensor([[0, 1, 2]]), cam.image_size, cull_backfaces=False)
    return (rast.tri_id[0, 0] > 0).nonzero().tolist()


def _tiny_world_triangle(center, right, up, r):
    return torch.stack([center + r * (math.cos(a) * right + math.sin(a) * up) for a in (0.3, 2.4, 4.5)])


def test_from_intrinsics_opencv_pixels(ctx):
    fx, fy, skew, cx, cy = 30.0, 28.0, 1.5, 15.2, 11.7
    K = torch.tensor([[fx, skew, cx], [0, fy, cy], [0, 0, 1]], dtype=torch.float64)
    R = _rotation([0.3, 1.0, 0.2], 0.4)
    t = torch.tensor([0.1, -0.2, 3.0], dtype=torch.float64)
    cam = glsplat.Camera.from_intrinsics(K, (H, W), R, t)
    assert cam.image_size == (H, W)
    for u, v in [(20, 7), (3, 19), (30, 1), (0, 0)]:
        z = 2.5 + 0.1 * u
        # The OpenCV camera point that projects to pixel (u, v): u = fx x/z + s y/z + cx, ...
        y = (v - cy) / fy * z
        x = (u - cx - skew * y / z) / fx * z
        p_cam = torch.tensor([x, y, z], dtype=torch.float64)
        p_world = R.T @ (p_cam - t)
        # A triangle of radius ~0.2 px around the point, in a plane facing the camera.
        tri = _tiny_world_triangle(p_world, R[0], R[1], r=0.2 * z / fx)
        assert _covered_pixels(ctx, cam, tri) == [[v, u]]


def test_look_at_center_and_up(ctx):
    size = (25, 33)  # odd: the image center is pixel (12, 16)
    eye = torch.tensor([2.0, 1.0, 3.0], dtype=torch.float64)
    target = torch.tensor([0.2, -0.1, 0.3], dtype=torch.float64)
    up = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
    cam = glsplat.Camera.look_at(eye, target, up, fov_y=40.0, image_size=size)
    view = torch.nn.functional.normalize(target - eye, dim=0)
    right = torch.nn.functional.normalize(torch.linalg.cross(view, up), dim=0)
    true_up = torch.linalg.cross(right, view)
    pixel = 2 * math.tan(math.radians(20)) * (target - eye).norm() / size[0]  # world size of 1 px
    assert _covered_pixels(ctx, cam, _tiny_world_triangle(target, right, true_up, 0.2 * pixel)) == [[12, 16]]
    # World up goes up in the image, world right goes right.
    above = _covered_pixels(ctx, cam, _tiny_world_triangle(target + 5 * pixel * up, right, true_up, 0.2 * pixel))
    assert len(above) == 1 and above[0][0] < 12 - 3 and abs(above[0][1] - 16) <= 1
    beside = _covered_pixels(ctx, cam, _tiny_world_triangle(target + 5 * pixel * right, right, true_up, 0.2 * pixel))
    assert beside == [[12, 21]]
