"""glsplat.nvdiffrast: nvdiffrast's torch API, against known answers, finite differences and glsplat's own ops."""
import pytest
import torch

import glsplat
import glsplat.nvdiffrast as dr

# A right triangle in the lower left of the image: corner 0 bottom left, 1 bottom right, 2 top left.
TRIANGLE = torch.tensor([[[-0.8, -0.8, 0.0, 1.0], [0.8, -0.8, 0.0, 1.0], [-0.8, 0.8, 0.0, 1.0]]])
ONE = torch.tensor([[0, 1, 2]], dtype=torch.int32)


@pytest.fixture(scope="module")
def glctx():
    return dr.RasterizeCudaContext()


def perspective_scene(dtype=torch.float64):
    """Two triangles at different depths and slants (w varies), clip space ``[1, 5, 4]``, tri ``[2, 3]``."""
    pos = torch.tensor([[[-0.7, -0.6, 0.2, 1.0], [0.8, -0.5, 0.5, 1.6], [-0.3, 0.9, 0.3, 1.2],
                         [0.9, 0.8, 0.6, 1.3], [0.1, -0.9, 0.1, 0.9]]], dtype=dtype)
    tri = torch.tensor([[0, 1, 2], [1, 3, 4]], dtype=torch.int32)
    return pos, tri


