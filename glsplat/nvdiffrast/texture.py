"""nvdiffrast's `texture` and `texture_construct_mip`, in torch (any device, float32 or float64).

On the CPU, 2D textures are sampled by a compiled kernel (glsplat/csrc/nvdr_texture.cpp, forward
and backward) that follows the torch code here step by step; the torch code stays the reference
(:func:`_torch_texture`) and the path on other devices and for cube maps. Mip stacks and each
pixel's mip level are computed in torch on both paths. The kernel gives NaN (and no gradient) at
a NaN coordinate, and at an infinite one under 'wrap'.

Conventions (nvdiffrast's, which these functions reproduce):

* A 2D texture is ``[B, H, W, C]``: row ``i`` of the ``H`` axis holds texel centers at
  ``v = (i + 0.5) / H``, column ``j`` at ``u = (j + 0.5) / W``. ``(u, v) = (0, 0)`` is the corner of
  texel ``[0, 0]`` (the first row in memory); ``v`` grows with the row index. There is no flip.
* A cube map is ``[B, 6, S, S, C]`` with faces in the order +x, -x, +y, -y, +z, -z, addressed by a
  3D direction: the face is the direction's major axis (ties: z loses to x and y, y loses to x)
  and the face coordinates are OpenGL's:

  ====  ===========================  ===========================
  face  s (the ``W`` axis)           t (the ``H`` axis)
  ====  ===========================  ===========================
  +x    ``0.5 - z / (2|x|)``         ``0.5 - y / (2|x|)``
  -x    ``0.5 + z / (2|x|)``         ``0.5 - y / (2|x|)``
  +y    ``0.5 + x / (2|y|)``         ``0.5 + z / (2|y|)``
  -y    ``0.5 + x / (2|y|)``         ``0.5 - z / (2|y|)``
  +z    ``0.5 + x / (2|z|)``         ``0.5 - y / (2|z|)``
  -z    ``0.5 - x / (2|z|)``         ``0.5 - y / (2|z|)``
  ====  ===========================  ===========================

  Bilinear taps that fall off a face are read from the neighboring face's edge texels (seamless
  filtering); at a face corner the missing fourth texel is the mean of the other three.
* Mip level ``k`` is ``[B, max(H >> k, 1), max(W >> k, 1), C]``, each texel the mean of a 2x2
  block of level ``k - 1`` (of 2 texels where a side is already 1); a side that is odd and above 1
  cannot be halved, which is an error unless ``max_mip_level`` stops the stack before it.
* The mip level of a pixel is ``log2`` of the major axis of its footprint in texels, computed from
  ``uv_da = (du/dX, du/dY, dv/dX, dv/dY)`` scaled by the base level's ``(W, W, H, H)``, plus
  ``mip_level_bias``, clamped to ``[0, max level]``. 'linear-mipmap-nearest' samples level
  ``floor(level)``; 'linear-mipmap-linear' blends ``floor(level)`` and the next by the fraction.

Gradients reach ``tex``, ``uv``, ``uv_da`` and ``mip_level_bias`` where nvdiffrast gives them
(none to ``uv`` in 'nearest'; none to ``uv_da``/``mip_level_bias`` except in
'linear-mipmap-linear'). Mip levels built here (internally or by :func:`texture_construct_mip`)
pass their gradients on to ``tex``; a user's own list of mip tensors gets gradients of its own.
"""
from __future__ import annotations

import math

import torch

from ..kernels import cpu_kernels
from .ops import _require

__all__ = ["TextureMipWrapper", "texture", "texture_construct_mip"]

FILTER_MODES = ("nearest", "linear", "linear-mipmap-nearest", "linear-mipmap-linear")
BOUNDARY_MODES = ("cube", "wrap", "clamp", "zero")
MAX_MIP_LEVEL = 16  # nvdiffrast's limit: a texture side is at most 2**16 texels

# Cube faces: for face f = 2 * axis + (direction < 0), the texture axes as signed components of
# the direction: s = 0.5 + S_SIGN[f] * d[S_AXIS[f]] / (2 |d[axis]|), likewise t.
S_AXIS = (2, 2, 0, 0, 0, 0)
S_SIGN = (-1, 1, 1, 1, 1, -1)
T_AXIS = (1, 1, 2, 2, 1, 1)
T_SIGN = (-1, -1, 1, -1, -1, -1)


# ----------------------------------------------------------------------------------------------
# Mip stacks.


def _level_size(width: int, height: int, level: int) -> tuple[int, int]:
    """``(w, h)`` of mip ``level`` of a ``height x width`` texture."""
    return max(width >> level, 1), max(height >> level, 1)


