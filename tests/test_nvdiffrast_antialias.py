"""glsplat.nvdiffrast.antialias: nvdiffrast's analytic antialias, against hand-computed blends, an
obvious loop over pixel pairs (nvdiffrast's kernels transcribed), gradcheck and finite differences."""
import math

import numpy as np
import pytest
import torch
import trimesh

import glsplat.nvdiffrast as dr
from glsplat.kernels import cpu_kernels
from glsplat.nvdiffrast import analytic, ops
from glsplat.nvdiffrast.analytic import construct_topology

FG, BG, BACK = (1.0, 0.5, 0.25), (0.0, 0.25, 1.0), (0.5, 1.0, 0.0)


@pytest.fixture(scope="module")
def glctx():
    return dr.RasterizeCudaContext()


# ----------------------------------------------------------------------------------------------
# The oracle: nvdiffrast's kernels (csrc/common/antialias.cu) as a loop over pixel pairs, in floats.


def reference_antialias(color, rast, pos, tri):
    """nvdiffrast's antialias forward, one pixel pair at a time (numpy float64 in, out)."""
    edges = {}  # undirected edge -> the first two distinct opposite vertices
    for v0, v1, v2 in tri.tolist():
        if len({v0, v1, v2}) < 3:
            continue
        for a, b, across in ((v1, v2, v0), (v2, v0, v1), (v0, v1, v2)):
            seen = edges.setdefault((min(a, b), max(a, b)), [])
            if across not in seen and len(seen) < 2:
                seen.append(across)

    def opposite(a, b, own):
        seen = (edges.get((min(a, b), max(a, b)), []) + [-1, -1])[:2] if a != b else [-1, -1]
        return seen[1] if seen[0] == own else seen[0] if seen[1] == own else -1

    def same_sign(a, b):
        return math.copysign(1, a) == math.copysign(1, b)

    out = color.copy()
    batch, height, width, _ = color.shape
    for b in range(batch):
        verts = pos[b] if pos.ndim == 3 else pos
        for py in range(height):
            for px in range(width):
                for down in (0, 1):
                    qx, qy = (px + 1, py) if not down else (px, py + 1)
                    if qx >= width or qy >= height:
                        continue
                    t0, t1 = int(rast[b, py, px, 3]) - 1, int(rast[b, qy, qx, 3]) - 1
                    if t0 == t1:
                        continue
                    front = t0 if t1 < 0 or (t0 >= 0 and rast[b, py, px, 2] < rast[b, qy, qx, 2]) else t1
                    cx, cy, ds = (px, py, 1.0) if front == t0 else (qx, qy, -1.0)
                    v = tri[front].tolist()
                    across = [opposite(v[(i + 1) % 3], v[(i + 2) % 3], v[i]) for i in range(3)]

                    def project(k):  # pixel units relative to (cx, cy)'s center, x and y swapped when down
                        x = verts[k, 0] / verts[k, 3] * width / 2 - (cx + 0.5 - width / 2)
                        y = verts[k, 1] / verts[k, 3] * height / 2 - (cy + 0.5 - height / 2)
                        return (y, x) if down else (x, y)

                    p = [project(k) for k in v]
                    o = [project(a if a >= 0 else k) for a, k in zip(across, v)]

                    def area(a, b, c):
                        return (b[0] - a[0]) * (c[1] - a[1]) - (c[0] - a[0]) * (b[1] - a[1])

                    # (Areas are swap-invariant in sign pattern: each flips with the swap, as does the own one.)
                    own = area(p[0], p[1], p[2])
                    silhouette = [same_sign(area(o[i], p[(i + 1) % 3], p[(i + 2) % 3]), own) for i in range(3)]
                    if not any(silhouette):
                        continue
                    best = None  # the farthest crossing of the line y = 0 toward the other pixel
                    for i in range(3):
                        (x1, y1), (x2, y2) = p[(i + 1) % 3], p[(i + 2) % 3]
                        if same_sign(y1, y2):
                            continue
                        at = ds * (x1 - y1 * (x2 - x1) / (y2 - y1))
                        if best is None or at > best[0]:
                            best = (at, i, abs(y2 - y1) >= abs(x2 - x1))
                    if best is None or not (silhouette[best[1]] and best[2]) or not -1 / 16 < best[0] < 1 + 1 / 16:
                        continue
                    alpha = ds * (0.5 - min(max(best[0], 0.0), 1.0))
                    target = (py, px) if alpha > 0 else (qy, qx)
                    out[b, target[0], target[1]] += alpha * (color[b, qy, qx] - color[b, py, px])
    return out


