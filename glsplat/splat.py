"""`splat`: the differentiable rasterize-then-splat pass (Cole et al., ICCV 2021).

Every covered pixel sample is moved to the point of its triangle that it was rasterized from
(a differentiable function of the clip-space corners) and spread over its 3x3 neighborhood with
a Gaussian. In the forward pass that point is the pixel center, so the image is the rasterized
one up to a tiny blur; in the backward pass it moves with the vertices, which is where vertex
gradients, silhouettes included, come from.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F

from . import checks
from .interpolate import interpolate_torch
from .kernels import kernels_for
from .raster import Raster, clip_to_pixels
from .silhouette import find_glue, glue_offsets

SIGMA = 0.5
"""Standard deviation of the splat kernel, in pixels."""
EPS = 0.05
"""A centered splat's nine taps sum to ``1 + EPS``, so interior pixels saturate and normalize."""
TAPS = tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1))
"""The (row, column) offsets of the 3x3 neighborhood a sample splats onto."""
SILHOUETTES = ("edge", "splat")
"""How silhouette samples move in the backward pass: glued to their contour edge (see :mod:`glsplat.silhouette`)
or with the surface point each was rasterized from (the paper's)."""
SCALE = (1 + EPS) / sum(math.exp(-(dy * dy + dx * dx) / (2 * SIGMA**2)) for dy, dx in TAPS)
"""Gaussian scale: center tap 0.6503, edge taps 0.0880, corner taps 0.0119."""


class SplatBuffers(NamedTuple):
    """The three normalized accumulation buffers, each premultiplied RGBA ``[B, H, W, 4]``."""

    front: torch.Tensor  # S+: samples in front of the surface seen at the target pixel
    surface: torch.Tensor  # S0: samples on that surface
    back: torch.Tensor  # S-: samples behind it


def image_positions(point: torch.Tensor, rast: Raster) -> torch.Tensor:
    """``[B, K, H, W, 2]`` image coordinates (x right, y down, in pixels) of clip-space points.

    ``point`` ``[B, K, H, W, 4]`` is each sample's point on its triangle: the face's clip-space
    corners blended with the pixel's barycentrics (``interpolate(clip, rast, faces)``), placed by
    :func:`glsplat.raster.clip_to_pixels`. In value that is the pixel
    center (j + 0.5, i + 0.5); in gradient it is glued to the triangle. Background entries are
    meaningless but finite.
    """
    height, width = rast.tri_id.shape[-2:]
    w = torch.where(rast.mask, point[..., 3], torch.ones_like(point[..., 3]))
    return clip_to_pixels(torch.cat([point[..., :3], w[..., None]], -1), height, width)


def _neighbor(values: torch.Tensor, dy: int, dx: int, fill: float) -> torch.Tensor:
    """``values[..., i + dy, j + dx]`` over the last two axes, ``fill`` outside the image."""
    height, width = values.shape[-2:]
    padded = F.pad(values, (1, 1, 1, 1), value=fill)
    return padded[..., 1 + dy:1 + dy + height, 1 + dx:1 + dx + width]


def surface_layer(depth_p: torch.Tensor, depth_q: torch.Tensor) -> torch.Tensor:
    """int64 ``[B, H, W]``: the layer ``s`` of p that lies on the surface seen at q.

    ``depth_p``, ``depth_q`` are ``[B, K, H, W]`` layer depths of the source pixels and of their
    target neighbors. A = argmin_l |z_p[l] - z_q[0]|, B = argmin_l |z_q[l] - z_p[0]|, and
    s = -B if |z_q[B] - z_p[0]| < |z_p[A] - z_q[0]| else A. Sample layer l then goes to S+ when
    s > l, to S0 when s == l and to S- when s < l.
    """
    dist_a, a = (depth_p - depth_q[:, :1]).abs().min(1)
    dist_b, b = (depth_q - depth_p[:, :1]).abs().min(1)
    return torch.where(dist_b < dist_a, -b, a)