def edge_barycentrics(pos, tri, face, px, py, size):
    """Perspective-correct (u, v) and z/w of ``face`` at pixel (px, py)'s center (row py from the bottom)."""
    height, width = size
    x, y = (2 * px + 1) / width - 1, (2 * py + 1) / height - 1
    p = pos[0, tri[face].long()].double()
    # Solve for the clip-space point u p0 + v p1 + (1 - u - v) p2 whose x/w, y/w is the pixel center.
    m = torch.stack([p[:, 0] - x * p[:, 3], p[:, 1] - y * p[:, 3], torch.ones(3, dtype=torch.float64)])
    b = torch.linalg.solve(m, torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
    point = b @ p
    return b[0], b[1], point[2] / point[3]


def test_triangle_known_pixels(glctx):
    rast, rast_db = dr.rasterize(glctx, TRIANGLE, ONE, resolution=[8, 8])
    assert rast.shape == rast_db.shape == (1, 8, 8, 4) and rast.dtype == torch.float32
    ids = rast[0, ..., 3]
    # Row 0 is the bottom: the right angle is at the bottom left, so the long rows are the low ones.
    assert ids[1].tolist() == [0, 1, 1, 1, 1, 1, 0, 0]
    assert ids[5].tolist() == [0, 1, 0, 0, 0, 0, 0, 0]
    assert ids[0].sum() == 0 and ids[6:].sum() == 0 and ids[:, 0].sum() == 0
    # Pixel (row 1, column 1): center (-0.625, -0.625); corner 1 weighs (x + 0.8) / 1.6, corner 2 likewise.
    u, v, zw, tid = rast[0, 1, 1].tolist()
    assert (u, v, zw, tid) == pytest.approx((1 - 2 * 0.175 / 1.6, 0.175 / 1.6, 0.0, 1.0), abs=1e-6)
    # Screen-space derivatives: one pixel is 0.25 in NDC, so v (corner 1, x) grows 0.25 / 1.6 per column.
    assert rast_db[0, 1, 1].tolist() == pytest.approx([-0.15625, -0.15625, 0.15625, 0.0], abs=1e-6)
    assert (rast[0][ids == 0] == 0).all() and (rast_db[0][ids == 0] == 0).all()


def test_perspective_values_and_ids(glctx):
    pos, tri = perspective_scene(torch.float32)
    size = (12, 16)
    rast, _ = dr.rasterize(glctx, pos, tri, size)
    ids = rast[0, ..., 3].long()
    assert set(ids.unique().tolist()) == {0, 1, 2}
    for py, px in ids.nonzero().tolist():
        u, v, zw = edge_barycentrics(pos, tri, int(ids[py, px]) - 1, px, py, size)
        assert rast[0, py, px, :3].tolist() == pytest.approx([u.item(), v.item(), zw.item()], abs=2e-5)
    # Both windings are drawn: the same triangles reversed cover the same pixels.
    flipped, _ = dr.rasterize(glctx, pos, tri.flip(1), size)
    assert torch.equal(flipped[..., 3], rast[..., 3])


def test_rast_db_and_out_da_against_finite_differences(glctx):
    """Central differences of the rasterizer's own (u, v) and of interpolated attributes over a pixel step."""
    pos, tri = perspective_scene(torch.float64)
    size = (48, 64)
    rast, rast_db = dr.rasterize(glctx, pos, tri, size)
    attr = torch.tensor([[0.1, 2.0], [1.5, -1.0], [0.7, 0.3], [2.0, 1.0], [-0.5, 0.4]], dtype=torch.float64)
    out, out_da = dr.interpolate(attr, rast, tri, rast_db, diff_attrs=[1, 0])
    assert out_da.shape == (1, 48, 64, 4)
    ids = rast[0, ..., 3]
    same = (ids[1:-1, 1:-1] > 0) & (ids[1:-1, 2:] == ids[1:-1, 1:-1]) & (ids[1:-1, :-2] == ids[1:-1, 1:-1]) \
        & (ids[2:, 1:-1] == ids[1:-1, 1:-1]) & (ids[:-2, 1:-1] == ids[1:-1, 1:-1])
    assert same.sum() > 300
    inner = lambda t: t[0, 1:-1, 1:-1][same]  # noqa: E731
    ddx = (rast[0, 1:-1, 2:, :2] - rast[0, 1:-1, :-2, :2])[same] / 2
    ddy = (rast[0, 2:, 1:-1, :2] - rast[0, :-2, 1:-1, :2])[same] / 2  # row + 1 is one pixel UP
    torch.testing.assert_close(inner(rast_db)[:, [0, 2]], ddx, atol=2e-4, rtol=2e-2)
    torch.testing.assert_close(inner(rast_db)[:, [1, 3]], ddy, atol=2e-4, rtol=2e-2)
    # out_da = (d attr1/dX, d attr1/dY, d attr0/dX, d attr0/dY), as nvdiffrast interleaves them.
    odx = (out[0, 1:-1, 2:] - out[0, 1:-1, :-2])[same] / 2
    ody = (out[0, 2:, 1:-1] - out[0, :-2, 1:-1])[same] / 2
    torch.testing.assert_close(inner(out_da), torch.stack([odx[:, 1], ody[:, 1], odx[:, 0], ody[:, 0]], -1),
                               atol=1e-3, rtol=1e-2)


def test_rasterize_gradcheck(glctx):
    pos, tri = perspective_scene(torch.float64)
    pos.requires_grad_(True)
    size = (6, 8)

    def uv_and_db(p):
        rast, rast_db = dr.rasterize(glctx, p, tri, size)
        return rast[..., :2], rast_db

    assert torch.autograd.gradcheck(uv_and_db, (pos,), eps=1e-6, atol=1e-5)
    # z/w carries no gradient and grad_db=False stops rast_db's, as in nvdiffrast.
    rast, rast_db = dr.rasterize(glctx, pos, tri, size, grad_db=False)
    assert not rast_db.requires_grad
    (grad,) = torch.autograd.grad(rast[..., 2].sum() + rast[..., 3].sum(), pos, allow_unused=True)
    assert grad is None or (grad == 0).all()


def test_interpolate_gradcheck(glctx):
    pos, tri = perspective_scene(torch.float64)
    rast, rast_db = dr.rasterize(glctx, pos, tri, (5, 6))
    attr = torch.rand(2, 5, 3, dtype=torch.float64, requires_grad=True)
    uv = rast[..., :2].detach().expand(2, -1, -1, -1).clone().requires_grad_(True)
    rest = rast[..., 2:].detach().expand(2, -1, -1, -1)
    db = rast_db.detach().expand(2, -1, -1, -1).clone().requires_grad_(True)

    def run(attr, uv, db):
        return dr.interpolate(attr, torch.cat([uv, rest], -1), tri, db, diff_attrs="all")

    assert torch.autograd.gradcheck(run, (attr, uv, db))
    out, out_da = run(attr, uv, db)
    assert out.shape == (2, 5, 6, 3) and out_da.shape == (2, 5, 6, 6)
    assert (out[rest[..., 1] == 0] == 0).all()


def test_antialias_gradcheck(glctx):
    pos, tri = perspective_scene(torch.float64)
    rast, _ = dr.rasterize(glctx, pos, tri, (5, 6))
    rast = rast.detach()
    color = torch.rand(1, 5, 6, 4, dtype=torch.float64, requires_grad=True)  # any number of channels
    pos.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda c, p: dr.antialias(c, rast, p, tri), (color, pos), atol=1e-6,
                                    fast_mode=True)
    boosted = torch.autograd.grad(dr.antialias(color, rast, pos, tri, pos_gradient_boost=3.0).sum(), pos)[0]
    plain = torch.autograd.grad(dr.antialias(color, rast, pos, tri).sum(), pos)[0]
    torch.testing.assert_close(boosted, 3 * plain)


