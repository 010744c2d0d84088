"""glsplat.nvdiffrast.texture: values worked out by hand, a slow per-pixel oracle, mip stacks, gradcheck."""
import math

import pytest
import torch

import glsplat.nvdiffrast as dr
from glsplat.nvdiffrast import NvdiffrastValueError

F64 = torch.float64


# ----------------------------------------------------------------------------------------------
# The oracle: nvdiffrast's documented sampling, one pixel and one tap at a time, in plain Python.


def ref_levels(tex, count):
    """Mip levels 0..count of ``tex`` ``[..., H, W, C]``, each texel the mean of its 2x2 (or 2x1) block."""
    levels = [tex]
    for _ in range(count):
        prev = levels[-1]
        h, w = prev.shape[-3], prev.shape[-2]
        nh, nw = max(h // 2, 1), max(w // 2, 1)
        out = prev.new_zeros(*prev.shape[:-3], nh, nw, prev.shape[-1])
        for i in range(nh):
            for j in range(nw):
                rows = [2 * i, 2 * i + 1] if h > 1 else [0]
                cols = [2 * j, 2 * j + 1] if w > 1 else [0]
                block = [prev[..., r, c, :] for r in rows for c in cols]
                out[..., i, j, :] = sum(block) / len(block)
        levels.append(out)
    return levels


def ref_cube_st(d):
    """(face, s, t) of a direction: the major axis picks the face (x wins ties, then y)."""
    x, y, z = (float(c) for c in d)
    ax, ay, az = abs(x), abs(y), abs(z)
    if az > max(ax, ay):
        face, c = (4 if z > 0 else 5), az
        s, t = (x if z > 0 else -x), -y
    elif ay > ax:
        face, c = (2 if y > 0 else 3), ay
        s, t = x, (z if y > 0 else -z)
    else:
        face, c = (0 if x > 0 else 1), ax
        s, t = (-z if x > 0 else z), -y
    return face, s / (2 * c) + 0.5, t / (2 * c) + 0.5


def ref_cube_direction(face, s, t):
    """The inverse of ref_cube_st on the cube's surface (s, t may lie outside [0, 1])."""
    a, b = 2 * s - 1, 2 * t - 1
    return [(1, -b, -a), (-1, -b, a), (a, 1, b), (a, -1, -b), (a, -b, 1), (-a, -b, -1)][face]


def ref_tap(level, batch, face, ix, iy, boundary):
    """Texel (ix, iy) of ``level`` with the boundary rule; None for a cube texel beyond a corner."""
    h, w = level.shape[-3], level.shape[-2]
    if boundary == "cube":
        off_x, off_y = not 0 <= ix < w, not 0 <= iy < h
        if off_x and off_y:
            return None
        if off_x or off_y:  # the texel center, extended past the edge, lands on the neighbor face
            face, s, t = ref_cube_st(ref_cube_direction(face, (ix + 0.5) / w, (iy + 0.5) / h))
            ix, iy = min(int(math.floor(s * w)), w - 1), min(int(math.floor(t * h)), h - 1)
        return level[batch, face, iy, ix]
    if boundary == "wrap":
        ix, iy = ix % w, iy % h
    elif boundary == "clamp":
        ix, iy = min(max(ix, 0), w - 1), min(max(iy, 0), h - 1)
    elif not (0 <= ix < w and 0 <= iy < h):
        return torch.zeros_like(level[batch, 0, 0])
    return level[batch, iy, ix]


def ref_bilinear(level, batch, face, s, t, boundary):
    h, w = level.shape[-3], level.shape[-2]
    x, y = s * w - 0.5, t * h - 0.5
    ix, iy = math.floor(x), math.floor(y)
    fx, fy = x - ix, y - iy
    taps = [ref_tap(level, batch, face, ix + dx, iy + dy, boundary) for dy in (0, 1) for dx in (0, 1)]
    known = [v for v in taps if v is not None]
    taps = [v if v is not None else sum(known) / 3 for v in taps]
    weights = [(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy]
    return sum(wt * v for wt, v in zip(weights, taps))


def reference_texture(tex, uv, uv_da=None, bias=None, filter_mode="linear", boundary="wrap", max_level=None):
    """nvdiffrast's texture(), as an obvious loop. The mip level is log2 of the largest singular
    value of the pixel's texel-space Jacobian (its footprint's major axis)."""
    cube = boundary == "cube"
    n, hp, wp = uv.shape[:3]
    width, height = tex.shape[-2], tex.shape[-3]
    count = 0
    if "mipmap" in filter_mode:
        w, h = width, height
        while (w > 1 or h > 1) and (max_level is None or count < max_level):
            w, h, count = max(w // 2, 1), max(h // 2, 1), count + 1
    levels = ref_levels(tex, count)
    out = tex.new_zeros(n, hp, wp, tex.shape[-1])
    for b in range(n):
        tb = b if tex.shape[0] > 1 else 0
        for i in range(hp):
            for j in range(wp):
                face = None
                if cube:
                    d = uv[b, i, j]
                    face, s, t = ref_cube_st(d)
                else:
                    s, t = float(uv[b, i, j, 0]), float(uv[b, i, j, 1])
                if filter_mode == "nearest":
                    if boundary == "wrap":
                        s, t = s - math.floor(s), t - math.floor(t)
                    ix, iy = math.floor(s * width), math.floor(t * height)
                    if boundary == "zero" and not (0 <= ix < width and 0 <= iy < height):
                        continue
                    ix, iy = min(max(ix, 0), width - 1), min(max(iy, 0), height - 1)
                    out[b, i, j] = tex[tb, face, iy, ix] if cube else tex[tb, iy, ix]
                    continue
                level = 0.0
                if "mipmap" in filter_mode:
                    if uv_da is not None:
                        if cube:  # d(s, t)/d(direction) by autograd of the oracle's own (s, t)
                            jac = torch.autograd.functional.jacobian(
                                lambda v: torch.stack(_st_of(v, face)), uv[b, i, j].detach())
                            da = jac @ uv_da[b, i, j].view(3, 2)
                        else:
                            da = uv_da[b, i, j].view(2, 2)
                        da = da * torch.tensor([[width], [height]], dtype=da.dtype)
                        level = math.log2(float(torch.linalg.svdvals(da)[0]))
                    if bias is not None:
                        level += float(bias[b, i, j])
                    level = min(max(level, 0.0), count)
                l0 = math.floor(level)
                value = ref_bilinear(levels[l0], tb, face, s, t, boundary)
                if filter_mode == "linear-mipmap-linear" and level > l0:
                    far = ref_bilinear(levels[l0 + 1], tb, face, s, t, boundary)
                    value = value + (level - l0) * (far - value)
                out[b, i, j] = value
    return out


def _st_of(v, face):
    """(s, t) of direction ``v`` on ``face`` in torch ops (for the oracle's Jacobian)."""
    axis = face // 2
    c = v[axis].abs()
    s_comp, s_sign, t_comp, t_sign = [(2, -1, 1, -1), (2, 1, 1, -1), (0, 1, 2, 1), (0, 1, 2, -1),
                                      (0, 1, 1, -1), (0, -1, 1, -1)][face]
    return s_sign * v[s_comp] / (2 * c) + 0.5, t_sign * v[t_comp] / (2 * c) + 0.5


# ----------------------------------------------------------------------------------------------
# Values worked out by hand.


def ramp4():
    """4x4 texture, texel [i, j] = 4 i + j (row i, column j)."""
    return torch.arange(16, dtype=F64).view(1, 4, 4, 1)


def sample(tex, points, **kw):
    uv = torch.tensor(points, dtype=F64).view(1, 1, -1, len(points[0]))
    return dr.texture(tex, uv, **kw).flatten().tolist()


@pytest.mark.parametrize("boundary, linear, nearest", [
    # uv: texel [0, 0]'s center, half way to [0, 1], the (0, 0) corner, (1, 0.5), (0.25, 0)
    ("wrap", [0, 0.5, (15 + 12 + 3 + 0) / 4, (7 + 4 + 11 + 8) / 4, (12 + 13 + 0 + 1) / 4], [0, 1, 0, 8, 1]),
    ("clamp", [0, 0.5, 0, (7 + 11) / 2, (0 + 1) / 2], [0, 1, 0, 11, 1]),
    ("zero", [0, 0.5, 0 / 4, (7 + 11) / 4, (0 + 0 + 0 + 1) / 4], [0, 1, 0, 0, 1]),
])
def test_2d_filters_and_boundaries_by_hand(boundary, linear, nearest):
    points = [(0.125, 0.125), (0.25, 0.125), (0.0, 0.0), (1.0, 0.5), (0.25, 0.0)]
    assert sample(ramp4(), points, boundary_mode=boundary) == pytest.approx(linear)
    assert sample(ramp4(), points, filter_mode="nearest", boundary_mode=boundary) == pytest.approx(nearest)


def test_v_is_the_row_axis_and_batches_broadcast():
    # (u, v) = (0.125, 0.375): column 0, row 1 -> 4. A [1, ...] texture serves every image.
    tex = ramp4()
    uv = torch.tensor([[0.125, 0.375], [0.375, 0.125]], dtype=F64).view(2, 1, 1, 2)
    assert dr.texture(tex, uv).flatten().tolist() == pytest.approx([4, 1])
    two = torch.cat([tex, tex + 100])
    assert dr.texture(two, uv).flatten().tolist() == pytest.approx([4, 101])


def squares4():
    """4x4 texture, texel [i, j] = (4 i + j)^2: its mip levels are not its bilinear samples."""
    return (torch.arange(16, dtype=F64) ** 2).view(1, 4, 4, 1)


def footprint(texels, n=1, aniso=1.0):
    """uv_da for a footprint of ``texels`` texels (along u; ``texels / aniso`` along v) on a 4x4 texture."""
    return torch.tensor([texels / 4, 0, 0, texels / aniso / 4], dtype=F64).expand(1, 1, n, 4)


def test_mip_level_from_footprint_and_bias_by_hand():
    tex = squares4()
    level1 = (0 + 1 + 16 + 25) / 4  # block [0:2, 0:2] of the squares
    level2 = sum(k * k for k in range(16)) / 16
    uv = torch.tensor([0.125, 0.125], dtype=F64).view(1, 1, 1, 2)  # texel [0, 0]'s center
    kw = dict(boundary_mode="clamp", filter_mode="linear-mipmap-nearest")
    # Footprints of 1, 2, 4 texels select levels 0, 1, 2.
    for texels, want in ((1, 0.0), (2, level1), (4, level2), (8, level2)):
        assert dr.texture(tex, uv, footprint(texels), **kw).item() == pytest.approx(want)
    # The major axis counts: 2 texels along u, 0.5 along v is level 1.
    assert dr.texture(tex, uv, footprint(2, aniso=4), **kw).item() == pytest.approx(level1)
    # A bias shifts the level; without uv_da the bias is the level.
    bias = torch.ones(1, 1, 1, dtype=F64)
    assert dr.texture(tex, uv, footprint(1), bias, **kw).item() == pytest.approx(level1)
    assert dr.texture(tex, uv, footprint(4), -2 * bias, **kw).item() == pytest.approx(0.0)
    assert dr.texture(tex, uv, mip_level_bias=2 * bias, **kw).item() == pytest.approx(level2)
    # linear-mipmap-nearest takes the floor of the level; linear-mipmap-linear blends.
    kw["filter_mode"] = "linear-mipmap-linear"
    assert dr.texture(tex, uv, footprint(2 ** 0.5), **kw).item() == pytest.approx(level1 / 2)
    assert dr.texture(tex, uv, footprint(2 ** 1.25), **kw).item() == pytest.approx(0.75 * level1 + 0.25 * level2)
    assert dr.texture(tex, uv, mip_level_bias=0.5 * bias, **kw).item() == pytest.approx(level1 / 2)
    # 'auto' is linear-mipmap-linear when uv_da or a bias is given, else linear.
    assert dr.texture(tex, uv, mip_level_bias=0.5 * bias, boundary_mode="clamp").item() == pytest.approx(level1 / 2)
    assert dr.texture(tex, uv, boundary_mode="clamp").item() == 0.0
    # max_mip_level caps the level; 0 means plain linear.
    for limit, want in ((1, level1), (0, 0.0)):
        assert dr.texture(tex, uv, footprint(4), max_mip_level=limit, **kw).item() == pytest.approx(want)


def cube_faces(size=2):
    """Cube map [1, 6, size, size, 1]: texel [f, row, col] = 100 (f + 1) + 10 row + col."""
    f, r, c = torch.meshgrid(torch.arange(6), torch.arange(size), torch.arange(size), indexing="ij")
    return (100 * (f + 1) + 10 * r + c).to(F64).view(1, 6, size, size, 1)


def test_cube_face_selection_and_orientation_by_hand():
    # Each direction points at (s, t) = (0.75, 0.25) of its face: column 1, row 0 of the 2x2 face
    # (OpenGL's cube map table). Faces are ordered +x, -x, +y, -y, +z, -z.
    directions = [(1, 0.5, -0.5), (-1, 0.5, 0.5), (0.5, 1, -0.5), (0.5, -1, 0.5), (0.5, 0.5, 1), (-0.5, 0.5, -1)]
    got = sample(cube_faces(), directions, filter_mode="nearest", boundary_mode="cube")
    assert got == [101, 201, 301, 401, 501, 601]
    # Length does not matter; the six axis directions read their face's center, the mean of 4 texels.
    assert sample(cube_faces(), [tuple(3 * c for c in d) for d in directions], filter_mode="nearest",
                  boundary_mode="cube") == got
    axes = [(1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1)]
    assert sample(cube_faces(), axes, boundary_mode="cube") == pytest.approx([100 * f + 5.5 for f in range(1, 7)])
    # Ties: x beats y and z, y beats z. (1, 1, 0) is on +x at t = 0; (0, 1, 1) on +y at t = 1.
    assert sample(cube_faces(), [(1, 1, 0), (0, 1, 1)], filter_mode="nearest", boundary_mode="cube") == [101, 311]
    # A zero or non-finite direction reads 0.
    assert sample(cube_faces(), [(0, 0, 0), (math.nan, 1, 0)], boundary_mode="cube") == [0, 0]


def test_cube_filtering_is_seamless_across_edges_and_corners():
    tex = cube_faces()
    # (1, 0, 1) lies on the edge between +x (its column 0) and +z (its column 1): the mean of both.
    want = (100 + 110 + 501 + 511) / 4
    assert sample(tex, [(1, 0, 1)], boundary_mode="cube") == pytest.approx([want])
    # (1, 1, 1) is the corner of +x, +y, +z (x wins the tie): +x's texel [0, 0] = 100, the
    # neighbors' corner texels +z [0, 1] = 501 and +y [1, 1] = 311, and their mean for the fourth.
    corner = (100 + 501 + 311) / 3
    assert sample(tex, [(1, 1, 1)], boundary_mode="cube") == pytest.approx([(100 + 501 + 311 + corner) / 4])


# ----------------------------------------------------------------------------------------------
# The vectorised sampler against the oracle, on random inputs.


BOUNDARIES = ["wrap", "clamp", "zero", "cube"]
FILTERS = ["nearest", "linear", "linear-mipmap-nearest", "linear-mipmap-linear"]


@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("filter_mode", FILTERS)
def test_against_per_pixel_oracle(boundary, filter_mode):
    g = torch.Generator().manual_seed(10 * BOUNDARIES.index(boundary) + FILTERS.index(filter_mode))
    cube = boundary == "cube"
    tex = torch.rand((2, 6, 4, 4, 3) if cube else (2, 8, 4, 3), generator=g, dtype=F64)
    if cube:
        uv = torch.randn(2, 3, 4, 3, generator=g, dtype=F64)
        uv_da = torch.randn(2, 3, 4, 6, generator=g, dtype=F64) * 0.4
    else:
        uv = torch.rand(2, 3, 4, 2, generator=g, dtype=F64) * 1.6 - 0.3
        uv_da = torch.randn(2, 3, 4, 4, generator=g, dtype=F64) * 0.4
    bias = torch.randn(2, 3, 4, generator=g, dtype=F64)
    for da, b, limit in ((uv_da, None, None), (uv_da, bias, 1), (None, bias.abs() * 2, None)):
        if "mipmap" not in filter_mode and (da is not uv_da or b is not None):
            continue
        want = reference_texture(tex, uv, da, b, filter_mode, boundary, limit)
        got = dr.texture(tex, uv, da, b, filter_mode=filter_mode, boundary_mode=boundary, max_mip_level=limit)
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


def test_float32_matches_float64():
    g = torch.Generator().manual_seed(3)
    tex, uv = torch.rand(1, 16, 16, 4, generator=g), torch.rand(1, 8, 8, 2, generator=g) * 3 - 1
    da = torch.rand(1, 8, 8, 4, generator=g) * 0.3
    got = dr.texture(tex, uv, da)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, dr.texture(tex.double(), uv.double(), da.double()).float(), atol=1e-5, rtol=0)


# ----------------------------------------------------------------------------------------------
# Mip stacks.


def test_construct_mip_levels_and_size_rules():
    tex = torch.rand(2, 4, 8, 3, dtype=F64)
    wrapper = dr.texture_construct_mip(tex)
    assert [tuple(x.shape) for x in wrapper.levels] == [(2, 2, 4, 3), (2, 1, 2, 3), (2, 1, 1, 3)]
    for got, want in zip(wrapper.levels, ref_levels(tex, 3)[1:]):
        torch.testing.assert_close(got, want)
    assert len(dr.texture_construct_mip(tex, max_mip_level=1).levels) == 1
    cube = dr.texture_construct_mip(torch.rand(1, 6, 4, 4, 2), cube_mode=True)
    assert [tuple(x.shape) for x in cube.levels] == [(1, 6, 2, 2, 2), (1, 6, 1, 1, 2)]
    # 12x4 -> 6x2 -> 3x1 -> error, unless the stack stops at 3x1 (nvdiffrast's rule and message).
    odd = torch.rand(1, 4, 12, 1)
    with pytest.raises(RuntimeError, match="cannot downsample an odd extent"):
        dr.texture_construct_mip(odd)
    with pytest.raises(ValueError, match="mip 3    err      1"):
        dr.texture(odd, torch.rand(1, 1, 1, 2), mip_level_bias=torch.zeros(1, 1, 1))
    assert len(dr.texture_construct_mip(odd, max_mip_level=2).levels) == 2


def test_mip_stack_reuse_equals_on_the_fly_and_sends_gradients_to_tex():
    g = torch.Generator().manual_seed(5)
    tex = torch.rand(1, 8, 8, 2, generator=g, dtype=F64, requires_grad=True)
    uv, da = torch.rand(1, 5, 5, 2, generator=g, dtype=F64), torch.rand(1, 5, 5, 4, generator=g, dtype=F64)
    weights = torch.rand(1, 5, 5, 2, generator=g, dtype=F64)
    fly = dr.texture(tex, uv, da)
    (grad_fly,) = torch.autograd.grad((fly * weights).sum(), tex)
    wrapper = dr.texture_construct_mip(tex)
    reuse = dr.texture(tex, uv, da, mip=wrapper)
    (grad_reuse,) = torch.autograd.grad((reuse * weights).sum(), tex)
    assert torch.equal(fly, reuse)
    torch.testing.assert_close(grad_reuse, grad_fly)
    # ... and equals autograd through an explicitly built pyramid, given as nvdiffrast's custom list.
    levels = ref_levels(tex, 3)[1:]
    custom = dr.texture(tex, uv, da, mip=levels)
    torch.testing.assert_close(custom, fly)
    torch.testing.assert_close(torch.autograd.grad((custom * weights).sum(), tex)[0], grad_fly)
    # The stored levels are what is sampled (as in nvdiffrast): a changed tex keeps the old mips.
    with torch.no_grad():
        changed = tex + 1
    mixed = dr.texture(changed, uv, da, mip=wrapper)
    assert not torch.allclose(mixed, dr.texture(changed, uv, da))
    with pytest.raises(RuntimeError, match="mip does not match texture size"):
        dr.texture(tex[:, :4], uv, da, mip=wrapper)


def test_custom_mip_list_gets_its_own_gradients():
    tex = torch.rand(1, 4, 4, 1, dtype=F64, requires_grad=True)
    level1 = torch.rand(1, 2, 2, 1, dtype=F64, requires_grad=True)
    uv = torch.full((1, 1, 1, 2), 0.3, dtype=F64)
    out = dr.texture(tex, uv, mip_level_bias=torch.full((1, 1, 1), 1.0, dtype=F64), mip=[level1],
                     filter_mode="linear-mipmap-nearest")
    out.sum().backward()
    assert tex.grad is None or not tex.grad.any()
    assert level1.grad.sum().item() == pytest.approx(1.0)
    with pytest.raises(RuntimeError, match="mip level size mismatch"):
        dr.texture(tex, uv, mip_level_bias=torch.ones(1, 1, 1, dtype=F64), mip=[torch.rand(1, 3, 2, 1, dtype=F64)])


# ----------------------------------------------------------------------------------------------
# Gradients.


def _gradcheck_inputs(g, tex_batch):
    """A small float64 texture ``[tex_batch, 4, 8, 2]`` and, for a batch of two 3 x 3 images, uv (a little
    outside [0, 1] too), uv_da and mip_level_bias, all requiring grad."""
    tex = torch.rand(tex_batch, 4, 8, 2, generator=g, dtype=F64, requires_grad=True)
    uv = (torch.rand(2, 3, 3, 2, generator=g, dtype=F64) * 1.4 - 0.2).requires_grad_()
    da = (torch.randn(2, 3, 3, 4, generator=g, dtype=F64) * 0.3).requires_grad_()
    bias = (torch.randn(2, 3, 3, generator=g, dtype=F64) * 0.5).requires_grad_()
    return tex, uv, da, bias


def _gradcheck(fn, *inputs):
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("boundary", ["wrap", "clamp", "zero"])
def test_gradcheck_2d(boundary):
    g = torch.Generator().manual_seed(11)
    tex, uv, da, bias = _gradcheck_inputs(g, tex_batch=1)
    _gradcheck(lambda t, u, d, b: dr.texture(t, u, d, b, boundary_mode=boundary), tex, uv, da, bias)
    _gradcheck(lambda t, u: dr.texture(t, u, boundary_mode=boundary), tex, uv)
    _gradcheck(lambda t, u: dr.texture(t, u, da.detach(), filter_mode="linear-mipmap-nearest",
                                       boundary_mode=boundary), tex, uv)
    # nearest: gradients to tex only.
    _gradcheck(lambda t: dr.texture(t, uv.detach(), filter_mode="nearest", boundary_mode=boundary), tex)


def test_gradcheck_cube():
    g = torch.Generator().manual_seed(12)
    tex = torch.rand(1, 6, 2, 2, 2, generator=g, dtype=F64, requires_grad=True)
    uv = torch.randn(1, 3, 3, 3, generator=g, dtype=F64).requires_grad_()
    da = (torch.randn(1, 3, 3, 6, generator=g, dtype=F64) * 0.5).requires_grad_()
    bias = (torch.randn(1, 3, 3, generator=g, dtype=F64) * 0.3).requires_grad_()
    _gradcheck(lambda t, u, d, b: dr.texture(t, u, d, b, boundary_mode="cube"), tex, uv, da, bias)
    _gradcheck(lambda t, u: dr.texture(t, u, boundary_mode="cube"), tex, uv)


def test_nearest_has_no_uv_gradient_and_mip_gradients_follow_nvdiffrast():
    tex = torch.rand(1, 4, 4, 1, requires_grad=True)
    uv = torch.rand(1, 2, 2, 2, requires_grad=True)
    out = dr.texture(tex, uv, filter_mode="nearest")
    assert out.grad_fn is not None and torch.autograd.grad(out.sum(), uv, allow_unused=True)[0] is None
    # A circular footprint: nvdiffrast's uv_da gradient there is zero (not NaN).
    da = torch.tensor([0.3, 0, 0, 0.3]).view(1, 1, 1, 4).expand(1, 2, 2, 4).clone().requires_grad_()
    (g,) = torch.autograd.grad(dr.texture(tex, uv.detach(), da).sum(), da)
    assert torch.equal(g, torch.zeros_like(g))


def test_checks():
    tex, uv = torch.rand(1, 4, 4, 3), torch.rand(1, 2, 2, 2)
    with pytest.raises(ValueError, match="uv must have shape"):
        dr.texture(tex, torch.rand(1, 2, 2, 3))
    with pytest.raises(RuntimeError, match="minibatch size mismatch"):
        dr.texture(torch.rand(2, 4, 4, 3), torch.rand(3, 2, 2, 2))
    with pytest.raises(RuntimeError, match=r"uv_da must have shape \[minibatch_size, height, width, 4\]"):
        dr.texture(tex, uv, uv_da=torch.rand(1, 2, 2, 2))
    with pytest.raises(ValueError, match="needs uv_da"):
        dr.texture(tex, uv, filter_mode="linear-mipmap-linear")
    with pytest.raises(ValueError, match="filter_mode"):
        dr.texture(tex, uv, filter_mode="bilinear")
    with pytest.raises(ValueError, match="boundary_mode"):
        dr.texture(tex, uv, boundary_mode="mirror")
    with pytest.raises(NvdiffrastValueError, match="square in cube map mode"):
        dr.texture(torch.rand(1, 6, 4, 2, 3), torch.rand(1, 2, 2, 3), boundary_mode="cube")
    with pytest.raises(TypeError, match="tex"):
        dr.texture([[0.0]], uv)
    with pytest.raises(TypeError, match="uv"):
        dr.texture(tex, uv.double())


# ----------------------------------------------------------------------------------------------
# The compiled CPU kernel (2D textures) against the torch reference (texture._torch_texture).


import importlib  # noqa: E402

from glsplat.kernels import cpu_kernels  # noqa: E402

texture_module = importlib.import_module("glsplat.nvdiffrast.texture")  # the name is the function's too

needs_kernels = pytest.mark.skipif(cpu_kernels() is None, reason="the CPU kernels could not be built")


def _through_kernel(out):
    """Whether ``out`` (with a gradient history) came from the compiled kernel's Function."""
    names, stack, seen = set(), [out.grad_fn], set()
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        names.add(type(fn).__name__)
        stack.extend(next_fn for next_fn, _ in fn.next_functions)
    return "_Texture2DKernelBackward" in names


def _kernel_case(seed, dtype, filter_mode, boundary, tex_batch, batch=2, height=9, width=13, channels=3):
    """Random inputs: coordinates well outside [0, 1], some exactly on texel centers and edges;
    9 x 13 pixels per image, more than the kernel's block of 64 and not a multiple of it."""
    g = torch.Generator().manual_seed(seed)
    tex = torch.rand(tex_batch, 8, 16, channels, generator=g, dtype=dtype)
    uv = torch.rand(batch, height, width, 2, generator=g, dtype=dtype) * 2.4 - 0.7
    exact = torch.tensor([0.0, 1.0, 0.5 / 16, 1 - 0.5 / 16, 0.25, -1 / 16, 1 + 1 / 8, 2.0], dtype=dtype)
    uv[0, 0, :7, 0] = exact[:7]
    uv[0, 1, :7, 1] = exact[1:]
    uv_da = torch.randn(batch, height, width, 4, generator=g, dtype=dtype) * 0.3
    bias = torch.randn(batch, height, width, generator=g, dtype=dtype)
    bias[0, 2, :3] = torch.tensor([0.0, 1.0, 2.0], dtype=dtype)  # whole levels (mip-linear's frac = 0)
    weights = torch.randn(batch, height, width, channels, generator=g, dtype=dtype)
    return tex, uv, uv_da, bias, weights


def _values_and_gradients(fn, tex, uv, uv_da, bias, weights, filter_mode, boundary, limit=None, mip=None):
    inputs = [x.clone().requires_grad_() for x in (tex, uv, uv_da, bias)]
    mipmap = "mipmap" in filter_mode
    out = fn(inputs[0], inputs[1], inputs[2] if mipmap else None, inputs[3] if mipmap else None, mip=mip,
             filter_mode=filter_mode, boundary_mode=boundary, max_mip_level=limit)
    grads = torch.autograd.grad((out * weights).sum(), inputs, allow_unused=True, materialize_grads=True)
    return out, grads


def _torch_gather(tex, uv, uv_da, bias, mip=None, filter_mode="linear", boundary_mode="wrap", max_mip_level=None):
    """The torch reference, 'linear' through its per-tap gather (``_bilinear``, here as level 0 of
    'linear-mipmap-nearest') rather than grid_sample, whose rounding can put a coordinate on a texel
    center (a kink) on the other side: the same value, the other one-sided derivative."""
    if filter_mode == "linear":
        filter_mode, uv_da, bias = "linear-mipmap-nearest", None, torch.zeros(uv.shape[:3], dtype=uv.dtype)
    return texture_module._torch_texture(tex, uv, uv_da, bias, mip=mip, filter_mode=filter_mode,
                                         boundary_mode=boundary_mode, max_mip_level=max_mip_level)


@needs_kernels
@pytest.mark.parametrize("boundary", ["wrap", "clamp", "zero"])
@pytest.mark.parametrize("filter_mode", FILTERS)
def test_kernel_matches_torch_reference(boundary, filter_mode):
    seed = 20 + 4 * ["wrap", "clamp", "zero"].index(boundary) + FILTERS.index(filter_mode)
    for tex_batch, limit in ((1, None), (2, 2)):
        tex, uv, uv_da, bias, weights = _kernel_case(seed, F64, filter_mode, boundary, tex_batch)
        got, got_grads = _values_and_gradients(dr.texture, tex, uv, uv_da, bias, weights, filter_mode, boundary, limit)
        assert _through_kernel(got)
        want, want_grads = _values_and_gradients(texture_module._torch_texture, tex, uv, uv_da, bias, weights,
                                                 filter_mode, boundary, limit)
        assert not _through_kernel(want)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-13)
        if filter_mode == "linear":
            want, want_grads = _values_and_gradients(_torch_gather, tex, uv, uv_da, bias, weights, filter_mode, boundary)
        assert torch.equal(got, want)
        for name, a, b in zip(("tex", "uv", "uv_da", "bias"), got_grads, want_grads):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12, msg=lambda m: f"{name}: {m}")
        # float32: the same to float32 rounding (values are in [0, 1], gradients up to ~100).
        case32 = [x.float() for x in (tex, uv, uv_da, bias, weights)]
        got, got_grads = _values_and_gradients(dr.texture, *case32, filter_mode, boundary, limit)
        want = _values_and_gradients(texture_module._torch_texture, *case32, filter_mode, boundary, limit)[0]
        torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
        want, want_grads = _values_and_gradients(_torch_gather if filter_mode == "linear" else
                                                 texture_module._torch_texture, *case32, filter_mode, boundary, limit)
        assert torch.equal(got, want)  # the torch gather's operations in the same order: the same bits
        for name, a, b in zip(("tex", "uv", "uv_da", "bias"), got_grads, want_grads):
            scale = b.abs().max().item() + 1
            torch.testing.assert_close(a, b, rtol=0, atol=1e-4 * scale, msg=lambda m: f"float32 {name}: {m}")