def accumulate_torch(point: torch.Tensor, colors: torch.Tensor, rast: Raster,
                     offset: torch.Tensor | None = None) -> torch.Tensor:
    """Unnormalized S+, S0, S- buffers ``[3, B, H, W, 4]``, in plain torch ops (any device).

    ``point``: ``[B, K, H, W, 4]`` clip-space points of the samples (see
    :func:`image_positions`); ``colors``: ``[B, K, H, W, 4]`` straight RGBA; ``offset``:
    ``[B, K, H, W, 2]`` added to each sample's image position (x right, y down, pixels), or None.
    """
    batch, layers, height, width = rast.tri_id.shape
    pos = image_positions(point, rast)
    if offset is not None:
        pos = pos + offset
    rows = torch.arange(height, device=pos.device, dtype=pos.dtype).view(height, 1) + 0.5
    cols = torch.arange(width, device=pos.device, dtype=pos.dtype) + 0.5
    off_x = pos[..., 0] - cols  # the sample's offset from its own pixel center; 0 in value without `offset`
    off_y = pos[..., 1] - rows
    alpha = colors[..., 3] * rast.mask
    premult = torch.cat([colors[..., :3], torch.ones_like(colors[..., 3:])], -1)
    layer_ids = torch.arange(layers, device=pos.device).view(1, layers, 1, 1)

    acc = torch.zeros((3, batch, height + 2, width + 2, 4), dtype=colors.dtype, device=pos.device)
    for dy, dx in TAPS:
        gauss = SCALE * torch.exp(-((dx - off_x) ** 2 + (dy - off_y) ** 2) / (2 * SIGMA**2))
        tap = (gauss * alpha)[..., None] * premult  # [B, K, H, W, 4]
        s = surface_layer(rast.depth, _neighbor(rast.depth, dy, dx, 1.0))[:, None]
        which = torch.stack([s > layer_ids, s == layer_ids, s < layer_ids])  # [3, B, K, H, W]
        landed = (which[..., None] * tap).sum(2)  # [3, B, H, W, 4]
        acc[:, :, 1 + dy:1 + dy + height, 1 + dx:1 + dx + width] += landed
    return acc[:, :, 1:-1, 1:-1]


def normalize(acc: torch.Tensor) -> torch.Tensor:
    """Divide accumulation buffers ``[..., 4]`` by ``max(weight, 1)``, the weight being channel 3."""
    return acc / acc[..., 3:].clamp(min=1)


def composite(buffers: SplatBuffers) -> torch.Tensor:
    """Premultiplied "over", back to front: S- under S0 under S+."""
    out = buffers.back
    out = buffers.surface + (1 - buffers.surface[..., 3:]) * out
    return buffers.front + (1 - buffers.front[..., 3:]) * out