# ----------------------------------------------------------------------------------------------
# Scenes.


def quad(left, right, bottom, top, z=0.0, split=False):
    """A rectangle in NDC as two triangles (corners 0 bottom left, 1 bottom right, 2 top right,
    3 top left; the diagonal 0-2 shared, or with its vertices duplicated when ``split``)."""
    corners = torch.tensor([[left, bottom, z, 1.0], [right, bottom, z, 1.0], [right, top, z, 1.0],
                            [left, top, z, 1.0]], dtype=torch.float64)
    if split:
        return corners[[0, 1, 2, 0, 2, 3]], torch.tensor([[0, 1, 2], [3, 4, 5]], dtype=torch.int32)
    return corners, torch.tensor([[0, 1, 2], [0, 2, 3]], dtype=torch.int32)


def flat_colors(rast, *colors):
    """``[B, H, W, 3]`` float64: ``colors[k]`` where ``rast``'s triangle id is k (0: empty)."""
    table = torch.tensor(colors, dtype=torch.float64)
    return table[rast[..., 3].long()]


def ndc(pixels, size):
    """The NDC coordinate of a position ``pixels`` from the image's low edge."""
    return 2 * pixels / size - 1


def rasterized_batch(glctx, pos, tri, size, mode):
    """``(pos, tri, rast)`` of a batch of two views ``pos`` ``[2, V, 4]``: as given ("instanced"), or as one
    ``[2 V, 4]`` with each view's triangles in a range ("range")."""
    if mode == "instanced":
        return pos, tri, dr.rasterize(glctx, pos, tri, size)[0]
    pos, tri = pos.reshape(-1, 4), torch.cat([tri, tri + pos.shape[1]])
    half = tri.shape[0] // 2
    ranges = torch.tensor([[0, half], [half, half]], dtype=torch.int32)
    return pos, tri, dr.rasterize(glctx, pos, tri, size, ranges=ranges)[0]


def sphere_scene(batch=1):
    """A coarse sphere (80 triangles, ~4 px each at 32 x 32) rotated per image, and a quad in front
    of part of it: pos float64 ``[B, 46, 4]`` (perspective: w varies), tri int32 ``[82, 3]``."""
    sphere = trimesh.creation.icosphere(subdivisions=1)
    verts = torch.from_numpy(sphere.vertices) * 0.7
    pos = []
    for b in range(batch):
        cos, sin = math.cos(0.4 + 0.9 * b), math.sin(0.4 + 0.9 * b)
        rotation = torch.tensor([[cos, 0, sin], [0, 1, 0], [-sin, 0, cos]], dtype=torch.float64)
        v = verts @ rotation.T
        pos.append(torch.cat([v[:, :2], v[:, 2:] * 0.4 + 0.1, 1 + 0.3 * v[:, 2:]], 1))
    front, front_tri = quad(0.27, 0.9, -0.9, -0.23, z=-0.9)  # no edge on a pixel boundary
    pos = torch.stack([torch.cat([p, front]) for p in pos])
    tri = torch.cat([torch.from_numpy(sphere.faces).to(torch.int32), front_tri + verts.shape[0]])
    return pos, tri


# ----------------------------------------------------------------------------------------------
# Known answers.


@pytest.mark.parametrize("edge, covered_right", [(5.3, False), (4.8, False), (5.3, True), (4.8, True)])
def test_vertical_edge_blends_a_horizontal_pair(glctx, edge, covered_right):
    """An edge at x = ``edge`` px between the centers of columns 4 (4.5) and 5 (5.5): the pixel
    it passes nearer takes the other side's color in proportion to its coverage (box filter)."""
    size = (6, 8)
    x = ndc(edge, 8)
    pos, tri = quad(x, 3.0, -3.0, 3.0) if covered_right else quad(-3.0, x, -3.0, 3.0)
    rast, _ = dr.rasterize(glctx, pos[None], tri, size)
    color = flat_colors(rast, BG, FG, FG)
    out = dr.antialias(color, rast, pos, tri)
    fg, bg = torch.tensor(FG, dtype=torch.float64), torch.tensor(BG, dtype=torch.float64)
    column = 4 if edge < 5 else 5
    if covered_right:  # the quad covers [edge, ...]: column 4 covers (5 - edge) when edge < 5
        coverage = 5 - edge if edge < 5 else 6 - edge
    else:  # the quad covers [..., edge]
        coverage = edge - 4 if edge < 5 else edge - 5
    expected = color.clone()
    expected[0, :, column] = coverage * fg + (1 - coverage) * bg
    torch.testing.assert_close(out, expected, atol=1e-12, rtol=0)


