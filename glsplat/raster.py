"""`rasterize`: clip-space triangles to G-buffers, through OpenGL, without gradients."""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from . import checks
from .context import MAX_FACES, Context
from .cuda_gl import cuda_readback


@dataclass(frozen=True)
class Raster:
    """G-buffers of ``K`` depth layers for a batch of ``B`` images of ``H x W`` pixels.

    Row 0 of every buffer is the top of the image. Layer 0 is the nearest surface, layer ``k``
    the nearest one strictly behind layer ``k - 1`` in the order (depth, face id).

    With a guard band (``border`` > 0) the buffers are ``H + 2 border`` by ``W + 2 border``: the
    image's frame widened by ``border`` pixels on every side (the same camera, its projection
    scaled: see :meth:`framed`), so image pixel (i, j) is buffer pixel (i + border, j + border).
    ``H``, ``W`` below are then the buffers' size, and :func:`glsplat.splat` returns the image
    without the band.

    Attributes:
        tri_id: int32 ``[B, K, H, W]``; 0 = background, otherwise face index + 1.
        bary: float32 ``[B, K, H, W, 2]``; perspective-correct barycentrics (b0, b1) of the
            face's corners 0 and 1 at the pixel center, b2 = 1 - b0 - b1; 0 on background.
        depth: float32 ``[B, K, H, W]``; window depth in [0, 1] (``gl_FragCoord.z`` on a 24-bit
            grid), exactly 1.0 on background.
        border: pixels of guard band rasterized around the image on each side (0: none). The
            splat spreads each sample over its 3x3 neighborhood, so the image's edge pixels
            need the samples one pixel outside it: without a band they lack those taps, and a
            surface that fills the frame has alpha 0.94 along the edges (0.84 in the corners).
    """

    tri_id: torch.Tensor
    bary: torch.Tensor
    depth: torch.Tensor
    border: int = 0

    @property
    def image_size(self) -> tuple[int, int]:
        """``(H, W)`` of the image, without the guard band."""
        height, width = self.tri_id.shape[-2:]
        return height - 2 * self.border, width - 2 * self.border

    def framed(self, clip: torch.Tensor) -> torch.Tensor:
        """Clip-space positions ``[..., 4]`` of the image's frame in the buffers' wider frame.

        x and y are scaled by ``W / (W + 2 border)`` and ``H / (H + 2 border)``: after the
        divide by w, image x in pixels becomes x + border (and so does y). Differentiable;
        ``clip`` itself when there is no band.
        """
        return guard_band(clip, self.image_size, self.border)

    def crop(self, image: torch.Tensor) -> torch.Tensor:
        """The image ``[..., H + 2 border, W + 2 border, C]`` without its guard band (a view)."""
        b = self.border
        return image if b == 0 else image[..., b:image.shape[-3] - b, b:image.shape[-2] - b, :]

    @property
    def mask(self) -> torch.Tensor:
        """bool ``[B, K, H, W]``: True where the layer covers the pixel."""
        return self.tri_id > 0

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """``(B, K, H, W)``."""
        return tuple(self.tri_id.shape)

    @cached_property
    def index(self) -> torch.Tensor:
        """int64 ``[N]``: the flat indices into ``[B, K, H, W]`` of the ``N`` covered samples, ascending.

        Per-sample values ``[N, C]`` (a shader's output, :func:`glsplat.splat`'s colors) come in
        this order: image, layer, row, column.
        """
        return self.mask.reshape(-1).nonzero().squeeze(1)

    def scatter(self, values: torch.Tensor) -> torch.Tensor:
        """Per-sample ``values`` ``[N, C]`` as full frames ``[B, K, H, W, C]``, zero where uncovered."""
        full = values.new_zeros(self.tri_id.numel(), values.shape[-1])
        return full.index_copy_(0, self.index, values).view(*self.shape, -1)  # in place: no second frame