def test_same_scene_as_glsplat_splat(glctx):
    """rasterize + interpolate + antialias is glsplat's rasterize + splat over the input's background."""
    verts = glsplat.load_example("blob").normalized().verts
    faces = glsplat.load_example("blob").normalized().faces
    clip = torch.cat([verts * 0.7, torch.full_like(verts[:, :1], 1.0)], -1)
    clip[:, 2] *= 0.5
    clip = clip[None].requires_grad_(True)
    tri = faces.to(torch.int32)
    size = (40, 48)
    background = torch.tensor([0.2, 0.3, 0.4])

    # Uniform color: (u, v) give no gradient, so antialias's splat gives all of it, as in glsplat.
    rast, _ = dr.rasterize(glctx, clip, tri, size)
    flat, _ = dr.interpolate(torch.tensor([[0.9, 0.5, 0.1]]).expand(clip.shape[1], 3).contiguous(), rast, tri)
    flat = torch.where(rast[..., 3:] > 0, flat, background)
    image = dr.antialias(flat, rast, clip, tri)
    weights = torch.rand(1, *size, 3)
    (grad,) = torch.autograd.grad((image * weights).sum(), clip)

    ref_rast = glsplat.rasterize(ctx=glctx.context, clip=clip.detach(), faces=faces, size=size, cull_backfaces=False)
    colors = torch.tensor([0.9, 0.5, 0.1, 1.0]).expand(ref_rast.index.shape[0], 4)
    ref = glsplat.over_background(glsplat.splat(colors, clip, ref_rast, faces, silhouette="splat"),
                                  background)[..., :3].flip(1)  # antialias: the paper's splat, no glue
    (ref_grad,) = torch.autograd.grad((ref * weights).sum(), clip)
    torch.testing.assert_close(image, ref, atol=1e-5, rtol=0)
    # The splat's points come from OpenGL's barycentrics there, from the recomputed (u, v) here.
    torch.testing.assert_close(grad, ref_grad, atol=1e-3, rtol=1e-2)
    assert grad.abs().sum() > 0

    # Colors that vary: the image is glsplat's splat of the same samples; the vertex gradient is
    # the (u, v) path's plus the splat's at the silhouettes only (interior samples stay put).
    vcol = torch.rand(clip.shape[1], 3)
    rast, _ = dr.rasterize(glctx, clip, tri, size)
    shaded, _ = dr.interpolate(vcol, rast, tri)
    shaded = torch.where(rast[..., 3:] > 0, shaded, background)
    image = dr.antialias(shaded, rast, clip, tri)
    per_sample = shaded.detach().flip(1).reshape(-1, 3).index_select(0, ref_rast.index)
    ref = glsplat.splat(torch.cat([per_sample, torch.ones_like(per_sample[:, :1])], -1), clip, ref_rast, faces)
    ref = glsplat.over_background(ref, background)[..., :3].flip(1)
    torch.testing.assert_close(image, ref, atol=1e-5, rtol=0)
    (total,) = torch.autograd.grad((image * weights).sum(), clip)
    silhouette = ref_rast.mask[:, 0].float()
    silhouette = (torch.nn.functional.avg_pool2d(silhouette[:, None], 5, 1, 2)[:, 0] * 25 < 24.5) & ref_rast.mask[:, 0]
    moving = torch.zeros(clip.shape[1], dtype=torch.bool)
    moving[faces[ref_rast.tri_id[:, 0][silhouette].long() - 1].reshape(-1)] = True
    assert (total[0, ~moving] != 0).any() and (total[0, moving] != 0).any()