@needs_kernels
@pytest.mark.parametrize("channels", [1, 2, 4, 5])
@pytest.mark.parametrize("filter_mode", FILTERS)
def test_kernel_any_channel_count(channels, filter_mode):
    # 1 to 4 channels are compiled each on their own, more take a general loop.
    for boundary in ("wrap", "clamp", "zero"):
        tex, uv, uv_da, bias, weights = _kernel_case(channels, F64, filter_mode, boundary, 2, channels=channels)
        got, got_grads = _values_and_gradients(dr.texture, tex, uv, uv_da, bias, weights, filter_mode, boundary)
        want, want_grads = _values_and_gradients(_torch_gather, tex, uv, uv_da, bias, weights, filter_mode, boundary)
        assert _through_kernel(got)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-13)
        for a, b in zip(got_grads, want_grads):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@needs_kernels
def test_kernel_with_stored_and_custom_mip_stacks():
    tex, uv, uv_da, bias, weights = _kernel_case(40, F64, "linear-mipmap-linear", "wrap", 1)
    wrapper = dr.texture_construct_mip(tex + 0.25)  # stale on purpose: its stored values are sampled
    custom = [x.clone() for x in ref_levels(tex, 4)[1:]]
    for mip in (wrapper, custom):
        got, got_grads = _values_and_gradients(dr.texture, tex, uv, uv_da, bias, weights, "linear-mipmap-linear",
                                               "wrap", mip=mip)
        want, want_grads = _values_and_gradients(texture_module._torch_texture, tex, uv, uv_da, bias, weights,
                                                 "linear-mipmap-linear", "wrap", mip=mip)
        assert _through_kernel(got)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-13)
        for a, b in zip(got_grads, want_grads):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@needs_kernels
