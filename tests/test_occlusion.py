"""Occlusion (issue item 6): two overlapping surfaces at different depths, ``layers=2``.

Scene, in pixels of a 32 x 32 image (x right, y down):

* F, the front surface (NDC z = -0.5): a rectangle of two triangles spanning x 2.3..18.3,
  y 2.3..29.7, with its right edge at x = 18.3.
* Hb, the hidden surface (NDC z = +0.5): a strip of four triangles spanning y 8.3..24.3, with
  vertices a, b at x = 6.3 (its left edge a-b lies under F, 4 px inside F's left edge), c, d at
  x = 12.3 (6 px inside F's right edge) and e, f at x = 27.3 (outside F: Hb shows to the right
  of F). The left quad (a, c, d), (a, d, b) lies entirely under F, more than 2 px from F's
  edges; a and b belong to no other triangle, so moving them must change nothing visible.

Every vertex has its own w (perspective), colors are constant per surface (vertex colors with
alpha 1, so a layer's alpha is its coverage mask).
"""
import pytest
import torch

import glsplat

SIZE = 32
RED = (0.9, 0.1, 0.1)
BLUE = (0.1, 0.2, 0.9)
Z_FRONT, Z_BACK = -0.5, 0.5

FRONT = [(2.3, 2.3), (18.3, 2.3), (18.3, 29.7), (2.3, 29.7)]  # vertices 0..3
BACK = [(6.3, 8.3), (6.3, 24.3), (12.3, 8.3), (12.3, 24.3), (27.3, 8.3), (27.3, 24.3)]  # a..f: 4..9
A, B, C, D, E, F_ = range(4, 10)
FRONT_RIGHT = [1, 2]
FACES = [(0, 1, 2), (0, 2, 3), (A, C, D), (A, D, B), (C, E, F_), (C, F_, D)]
HIDDEN_IDS = (3, 4, 5, 6)  # tri_id of Hb's faces
W_PER_VERTEX = [1.0, 1.3, 0.8, 1.5, 1.2, 0.9, 1.4, 1.1, 0.7, 1.6]


def scene(moves=None):
    """Leaf clip coordinates ``[1, 10, 4]`` (float64, requires grad), faces (CCW), colors.

    ``moves`` maps a vertex index to a (dx, dy) shift in pixels.
    """
    moves = moves or {}
    rows = []
    for v, ((x, y), z) in enumerate(zip(FRONT + BACK, [Z_FRONT] * 4 + [Z_BACK] * 6)):
        dx, dy = moves.get(v, (0.0, 0.0))
        w = W_PER_VERTEX[v]
        ndc_x, ndc_y = 2 * (x + dx) / SIZE - 1, 1 - 2 * (y + dy) / SIZE
        rows.append([ndc_x * w, ndc_y * w, z * w, w])
    clip = torch.tensor([rows], dtype=torch.float64, requires_grad=True)
    faces = []
    for face in FACES:  # orient counter-clockwise in NDC, keeping corner 0
        p = [(rows[v][0] / rows[v][3], rows[v][1] / rows[v][3]) for v in face]
        area = (p[1][0] - p[0][0]) * (p[2][1] - p[0][1]) - (p[2][0] - p[0][0]) * (p[1][1] - p[0][1])
        faces.append(face if area > 0 else (face[0], face[2], face[1]))
    faces = torch.tensor(faces)
    rgba = torch.tensor([RED + (1.0,)] * 4 + [BLUE + (1.0,)] * 6, dtype=torch.float64)
    return clip, faces, rgba


def render(ctx, clip, faces, rgba, layers=2):
    rast = glsplat.rasterize(ctx, clip, faces, (SIZE, SIZE), layers=layers)
    colors = glsplat.interpolate(rgba, rast, faces)
    return rast, colors, glsplat.splat(colors, clip, rast, faces, silhouette="splat")


def pixel_centers_inside(x0, x1, y0, y1, margin=0.0):
    """bool ``[SIZE, SIZE]``: pixel centers inside the box shrunk by ``margin`` pixels."""
    c = torch.arange(SIZE, dtype=torch.float64) + 0.5
    inside_x = (c > x0 + margin) & (c < x1 - margin)
    inside_y = (c > y0 + margin) & (c < y1 - margin)
    return inside_y[:, None] & inside_x[None, :]


OVERLAP = pixel_centers_inside(6.3, 18.3, 8.3, 24.3)  # Hb under F
INTERIOR = pixel_centers_inside(6.3, 18.3, 8.3, 24.3, margin=1.0)  # ... with all 3x3 neighbors