def test_range_mode_equals_instanced_mode(glctx):
    pos, tri = perspective_scene(torch.float32)
    pos2 = torch.cat([pos[0], pos[0] * torch.tensor([-1.0, 1.0, 1.0, 1.0])])  # [10, 4]: a mirrored copy
    tri2 = torch.cat([tri, tri + 5])
    ranges = torch.tensor([[0, 2], [2, 2], [1, 1]], dtype=torch.int32)
    rast, rast_db = dr.rasterize(glctx, pos2, tri2, (10, 12), ranges=ranges)
    assert rast.shape == (3, 10, 12, 4)
    inst, inst_db = dr.rasterize(glctx, torch.stack([pos2[:5], pos2[5:]]), tri, (10, 12))
    torch.testing.assert_close(rast[0], inst[0])
    torch.testing.assert_close(rast[1, ..., :3], inst[1, ..., :3])
    torch.testing.assert_close(rast[1, ..., 3], torch.where(inst[1, ..., 3] > 0, inst[1, ..., 3] + 2, 0.0))
    torch.testing.assert_close(rast_db[:2], inst_db)
    only, _ = dr.rasterize(glctx, pos, tri[1:], (10, 12))
    torch.testing.assert_close(rast[2, ..., 3], torch.where(only[0, ..., 3] > 0, only[0, ..., 3] + 1, 0.0))


def test_depth_peeler_layers_equal_glsplat_layers(glctx):
    blob = glsplat.load_example("blob").normalized()
    clip = torch.cat([blob.verts * 0.8, torch.ones_like(blob.verts[:, :1]) * 1.0], -1)[None]
    clip[..., 2] *= 0.5
    tri = blob.faces.to(torch.int32)
    ref = glsplat.rasterize(glctx.context, clip, blob.faces, (20, 24), layers=3, cull_backfaces=False)
    with dr.DepthPeeler(glctx, clip, tri, (20, 24)) as peeler:
        with pytest.raises(RuntimeError, match="depth peeling"):
            dr.rasterize(glctx, clip, tri, (20, 24))
        layers = [peeler.rasterize_next_layer() for _ in range(3)]
    first, _ = dr.rasterize(glctx, clip, tri, (20, 24))
    torch.testing.assert_close(layers[0][0], first)
    for k, (rast, _) in enumerate(layers):
        assert torch.equal(rast[..., 3].flip(1).int(), ref.tri_id[:, k])
        covered = ref.tri_id[:, k] > 0
        # nvdiffrast clamps (u, v) into the triangle (OpenGL's may stray out on slivers).
        bary = ref.bary[:, k].clamp(0, 1)
        bary = bary / bary.sum(-1, keepdim=True).clamp(min=1)
        torch.testing.assert_close(rast[..., :2].flip(1)[covered], bary[covered], atol=1e-3, rtol=0)
    assert (layers[2][0][..., 3] > 0).sum() < (layers[0][0][..., 3] > 0).sum()