@pytest.mark.parametrize("edge, covered_above", [(3.3, False), (2.6, False), (3.3, True), (2.6, True)])
def test_horizontal_edge_blends_a_vertical_pair(glctx, edge, covered_above):
    """The same across rows: an edge at y = ``edge`` px (from the bottom, rows 2 and 3 centered at 2.5, 3.5)."""
    size = (6, 8)
    y = ndc(edge, 6)
    pos, tri = quad(-3.0, 3.0, y, 3.0) if covered_above else quad(-3.0, 3.0, -3.0, y)
    rast, _ = dr.rasterize(glctx, pos[None], tri, size)
    color = flat_colors(rast, BG, FG, FG)
    out = dr.antialias(color, rast, pos, tri)
    fg, bg = torch.tensor(FG, dtype=torch.float64), torch.tensor(BG, dtype=torch.float64)
    row = int(edge)  # the row whose span [row, row + 1] holds the edge
    coverage = row + 1 - edge if covered_above else edge - row
    expected = color.clone()
    expected[0, row] = coverage * fg + (1 - coverage) * bg  # row 0 is the bottom
    torch.testing.assert_close(out, expected, atol=1e-12, rtol=0)


def test_occlusion_edge_over_another_triangle(glctx):
    """A near quad's edge over a far quad that fills the image: the same blend, with the far color."""
    size = (6, 8)
    near, near_tri = quad(-3.0, ndc(5.3, 8), -3.0, 3.0, z=-0.5)
    far, far_tri = quad(-3.0, 3.0, -3.0, 3.0, z=0.5)
    pos, tri = torch.cat([near, far]), torch.cat([near_tri, far_tri + 4])
    rast, _ = dr.rasterize(glctx, pos[None], tri, size)
    color = flat_colors(rast, BG, FG, FG, BACK, BACK)
    assert (rast[..., 3] > 0).all()
    out = dr.antialias(color, rast, pos[None], tri)
    expected = color.clone()
    expected[0, :, 5] = 0.3 * torch.tensor(FG, dtype=torch.float64) + 0.7 * torch.tensor(BACK, dtype=torch.float64)
    torch.testing.assert_close(out, expected, atol=1e-12, rtol=0)


def test_shared_edge_gives_no_blend_split_edge_does(glctx):
    """Two triangles that share their diagonal's vertex indices blend nothing across it, however
    their colors differ; with the diagonal's vertices duplicated it is a silhouette (as in nvdiffrast)."""
    size = (16, 16)
    for split in (False, True):
        pos, tri = quad(-3.0, 3.0, -3.0, 3.0, split=split)  # fills the image; the diagonal crosses it
        rast, _ = dr.rasterize(glctx, pos[None], tri, size)
        color = flat_colors(rast, BG, FG, BACK)
        out = dr.antialias(color, rast, pos, tri)
        changed = (out != color).any(-1)
        if split:
            assert changed.sum() >= 14  # about one pixel per row along the diagonal
        else:
            assert not changed.any()


def test_topology():
    """The vertex across each edge: a tetrahedron (closed), a boundary, a degenerate and a non-manifold edge."""
    tetra = torch.tensor([[0, 1, 2], [0, 3, 1], [1, 3, 2], [2, 3, 0]], dtype=torch.int32)
    opposite = construct_topology(tetra).opposite
    for f, face in enumerate(tetra.tolist()):
        for i in range(3):
            assert opposite[f, i] == ({0, 1, 2, 3} - set(face)).pop()  # the fourth vertex, always
    fan = torch.tensor([[0, 1, 2], [0, 2, 3], [0, 2, 4], [5, 5, 1]], dtype=torch.int32)
    opposite = construct_topology(fan).opposite.tolist()
    # Edge 0-2 has three triangles: the first two see each other, the third sees none (a silhouette).
    assert opposite[0] == [-1, 3, -1] and opposite[1] == [-1, -1, 1] and opposite[2] == [-1, -1, -1]
    assert opposite[3] == [-1, -1, -1]
    assert repr(dr.antialias_construct_topology_hash(tetra)) == "TopologyHash(4 triangles)"
    # antialias without a topology_hash builds one per topology (compared by value) and keeps it.
    assert analytic.cached_topology(tetra) is analytic.cached_topology(tetra.clone())
    assert analytic.cached_topology(fan) is not analytic.cached_topology(tetra)