@pytest.mark.parametrize("filter_mode", FILTERS)
def test_kernel_gradcheck(filter_mode):
    g = torch.Generator().manual_seed(41)
    tex, uv, da, bias = _gradcheck_inputs(g, tex_batch=2)
    for boundary in ("wrap", "clamp", "zero"):
        if "mipmap" in filter_mode:
            _gradcheck(lambda t, u, d, b: dr.texture(t, u, d, b, filter_mode=filter_mode, boundary_mode=boundary),
                       tex, uv, da, bias)
        elif filter_mode == "linear":
            _gradcheck(lambda t, u: dr.texture(t, u, boundary_mode=boundary), tex, uv)
        else:
            _gradcheck(lambda t: dr.texture(t, uv.detach(), filter_mode=filter_mode, boundary_mode=boundary), tex)


@needs_kernels
@pytest.mark.parametrize("boundary", ["wrap", "clamp", "zero"])
def test_kernel_non_finite_coordinates(boundary):
    tex = torch.rand(1, 4, 4, 2, dtype=F64, requires_grad=True)
    inf, nan = float("inf"), float("nan")
    uv = torch.tensor([[nan, 0.3], [0.3, inf], [-inf, 0.3], [0.3, 0.4]], dtype=F64).view(1, 1, 4, 2).requires_grad_()
    out = dr.texture(tex, uv, boundary_mode=boundary)
    assert out[0, 0, 0].isnan().all() and out[0, 0, 3].isfinite().all()
    if boundary == "wrap":
        assert out[0, 0, 1:3].isnan().all()
    else:  # an infinite coordinate is any far-away one
        far = torch.tensor([[0.3, 1e6], [-1e6, 0.3]], dtype=F64).view(1, 1, 2, 2)
        torch.testing.assert_close(out[:, :, 1:3], dr.texture(tex, far, boundary_mode=boundary))
    g_tex, g_uv = torch.autograd.grad(out[..., 3:, :].sum() + out[..., :3, :].nan_to_num().sum(), (tex, uv))
    assert g_tex.isfinite().all() and g_uv.isfinite().all() and not g_uv[0, 0, :1].any()
