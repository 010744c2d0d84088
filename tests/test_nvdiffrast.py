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


def test_same_scene_as_glsplat(glctx):
    """rasterize + interpolate is glsplat's rasterize + interpolate: the same image and attribute gradients."""
    blob = glsplat.load_example("blob").normalized()
    clip = torch.cat([blob.verts * 0.7, torch.full_like(blob.verts[:, :1], 1.0)], -1)
    clip[:, 2] *= 0.5
    tri = blob.faces.to(torch.int32)
    size = (40, 48)
    vcol = torch.rand(clip.shape[0], 3, requires_grad=True)
    rast, _ = dr.rasterize(glctx, clip[None], tri, size)
    image, _ = dr.interpolate(vcol, rast, tri)
    ref_rast = glsplat.rasterize(ctx=glctx.context, clip=clip[None], faces=blob.faces, size=size, cull_backfaces=False)
    assert torch.equal(rast[..., 3].flip(1).int(), ref_rast.tri_id[:, 0])
    ref = glsplat.interpolate(vcol, ref_rast, blob.faces)[:, 0].flip(1)
    torch.testing.assert_close(image, ref, atol=2e-3, rtol=0)
    weights = torch.rand(1, *size, 3)
    (grad,) = torch.autograd.grad((image * weights).sum(), vcol)
    (ref_grad,) = torch.autograd.grad((ref * weights).sum(), vcol)
    torch.testing.assert_close(grad, ref_grad, atol=2e-3, rtol=1e-2)


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
    assert dr.antialias_construct_topology_hash(ONE).opposite.tolist() == [[-1, -1, -1]]
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


# ----------------------------------------------------------------------------------------------
# The compiled CPU kernels (glsplat/csrc/nvdr_raster.cpp) against their torch references,
# ops._rast_outputs and ops._torch_interpolate: the same values bit for bit, the same gradients
# to rounding, on the CPU path that rasterize and interpolate take.

from glsplat.kernels import cpu_kernels  # noqa: E402
from glsplat.nvdiffrast import ops  # noqa: E402


@pytest.fixture(scope="module")
def kernels():
    if cpu_kernels() is None:
        pytest.skip("the CPU kernels cannot be built here (tests/test_kernels.py says why)")
    return cpu_kernels()


def random_triangles(batch, verts, faces, dtype, seed):
    """Random clip-space triangles that overlap, leave pixels empty and vary in w: ``[B, V, 4]``, ``[F, 3]``."""
    gen = torch.Generator().manual_seed(seed)
    pos = torch.randn(batch, verts, 4, generator=gen, dtype=torch.float64)
    pos[..., :2] *= 0.7
    pos[..., 3] = 1 + torch.rand(batch, verts, generator=gen, dtype=torch.float64)
    pos[..., :3] *= pos[..., 3:]
    tri = torch.stack([torch.randperm(verts, generator=gen)[:3] for _ in range(faces)]).to(torch.int32)
    return pos.to(dtype), tri


def weighted_grads(outputs, inputs, seed):
    """Gradients of a random weighted sum of ``outputs`` (None entries skipped) w.r.t. ``inputs``."""
    gen = torch.Generator().manual_seed(seed)
    loss = sum((x * torch.randn(x.shape, generator=gen, dtype=x.dtype)).sum() for x in outputs if x is not None)
    return torch.autograd.grad(loss, inputs, allow_unused=True, materialize_grads=True)


def assert_grads_close(ours, reference, dtype):
    for a, b in zip(ours, reference):
        scale = b.abs().max().item() or 1.0
        torch.testing.assert_close(a, b, rtol=0, atol=scale * (1e-12 if dtype == torch.float64 else 2e-6))