def test_contexts_and_log_level():
    gl = dr.RasterizeGLContext(output_db=False)
    rast, rast_db = dr.rasterize(gl, TRIANGLE, ONE, (4, 4))
    assert rast_db.shape == (1, 4, 4, 0)
    assert dr.RasterizeCudaContext(device="cpu").context is dr.RasterizeCudaContext().context
    gl.set_context(), gl.release_context()
    level = dr.get_log_level()
    dr.set_log_level(2)
    assert dr.get_log_level() == 2
    dr.set_log_level(level)
    assert torch.equal(dr.antialias_construct_topology_hash(ONE), ONE)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            dr.RasterizeCudaContext(device=0)


def test_bad_inputs(glctx):
    pos, tri = TRIANGLE, ONE
    with pytest.raises(AssertionError, match="glctx"):
        dr.rasterize(glsplat.Context, pos, tri, (4, 4))
    with pytest.raises(RuntimeError, match="must be int32"):
        dr.rasterize(glctx, pos, tri.long(), (4, 4))
    with pytest.raises(TypeError, match="must be float32"):
        dr.rasterize(glctx, pos.int(), tri, (4, 4))
    with pytest.raises(ValueError, match=r"instance mode - pos must have shape \[>0, >0, 4\]"):
        dr.rasterize(glctx, pos[..., :3], tri, (4, 4))
    with pytest.raises(RuntimeError, match=r"range mode - ranges must have shape"):
        dr.rasterize(glctx, pos[0], tri, (4, 4), ranges=torch.zeros(2, 3, dtype=torch.int32))
    with pytest.raises(ValueError, match="ranges"):
        dr.rasterize(glctx, pos[0], tri, (4, 4), ranges=torch.tensor([[0, 2]], dtype=torch.int32))
    with pytest.raises(ValueError, match=r"resolution must be \[>0, >0\]"):
        dr.rasterize(glctx, pos, tri, (0, 4))
    with pytest.raises(ValueError, match="indices must lie"):
        dr.rasterize(glctx, pos, tri + 1, (4, 4))
    with pytest.raises(ValueError, match="NaN"):
        dr.rasterize(glctx, pos * float("nan"), tri, (4, 4))
    with pytest.raises(AssertionError, match="grad_db"):
        dr.rasterize(glctx, pos, tri, (4, 4), grad_db=1)
    rast, rast_db = dr.rasterize(glctx, pos, tri, (4, 4))
    attr = torch.rand(3, 2)
    with pytest.raises(AssertionError, match="rast_db"):
        dr.interpolate(attr, rast, tri, diff_attrs="all")
    with pytest.raises(ValueError, match="diff_attrs"):
        dr.interpolate(attr, rast, tri, rast_db, diff_attrs=[2])
    with pytest.raises(ValueError, match="minibatch size mismatch"):
        dr.interpolate(torch.rand(2, 3, 2), rast, tri)
    with pytest.raises(ValueError, match="rast must have shape"):
        dr.interpolate(attr, rast[..., :3], tri)
    with pytest.raises(ValueError, match="rast refers to triangle"):
        dr.interpolate(attr, rast * torch.tensor([1.0, 1.0, 1.0, 5.0]), tri)
    with pytest.raises(ValueError, match="same dimensions"):
        dr.antialias(torch.rand(1, 4, 5, 3), rast, pos, tri)
    with pytest.raises(AssertionError, match="color"):
        dr.antialias(None, rast, pos, tri)
    peeler = dr.DepthPeeler(glctx, pos, tri, (4, 4))
    with pytest.raises(RuntimeError, match="with"):
        peeler.rasterize_next_layer()