# ----------------------------------------------------------------------------------------------
# The oracle on a real scene, in all modes.


def test_equals_nvdiffrast_loop_on_a_mesh_with_occlusion(glctx):
    pos, tri = sphere_scene(batch=2)
    size = (24, 32)
    rast, _ = dr.rasterize(glctx, pos, tri, size)
    color = torch.rand(2, *size, 2, dtype=torch.float64)
    out = dr.antialias(color, rast, pos, tri)
    expected = reference_antialias(color.numpy(), rast.numpy(), pos.numpy(), tri.numpy())
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-12, rtol=0)
    assert (out != color).any(-1).sum() > 60
    # float32, with a prebuilt topology: the same pixels change, by the same amounts to float32 precision.
    topology = dr.antialias_construct_topology_hash(tri)
    out32 = dr.antialias(color.float(), rast.float(), pos.float(), tri, topology_hash=topology)
    np.testing.assert_allclose(out32.numpy(), expected, atol=1e-4, rtol=0)
    # Range mode: image 1 drawn from a [V, 4] list of both images' vertices.
    pos_range = pos.reshape(-1, 4)
    tri_range = torch.cat([tri, tri + pos.shape[1]])
    ranges = torch.tensor([[tri.shape[0], tri.shape[0]]], dtype=torch.int32)
    rast_range, _ = dr.rasterize(glctx, pos_range, tri_range, size, ranges=ranges)
    out_range = dr.antialias(color[1:], rast_range, pos_range, tri_range)
    expected = reference_antialias(color[1:].numpy(), rast_range.numpy(), pos_range.numpy(), tri_range.numpy())
    np.testing.assert_allclose(out_range.numpy(), expected, atol=1e-12, rtol=0)
    torch.testing.assert_close(out_range, out[1:], atol=1e-12, rtol=0)


# ----------------------------------------------------------------------------------------------
# Gradients.


def small_scene(glctx, size=(8, 10)):
    """A slanted perspective triangle over a larger one (w varies), float64: pos ``[1, 6, 4]``, rast."""
    pos = torch.tensor([[[-0.7, -0.6, 0.2, 1.0], [0.8, -0.5, 0.5, 1.6], [-0.3, 0.9, 0.3, 1.2],
                         [-0.2, -0.3, -0.5, 1.1], [0.55, 0.1, -0.4, 0.9], [0.0, 0.61, -0.3, 1.0]]], dtype=torch.float64)
    tri = torch.tensor([[0, 1, 2], [3, 4, 5]], dtype=torch.int32)
    rast, _ = dr.rasterize(glctx, pos, tri, size)
    return pos, tri, rast


def test_gradcheck(glctx, monkeypatch):
    pos, tri, rast = small_scene(glctx)
    color = torch.rand(1, *rast.shape[1:3], 3, dtype=torch.float64, requires_grad=True)
    pos.requires_grad_(True)
    (grad,) = torch.autograd.grad(dr.antialias(color, rast, pos, tri).sum(), pos)
    assert (grad[0, :, :2] != 0).sum() >= 8  # the edges of both triangles move the blends
    # The exact derivative: without nvdiffrast's 1e-3 px added to dy (below, and in the next test).
    monkeypatch.setattr(analytic, "_DY_EPS", 0.0)
    assert torch.autograd.gradcheck(lambda c, p: dr.antialias(c, rast, p, tri), (color, pos))
    (exact,) = torch.autograd.grad(dr.antialias(color, rast, pos, tri).sum(), pos)
    # With it, each blend's position gradient is scaled by dy / (dy + 1e-3 px) (dy ~ 1 px or more).
    torch.testing.assert_close(grad, exact, rtol=2e-3, atol=2e-3 * float(exact.abs().max()))
    assert not torch.equal(grad, exact)