def _mip_size_error(width: int, height: int) -> str:
    """nvdiffrast's message for a stack that meets an odd side above 1, with its table."""
    lines = ["Mip-map size error - cannot downsample an odd extent greater than 1. Resize the texture so that "
             "both spatial extents are powers of two, or limit the number of mip maps using max_mip_level "
             "argument.", "Attempted mip stack construction:", "level  width height", "-----  ----- ------",
             f"base   {width:5d}  {height:5d}"]
    w, h, level, bad_w, bad_h = width, height, 0, False, False
    while (w > 1 or h > 1) and not (bad_w or bad_h):
        level += 1
        bad_w = bad_w or (w > 1 and w % 2 == 1)
        bad_h = bad_h or (h > 1 and h % 2 == 1)
        w, h = max(w // 2, 1), max(h // 2, 1)
        lines.append(f"mip {level:<2d} " + ("  err  " if bad_w else f"{w:5d}  ") + ("  err" if bad_h else f"{h:5d}"))
    return "\n".join(lines)


def _mip_count(width: int, height: int, limit: int) -> int:
    """The number of mip levels above the base: down to 1x1, or ``limit`` if ``limit >= 0``.

    Raises nvdiffrast's error if a side to be halved is odd and above 1.
    """
    level, w, h = 0, width, height
    if limit == 0:
        return 0
    while w > 1 or h > 1:
        level += 1
        _require(not ((w > 1 and w % 2) or (h > 1 and h % 2)), _mip_size_error(width, height))
        w, h = max(w // 2, 1), max(h // 2, 1)
        if limit >= 0 and level == limit:
            break
    return level


def _downsample(x: torch.Tensor) -> torch.Tensor:
    """One mip step of ``x`` ``[..., h, w, C]`` (``h``, ``w`` even or 1): 2x2 (or 2x1) box means.

    Sums in nvdiffrast's order (top-left, top-right, bottom-left, bottom-right) then scales, so
    float32 results are bit-identical to its kernel's.
    """
    h, w = x.shape[-3], x.shape[-2]
    if h == 1:
        return 0.5 * (x[..., 0::2, :] + x[..., 1::2, :])
    if w == 1:
        return 0.5 * (x[..., 0::2, :, :] + x[..., 1::2, :, :])
    top, bottom = x[..., 0::2, :, :], x[..., 1::2, :, :]
    return 0.25 * (top[..., 0::2, :] + top[..., 1::2, :] + bottom[..., 0::2, :] + bottom[..., 1::2, :])


def _upsample_adjoint(grad: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The adjoint of :func:`_downsample` from a ``height x width`` level: ``grad`` ``[..., h', w', C]``
    spread back to ``[..., height, width, C]``."""
    if height > 1:
        grad = grad.repeat_interleave(2, dim=-3) * 0.5
    if width > 1:
        grad = grad.repeat_interleave(2, dim=-2) * 0.5
    return grad


def _build_levels(tex: torch.Tensor, count: int) -> list[torch.Tensor]:
    """Mip levels ``1..count`` of ``tex`` ``[..., H, W, C]`` (a list of ``count`` tensors)."""
    levels, x = [], tex
    for _ in range(count):
        x = _downsample(x)
        levels.append(x)
    return levels


class _PyramidFlat(torch.autograd.Function):
    """``tex`` and its stored mip levels as one flat ``[T, C]`` texel array, in which the levels
    act as functions of ``tex``: their gradients are pulled back to ``tex`` through the box filter
    (nvdiffrast's mip gradient pass), whether or not the stored values are ``tex``'s current ones."""

    @staticmethod
    def forward(ctx, tex, stored_flat, level_shapes):
        ctx.level_shapes = level_shapes
        ctx.tex_shape = tex.shape
        channels = tex.shape[-1]
        return torch.cat([tex.reshape(-1, channels), stored_flat.to(tex.dtype)], 0)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        shape = ctx.tex_shape
        base = math.prod(shape[:-1])
        offsets, start = [], base
        for level_shape in ctx.level_shapes:
            offsets.append(start)
            start += math.prod(level_shape[:-1])
        acc = None  # the gradient pulled down to the current level
        for k in range(len(ctx.level_shapes) - 1, -1, -1):
            level_shape = ctx.level_shapes[k]
            g = grad[offsets[k]:offsets[k] + math.prod(level_shape[:-1])].view(level_shape)
            acc = g if acc is None else acc + g
            below = ctx.level_shapes[k - 1] if k > 0 else shape
            acc = _upsample_adjoint(acc, below[-3], below[-2])
        g_tex = grad[:base].view(shape)
        if acc is not None:
            g_tex = g_tex + acc
        return g_tex.reshape(shape), None, None


class TextureMipWrapper:
    """A mip stack built by :func:`texture_construct_mip`; pass it to :func:`texture` as ``mip``.

    Holds mip levels ``1..L`` of the texture as it was when constructed (without gradient
    history). :func:`texture` samples these stored values and sends their gradients on to the
    ``tex`` it is called with, as nvdiffrast does.

    Attributes:
        levels: list of ``L`` tensors ``[B, h_k, w_k, C]`` (``[B, 6, s_k, s_k, C]`` for a cube map).
        max_mip_level: the ``max_mip_level`` it was built with (-1 for no limit).
        texture_size: the shape of the texture it was built from.
        cube_mode: whether it is a cube map's stack.
    """

    def __init__(self, levels: list[torch.Tensor], max_mip_level: int, texture_size: tuple[int, ...],
                 cube_mode: bool):
        self.levels = levels
        self.max_mip_level = max_mip_level
        self.texture_size = tuple(texture_size)
        self.cube_mode = cube_mode
        channels = texture_size[-1]
        self._flat = (torch.cat([x.reshape(-1, channels) for x in levels], 0) if levels else None)

    def __repr__(self) -> str:
        return (f"TextureMipWrapper(levels={len(self.levels)}, texture_size={list(self.texture_size)}, "
                f"cube_mode={self.cube_mode})")


def _check_texture(tex, cube: bool) -> None:
    if not isinstance(tex, torch.Tensor):
        raise TypeError(f"tex: expected a torch.Tensor, got {type(tex).__name__}")
    if not tex.is_floating_point():
        raise TypeError(f"tex: expected a floating-point tensor (float32 or float64), got {tex.dtype}")
    if not cube:
        _require(tex.dim() == 4 and all(s > 0 for s in tex.shape), "tex must have shape[>0, >0, >0, >0]")
    else:
        _require(tex.dim() == 5 and tex.shape[1] == 6 and all(s > 0 for s in tex.shape),
               "tex must have shape[>0, 6, >0, >0, >0] in cube map mode")
        _require(tex.shape[2] == tex.shape[3], "texture shape must be square in cube map mode")
    _require(tex.shape[-2] <= (1 << MAX_MIP_LEVEL) and tex.shape[-3] <= (1 << MAX_MIP_LEVEL),
           "texture size too large")


def _max_level_arg(max_mip_level) -> int:
    """nvdiffrast's sanitising: None -> -1 (no limit), otherwise an int >= 0."""
    if max_mip_level is None:
        return -1
    level = int(max_mip_level)
    if level < 0:
        raise ValueError(f"max_mip_level: expected None or an integer >= 0, got {max_mip_level}")
    return level


def texture_construct_mip(tex: torch.Tensor, max_mip_level: int | None = None,
                          cube_mode: bool = False) -> TextureMipWrapper:
    """Build a mip stack for a texture that stays constant, to pass to :func:`texture` as ``mip``.

    Args:
        tex: float ``[B, H, W, C]``, or ``[B, 6, S, S, C]`` with ``cube_mode``.
        max_mip_level: at most this many levels above the base (None: down to 1x1). Needed when a
            side reaches an odd size above 1.
        cube_mode: True for a cube map.

    Returns:
        A :class:`TextureMipWrapper` (opaque to nvdiffrast code). Its levels are computed now,
        without gradient history; :func:`texture` still sends their gradients to its ``tex``.
    """
    if cube_mode is not True and cube_mode is not False:
        raise TypeError(f"cube_mode: expected True or False, got {cube_mode!r}")
    _check_texture(tex, cube_mode)
    limit = _max_level_arg(max_mip_level)
    count = _mip_count(tex.shape[-2], tex.shape[-3], limit)
    with torch.no_grad():
        levels = _build_levels(tex.detach(), count)
    return TextureMipWrapper(levels, limit, tex.shape, cube_mode)


# ----------------------------------------------------------------------------------------------
# Cube map addressing.


def _cube_face(d: torch.Tensor) -> torch.Tensor:
    """int64 ``[P]``: the face (0..5 = +x, -x, +y, -y, +z, -z) of directions ``d`` ``[P, 3]``."""
    a = d.abs()
    axis = torch.where(a[:, 2] > torch.maximum(a[:, 0], a[:, 1]), 2, torch.where(a[:, 1] > a[:, 0], 1, 0))
    major = d.gather(1, axis[:, None])[:, 0]
    return 2 * axis + (major < 0).long()


def _face_table(face: torch.Tensor, table: tuple[int, ...]) -> torch.Tensor:
    return torch.tensor(table, device=face.device)[face]


def _cube_st(d: torch.Tensor, face: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Face coordinates ``(s, t)`` ``[P]`` in [0, 1] of directions ``d`` ``[P, 3]`` on ``face``."""
    major = d.gather(1, (face // 2)[:, None])[:, 0]
    half = 0.5 / major.abs()
    s = _face_table(face, S_SIGN) * d.gather(1, _face_table(face, S_AXIS)[:, None])[:, 0] * half + 0.5
    t = _face_table(face, T_SIGN) * d.gather(1, _face_table(face, T_AXIS)[:, None])[:, 0] * half + 0.5
    return s.clamp(0, 1), t.clamp(0, 1)


def _cube_st_derivatives(d: torch.Tensor, face: torch.Tensor, dd: torch.Tensor) -> torch.Tensor:
    """``(ds/dX, ds/dY, dt/dX, dt/dY)`` ``[P, 4]`` from the direction's pixel derivatives.

    ``dd`` ``[P, 3, 2]``: ``d{x, y, z}/d{X, Y}`` (nvdiffrast's cube ``uv_da`` layout). With ``c``
    the major component and ``p`` the one ``s`` reads, ``ds = sign_s / (2|c|) * (dp - p dc / c)``.
    """
    axis = (face // 2)[:, None]
    major = d.gather(1, axis)[:, 0]
    dmajor = dd.gather(1, axis[:, :, None].expand(-1, 1, 2))[:, 0]  # [P, 2]
    out = []
    for table_axis, table_sign in ((S_AXIS, S_SIGN), (T_AXIS, T_SIGN)):
        comp = _face_table(face, table_axis)[:, None]
        p = d.gather(1, comp)[:, 0]
        dp = dd.gather(1, comp[:, :, None].expand(-1, 1, 2))[:, 0]
        scale = (_face_table(face, table_sign) * 0.5 / major.abs())[:, None]
        out.append(scale * (dp - (p / major)[:, None] * dmajor))
    return torch.cat(out, 1)


# Face f's direction scaled by the face size as signed components: d[k] = A[f][k] * a + B[f][k] * b
# + N[f][k] * w, with a = 2 i + 1 - w and b = 2 j + 1 - w for texel column i and row j.
_CUBE_A = ((0, 0, -1), (0, 0, 1), (1, 0, 0), (1, 0, 0), (1, 0, 0), (-1, 0, 0))
_CUBE_B = ((0, -1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1), (0, -1, 0), (0, -1, 0))
_CUBE_N = ((1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1))


def _cube_texel(face: torch.Tensor, ix: torch.Tensor, iy: torch.Tensor, size: torch.Tensor):
    """Resolve texel ``(ix, iy)`` of ``face`` that may lie one texel off the face's edge.

    A texel off an edge is the neighboring face's texel along that edge: the point of the shared
    edge at the texel's row (or column) is mapped to 3D and read back on the face across the
    edge, in exact integer arithmetic. A texel off two edges at once (beyond a corner) has no
    counterpart.

    Args: int64 ``[P]`` each; ``ix``, ``iy`` in ``-1..size``.
    Returns: ``(face, ix, iy, exists)``, the first three int64 ``[P]`` in range, ``exists`` bool.
    """
    dev = face.device
    a = (2 * ix + 1 - size).clamp(min=-size, max=size)[:, None]
    b = (2 * iy + 1 - size).clamp(min=-size, max=size)[:, None]
    tables = [torch.tensor(t, device=dev) for t in (_CUBE_A, _CUBE_B, _CUBE_N)]
    vec = tables[0][face] * a + tables[1][face] * b + tables[2][face] * size[:, None]  # [P, 3]
    off = (vec.abs() == size[:, None]) & (torch.arange(3, device=dev) != (face // 2)[:, None])
    crossing = off.sum(1)
    axis = off.long().argmax(1)
    new_face = torch.where(crossing == 1, 2 * axis + (vec.gather(1, axis[:, None])[:, 0] < 0).long(), face)
    na = (tables[0][new_face] * vec).sum(1)  # the tables are signed permutations: their transpose inverts
    nb = (tables[1][new_face] * vec).sum(1)
    new_ix = torch.div(na + size - 1, 2, rounding_mode="floor").clamp(min=0).minimum(size - 1)
    new_iy = torch.div(nb + size - 1, 2, rounding_mode="floor").clamp(min=0).minimum(size - 1)
    return new_face, new_ix, new_iy, crossing < 2


# ----------------------------------------------------------------------------------------------
# Sampling.


class _Levels:
    """The flat texel array of a mip stack and, per level, its size and offset (int64 tables)."""

    def __init__(self, flat: torch.Tensor, shapes: list[tuple[int, ...]], cube: bool):
        self.flat = flat  # [T, C]: base level, then each mip level, each [B, (6,) h, w] in memory order
        self.batch = shapes[0][0]
        dev = flat.device
        offsets, start = [], 0
        for shape in shapes:
            offsets.append(start)
            start += math.prod(shape[:-1])
        self.offset = torch.tensor(offsets, device=dev)
        self.height = torch.tensor([s[-3] for s in shapes], device=dev)
        self.width = torch.tensor([s[-2] for s in shapes], device=dev)
        self.cube = cube

    def gather(self, index: torch.Tensor) -> torch.Tensor:
        return self.flat.index_select(0, index)


def _bilinear(levels: _Levels, level: torch.Tensor, tz: torch.Tensor, u: torch.Tensor, v: torch.Tensor,
              boundary: str, face: torch.Tensor | None) -> torch.Tensor:
    """Bilinear samples ``[P, C]`` of mip ``level`` (int64 ``[P]``) at texture coordinates ``u``, ``v``
    ``[P]`` (cube: face coordinates ``s``, ``t`` of ``face``), of texture image ``tz`` ``[P]``."""
    w, h, off = levels.width[level], levels.height[level], levels.offset[level]
    wf, hf = w.to(u.dtype), h.to(u.dtype)
    if boundary == "wrap":
        u, v = u - u.detach().floor(), v - v.detach().floor()
    x, y = u * wf - 0.5, v * hf - 0.5
    step_x = step_y = 1
    if boundary == "clamp":  # clamp to the edge texels' centers; then both taps are the edge texel
        x = torch.minimum(x.clamp(min=0), wf - 1)
        y = torch.minimum(y.clamp(min=0), hf - 1)
        step_x = ((x != 0) & (x != wf - 1)).long()
        step_y = ((y != 0) & (y != hf - 1)).long()
    ix0, iy0 = x.detach().floor().long(), y.detach().floor().long()
    fx, fy = (x - ix0.to(x.dtype))[:, None], (y - iy0.to(y.dtype))[:, None]
    ix1, iy1 = ix0 + step_x, iy0 + step_y

    taps = []
    for iy, ix in ((iy0, ix0), (iy0, ix1), (iy1, ix0), (iy1, ix1)):
        valid = None
        if face is not None:  # resolve only the taps that fall off their face
            f, jx, jy = face, ix, iy
            outside = (ix < 0) | (ix >= w) | (iy < 0) | (iy >= h)
            valid = torch.ones_like(outside)
            sel = outside.nonzero().squeeze(1)
            if sel.numel():
                fs, xs, ys, vs = _cube_texel(face[sel], ix[sel], iy[sel], w[sel])
                f, jx, jy = f.index_put((sel,), fs), jx.index_put((sel,), xs), jy.index_put((sel,), ys)
                valid = valid.index_put((sel,), vs)
            index = off + ((tz * 6 + f) * h + jy) * w + jx
        else:
            if boundary == "wrap":
                ix, iy = torch.remainder(ix, w), torch.remainder(iy, h)
            elif boundary == "zero":
                valid = (ix >= 0) & (ix < w) & (iy >= 0) & (iy < h)
                ix, iy = torch.minimum(ix.clamp(min=0), w - 1), torch.minimum(iy.clamp(min=0), h - 1)
            index = off + (tz * h + iy) * w + ix
        value = levels.gather(index)
        if valid is not None:
            value = torch.where(valid[:, None], value, 0.0)
        taps.append((value, valid))
    if face is not None:  # beyond a face corner: the mean of the other three taps
        total = ((taps[0][0] + taps[1][0]) + taps[2][0]) + taps[3][0]
        mean = total * (1.0 / 3.0)  # in float32 the same constant as nvdiffrast's 0.33333333f
        taps = [(torch.where(valid[:, None], value, mean), valid) for value, valid in taps]
    (v00, _), (v10, _), (v01, _), (v11, _) = taps
    top = v00 + fx * (v10 - v00)
    bottom = v01 + fx * (v11 - v01)
    return top + fy * (bottom - top)


def _bilinear_2d(tex: torch.Tensor, uv: torch.Tensor, boundary: str) -> torch.Tensor:
    """Bilinear samples ``[B, Hp, Wp, C]`` of the 2D texture ``tex`` ``[B or 1, H, W, C]`` at ``uv``
    ``[B, Hp, Wp, 2]``: :func:`_bilinear` on one level, through ``torch.nn.functional.grid_sample``.

    'wrap' samples a copy of the texture widened by one texel of its opposite edge on each side
    at ``frac(u), frac(v)``; 'clamp' and 'zero' are grid_sample's 'border' and 'zeros' padding.
    """
    n, hp, wp = uv.shape[:3]
    height, width = tex.shape[1:3]
    image = tex.permute(0, 3, 1, 2)  # [B or 1, C, H, W]
    if tex.shape[0] == 1:  # one texture for the whole minibatch: one grid of all pixels
        uv = uv.reshape(1, n * hp, wp, 2)
    if boundary == "wrap":
        uv = uv - uv.detach().floor()
        image = torch.nn.functional.pad(image, (1, 1, 1, 1), mode="circular")
        scale = uv.new_tensor([width / (width + 2), height / (height + 2)])
        grid = (2 * uv + uv.new_tensor([2 / width, 2 / height])) * scale - 1  # texel j of tex is j + 1 here
    else:
        grid = 2 * uv - 1
    out = torch.nn.functional.grid_sample(image, grid, mode="bilinear", align_corners=False,
                                          padding_mode="border" if boundary == "clamp" else "zeros")
    return out.permute(0, 2, 3, 1).reshape(n, hp, wp, tex.shape[-1])


def _nearest(levels: _Levels, tz: torch.Tensor, u: torch.Tensor, v: torch.Tensor, boundary: str,
             face: torch.Tensor | None) -> torch.Tensor:
    """Nearest-texel samples ``[P, C]`` of the base level (no gradient to the coordinates)."""
    w, h = int(levels.width[0]), int(levels.height[0])
    u, v = u.detach(), v.detach()
    if boundary == "wrap":
        u, v = u - u.floor(), v - v.floor()
    ix, iy = (u * w).floor().long(), (v * h).floor().long()
    valid = None
    if face is None and boundary == "zero":
        valid = (ix >= 0) & (ix < w) & (iy >= 0) & (iy < h)
    ix, iy = ix.clamp(0, w - 1), iy.clamp(0, h - 1)
    depth = tz * 6 + face if face is not None else tz
    value = levels.gather((depth * h + iy) * w + ix)
    return value if valid is None else torch.where(valid[:, None], value, 0.0)


class _FootprintLevel(torch.autograd.Function):
    """``0.5 * log2`` of the squared major axis of the footprint with texel-space derivatives
    ``(ds/dX, ds/dY, dt/dX, dt/dY)``, each ``[P]``.

    The gradient is the analytic one, set to zero where it is not finite (an exactly circular
    footprint, where the major axis is not differentiable), as nvdiffrast does.
    """

    @staticmethod
    def forward(ctx, dsdx, dsdy, dtdx, dtdy):
        A = dsdx * dsdx + dtdx * dtdx
        B = dsdy * dsdy + dtdy * dtdy
        C = dsdx * dsdy + dtdx * dtdy
        l2b = 0.5 * (A + B)
        l2n = 0.25 * (A - B) * (A - B) + C * C
        l2a = l2n.sqrt()
        ctx.save_for_backward(dsdx, dsdy, dtdx, dtdy, A, B, C, l2b, l2n, l2a)
        return 0.5 * torch.log2(l2b + l2a)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        dsdx, dsdy, dtdx, dtdy, A, B, C, l2b, l2n, l2a = ctx.saved_tensors
        dw = (0.5 / math.log(2.0)) / (l2n + l2a * l2b)
        AB, Cw, l2aw = dw * 0.5 * (A - B), dw * C, dw * l2a
        grads = torch.stack([dsdx * (l2aw + AB) + dsdy * Cw, dsdy * (l2aw - AB) + dsdx * Cw,
                             dtdx * (l2aw + AB) + dtdy * Cw, dtdy * (l2aw - AB) + dtdx * Cw])
        grads = torch.where(torch.isfinite(grads).all(0), grads, 0.0) * grad
        return tuple(grads)


def _check_filter_inputs(tex, uv, uv_da, mip_level_bias, cube: bool, mipmap: bool) -> None:
    if not isinstance(uv, torch.Tensor):
        raise TypeError(f"uv: expected a torch.Tensor, got {type(uv).__name__}")
    if not uv.is_floating_point() or uv.dtype != tex.dtype:
        raise TypeError(f"uv: expected {tex.dtype} like tex, got {uv.dtype}")
    _check_texture(tex, cube)
    if not cube:
        _require(uv.dim() == 4 and all(s > 0 for s in uv.shape[:3]) and uv.shape[3] == 2,
               "uv must have shape [>0, >0, >0, 2]")
    else:
        _require(uv.dim() == 4 and all(s > 0 for s in uv.shape[:3]) and uv.shape[3] == 3,
               "uv must have shape [>0, >0, >0, 3] in cube map mode")
    _require(tex.shape[0] == 1 or tex.shape[0] == uv.shape[0], "minibatch size mismatch between inputs tex, uv")
    for name, x in (("uv_da", uv_da), ("mip_level_bias", mip_level_bias)):
        if x is None or not mipmap:
            continue
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor or None, got {type(x).__name__}")
        if x.dtype != tex.dtype:
            raise TypeError(f"{name}: expected {tex.dtype} like tex, got {x.dtype}")
    if mipmap and uv_da is not None:
        n, hp, wp = uv.shape[:3]
        if not cube:
            _require(tuple(uv_da.shape) == (n, hp, wp, 4), "uv_da must have shape [minibatch_size, height, width, 4]")
        else:
            _require(tuple(uv_da.shape) == (n, hp, wp, 6),
                   "uv_da must have shape [minibatch_size, height, width, 6] in cube map mode")
    if mipmap and mip_level_bias is not None:
        _require(tuple(mip_level_bias.shape) == tuple(uv.shape[:3]),
               "mip_level_bias must have shape [minibatch_size, height, width]")
    devices = {x.device for x in (tex, uv, uv_da, mip_level_bias) if isinstance(x, torch.Tensor)}
    if len(devices) > 1:
        raise ValueError(f"tex, uv, uv_da, mip_level_bias: expected one device, got {sorted(map(str, devices))}")


def _mip_stack(tex: torch.Tensor, mip, limit: int, cube: bool) -> tuple[torch.Tensor, list[tuple[int, ...]]]:
    """The flat ``[T, C]`` texel array of ``tex`` and its mip levels, and the levels' shapes."""
    width, height, channels = tex.shape[-2], tex.shape[-3], tex.shape[-1]
    if isinstance(mip, list):  # the user's own levels: gradients go to them, not to tex
        shapes = [tuple(tex.shape)]
        for i, t in enumerate(mip, start=1):
            if not isinstance(t, torch.Tensor):
                raise TypeError(f"mip: expected a list of torch.Tensor, got a {type(t).__name__} at {i - 1}")
            w, h = _level_size(width, height, i)
            want = (tex.shape[0], 6, h, w, channels) if cube else (tex.shape[0], h, w, channels)
            _require(tuple(t.shape) == want, "mip level size mismatch in custom mip stack")
            if w == 1 and h == 1:
                _require(i == len(mip), "mip level size mismatch in mip stack")
            if t.dtype != tex.dtype or t.device != tex.device:
                raise TypeError(f"mip[{i - 1}]: expected {tex.dtype} on {tex.device} like tex, "
                                f"got {t.dtype} on {t.device}")
            shapes.append(tuple(t.shape))
        flat = torch.cat([x.reshape(-1, channels) for x in [tex, *mip]], 0)
        return flat, shapes
    if mip is None:
        wrapper = texture_construct_mip(tex, None if limit < 0 else limit, cube)
    else:
        wrapper = mip
        _require(tuple(tex.shape) == wrapper.texture_size and cube == wrapper.cube_mode,
               "mip does not match texture size")
    shapes = [tuple(tex.shape)] + [tuple(x.shape) for x in wrapper.levels]
    if wrapper._flat is None:
        return tex.reshape(-1, channels), shapes
    stored = wrapper._flat
    if stored.device != tex.device:
        raise ValueError(f"mip: built on {stored.device}, but tex is on {tex.device}")
    return _PyramidFlat.apply(tex, stored, shapes[1:]), shapes


def _mip_level(tex: torch.Tensor, uv_da: torch.Tensor | None, mip_level_bias: torch.Tensor | None, pixels: int,
               top: int, cube: tuple | None) -> torch.Tensor:
    """Each pixel's mip level ``[P]``, clamped to ``[0, top]`` (see the module notes).

    ``cube``: None for a 2D texture; for a cube map ``(coords, face, valid)`` as :func:`texture`
    finds them (the directions, with stand-ins where invalid, their faces and validity).
    """
    if uv_da is not None:
        da = uv_da.reshape(pixels, uv_da.shape[-1])
        if cube is not None:
            coords, face, valid = cube
            da = torch.where(valid[:, None], da, 0.0)
            da = _cube_st_derivatives(coords, face, da.view(pixels, 3, 2))
            da = torch.where(torch.isfinite(da).all(1, keepdim=True), da, 0.0)
        width, height = float(tex.shape[-2]), float(tex.shape[-3])
        flevel = _FootprintLevel.apply(da[:, 0] * width, da[:, 1] * width, da[:, 2] * height, da[:, 3] * height)
    else:
        flevel = torch.zeros(pixels, dtype=tex.dtype, device=tex.device)
    if mip_level_bias is not None:
        flevel = flevel + mip_level_bias.reshape(pixels)
    return torch.nan_to_num(flevel, nan=0.0).clamp(0, top)  # as CUDA's fmaxf: NaN -> 0


BOUNDARY_CODES = {"wrap": 0, "clamp": 1, "zero": 2}  # the kernel's codes; filters: FILTER_MODES's order


class _Texture2DKernel(torch.autograd.Function):
    """2D sampling through the CPU kernel (nvdr_texture.cpp): the torch path's ``_nearest``,
    ``_bilinear`` and mip blend in one pass, forward and backward.

    ``texels`` ``[T, C]`` and ``shapes`` as :func:`_mip_stack` gives them (just the base level
    without a mip filter), ``uv`` ``[P, 2]``, ``level`` ``[P]`` from :func:`_mip_level` (None
    without a mip filter). Gradients to ``texels``, ``uv`` (not in 'nearest') and ``level``
    ('linear-mipmap-linear' only).
    """

    @staticmethod
    def forward(ctx, texels, uv, level, shapes, filter_code, boundary_code, kernels):
        level = texels.new_empty(0) if level is None else level.contiguous()
        ctx.args = ([s[-3] for s in shapes], [s[-2] for s in shapes], shapes[0][0], filter_code, boundary_code)
        ctx.kernels = kernels
        ctx.save_for_backward(texels, uv, level)
        return kernels.nvdr_texture_forward(texels, uv, level, *ctx.args)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        want = ctx.needs_input_grad[:3]
        g_texels, g_uv, g_level = ctx.kernels.nvdr_texture_backward(grad, *ctx.saved_tensors, *ctx.args, *want)
        return (*(g if g.numel() else None for g in (g_texels, g_uv, g_level)), None, None, None, None)


def texture(tex: torch.Tensor, uv: torch.Tensor, uv_da: torch.Tensor | None = None,
            mip_level_bias: torch.Tensor | None = None, mip=None, filter_mode: str = "auto",
            boundary_mode: str = "wrap", max_mip_level: int | None = None) -> torch.Tensor:
    """Sample a texture at per-pixel coordinates, as nvdiffrast's ``texture`` (see the module notes).

    Args:
        tex: float ``[B or 1, H, W, C]``; with ``boundary_mode='cube'`` a cube map
            ``[B or 1, 6, S, S, C]``. A minibatch of 1 is shared by all images. Differentiable.
        uv: ``[B, Hp, Wp, 2]`` texture coordinates ``(u, v)`` (see the module notes), or for a
            cube map ``[B, Hp, Wp, 3]`` directions (any length; zero or non-finite ones give 0).
            Same dtype as ``tex``. Differentiable except in 'nearest'.
        uv_da: optional ``[B, Hp, Wp, 4]`` pixel derivatives ``(du/dX, du/dY, dv/dX, dv/dY)``;
            for a cube map ``[B, Hp, Wp, 6]`` ``(dx/dX, dx/dY, dy/dX, dy/dY, dz/dX, dz/dY)``.
            Selects the mip level. Differentiable in 'linear-mipmap-linear'.
        mip_level_bias: optional ``[B, Hp, Wp]``, added to the mip level (without ``uv_da``, it
            is the level). Differentiable in 'linear-mipmap-linear'.
        mip: optional mip stack: a :func:`texture_construct_mip` result (its stored levels are
            sampled; their gradients go to ``tex``), or a list of level tensors ``1..L`` shaped
            like ``tex`` with the mip sizes (these get gradients of their own, ``tex`` gets
            none from them). Default: built from ``tex`` on each call.
        filter_mode: 'nearest', 'linear', 'linear-mipmap-nearest', 'linear-mipmap-linear' or
            'auto' ('linear-mipmap-linear' if ``uv_da`` or ``mip_level_bias`` is given,
            otherwise 'linear').
        boundary_mode: 'wrap' (repeat), 'clamp' (to the edge texels' centers), 'zero' (zeros
            outside) or 'cube' (a cube map).
        max_mip_level: at most this many mip levels above the base (None: down to 1x1). 0 turns
            mip-mapped modes into 'linear'. With a :func:`texture_construct_mip` stack, the
            stack's own limit applies.

    Returns:
        ``[B, Hp, Wp, C]`` in ``tex``'s dtype, on its device.
    """
    return _texture(tex, uv, uv_da, mip_level_bias, mip, filter_mode, boundary_mode, max_mip_level, compiled=True)


def _torch_texture(tex, uv, uv_da=None, mip_level_bias=None, mip=None, filter_mode="auto", boundary_mode="wrap",
                   max_mip_level=None) -> torch.Tensor:
    """:func:`texture` without the compiled kernel: the torch reference the kernel is tested against."""
    return _texture(tex, uv, uv_da, mip_level_bias, mip, filter_mode, boundary_mode, max_mip_level, compiled=False)


def _texture(tex, uv, uv_da, mip_level_bias, mip, filter_mode, boundary_mode, max_mip_level,
             compiled: bool) -> torch.Tensor:
    """:func:`texture`, through the CPU kernel for a 2D texture on the CPU if ``compiled``."""
    if filter_mode == "auto":
        filter_mode = "linear-mipmap-linear" if (uv_da is not None or mip_level_bias is not None) else "linear"
    if filter_mode not in FILTER_MODES:
        raise ValueError(f"filter_mode: expected one of 'auto', {', '.join(map(repr, FILTER_MODES))}; "
                         f"got {filter_mode!r}")
    if boundary_mode not in BOUNDARY_MODES:
        raise ValueError(f"boundary_mode: expected one of {', '.join(map(repr, BOUNDARY_MODES))}; "
                         f"got {boundary_mode!r}")
    limit = _max_level_arg(max_mip_level)
    if not isinstance(tex, torch.Tensor):
        raise TypeError(f"tex: expected a torch.Tensor, got {type(tex).__name__}")
    mipmap = "mipmap" in filter_mode
    if mipmap and uv_da is None and mip_level_bias is None:
        raise ValueError(f"filter_mode {filter_mode!r}: needs uv_da and/or mip_level_bias")
    if limit == 0 and mipmap:
        filter_mode, mipmap = "linear", False
    cube = boundary_mode == "cube"
    _check_filter_inputs(tex, uv, uv_da, mip_level_bias, cube, mipmap)
    if mipmap and mip is not None and not isinstance(mip, (TextureMipWrapper, list)):
        raise TypeError(f"mip: expected a texture_construct_mip() result or a list of tensors, "
                        f"got {type(mip).__name__}")

    n, hp, wp = uv.shape[:3]
    channels = tex.shape[-1]
    pixels = n * hp * wp
    kernels = cpu_kernels() if compiled and not cube and uv.device.type == "cpu" else None
    if kernels is not None:
        if mipmap:
            flat, shapes = _mip_stack(tex, mip, limit, cube)
            level = _mip_level(tex, uv_da, mip_level_bias, pixels, len(shapes) - 1, None)
            if filter_mode != "linear-mipmap-linear" or len(shapes) == 1:
                level = level.detach()  # only mip-linear's blend between two levels depends on it
        else:
            flat, shapes, level = tex.reshape(-1, channels), [tuple(tex.shape)], None
        coords = uv.reshape(pixels, 2).contiguous()
        if filter_mode == "nearest":
            coords = coords.detach()  # no gradient to uv, as _nearest
        out = _Texture2DKernel.apply(flat.contiguous(), coords, level, shapes,
                                     FILTER_MODES.index(filter_mode), BOUNDARY_CODES[boundary_mode], kernels)
        return out.view(n, hp, wp, channels)

    tz = torch.arange(n, device=uv.device).repeat_interleave(hp * wp) if tex.shape[0] > 1 else \
        torch.zeros(pixels, dtype=torch.long, device=uv.device)
    coords = uv.reshape(pixels, uv.shape[-1])

    face, valid = None, None
    if cube:
        with torch.no_grad():
            face = _cube_face(coords)
            raw_s, raw_t = _cube_st(coords, face)
            valid = torch.isfinite(raw_s) & torch.isfinite(raw_t) & torch.isfinite(coords).all(1)
        # Invalid directions get a harmless stand-in (no NaN in the graph) and a zero output.
        coords = torch.where(valid[:, None], coords, coords.new_tensor([1.0, 0.0, 0.0]))
        face = torch.where(valid, face, 0)
        u, v = _cube_st(coords, face)
    else:
        u, v = coords[:, 0], coords[:, 1]

    if not mipmap and not cube and filter_mode == "linear":
        return _bilinear_2d(tex, uv, boundary_mode)
    if not mipmap:
        levels = _Levels(tex.reshape(-1, channels), [tuple(tex.shape)], cube)
        zero = torch.zeros(pixels, dtype=torch.long, device=uv.device)
        if filter_mode == "nearest":
            out = _nearest(levels, tz, u, v, boundary_mode, face)
        else:
            out = _bilinear(levels, zero, tz, u, v, boundary_mode, face)
    else:
        flat, shapes = _mip_stack(tex, mip, limit, cube)
        levels = _Levels(flat, shapes, cube)
        top = len(shapes) - 1
        flevel = _mip_level(tex, uv_da, mip_level_bias, pixels, top, (coords, face, valid) if cube else None)
        level0 = flevel.detach().floor().long()
        out = _bilinear(levels, level0, tz, u, v, boundary_mode, face)
        if filter_mode == "linear-mipmap-linear" and top > 0:
            level1 = (level0 + 1).clamp(max=top)
            frac = (flevel - level0.to(flevel.dtype))[:, None]
            far = _bilinear(levels, level1, tz, u, v, boundary_mode, face)
            out = out + torch.where(frac > 0, frac * (far - out), 0.0)
    if cube:
        out = torch.where(valid[:, None], out, 0.0)
    return out.view(n, hp, wp, channels)