def test_antialias_moves_samples_at_silhouettes_and_split_seams(glctx):
    """Samples move (carry coverage gradients) near empty pixels and where the neighbor's triangle
    shares no vertex index (nvdiffrast's silhouette rule); elsewhere they stay put."""
    from glsplat.nvdiffrast.ops import _moving, _neighbors
    quad = torch.tensor([[-0.9, -0.9, 0, 1], [0.9, -0.9, 0, 1], [0.9, 0.9, 0, 1], [-0.9, 0.9, 0, 1]])
    shared_tri = torch.tensor([[0, 1, 2], [0, 2, 3]], dtype=torch.int32)
    split_pos = quad[[0, 1, 2, 0, 2, 3]]
    split_tri = torch.tensor([[0, 1, 2], [3, 4, 5]], dtype=torch.int32)
    for pos, tri, seam_moves in ((quad, shared_tri, False), (split_pos, split_tri, True)):
        rast, _ = dr.rasterize(glctx, pos[None], tri, (20, 20))
        tri_id = rast[..., 3].flip(1).int()
        index = tri_id.reshape(-1).nonzero().squeeze(1)
        moving = _moving(_neighbors(tri_id, index), index, tri_id.reshape(-1)[index].long() - 1, tri, 20)
        inner = torch.zeros_like(tri_id, dtype=torch.bool)
        inner.view(-1)[index[~moving]] = True
        ring = torch.zeros(20, 20, dtype=torch.bool)
        ring[3:-3, 3:-3] = True  # 2 px or more inside the quad's edge (which covers rows/columns 1..18)
        narrow, wide = torch.zeros(20, 20, dtype=torch.bool), torch.zeros(20, 20, dtype=torch.bool)
        for i in range(20):  # the diagonal from corner 0 (bottom left) to 2 (top right): +-1 px, +-2 px
            narrow[i, max(18 - i, 0):21 - i] = True
            wide[i, max(17 - i, 0):22 - i] = True
        assert not inner[0][~ring].any()
        assert bool(inner[0][ring & ~wide].all())
        assert bool(inner[0][ring & narrow].all()) if not seam_moves else not inner[0][ring & narrow].any()


def test_antialias_keeps_a_flat_color_where_a_surface_crosses_the_frame(glctx):
    """A surface that fills the image's edge: the splat lacks the taps from outside the frame there,
    and what shows through is the pixel's own color, so a flat color stays flat (no dark frame);
    at the silhouette inside the image the color fades to the background over ~1 px."""
    quad = torch.tensor([[[-1.5, -1.5, 0, 1], [0.5, -1.5, 0, 1], [0.5, 1.5, 0, 1], [-1.5, 1.5, 0, 1]]])
    tri = torch.tensor([[0, 1, 2], [0, 2, 3]], dtype=torch.int32)
    rast, _ = dr.rasterize(glctx, quad, tri, (10, 12))
    covered = rast[..., 3:] > 0  # columns 0..8 (centers up to x = 0.375 in NDC)
    assert covered[0, :, :9].all() and not covered[0, :, 9:].any()
    color = torch.where(covered, torch.tensor([0.2, 0.6, 1.0]), torch.tensor([1.0, 0.0, 0.0]))
    out = dr.antialias(color, rast, quad, tri)
    torch.testing.assert_close(out[0, :, :7], color[0, :, :7], atol=1e-6, rtol=0)  # more than 1 px from the edge
    torch.testing.assert_close(out[0, :, 10:], color[0, :, 10:], atol=1e-6, rtol=0)  # the splat reaches 1 px out
    # Next to the edge: a mix, the same in every row but the frame's two, which lack the taps of the
    # samples outside the image and so show a little more of the background.
    for column in (8, 9):
        mix = out[0, :, column]
        assert (mix[1:-1] - mix[1]).abs().max() < 1e-6
        assert 0.05 < mix[1, 0] < 0.95 and 0.05 < mix[1, 2] < 0.95
        assert (mix[[0, -1]] - mix[1]).abs().max() < 0.15
    # (Before: the frame's covered pixels showed 0.94 of their color, 0.84 in its corners.)
    torch.testing.assert_close(out[0, :, :8], color[0, :, :8], atol=0.1, rtol=0)