@pytest.mark.parametrize("mode", ["instanced", "range"])
def test_pos_gradient_against_finite_differences(glctx, mode):
    """d(loss)/d(pos) against central differences of the same forward (rast fixed: the same pixels
    covered), for a batch of two views: instanced (``pos`` ``[2, V, 4]``) and range mode (``[2 V, 4]``)."""
    size = (32, 32)
    pos, tri, rast = rasterized_batch(glctx, *sphere_scene(batch=2), size, mode)
    color = torch.rand(2, *size, 3, dtype=torch.float64)
    weights = torch.rand(2, *size, 3, dtype=torch.float64)

    def loss(p):
        return (dr.antialias(color, rast, p, tri) * weights).sum()

    pos.requires_grad_(True)
    (grad,) = torch.autograd.grad(loss(pos), pos)
    grad = grad.reshape(-1, 4)
    moved = (grad != 0).any(-1).nonzero().squeeze(1)
    count = pos.shape[-2] if mode == "instanced" else pos.shape[0] // 2
    assert ((moved < count).sum() >= 14) and ((moved >= count).sum() >= 14)  # contours and quad corners of both
    step = 1e-6
    with torch.no_grad():
        for k in moved[::2].tolist():
            for c in (0, 1, 3):
                plus, minus = pos.clone(), pos.clone()
                plus.view(-1, 4)[k, c] += step
                minus.view(-1, 4)[k, c] -= step
                numeric = (loss(plus) - loss(minus)) / (2 * step)
                # nvdiffrast's derivative takes 1 / dy at dy + 1e-3 px (module docstring): 1e-3 relative.
                assert float(grad[k, c]) == pytest.approx(float(numeric), rel=3e-3, abs=1e-6)


def test_pos_gradient_boost_scales_only_pos(glctx):
    pos, tri, rast = small_scene(glctx)
    color = torch.rand(1, *rast.shape[1:3], 3, dtype=torch.float64, requires_grad=True)
    pos.requires_grad_(True)
    weights = torch.rand_like(color)
    plain = torch.autograd.grad((dr.antialias(color, rast, pos, tri) * weights).sum(), (color, pos))
    boosted = torch.autograd.grad((dr.antialias(color, rast, pos, tri, pos_gradient_boost=3.0) * weights).sum(),
                                  (color, pos))
    torch.testing.assert_close(boosted[0], plain[0])
    torch.testing.assert_close(boosted[1], 3 * plain[1])
    assert plain[1].abs().sum() > 0


def test_bad_input(glctx):
    pos, tri, rast = small_scene(glctx)
    color = torch.rand(1, *rast.shape[1:3], 3, dtype=torch.float64)
    with pytest.raises(ValueError, match="rast refers to triangle 2, but tri has 2"):
        dr.antialias(color, rast * torch.tensor([1.0, 1.0, 1.0, 1.5], dtype=torch.float64), pos, tri)
    with pytest.raises(AssertionError, match="topology_hash"):
        dr.antialias(color, rast, pos, tri, topology_hash=tri)
    with pytest.raises(ValueError, match="topology_hash was built for 1 triangles"):
        dr.antialias(color, rast, pos, tri, topology_hash=dr.antialias_construct_topology_hash(tri[:1]))
    with pytest.raises(ValueError, match=">= 0"):
        dr.antialias_construct_topology_hash(tri - 5)


# ----------------------------------------------------------------------------------------------
# The compiled kernel (csrc/nvdr_antialias.cpp, dr.antialias's path on the CPU) against the torch
# reference (analytic.py, its path elsewhere), both called past antialias's checks.


def band_scene(size):
    """For an image one pixel wide (high), a band across it, between rows (columns) 10.3 and 20.6 in
    image 0 and 5.8 and 25.2 in image 1, so that its edges lie along the single column (row) and
    blend (an image one pixel wide is squeezed: in its pixel units every other edge is steep)."""
    height, width = size
    pos = []
    for low, high in ((10.3, 20.6), (5.8, 25.2)):
        if width == 1:
            corners, tri = quad(-3.0, 3.0, ndc(low, height), ndc(high, height))
        else:
            corners, tri = quad(ndc(low, width), ndc(high, width), -3.0, 3.0)
        pos.append(corners)
    return torch.stack(pos), tri