RAST_CASES = {  # batch, size, with_db, grad_db, range mode
    "instanced": (2, (37, 23), True, True, False),
    "one image, wide": (1, (16, 64), True, True, False),
    "without db": (2, (20, 18), False, True, False),
    "db without gradient": (2, (20, 18), True, False, False),
    "range mode": (3, (24, 20), True, True, True),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", list(RAST_CASES))
def test_rast_kernel_equals_torch_reference(glctx, kernels, dtype, case):
    batch, size, with_db, grad_db, range_mode = RAST_CASES[case]
    pos, tri = random_triangles(1 if range_mode else batch, 24, 30, dtype, seed=len(case))
    ranges = None
    if range_mode:
        pos = pos[0]
        ranges = torch.tensor([[0, 12], [8, 22], [30, 0]], dtype=torch.int32)  # the last image is empty
    tri_id = ops._triangle_ids(glctx, pos, tri, size, ranges, layers=1)[:, 0]
    covered = (tri_id > 0).flatten(1).sum(1)
    assert (covered < size[0] * size[1]).all() and (covered[:2] > 0).all()  # empty pixels in every image
    ours_pos, ref_pos = pos.clone().requires_grad_(True), pos.clone().requires_grad_(True)

    def both():
        return (*ops._rast_values(ours_pos, tri, tri_id, with_db, grad_db),
                *ops._rast_outputs(ref_pos, tri, tri_id, with_db, grad_db))

    rast, rast_db, ref, ref_db = both()
    assert type(rast.grad_fn).__name__ == "_RastOutputsCPUBackward"
    assert rast.dtype == dtype and rast_db.shape == ref_db.shape == (tri_id.shape + ((4,) if with_db else (0,)))
    assert torch.equal(rast, ref) and torch.equal(rast_db, ref_db)
    assert rast_db.requires_grad == ref_db.requires_grad == (with_db and grad_db)
    # The gradient through u, v and rast_db together, and through each alone.
    picks = [lambda r, d: (r, d), lambda r, d: (r, None)] + ([lambda r, d: (None, d)] if rast_db.requires_grad else [])
    for seed, pick in enumerate(picks):
        if not rast_db.requires_grad:
            pick = picks[1]
        rast, rast_db, ref, ref_db = both()
        assert_grads_close(weighted_grads(pick(rast, rast_db), ours_pos, seed),
                           weighted_grads(pick(ref, ref_db), ref_pos, seed), dtype)


def interior_ids(pos, tri, tri_id):
    """``tri_id`` with only the pixels whose (u, v, 1 - u - v) are all at least 1e-3 (no clamp is active,
    so finite differences see the gradient the clamps pass straight through)."""
    rast, _ = ops._rast_outputs(pos.detach(), tri, tri_id, False, False)
    u, v = rast[..., 0], rast[..., 1]
    return torch.where((u > 1e-3) & (v > 1e-3) & (u + v < 1 - 1e-3), tri_id, 0)


@pytest.mark.parametrize("range_mode", [False, True])
def test_rast_kernel_gradcheck(glctx, kernels, range_mode):
    pos, tri = perspective_scene(torch.float64)
    pos = torch.cat([pos, pos * torch.tensor([0.8, -1.1, 1.0, 1.0], dtype=torch.float64)])  # [2, 5, 4]
    ranges = None
    if range_mode:
        pos, tri = pos.reshape(10, 4), torch.cat([tri, tri + 5])
        ranges = torch.tensor([[0, 2], [1, 3]], dtype=torch.int32)
    size = (7, 9)
    tri_id = interior_ids(pos, tri, ops._triangle_ids(glctx, pos, tri, size, ranges, layers=1)[:, 0])
    assert (tri_id > 0).sum() > 20
    pos.requires_grad_(True)

    def uv_and_db(p):
        rast, rast_db = ops._rast_values(p, tri, tri_id, True, True)
        return rast[..., :2], rast_db

    assert type(uv_and_db(pos)[1].grad_fn).__name__ == "_RastOutputsCPUBackward"
    assert torch.autograd.gradcheck(uv_and_db, (pos,), eps=1e-7, atol=1e-6)


INTERPOLATE_CASES = {  # attr's leading shape, diff_attrs
    "shared [V, A]": ((), None),
    "shared [1, V, A], all differentiated": ((1,), "all"),
    "per image, some differentiated": ((2,), [2, 0]),
    "per image, one differentiated twice": ((2,), [1, 1]),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", list(INTERPOLATE_CASES))
def test_interpolate_kernel_equals_torch_reference(glctx, kernels, dtype, case):
    lead, diff_attrs = INTERPOLATE_CASES[case]
    pos, tri = random_triangles(2, 24, 30, dtype, seed=5)
    rast, rast_db = dr.rasterize(glctx, pos, tri, (29, 31))
    gen = torch.Generator().manual_seed(6)
    attr = torch.randn(*lead, 24, 3, generator=gen, dtype=torch.float64).to(dtype).requires_grad_(True)
    rast, rast_db = rast.detach().requires_grad_(True), rast_db.detach().requires_grad_(True)
    out, out_da = dr.interpolate(attr, rast, tri, rast_db, diff_attrs=diff_attrs)
    diff = ops._diff_attr_list(diff_attrs, 3)
    ref, ref_da = ops._torch_interpolate(attr if attr.dim() == 3 else attr[None], rast, tri, rast_db, diff)
    assert type(out.grad_fn).__name__ == "_InterpolateCPUBackward"
    assert out.dtype == dtype and out_da.shape == ref_da.shape == (2, 29, 31, 2 * len(diff))
    assert torch.equal(out, ref) and torch.equal(out_da, ref_da)
    assert out_da.requires_grad == ref_da.requires_grad == bool(diff)
    inputs = (attr, rast, rast_db) if diff else (attr, rast)
    picks = [lambda o, d: (o, None)] + ([lambda o, d: (o, d), lambda o, d: (None, d)] if diff else [])
    for seed, pick in enumerate(picks):
        out, out_da = dr.interpolate(attr, rast, tri, rast_db, diff_attrs=diff_attrs)
        ref, ref_da = ops._torch_interpolate(attr if attr.dim() == 3 else attr[None], rast, tri, rast_db, diff)
        assert_grads_close(weighted_grads(pick(out, out_da), inputs, seed),
                           weighted_grads(pick(ref, ref_da), inputs, seed), dtype)


def test_interpolate_kernel_gradcheck(glctx, kernels):
    """Shared attributes [V, A], a subset differentiated, through the kernel."""
    pos, tri = perspective_scene(torch.float64)
    rast, rast_db = dr.rasterize(glctx, pos.expand(2, -1, -1), tri, (5, 7))
    attr = torch.rand(5, 3, dtype=torch.float64, requires_grad=True)
    uv = rast[..., :2].detach().clone().requires_grad_(True)
    rest = rast[..., 2:].detach()
    db = rast_db.detach().clone().requires_grad_(True)

    def run(attr, uv, db):
        return dr.interpolate(attr, torch.cat([uv, rest], -1), tri, db, diff_attrs=[2, 0])

    assert type(run(attr, uv, db)[0].grad_fn).__name__ == "_InterpolateCPUBackward"
    assert torch.autograd.gradcheck(run, (attr, uv, db))
    assert torch.autograd.gradcheck(lambda a, t: dr.interpolate(a, torch.cat([t, rest], -1), tri)[0], (attr, uv))


def test_interpolate_rejects_negative_and_nan_ids(glctx):
    rast, _ = dr.rasterize(glctx, TRIANGLE, ONE, (4, 4))
    attr = torch.rand(3, 2)
    for bad in (-1.0, float("nan")):
        with pytest.raises(ValueError, match="triangle ids"):
            dr.interpolate(attr, torch.cat([rast[..., :3], torch.full_like(rast[..., 3:], bad)], -1), ONE)
    # Fractions truncate toward zero, as torch's .long() (and nvdiffrast's cast) do: -0.5 is empty.
    out, _ = dr.interpolate(attr, torch.cat([rast[..., :3], torch.full_like(rast[..., 3:], -0.5)], -1), ONE)
    assert (out == 0).all()


def test_torch_path_where_no_kernels(glctx, kernels, monkeypatch):
    """Without the compiled kernels (no compiler; CUDA tensors) rasterize and interpolate take the
    torch references: the same values, and the same errors for bad triangle ids."""
    pos, tri = random_triangles(2, 24, 30, torch.float64, seed=9)
    attr = torch.rand(24, 3, dtype=torch.float64)
    with_kernels = [*dr.rasterize(glctx, pos, tri, (19, 21))]
    with_kernels += dr.interpolate(attr, with_kernels[0], tri, with_kernels[1], diff_attrs=[1])
    monkeypatch.setattr(ops, "cpu_kernels", lambda: None)
    without = [*dr.rasterize(glctx, pos.requires_grad_(True), tri, (19, 21))]
    assert type(without[0].grad_fn).__name__ != "_RastOutputsCPUBackward"
    without += dr.interpolate(attr.requires_grad_(True), without[0], tri, without[1], diff_attrs=[1])
    assert type(without[2].grad_fn).__name__ != "_InterpolateCPUBackward"
    for a, b in zip(with_kernels, without):
        assert torch.equal(a, b)
    for bad, message in ((2 * tri.shape[0], "rast refers to triangle"), (float("nan"), "triangle ids")):
        rast = with_kernels[0].clone()
        rast[0, 3, 4, 3] = bad
        with pytest.raises(ValueError, match=message):
            dr.interpolate(attr, rast, tri)
        monkeypatch.undo()
        with pytest.raises(ValueError, match=message):
            dr.interpolate(attr, rast, tri)
        monkeypatch.setattr(ops, "cpu_kernels", lambda: None)


def test_interpolate_mixed_dtypes_promote(glctx):
    """float32 attributes on a float64 raster (torch's promotion, through the torch path)."""
    pos, tri = perspective_scene(torch.float64)
    rast, rast_db = dr.rasterize(glctx, pos, tri, (8, 8))
    attr = torch.rand(5, 2)
    out, out_da = dr.interpolate(attr, rast, tri, rast_db, diff_attrs="all")
    assert out.dtype == out_da.dtype == torch.float64
    ref, ref_da = dr.interpolate(attr.double(), rast, tri, rast_db, diff_attrs="all")
    torch.testing.assert_close(out, ref, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(out_da, ref_da, rtol=1e-6, atol=1e-7)