def test_back_layer_is_peeled_and_fills_s_minus(ctx):
    clip, faces, rgba = scene()
    rast = glsplat.rasterize(ctx, clip, faces, (SIZE, SIZE), layers=2)
    assert OVERLAP.sum() > 100
    front_ids = rast.tri_id[0, 0][OVERLAP]
    back_ids = rast.tri_id[0, 1][OVERLAP]
    assert ((front_ids == 1) | (front_ids == 2)).all()
    assert sum((back_ids == i) for i in HIDDEN_IDS).bool().all()  # Hb really is layer 1 there
    assert (rast.depth[0, 0][OVERLAP] - 0.25).abs().max() < 1e-6  # window depth of z = -0.5
    assert (rast.depth[0, 1][OVERLAP] - 0.75).abs().max() < 1e-6

    colors = glsplat.interpolate(rgba, rast, faces)
    buffers = glsplat.splat_buffers(colors, clip, rast, faces, silhouette="splat")
    back = buffers.back[0]
    # The occluded region of S- is filled with Hb's color (opaque inside, a soft edge of
    # alpha ~0.94 along Hb's own hidden edges) ...
    assert (back[..., 3][INTERIOR] == 1).all()
    assert (back[..., 3][OVERLAP] > 0.8).all()
    blue = torch.tensor(BLUE, dtype=back.dtype)
    assert (back[..., :3][INTERIOR] - blue).abs().max() < 1e-6
    # ... including along F's right edge (column 17, the last one inside F), where Hb's
    # visible samples in column 18 also land behind F's surface.
    edge_rows = slice(10, 23)
    assert (back[edge_rows, 17, 3] == 1).all()
    assert (back[edge_rows, 17, :3] - blue).abs().max() < 1e-6
    # S- is empty where nothing is hidden (F's pixels away from Hb, and Hb's visible part).
    assert back[pixel_centers_inside(2.3, 18.3, 26.5, 29.7)][..., 3].abs().max() == 0
    assert back[pixel_centers_inside(20.0, 27.3, 8.3, 24.3, margin=1.5)][..., 3].abs().max() == 0
    # The hidden color does not leak into the image: F's color in the overlap (away from
    # F's right edge, where the occlusion boundary is soft).
    image = glsplat.splat(colors, clip, rast, faces, silhouette="splat")[0]
    red = torch.tensor(RED + (1.0,), dtype=image.dtype)
    assert (image[INTERIOR] - red).abs().max() < 1e-6

    # With one layer nothing is peeled and S- stays empty: the fill above comes from peeling.
    rast1 = glsplat.rasterize(ctx, clip, faces, (SIZE, SIZE), layers=1)
    colors1 = glsplat.interpolate(rgba, rast1, faces)
    assert glsplat.splat_buffers(colors1, clip, rast1, faces, silhouette="splat").back.abs().max() == 0


def test_hidden_edge_changes_nothing(ctx):
    clip, faces, rgba = scene()
    rast, colors, image = render(ctx, clip, faces, rgba)
    target = torch.rand(image.shape, generator=torch.Generator().manual_seed(1), dtype=image.dtype)
    loss = ((image - target) ** 2).sum()
    loss.backward()
    grad = clip.grad[0]
    # Hb's visible vertices do get gradient (the machinery works here) ...
    assert grad[[E, F_], :2].abs().max() > 1e-2
    # ... its vertices a, b, whose triangles lie entirely under F, get exactly none.
    assert grad[[A, B]].abs().max() < 1e-12

    # Finite moves of a and b (up to a pixel, still > 2 px under F) change the raster's
    # back layer but not the image.
    for moves in ({A: (-0.9, 0.4), B: (0.7, -0.6)}, {A: (1.0, 1.0)}, {B: (-1.0, 0.0)}):
        moved_rast, _, moved = render(ctx, *scene(moves))
        assert not torch.equal(moved_rast.tri_id[:, 1], rast.tri_id[:, 1])
        assert torch.equal(moved_rast.tri_id[:, 0], rast.tri_id[:, 0])
        assert (moved - image).abs().max().item() < 1e-12


@pytest.mark.parametrize("shift", [1.5, -1.5])
def test_front_edge_over_hidden_surface_gets_gradient(ctx, shift):
    """Moving F's right edge over Hb: a loss against the shifted scene pulls the edge that way."""
    with torch.no_grad():
        _, _, target = render(ctx, *scene({v: (shift, 0.0) for v in FRONT_RIGHT}))
    clip, faces, rgba = scene()
    _, _, image = render(ctx, clip, faces, rgba)
    # Only rows where F's right edge lies over Hb (an occlusion boundary, not a silhouette over
    # the background), and only columns near that edge.
    window = (slice(None), slice(10, 23), slice(12, 26))
    assert (image[window] - target[window]).abs().max() > 0.5  # the targets really differ there
    loss = ((image[window] - target[window]) ** 2).sum()
    loss.backward()
    grad = clip.grad[0]
    # d loss / d ndc_x of F's right vertices = w * d loss / d clip_x (w, clip_y, clip_z fixed).
    w = torch.tensor([W_PER_VERTEX[v] for v in FRONT_RIGHT], dtype=grad.dtype)
    dx = (grad[FRONT_RIGHT, 0] * w).sum()
    assert abs(dx) > 0.5
    assert torch.sign(dx) == -torch.sign(torch.tensor(shift))  # descent moves the edge to the target
    # Hb's vertices get no gradient through F's opaque interior.
    assert grad[[A, B]].abs().max() < 1e-12