def both_paths(color, rast, pos, tri, boost=1.0):
    """The image and the gradients (color, pos) of a random weighted sum of it, through the kernel
    and through the torch reference: two tuples."""
    kernels = cpu_kernels()
    assert kernels is not None
    topology = construct_topology(tri)
    weights = torch.rand_like(color)
    results = []
    for module in (kernels, None):
        c, p = color.clone().requires_grad_(True), pos.clone().requires_grad_(True)
        out = ops._antialias(c, rast, p, tri, topology, boost, module)
        results.append((out.detach(), *torch.autograd.grad((out * weights).sum(), (c, p))))
    return results


def assert_paths_agree(kernel, reference, dtype):
    """The same image bit for bit (the same operations in the same order), and the same gradients
    to rounding (summed in another order)."""
    assert torch.equal(kernel[0], reference[0])
    tolerance = 1e-12 if dtype == torch.float64 else 1e-5
    for got, expected in zip(kernel[1:], reference[1:]):
        torch.testing.assert_close(got, expected, rtol=tolerance, atol=tolerance * float(expected.abs().max()))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("size", [(24, 32), (13, 7), (32, 1), (1, 32)])
@pytest.mark.parametrize("mode", ["instanced", "range"])
def test_kernel_equals_torch_reference(glctx, dtype, size, mode):
    """A batch of two views of a mesh with occlusion and empty pixels, in instanced and range mode,
    at several sizes (one column or one row: pairs of one kind only), float64 and float32."""
    pos, tri = sphere_scene(batch=2) if min(size) > 1 else band_scene(size)
    pos, tri, rast = rasterized_batch(glctx, pos.to(dtype), tri, size, mode)
    assert rast.dtype == dtype and (rast[..., 3] == 0).any() and (rast[..., 3] > 0).any()
    color = torch.rand(2, *size, 3, dtype=dtype)
    kernel, reference = both_paths(color, rast, pos, tri)
    assert_paths_agree(kernel, reference, dtype)
    changed = (kernel[0] != color).any(-1).sum()
    assert changed >= {(24, 32): 60, (13, 7): 10}.get(size, 2)  # (both images)
    if dtype == torch.float64 and size == (13, 7):  # and both against nvdiffrast's loop
        expected = reference_antialias(color[1:].numpy(), rast[1:].numpy(),
                                       pos.numpy() if mode == "range" else pos[1:].numpy(), tri.numpy())
        np.testing.assert_allclose(kernel[0][1:].numpy(), expected, atol=1e-12, rtol=0)


@pytest.mark.parametrize("size", [(32, 1), (1, 32)])
def test_one_column_or_row_equals_nvdiffrast_loop(glctx, size):
    """Images one pixel wide have vertical pairs only (and one pixel high, horizontal pairs only):
    both paths tell them apart as nvdiffrast's loop does."""
    pos, tri = band_scene(size)
    rast, _ = dr.rasterize(glctx, pos, tri, size)
    color = torch.rand(2, *size, 2, dtype=torch.float64)
    expected = reference_antialias(color.numpy(), rast.numpy(), pos.numpy(), tri.numpy())
    for kernels in (cpu_kernels(), None):
        out = ops._antialias(color, rast, pos, tri, construct_topology(tri), 1.0, kernels)
        np.testing.assert_allclose(out.numpy(), expected, atol=1e-12, rtol=0)
        assert (out != color).any()


def test_kernel_on_empty_and_flat_frames():
    """No pairs (nothing covered, or one triangle everywhere): the image unchanged, gradients to
    color the incoming ones and none to pos."""
    pos, tri = quad(-3.0, 3.0, -3.0, 3.0)
    for fill in (0.0, 2.0):
        rast = torch.zeros(2, 5, 6, 4, dtype=torch.float64)
        rast[..., 3] = fill
        color = torch.rand(2, 5, 6, 3, dtype=torch.float64)
        kernel, reference = both_paths(color, rast, pos[None].expand(2, -1, -1), tri)
        assert_paths_agree(kernel, reference, torch.float64)
        assert torch.equal(kernel[0], color) and not kernel[2].any()