def clip_to_pixels(clip: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``[..., 2]`` image coordinates (x right, y down, in pixels) of clip-space points ``[..., 4]``.

    After the divide by w, x = (ndc_x + 1) / 2 * W and y = (1 - ndc_y) / 2 * H for an image of
    ``height`` x ``width`` pixels: pixel (i, j)'s center is (j + 0.5, i + 0.5). Differentiable.
    """
    return torch.stack([(clip[..., 0] / clip[..., 3] + 1) * (width / 2),
                        (1 - clip[..., 1] / clip[..., 3]) * (height / 2)], -1)


def guard_band(clip: torch.Tensor, size: tuple[int, int], border: int) -> torch.Tensor:
    """``clip`` ``[..., 4]`` for a frame of ``size`` (H, W) widened by ``border`` pixels on each side
    (see :meth:`Raster.framed`)."""
    if border == 0:
        return clip
    height, width = size
    scale = clip.new_tensor([width / (width + 2 * border), height / (height + 2 * border), 1.0, 1.0])
    return clip * scale


def rasterize(ctx: Context, clip: torch.Tensor, faces: torch.Tensor, size: tuple[int, int],
              layers: int = 1, cull_backfaces: bool = True, border: int = 0) -> Raster:
    """Rasterize triangles with OpenGL into ``layers`` depth-peeled G-buffers.

    Args:
        ctx: the OpenGL context (:class:`glsplat.Context`).
        clip: float ``[B, V, 4]`` or ``[V, 4]`` vertex positions in OpenGL clip space (x right,
            y up, visible where -w <= x, y, z <= w). Any device; not differentiated.
        faces: integer ``[F, 3]`` vertex indices. A face is front-facing when its corners run
            counter-clockwise in normalized device coordinates (OpenGL's and OBJ's convention).
        size: ``(H, W)`` in pixels.
        layers: number of depth layers ``K`` to peel.
        cull_backfaces: drop back-facing triangles, so they neither show nor count as layers.
        border: a guard band of this many pixels around the image (see :class:`Raster`):
            ``border=1`` makes :func:`glsplat.splat` correct on the image's edge pixels where
            a surface crosses the frame (what :func:`glsplat.render` does); the buffers are then
            ``(H + 2, W + 2)``, and each of H, W may be at most ``ctx.max_size - 2``.

    Returns:
        A :class:`Raster` on ``clip``'s device. Pixel (i, j) is sampled at its center, i.e. at
        x = j + 0.5, y = i + 0.5 in image coordinates (y down), which is
        ndc = (2 x / W - 1, 1 - 2 y / H).
    """
    size, layers, border = _checked_arguments(ctx, size, layers, border, faces)
    checks.tensor(clip, "clip", dims=(2, 3), last=4, what="[B, V, 4] or [V, 4]")
    if clip.dim() == 2:
        clip = clip[None]
    if clip.shape[0] == 0:
        raise ValueError("clip: a batch of 0 views ([0, V, 4]); rasterize needs at least one")
    checks.faces(faces, clip.shape[1])
    return _rasterize(ctx, clip, faces, size, layers, cull_backfaces, border)


def _checked_arguments(ctx: Context, size, layers, border, faces: torch.Tensor) -> tuple[tuple[int, int], int, int]:
    """The checks of :func:`rasterize`'s arguments that need no look at the data, for it and for
    :func:`glsplat.render`; ``(size, layers, border)`` as ints. ``faces``: only its shape is looked at."""
    if not isinstance(ctx, Context):
        raise TypeError(f"ctx: expected a glsplat.Context, got {type(ctx).__name__}")
    border = checks.integer(border, "border")
    if border < 0:
        raise ValueError(f"border: must be at least 0, got {border}")
    size = checks.image_size(size, limit=ctx.max_size, border=border)
    layers = checks.positive_int(layers, "layers")
    if isinstance(faces, torch.Tensor) and faces.dim() == 2 and faces.shape[0] > MAX_FACES:
        raise ValueError(f"faces: at most {MAX_FACES} faces per mesh, got {faces.shape[0]}")
    return size, layers, border


def _rasterize(ctx: Context, clip: torch.Tensor, faces: torch.Tensor, size: tuple[int, int], layers: int,
               cull_backfaces: bool, border: int) -> Raster:
    """:func:`rasterize` after its checks: ``clip`` float ``[B, V, 4]`` (B >= 1), ``faces``
    integer ``[F, 3]`` in ``0..V - 1`` and arguments as :func:`_checked_arguments` returns them.

    What only the data can tell is checked here, once: the corners' clip-space coordinates are
    finite (and within float32's reach for a float32 ``clip``). The raster's ``tri_id`` is
    remembered to lie in ``0..F`` (:func:`glsplat.checks.remember`), so no later step scans it.
    """
    height, width = size
    faces = faces.to(device="cpu", dtype=torch.long)
    # The gather runs in numpy on the V vertices made float32 first: torch's advanced indexing
    # is several times slower on the F x 3 corners of a large mesh.
    vertices = clip.detach().to(device="cpu", dtype=torch.float32).numpy()
    corners = np.take(vertices, faces.reshape(-1).numpy(), axis=1)
    checks.finite_corners(corners, limit=checks.FLOAT32_CLIP_LIMIT if clip.dtype == torch.float32 else math.inf)
    if border:
        corners = guard_band(torch.from_numpy(corners), (height, width), border).numpy()
        height, width = height + 2 * border, width + 2 * border
    reader = cuda_readback(ctx) if clip.is_cuda else None
    if reader is None:
        gbuffer = torch.from_numpy(ctx._draw_gbuffers(corners, height, width, layers, cull_backfaces))
    else:  # straight from GL into CUDA memory
        views = ctx._pass_views(clip.shape[0], height, width)
        gbuffer = torch.empty((layers, math.ceil(clip.shape[0] / views) * views, height, width, 4),
                              dtype=torch.float32, device=clip.device)
        ctx._draw_gbuffers(corners, height, width, layers, cull_backfaces,
                           read=lambda texture, layer, first: reader.copy(texture, gbuffer[layer, first:first + views]))
    gbuffer = gbuffer[:, :clip.shape[0]].to(clip.device).transpose(0, 1)  # [B, K, H, W, 4]
    tri_id = torch.empty(gbuffer.shape[:-1], dtype=torch.int32, device=clip.device).copy_(gbuffer[..., 3])
    checks.remember(tri_id, 0, faces.shape[0])
    return Raster(tri_id=tri_id, bary=gbuffer[..., :2], depth=gbuffer[..., 2], border=border)