def splat_layers_torch(point: torch.Tensor, colors: torch.Tensor, rast: Raster,
                       offset: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The image ``[B, H, W, 4]`` and normalized buffers ``[3, B, H, W, 4]`` in plain torch ops.

    Arguments as for :func:`accumulate_torch`. The reference for the compiled kernels, and the
    path where they are not built.
    """
    buffers = normalize(accumulate_torch(point, colors, rast, offset))
    return composite(SplatBuffers(*buffers)), buffers


def _or_empty(grad: torch.Tensor | None) -> torch.Tensor:
    return torch.empty(0) if grad is None else grad.contiguous()


class _Splat(torch.autograd.Function):
    """The compiled splat, on every device: accumulate, normalize and composite in one pass each way.

    Takes what :func:`_splat` hands it: the raster's frame of clip-space vertices ``[1 or B, V, 4]``,
    int64 faces ``[F, 3]`` (in range), the raster's ``bary``, ``tri_id`` and ``depth``, colors
    packed ``[N, 4]`` and offsets ``[N, 2]`` (or an empty tensor: none), all but the raster in one
    dtype. Interpolation is fused into the kernels: no per-sample points or full frames of colors,
    either way. ``kernels.splat_forward`` returns the image, the buffers (if asked for) and the
    state its backward pass takes (see ``csrc/kernels.h``); the backward pass computes the
    gradients of clip and of the offsets only where autograd wants them. ``glue``: the edge glue
    (:class:`glsplat.silhouette.Glue`, or None), whose part of the clip gradient the backward pass
    adds (the glue's offsets are zero: the forward pass does not see it).
    """

    @staticmethod
    def forward(ctx, kernels, with_buffers, clip, faces, bary, colors, tri_id, depth, offset, glue):
        image, buffers, *state = kernels.splat_forward(clip, faces, bary, colors, tri_id, depth, offset, SCALE, SIGMA,
                                                       with_buffers)
        ctx.kernels = kernels
        glue = _NO_GLUE if glue is None else (glue.row, glue.edge, glue.t)
        ctx.glue = tuple(x.contiguous() for x in glue)
        ctx.save_for_backward(clip, faces, bary, colors, tri_id, depth, offset, *state)
        ctx.set_materialize_grads(False)  # usually only the image, or only the buffers, gets a gradient
        return image, buffers

    @staticmethod
    def backward(ctx, grad_image, grad_buffers):
        clip, faces, bary, colors, tri_id, depth, offset, *state = ctx.saved_tensors
        want_clip, want_offset = ctx.needs_input_grad[2], ctx.needs_input_grad[8]
        grad_clip, grad_colors, grad_offset = ctx.kernels.splat_backward(
            _or_empty(grad_image), _or_empty(grad_buffers), state, clip, faces, bary, colors, tri_id, depth, offset,
            *ctx.glue, SCALE, SIGMA, want_clip, want_offset)
        return (None, None, grad_clip if want_clip else None, None, None, grad_colors, None, None,
                grad_offset if want_offset else None, None)


_NO_GLUE = (torch.zeros(0, dtype=torch.long), torch.zeros((0, 2), dtype=torch.long), torch.zeros(0, dtype=torch.float64))


def _packed(colors: torch.Tensor, rast: Raster) -> torch.Tensor:
    """``colors`` as :func:`splat` takes them, packed ``[N, 4]``."""
    return colors if colors.dim() == 2 else colors.reshape(-1, 4).index_select(0, rast.index)


def _splat(colors: torch.Tensor, clip: torch.Tensor, rast: Raster, faces: torch.Tensor,
           with_buffers: bool, rasterized: bool = False, offset: torch.Tensor | None = None,
           silhouette: str = "edge") -> tuple[torch.Tensor, torch.Tensor]:
    """The image and (if ``with_buffers``) the stacked buffers ``[3, B, H, W, 4]``, without the guard band.

    Arguments as for :func:`splat`. ``rasterized``: the caller made ``rast`` from ``clip`` and
    ``faces`` itself (as :func:`glsplat.render` does), so those need no checks: their shapes and
    devices agree, the faces are in range and cover the raster's ids, and the covered samples'
    points are finite with w > 0. Otherwise this is the public door and checks all of it once.
    """
    checks.splat_inputs(colors, clip, rast)
    if offset is not None:
        checks.splat_offset(offset, rast)
    if silhouette not in SILHOUETTES:
        raise ValueError(f"silhouette: expected one of {', '.join(map(repr, SILHOUETTES))}, got {silhouette!r}")
    if not rasterized:
        checks.raster_faces(faces, rast.tri_id, clip.shape[-2])
        checks.splat_clip(clip, faces, rast)
    dtype = torch.promote_types(colors.dtype, clip.dtype)
    colors, clip = _packed(colors, rast).to(dtype), rast.framed(clip.to(dtype))
    clip = clip if clip.dim() == 3 else clip[None]
    offset = None if offset is None else offset.to(dtype)
    kernels = kernels_for(clip.device)
    glue = find_glue(clip, faces, rast) if silhouette == "edge" and clip.requires_grad else None
    if glue is not None and len(glue.sample) == 0:
        glue = None
    if kernels is None:  # the pure-torch path, which takes the glue as offsets
        if glue is not None:
            glued = clip.new_zeros((rast.index.shape[0], 2)).index_add(0, glue.row, glue_offsets(clip, faces, rast, glue))
            offset = glued if offset is None else offset + glued
        full = None if offset is None else rast.scatter(offset)
        image, buffers = splat_layers_torch(interpolate_torch(clip, rast, faces), rast.scatter(colors), rast, full)
    else:
        image, buffers = _Splat.apply(kernels, with_buffers, clip.contiguous(), faces.to(torch.long).contiguous(),
                                      rast.bary, colors.contiguous(), rast.tri_id.contiguous(), rast.depth,
                                      clip.new_empty(0) if offset is None else offset.contiguous(), glue)
    return rast.crop(image), (rast.crop(buffers) if buffers.dim() == 5 else buffers)


def splat_buffers(colors: torch.Tensor, clip: torch.Tensor, rast: Raster, faces: torch.Tensor, *,
                  offset: torch.Tensor | None = None, silhouette: str = "edge") -> SplatBuffers:
    """Splat into the S+, S0 and S- buffers and normalize each by ``max(weight, 1)``.

    Arguments as for :func:`splat`; each buffer is premultiplied RGBA ``[B, H, W, 4]``.
    """
    return SplatBuffers(*_splat(colors, clip, rast, faces, with_buffers=True, offset=offset, silhouette=silhouette)[1])


def splat(colors: torch.Tensor, clip: torch.Tensor, rast: Raster, faces: torch.Tensor, *,
          offset: torch.Tensor | None = None, silhouette: str = "edge") -> torch.Tensor:
    """Rasterize-then-splat: turn shaded layers into an image whose gradients reach the vertices.

    Args:
        colors: float straight (not premultiplied) RGBA from a shader, alpha 1 where a surface
            is opaque: ``[N, 4]`` for the ``N`` covered samples in the order of ``rast.index``
            (what a shader returns from :class:`Fragments`; the faster form, which never makes
            full frames of colors), or full frames ``[B, K, H, W, 4]`` per layer (entries on
            background are ignored). Differentiable.
        clip: float ``[B, V, 4]`` or ``[V, 4]`` clip-space vertices that were rasterized.
            Differentiable: this is the path of vertex and camera gradients.
        rast: the :class:`Raster` of ``clip`` (constant). Rasterize with ``border=1`` (a guard
            band, as :func:`glsplat.render` does) for correct edge pixels where a surface
            crosses the image's frame; the splat takes the band's samples and crops it off.
            With ``silhouette="edge"``, ``border=glsplat.silhouette.GLUE_BORDER`` (5) makes the
            glue near the frame what a wider frame gives (as :func:`glsplat.render` does).
        faces: integer ``[F, 3]`` faces that were rasterized.
        offset: optional float ``[N, 2]``, one row per covered sample in the order of
            ``rast.index`` (the guard band's samples included): added to the sample's splat
            position, in pixels, x right, y down. Differentiable: its gradient is
            d(loss)/d(the sample's position), in pixels. Usually zero in value, as a handle on
            that gradient (a zero tensor that requires grad) or to carry a gradient that the
            caller computed in torch. None (the default) costs nothing.
        silhouette: how samples on a silhouette move in the backward pass. ``"edge"`` (the
            default): those within 2 px of something deeper and 2.5 px of a visible contour
            edge (an edge of a front face that no other front face shares) move across the
            edge with the edge's closest point (see :mod:`glsplat.silhouette`), which makes
            rotation gradients right too; costs a contour search when ``clip`` requires grad.
            ``"splat"``: with the surface point each was rasterized from (the paper's method;
            on a silhouette that point lies in front of the edge, and rotation gradients are
            off by 5-10% of their scale). The forward image is the same either way.

    Returns:
        Premultiplied RGBA ``[B, H, W, 4]`` (row 0 at the top; without the guard band: a view
        of the frame with it), in the promoted dtype of
        ``colors`` and ``clip`` (float32 or float64). Each sample spreads over its 3x3
        neighborhood with a Gaussian of sigma 0.5 px scaled so its nine taps sum to 1.05;
        taps land in front of (S+), on (S0) or behind (S-) the surface at the target pixel by
        matching layer depths; each buffer is divided by max(its weight, 1) and they are
        composited back to front. Interior pixels keep their color (for colors affine over the
        3x3 window, exactly); silhouettes get a ~1 px soft edge whose coverage moves with the
        vertices.
    """
    return _splat(colors, clip, rast, faces, with_buffers=False, offset=offset, silhouette=silhouette)[0]