def test_kernel_pos_gradient_boost_and_gradcheck(glctx, monkeypatch):
    """pos_gradient_boost scales the kernel's pos gradient as the reference's; float64 gradcheck
    through the kernel (with the exact derivative of 1 / dy, as test_gradcheck)."""
    pos, tri, rast = small_scene(glctx)
    color = torch.rand(1, *rast.shape[1:3], 3, dtype=torch.float64)
    kernel, reference = both_paths(color, rast, pos, tri, boost=2.5)
    assert_paths_agree(kernel, reference, torch.float64)
    assert kernel[2].abs().sum() > 0
    monkeypatch.setattr(analytic, "_DY_EPS", 0.0)
    topology = construct_topology(tri)
    color.requires_grad_(True)
    pos.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda c, p: ops._antialias(c, rast, p, tri, topology, 1.0, cpu_kernels()),
                                    (color, pos))


def test_out_of_range_id_on_both_paths(glctx):
    pos, tri, rast = small_scene(glctx)
    color = torch.rand(1, *rast.shape[1:3], 3, dtype=torch.float64)
    bad = rast * torch.tensor([1.0, 1.0, 1.0, 1.5], dtype=torch.float64)  # ids 1.5, 3 (of 2 triangles)
    for kernels in (cpu_kernels(), None):
        with pytest.raises(ValueError, match="rast refers to triangle 2, but tri has 2"):
            ops._antialias(color, bad, pos, tri, construct_topology(tri), 1.0, kernels)


def test_kernel_takes_any_color_layout(glctx):
    """A channel-planar color (as the torch texture returns it), a strided slice, and a gradient
    with zero strides (from .sum()): read in place, with the same results as a contiguous copy."""
    pos, tri = sphere_scene(batch=2)
    rast, _ = dr.rasterize(glctx, pos, tri, (24, 32))
    planar = torch.rand(2, 3, 24, 32, dtype=torch.float64).permute(0, 2, 3, 1)
    sliced = torch.rand(2, 24, 32, 5, dtype=torch.float64)[..., 1:4]
    topology = construct_topology(tri)
    for color in (planar, sliced):
        kernel, reference = both_paths(color, rast, pos, tri)
        assert_paths_agree(kernel, reference, torch.float64)
        c = color.clone().requires_grad_(True)
        out = ops._antialias(c, rast, pos, tri, topology, 1.0, cpu_kernels())
        assert out.stride() == c.stride() or not color.is_non_overlapping_and_dense()
        torch.testing.assert_close(out, kernel[0], rtol=0, atol=0)
        (grad,) = torch.autograd.grad(out.sum(), c)
        c = c.detach().contiguous().requires_grad_(True)
        (expected,) = torch.autograd.grad(ops._antialias(c, rast, pos, tri, topology, 1.0, cpu_kernels()).sum(), c)
        torch.testing.assert_close(grad, expected, rtol=0, atol=0)


def test_kernel_on_fractional_empty_ids():
    """A rast whose ids differ but all truncate to 'empty' (0 next to 0.5): no triangle on either
    side of the pairs, so nothing blends (and nothing is read out of bounds)."""
    pos, tri = quad(-3.0, 3.0, -3.0, 3.0)
    rast = torch.zeros(1, 6, 6, 4, dtype=torch.float64)
    rast[..., ::2, 3] = 0.5
    color = torch.rand(1, 6, 6, 3, dtype=torch.float64)
    out = ops._antialias(color, rast, pos, tri, construct_topology(tri), 1.0, cpu_kernels())
    assert torch.equal(out, color)


def test_cpu_antialias_takes_the_kernel_unless_dtypes_differ(glctx):
    """dr.antialias on CPU tensors of one dtype runs the kernel; with mixed dtypes, the torch path
    (which promotes as torch does), with the same image as the kernel on a common dtype."""
    pos, tri, rast = small_scene(glctx)
    color = torch.rand(1, *rast.shape[1:3], 3, dtype=torch.float64, requires_grad=True)
    out = dr.antialias(color, rast, pos, tri)
    assert type(out.grad_fn).__name__ == "_AntialiasKernelBackward"
    mixed = dr.antialias(color, rast.float(), pos, tri)  # (rast's z/w and ids are exact in float32 here)
    assert type(mixed.grad_fn).__name__ != "_AntialiasKernelBackward"
    torch.testing.assert_close(mixed, out, rtol=0, atol=0)
