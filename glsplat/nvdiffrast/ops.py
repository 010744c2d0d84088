"""nvdiffrast's torch API on glsplat: contexts, ``rasterize``, ``DepthPeeler``, ``interpolate``, ``antialias``.

Conventions are nvdiffrast's, not glsplat's:

- Images are ``[B, H, W, C]`` with row 0 at the BOTTOM (OpenGL's memory order; nvdiffrast's samples
  flip vertically before saving). Pixel (row py, column px) is sampled at its center, in normalized
  device coordinates ``x = (2 px + 1) / W - 1``, ``y = (2 py + 1) / H - 1``.
- ``rast`` ``[B, H, W, 4]`` = (u, v, z/w, triangle_id + 1), all 0 where no triangle covers the pixel.
  (u, v) are perspective-correct barycentrics: the triangle's first corner has (1, 0), its second
  (0, 1), its third (0, 0).
- Both windings are drawn (no backface culling).

glsplat's OpenGL pass decides which triangle covers each pixel (glsplat's :func:`glsplat.rasterize`
with ``cull_backfaces=False``, depth-peeled for :class:`DepthPeeler`); the values (u, v, z/w) and
``rast_db`` are then recomputed at the pixel centers from that triangle's clip-space corners
(2D homogeneous edge functions, as nvdiffrast's shader does), so that (u, v) and ``rast_db`` carry
gradients to ``pos`` exactly as nvdiffrast's do; z/w carries none, as in nvdiffrast. ``antialias`` is
nvdiffrast's analytic antialias (its method, written in vectorized torch in
:mod:`glsplat.nvdiffrast.analytic`): the same image and the same gradients. On the CPU, the
rasterize outputs and ``interpolate`` (``glsplat/csrc/nvdr_raster.cpp``), ``texture``
(``nvdr_texture.cpp``) and ``antialias`` (``nvdr_antialias.cpp``) run compiled kernels; the torch
code (:func:`_rast_outputs`, :func:`_torch_interpolate`, ``texture.py``, ``analytic.py``) is their
reference and the path on other devices.

Additions to nvdiffrast: float64 ``pos``/``attr``/``color`` are accepted (for gradcheck), tensors need
not be contiguous, and the CPU is a device like any other.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.autograd.function import once_differentiable

from .. import checks
from ..context import Context
from ..kernels import cpu_kernels
from ..raster import rasterize as gl_rasterize
from . import analytic
from .analytic import TopologyHash, cached_topology, construct_topology, discontinuities, edge_blend

# ----------------------------------------------------------------------------------------------
# Errors: nvdiffrast's exception types (AssertionError for its Python asserts, RuntimeError for its
# C++ checks) that are also glsplat's (TypeError / ValueError), so either kind of handler catches them.


class NvdiffrastArgumentError(AssertionError, TypeError):
    """An argument of the wrong kind, where nvdiffrast's Python wrapper asserts."""


class NvdiffrastTypeError(RuntimeError, TypeError):
    """A tensor of the wrong dtype or device, where nvdiffrast's C++ checks raise RuntimeError."""


class NvdiffrastValueError(RuntimeError, ValueError):
    """A tensor of the wrong shape or value, where nvdiffrast's C++ checks raise RuntimeError."""


def _require(condition: bool, message: str, error=NvdiffrastValueError) -> None:
    if not condition:
        raise error(message)


def _tri_shape(tri: torch.Tensor) -> None:
    """nvdiffrast's check of ``tri``'s shape."""
    _require(tri.dim() == 2 and tri.shape[0] > 0 and tri.shape[1] == 3,
             f"tri must have shape [>0, 3] (got {list(tri.shape)})")


def _is_tensor(name: str, x) -> None:
    _require(isinstance(x, torch.Tensor), f"{name}: expected a torch.Tensor, got {type(x).__name__}",
             NvdiffrastArgumentError)


def _float(func: str, **tensors: torch.Tensor) -> None:
    """nvdiffrast's NVDR_CHECK_F32 (float64 is accepted too)."""
    for name, x in tensors.items():
        _require(x.dtype in (torch.float32, torch.float64),
                 f"{func}(): Inputs {', '.join(tensors)} must be float32 tensors ({name} is {x.dtype})",
                 NvdiffrastTypeError)


def _int32(func: str, **tensors: torch.Tensor) -> None:
    """nvdiffrast's NVDR_CHECK_I32."""
    for name, x in tensors.items():
        _require(x.dtype == torch.int32, f"{func}(): Inputs {', '.join(tensors)} must be int32 tensors "
                 f"({name} is {x.dtype})", NvdiffrastTypeError)


def _same_device(func: str, **tensors: torch.Tensor) -> None:
    """nvdiffrast's NVDR_CHECK_DEVICE."""
    devices = {x.device for x in tensors.values()}
    _require(len(devices) == 1, f"{func}(): Inputs {', '.join(tensors)} must reside on the same GPU device "
             f"(got {', '.join(f'{n} on {x.device}' for n, x in tensors.items())})", NvdiffrastTypeError)


# ----------------------------------------------------------------------------------------------
# Log level (nvdiffrast's C++ log level; glsplat has nothing to log, but keeps the setting).

_log_level = 1


def get_log_level() -> int:
    """The current log level: 0 info, 1 warning (the default), 2 error, 3 fatal."""
    return _log_level


def set_log_level(level: int) -> None:
    """Set the log level (0 info, 1 warning, 2 error, 3 fatal). glsplat logs nothing at any level."""
    global _log_level
    _log_level = checks.integer(level, "level")


# ----------------------------------------------------------------------------------------------
# Contexts.

_CONTEXTS: dict = {}  # EGL device index (None: the default display) -> the glsplat.Context shared by all


def _egl_device(device) -> int | None:
    """The EGL device index for nvdiffrast's ``device`` (``torch.device``, ``'cuda:1'``, CUDA index, None).

    ``None`` and CPU devices take the default EGL display. A CUDA device maps to the EGL device of the
    same index (the usual PCI order; see "EGL device indices" in the README), and needs CUDA.
    """
    if device is None:
        return None
    if isinstance(device, bool):
        raise TypeError(f"device: expected None, a torch.device, a string or a CUDA index, got {device!r}")
    if isinstance(device, int):
        device = torch.device("cuda", device)
    try:
        device = torch.device(device)
    except (TypeError, RuntimeError) as error:
        raise TypeError(f"device: expected None, a torch.device, a string or a CUDA index, got {device!r}") from error
    if device.type == "cpu":
        return None
    if device.type != "cuda":
        raise ValueError(f"device: expected a CPU or CUDA device, got {device}")
    if not torch.cuda.is_available():
        raise RuntimeError(f"device: {device} was asked for, but CUDA is not available here; "
                           "pass device=None (or 'cpu') to rasterize with the default EGL device")
    return device.index if device.index is not None else torch.cuda.current_device()


class RasterizeCudaContext:
    """nvdiffrast's rasterizer context; here a headless OpenGL (EGL) :class:`glsplat.Context`.

    Args:
        device: ``None`` (the default EGL device: the GPU's driver, or Mesa's llvmpipe on a CPU
            machine), ``'cpu'``, or a CUDA device (``torch.device``, ``'cuda:1'`` or an index), which
            picks the EGL device of that index.

    Contexts for one device share one :class:`glsplat.Context` (``self.context``).
    """

    def __init__(self, device=None):
        egl = _egl_device(device)
        if egl not in _CONTEXTS:
            _CONTEXTS[egl] = Context(device=egl)
        self.context = _CONTEXTS[egl]
        self.output_db = True
        self.active_depth_peeler = None


class RasterizeGLContext(RasterizeCudaContext):
    """nvdiffrast's OpenGL rasterizer context (an EGL :class:`glsplat.Context` here too).

    Args:
        output_db: compute ``rast_db`` in :func:`rasterize`; with False it is ``[B, H, W, 0]``.
        mode: ``'automatic'`` or ``'manual'``; either way glsplat makes its context current itself,
            so :meth:`set_context` and :meth:`release_context` do nothing.
        device: as for :class:`RasterizeCudaContext`.
    """

    def __init__(self, output_db=True, mode="automatic", device=None):
        _require(output_db is True or output_db is False, f"output_db: expected True or False, got {output_db!r}",
                 NvdiffrastArgumentError)
        _require(mode in ("automatic", "manual"), f"mode: expected 'automatic' or 'manual', got {mode!r}",
                 NvdiffrastArgumentError)
        super().__init__(device=device)
        self.output_db = output_db
        self.mode = mode

    def set_context(self) -> None:
        """Nothing to do: glsplat makes its context current for each call."""

    def release_context(self) -> None:
        """Nothing to do: glsplat releases its context after each call."""


# ----------------------------------------------------------------------------------------------
# Rasterize.


def _raster_args(func: str, glctx, pos, tri, resolution, ranges, grad_db):
    """Check :func:`rasterize`'s arguments as nvdiffrast does; returns ``((H, W), ranges or None)``."""
    _require(isinstance(glctx, RasterizeCudaContext),
             f"glctx: expected a RasterizeCudaContext or RasterizeGLContext, got {type(glctx).__name__}",
             NvdiffrastArgumentError)
    _require(grad_db is True or grad_db is False, f"grad_db: expected True or False, got {grad_db!r}",
             NvdiffrastArgumentError)
    _is_tensor("pos", pos)
    _is_tensor("tri", tri)
    if ranges is not None:
        _is_tensor("ranges", ranges)
        _require(ranges.device.type == "cpu", f"{func}(): Inputs ranges must reside on CPU", NvdiffrastTypeError)
        _int32(func, ranges=ranges)
    _same_device(func, pos=pos, tri=tri)
    _float(func, pos=pos)
    _int32(func, tri=tri)
    try:
        resolution = tuple(resolution)
    except TypeError:
        raise NvdiffrastArgumentError(f"resolution: expected (height, width), got {resolution!r}") from None
    _require(len(resolution) == 2, f"resolution: expected (height, width), got {resolution!r}")
    height, width = (checks.integer(r, "resolution") for r in resolution)
    if ranges is None:
        _require(pos.dim() == 3 and pos.shape[0] > 0 and pos.shape[1] > 0 and pos.shape[2] == 4,
                 f"instance mode - pos must have shape [>0, >0, 4] (got {list(pos.shape)})")
    else:
        _require(pos.dim() == 2 and pos.shape[0] > 0 and pos.shape[1] == 4,
                 f"range mode - pos must have shape [>0, 4] (got {list(pos.shape)})")
        _require(ranges.dim() == 2 and ranges.shape[0] > 0 and ranges.shape[1] == 2,
                 f"range mode - ranges must have shape [>0, 2] (got {list(ranges.shape)})")
    _tri_shape(tri)
    _require(height > 0 and width > 0, f"resolution must be [>0, >0] (got {[height, width]})")
    checks.image_size((height, width), "resolution", limit=glctx.context.max_size)
    checks.faces(tri, pos.shape[-2], "tri")
    if ranges is not None:
        start, count = ranges[:, 0].long(), ranges[:, 1].long()
        if bool((start < 0).any() or (count < 0).any() or (start + count > tri.shape[0]).any()):
            raise NvdiffrastValueError(f"ranges: each (start, count) must lie within the {tri.shape[0]} triangles "
                                       f"of tri, got {ranges.tolist()}")
    return (height, width), ranges


def _triangle_ids(glctx, pos, tri, size, ranges, layers: int) -> torch.Tensor:
    """int32 ``[B, layers, H, W]`` triangle index + 1 (0: empty) of each depth layer, nvdiffrast's row order.

    Instanced mode rasterizes ``pos`` ``[B, V, 4]`` with ``tri``; range mode gives image ``b`` the
    triangles ``tri[start:start + count]`` of ``pos`` ``[V, 4]``, as a batch of per-image triangle
    corners padded with all-zero (never drawn) triangles.
    """
    if ranges is None:
        rast = gl_rasterize(glctx.context, pos.detach(), tri, size, layers=layers, cull_backfaces=False)
        return rast.tri_id.flip(-2)
    starts, counts = ranges[:, 0].tolist(), ranges[:, 1].tolist()
    most = max(max(counts), 1)
    corners = pos.detach().new_zeros(len(starts), most * 3, 4)
    tri_long = tri.long()
    for b, (start, count) in enumerate(zip(starts, counts)):
        corners[b, :count * 3] = pos.detach()[tri_long[start:start + count].reshape(-1)]
    faces = torch.arange(most * 3, dtype=torch.long).view(most, 3)
    tri_id = gl_rasterize(glctx.context, corners, faces, size, layers=layers, cull_backfaces=False).tri_id.flip(-2)
    offset = torch.tensor(starts, dtype=torch.int32, device=tri_id.device).view(-1, 1, 1, 1)
    return torch.where(tri_id > 0, tri_id + offset, tri_id)


def _straight_through_clamp(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """``x`` clamped in value, with the gradient of the unclamped ``x`` (as nvdiffrast's backward)."""
    return x + (x.clamp(low, high) - x).detach()


def _rast_outputs(pos: torch.Tensor, tri: torch.Tensor, tri_id: torch.Tensor, with_db: bool,
                  grad_db: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``(rast, rast_db)`` at the pixel centers from the clip-space corners of the covering triangles.

    Args:
        pos: float ``[B, V, 4]`` (instanced) or ``[V, 4]`` (range mode) clip-space vertices.
        tri: int ``[F, 3]``.
        tri_id: int32 ``[B, H, W]`` triangle index + 1 per pixel (0: empty), nvdiffrast's row order.

    Returns:
        ``rast`` ``[B, H, W, 4]`` and ``rast_db`` ``[B, H, W, 4]`` (``[B, H, W, 0]`` without
        ``with_db``) in ``pos``' dtype, zero on empty pixels. (u, v) are differentiable in ``pos``
        (clamped to the triangle in value, like nvdiffrast, unclamped in gradient); z/w is not;
        ``rast_db`` is when ``grad_db``.
    """
    batch, height, width = tri_id.shape
    flat = tri_id.reshape(-1)
    index = flat.nonzero().squeeze(1)  # the covered pixels, in [B, H, W] order
    face = flat.index_select(0, index).long() - 1
    image = index // (height * width)
    py = (index // width) % height
    px = index % width
    dtype = pos.dtype
    fx = (2 * px + 1).to(dtype) / width - 1  # the pixel center in NDC, [N]
    fy = (2 * py + 1).to(dtype) / height - 1

    corner = tri.to(device=pos.device, dtype=torch.long).index_select(0, face)  # [N, 3]
    if pos.dim() == 3:
        corner = corner + image[:, None] * pos.shape[1]
    p = pos.reshape(-1, 4).index_select(0, corner.reshape(-1)).view(-1, 3, 4)  # [N, corner, xyzw]
    # One [N] vector per corner and component (unbind: its backward is one stack, not a full
    # zero tensor per indexed column).
    (x0, y0, z0, w0), (x1, y1, z1, w1), (x2, y2, z2, w2) = (c.unbind(-1) for c in p.unbind(1))
    # 2D homogeneous edge functions at the pixel center: a_k is the area opposite corner k.
    ex0, ex1, ex2 = x0 - fx * w0, x1 - fx * w1, x2 - fx * w2
    ey0, ey1, ey2 = y0 - fy * w0, y1 - fy * w1, y2 - fy * w2
    a0, a1, a2 = ex1 * ey2 - ey1 * ex2, ex2 * ey0 - ey2 * ex0, ex0 * ey1 - ey0 * ex1
    inv_area = 1 / (a0 + a1 + a2)
    with torch.no_grad():
        zw = ((z0 * a0 + z1 * a1 + z2 * a2) / (w0 * a0 + w1 * a1 + w2 * a2)).clamp(-1, 1)
    # nvdiffrast clamps each barycentric to [0, 1], then their sum to 1.
    u, v = _straight_through_clamp(a0 * inv_area, 0, 1), _straight_through_clamp(a1 * inv_area, 0, 1)
    over = (1 / torch.clamp(u + v, min=1)).detach()
    u, v = u * over, v * over
    values = torch.stack([u, v, zw, (face + 1).to(dtype)], -1)
    rast = values.new_zeros(batch * height * width, 4).index_copy_(0, index, values).view(batch, height, width, 4)
    if not with_db:
        return rast, values.new_zeros(batch, height, width, 0)

    # d(a_k)/dX and d(a_k)/dY per unit NDC, then per pixel (NDC spans 2 / W per pixel).
    if not grad_db:
        x0, y0, w0, x1, y1, w1, x2, y2, w2, u, v, inv_area = (
            t.detach() for t in (x0, y0, w0, x1, y1, w1, x2, y2, w2, u, v, inv_area))
    ax0, ax1, ax2 = y2 * w1 - y1 * w2, y0 * w2 - y2 * w0, y1 * w0 - y0 * w1
    ay0, ay1, ay2 = x1 * w2 - x2 * w1, x2 * w0 - x0 * w2, x0 * w1 - x1 * w0
    sx, sy = (ax0 + ax1 + ax2) * (2 / width), (ay0 + ay1 + ay2) * (2 / height)
    kx, ky = inv_area * (2 / width), inv_area * (2 / height)
    db = torch.stack([u * sx * inv_area - kx * ax0, u * sy * inv_area - ky * ay0,  # du/dX, du/dY
                      v * sx * inv_area - kx * ax1, v * sy * inv_area - ky * ay1], -1)  # dv/dX, dv/dY
    rast_db = db.new_zeros(batch * height * width, 4).index_copy_(0, index, db).view(batch, height, width, 4)
    return rast, rast_db


class _RastOutputsCPU(torch.autograd.Function):
    """:func:`_rast_outputs` as one compiled pass forward and one backward (``csrc/nvdr_raster.cpp``).

    Arguments as :func:`_rast_outputs`'s, contiguous, on the CPU, ``tri`` and ``tri_id`` int32, then
    the compiled module. The backward pass recomputes each pixel's values from ``pos``.
    """

    @staticmethod
    def forward(ctx, pos, tri, tri_id, with_db, grad_db, kernels):
        rast, rast_db = kernels.nvdr_rast_forward(pos, tri, tri_id, with_db)
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(pos, tri, tri_id)
        ctx.kernels, ctx.grad_db = kernels, with_db and grad_db
        if not ctx.grad_db:
            ctx.mark_non_differentiable(rast_db)
        return rast, rast_db

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_rast, grad_rast_db):
        pos, tri, tri_id = ctx.saved_tensors
        empty = pos.new_empty(0)
        grad_rast_db = grad_rast_db if ctx.grad_db and grad_rast_db is not None else empty
        grad_pos = ctx.kernels.nvdr_rast_backward(empty if grad_rast is None else grad_rast, grad_rast_db,
                                                  pos, tri, tri_id)
        return grad_pos, None, None, None, None, None


def _rast_values(pos: torch.Tensor, tri: torch.Tensor, tri_id: torch.Tensor, with_db: bool,
                 grad_db: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_rast_outputs` (same arguments and results), through the compiled kernel on the CPU."""
    kernels = cpu_kernels() if pos.device.type == "cpu" else None
    if kernels is None:
        return _rast_outputs(pos, tri, tri_id, with_db, grad_db)
    return _RastOutputsCPU.apply(pos.contiguous(), tri.to(torch.int32).contiguous(), tri_id.contiguous(),
                                 with_db, grad_db, kernels)


def rasterize(glctx, pos, tri, resolution, ranges=None, grad_db=True):
    """Rasterize triangles (nvdiffrast's ``rasterize``).

    Args:
        glctx: a :class:`RasterizeCudaContext` or :class:`RasterizeGLContext`.
        pos: float32 (or float64) clip-space vertex positions: ``[B, V, 4]`` in instanced mode,
            ``[V, 4]`` in range mode. Any device. Differentiable.
        tri: int32 ``[F, 3]`` vertex indices, on ``pos``' device. Both windings are drawn.
        resolution: ``(height, width)``.
        ranges: range mode only: int32 ``[B, 2]`` on the CPU, (first triangle, count) per image.
        grad_db: let gradients of ``rast_db`` reach ``pos``.

    Returns:
        ``(rast, rast_db)``, both ``[B, H, W, 4]`` in ``pos``' dtype and on its device, row 0 at the
        bottom. ``rast`` = (u, v, z/w, triangle_id + 1) at each pixel center, all 0 where empty;
        ``rast_db`` = (du/dX, du/dY, dv/dX, dv/dY) in units per pixel (Y up), 0 where empty;
        ``[B, H, W, 0]`` for a :class:`RasterizeGLContext` made with ``output_db=False``.
    """
    size, ranges = _raster_args("rasterize_fwd_cuda", glctx, pos, tri, resolution, ranges, grad_db)
    if glctx.active_depth_peeler is not None:
        raise RuntimeError("Cannot call rasterize() during depth peeling operation, use rasterize_next_layer() instead")
    tri_id = _triangle_ids(glctx, pos, tri, size, ranges, layers=1)[:, 0]
    return _rast_values(pos, tri, tri_id, glctx.output_db, grad_db)


class DepthPeeler:
    """Rasterize depth layers one at a time (nvdiffrast's ``DepthPeeler``), as a context manager.

    Arguments as for :func:`rasterize`. Layer ``k`` is glsplat's depth-peeled layer ``k`` (the
    nearest surface strictly behind layer ``k - 1``, both windings drawn). The OpenGL pass peels
    layers in batches (1, 2, 4, ... at a time) and keeps them until the peeler exits, so ``n`` calls
    of :meth:`rasterize_next_layer` cost about ``2 n`` layers of rasterization.
    """

    def __init__(self, glctx, pos, tri, resolution, ranges=None, grad_db=True):
        size, ranges = _raster_args("rasterize_fwd_cuda", glctx, pos, tri, resolution, ranges, grad_db)
        self.raster_ctx = glctx
        self.pos, self.tri, self.resolution, self.ranges, self.grad_db = pos, tri, size, ranges, grad_db
        self.peeling_idx = None
        self._layers = None  # int32 [B, K, H, W] triangle ids of the layers peeled so far

    def __enter__(self) -> "DepthPeeler":
        if self.raster_ctx is None:
            raise RuntimeError("Cannot re-enter a terminated depth peeling operation")
        if self.raster_ctx.active_depth_peeler is not None:
            raise RuntimeError("Cannot have multiple depth peelers active simultaneously in a rasterization context")
        self.raster_ctx.active_depth_peeler = self
        self.peeling_idx = 0
        return self

    def __exit__(self, *exc) -> None:
        if self.raster_ctx is not None and self.raster_ctx.active_depth_peeler is self:
            self.raster_ctx.active_depth_peeler = None
        self.raster_ctx = self.pos = self.tri = self.resolution = self.ranges = self.grad_db = None
        self.peeling_idx = self._layers = None

    def rasterize_next_layer(self):
        """The next depth layer's ``(rast, rast_db)``, as :func:`rasterize` returns them."""
        if self.raster_ctx is None or self.raster_ctx.active_depth_peeler is not self:
            raise RuntimeError("rasterize_next_layer(): call it inside the DepthPeeler's `with` block")
        layer = self.peeling_idx
        if self._layers is None or self._layers.shape[1] <= layer:
            depth = max(layer + 1, 2 * (0 if self._layers is None else self._layers.shape[1]))
            self._layers = _triangle_ids(self.raster_ctx, self.pos, self.tri, self.resolution, self.ranges, depth)
        self.peeling_idx += 1
        return _rast_values(self.pos, self.tri, self._layers[:, layer], self.raster_ctx.output_db, self.grad_db)


# ----------------------------------------------------------------------------------------------
# Interpolate.


def _diff_attr_list(diff_attrs, num_attrs: int) -> list[int]:
    """nvdiffrast's ``diff_attrs`` (None, 'all' or a list of indices) as a list of indices."""
    if diff_attrs is None:
        return []
    if isinstance(diff_attrs, str):
        _require(diff_attrs == "all", f"diff_attrs: expected 'all' or a list of indices, got {diff_attrs!r}",
                 NvdiffrastArgumentError)
        return list(range(num_attrs))
    try:
        listed = np.asarray(diff_attrs, np.int32)
    except (TypeError, ValueError, OverflowError):
        raise NvdiffrastArgumentError(f"diff_attrs: expected 'all' or a list of indices, got {diff_attrs!r}") from None
    _require(listed.ndim == 1, f"diff_attrs: expected a flat list of indices, got {diff_attrs!r}",
             NvdiffrastArgumentError)
    listed = listed.tolist()
    _require(all(0 <= i < num_attrs for i in listed),
             f"diff_attrs: indices must lie in 0..{num_attrs - 1} (attr has {num_attrs} attributes), got {listed}")
    return listed


def interpolate(attr, rast, tri, rast_db=None, diff_attrs=None):
    """Interpolate vertex attributes (nvdiffrast's ``interpolate``).

    Args:
        attr: float32 (or float64) ``[V, A]`` (range mode, or shared by the batch) or ``[B or 1, V, A]``.
            Differentiable.
        rast: ``[B, H, W, 4]`` from :func:`rasterize`. Differentiable in (u, v).
        tri: int32 ``[F, 3]`` indices into ``attr``'s ``V`` axis (need only have the rasterized ``F``).
        rast_db: ``[B, H, W, 4]`` from :func:`rasterize`, needed with ``diff_attrs``. Differentiable.
        diff_attrs: attribute indices to differentiate in screen space, or ``'all'``.

    Returns:
        ``(out, out_da)``: ``out`` ``[B, H, W, A]`` = u a0 + v a1 + (1 - u - v) a2 of the pixel's
        triangle corners, 0 on empty pixels; ``out_da`` ``[B, H, W, 2 len(diff_attrs)]`` =
        (dA/dX, dA/dY) for each listed attribute A in turn (per pixel, Y up), 0 on empty pixels,
        or ``[B, H, W, 0]`` without ``diff_attrs``. In the promoted dtype of the inputs.
    """
    for name, x in (("attr", attr), ("rast", rast), ("tri", tri)):
        _is_tensor(name, x)
    func = "interpolate_fwd"
    _require(rast.dim() == 4 and min(rast.shape) > 0 and rast.shape[3] == 4,
             f"rast must have shape[>0, >0, >0, 4] (got {list(rast.shape)})")
    _tri_shape(tri)
    _require(attr.dim() in (2, 3) and min(attr.shape) > 0,
             f"attr must have shape [>0, >0, >0] or [>0, >0] (got {list(attr.shape)})")
    diff = _diff_attr_list(diff_attrs, attr.shape[-1])
    if diff:
        _is_tensor("rast_db", rast_db)
        func = "interpolate_fwd_da"
        _same_device(func, attr=attr, rast=rast, tri=tri, rast_db=rast_db)
        _float(func, attr=attr, rast=rast, rast_db=rast_db)
        _require(rast_db.dim() == 4 and rast_db.shape[3] == 4, f"rast_db must have shape[>0, >0, >0, 4] "
                 f"(got {list(rast_db.shape)})")
        _require(rast_db.shape[1:3] == rast.shape[1:3], "spatial size mismatch between inputs rast and rast_db")
        _require(rast_db.shape[0] == rast.shape[0], "minibatch size mismatch between inputs rast, rast_db")
    else:
        _same_device(func, attr=attr, rast=rast, tri=tri)
        _float(func, attr=attr, rast=rast)
    _int32(func, tri=tri)
    batch = rast.shape[0]
    if attr.dim() == 3:
        _require(attr.shape[0] in (1, batch), "minibatch size mismatch between inputs rast, attr")
    checks.faces(tri, attr.shape[-2], "tri")
    attr = attr if attr.dim() == 3 else attr[None]
    kernels = cpu_kernels() if attr.device.type == "cpu" else None
    dtypes = {attr.dtype, rast.dtype} | ({rast_db.dtype} if diff else set())
    if kernels is None or len(dtypes) > 1:  # (mixed dtypes: torch promotes each output its own way)
        _check_ids(rast, tri.shape[0])
        return _torch_interpolate(attr, rast, tri, rast_db, diff)
    # The kernel checks the ids as it reads them.
    return _InterpolateCPU.apply(attr.contiguous(), rast.contiguous(), tri.contiguous(),
                                 rast_db.contiguous() if diff else None, diff, kernels)


def _check_ids(rast: torch.Tensor, num_faces: int) -> None:
    """Raise unless every triangle id in ``rast[..., 3]``, truncated toward zero (as nvdiffrast and
    torch's ``.long()`` do), is one of ``0..num_faces``."""
    low, high = (float(x) for x in torch.aminmax(rast[..., 3].detach()))
    if high >= num_faces + 1:
        raise NvdiffrastValueError(f"rast refers to triangle {int(high) - 1}, but tri has {num_faces}")
    if not low > -1 or not high < num_faces + 1:  # negative, or NaN
        raise NvdiffrastValueError(f"rast: triangle ids (channel 3) must lie in 0..{num_faces}, got values in "
                                   f"[{low}, {high}]")


class _InterpolateCPU(torch.autograd.Function):
    """:func:`_torch_interpolate` as one compiled gather forward and one backward (``csrc/nvdr_raster.cpp``).

    Arguments as :func:`_torch_interpolate`'s, contiguous, on the CPU, in one dtype (``rast_db`` None
    without ``diff``), then the compiled module. Raises :func:`_check_ids`' error for a bad triangle id.
    """

    @staticmethod
    def forward(ctx, attr, rast, tri, rast_db, diff, kernels):
        empty = attr.new_empty(0)
        out, out_da, bad = kernels.nvdr_interpolate_forward(attr, rast, tri, empty if rast_db is None else rast_db,
                                                            diff)
        if bad:
            _check_ids(rast, tri.shape[0])  # raises
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(attr, rast, tri, rast_db)
        ctx.kernels, ctx.diff = kernels, diff
        if not diff:
            ctx.mark_non_differentiable(out_da)
        return out, out_da

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out, grad_da):
        attr, rast, tri, rast_db = ctx.saved_tensors
        if grad_out is None and grad_da is None:
            return None, None, None, None, None, None
        empty = attr.new_empty(0)
        grad_attr, grad_rast, grad_db = ctx.kernels.nvdr_interpolate_backward(
            empty if grad_out is None else grad_out, empty if grad_da is None else grad_da, attr, rast, tri,
            empty if rast_db is None else rast_db, ctx.diff, ctx.needs_input_grad[0], ctx.needs_input_grad[1],
            ctx.needs_input_grad[3])
        return grad_attr, grad_rast, None, grad_db, None, None


def _torch_interpolate(attr: torch.Tensor, rast: torch.Tensor, tri: torch.Tensor, rast_db: torch.Tensor | None,
                       diff: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`interpolate` after its checks, in torch (any device): ``attr`` ``[1 or B, V, A]``, ``diff``
    the attribute indices to differentiate (``rast_db`` unused without them). The kernels' reference."""
    tri_id = rast[..., 3].detach().long()
    # Over the covered pixels only, then scattered into zero frames.
    index = tri_id.reshape(-1).nonzero().squeeze(1)
    face = tri_id.reshape(-1).index_select(0, index) - 1
    corner = tri.to(device=attr.device, dtype=torch.long).index_select(0, face)  # [N, 3]
    if attr.shape[0] > 1:
        corner = corner + (index // (rast.shape[1] * rast.shape[2]))[:, None] * attr.shape[1]
    c = attr.reshape(-1, attr.shape[-1]).index_select(0, corner.reshape(-1)).view(-1, 3, attr.shape[-1])
    e0, e1 = c[:, 0] - c[:, 2], c[:, 1] - c[:, 2]  # [N, A]
    uv = rast.reshape(-1, 4).index_select(0, index)
    packed = c[:, 2] + uv[:, 0:1] * e0 + uv[:, 1:2] * e1
    pixels = tri_id.numel()
    out = packed.new_zeros(pixels, packed.shape[-1]).index_copy_(0, index, packed).view(*tri_id.shape, -1)
    if not diff:
        return out, out.new_zeros(*tri_id.shape, 0)
    e0, e1 = e0[:, diff], e1[:, diff]
    db = rast_db.reshape(-1, 4).index_select(0, index)
    d_dx = e0 * db[:, 0:1] + e1 * db[:, 2:3]
    d_dy = e0 * db[:, 1:2] + e1 * db[:, 3:4]
    packed = torch.stack([d_dx, d_dy], -1).flatten(1)
    out_da = packed.new_zeros(pixels, packed.shape[-1]).index_copy_(0, index, packed).view(*tri_id.shape, -1)
    return out, out_da


# ----------------------------------------------------------------------------------------------
# Antialias.


class _ScaleGradient(torch.autograd.Function):
    """Identity in value; the gradient times ``scale`` (nvdiffrast's ``pos_gradient_boost``)."""

    @staticmethod
    def forward(ctx, x, scale):
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.scale, None


def antialias(color, rast, pos, tri, topology_hash=None, pos_gradient_boost=1.0):
    """Antialias silhouette edges analytically (nvdiffrast's ``antialias``, its method in torch or compiled).

    Each pair of horizontally or vertically adjacent pixels whose triangle ids differ is examined
    from the side of the front triangle (the nearer z/w; a covered pixel beats an empty one). If a
    silhouette edge of that triangle (an edge with no neighbor triangle, or whose neighbor folds
    over it in screen space, judged from vertex indices as nvdiffrast does) crosses the segment
    between the two pixel centers, the pixel nearer the crossing takes in the other's color in
    proportion to how far the edge reaches past the midpoint: ``out = color + alpha (color_other -
    color)`` with ``|alpha| = 1/2 - distance from the pixel center to the crossing`` (in pixels, at
    most 1/2). Every other pixel keeps its color. Gradients reach ``color`` through the blend and
    ``pos`` through the crossing point (the edge's two vertices), as in nvdiffrast.

    Args:
        color: float32 (or float64) ``[B, H, W, C]`` image to antialias, any ``C``. Differentiable.
        rast: ``[B, H, W, 4]`` from :func:`rasterize` (or a :class:`DepthPeeler` layer). Constant.
        pos: the clip-space positions that were rasterized (``[B, V, 4]`` or ``[V, 4]``). Differentiable.
        tri: the int32 ``[F, 3]`` triangles that were rasterized. Silhouette edges are found from
            its vertex indices: a vertex shared by triangles must have one index (else the edges
            between them count as silhouettes, as in nvdiffrast).
        topology_hash: from :func:`antialias_construct_topology_hash` of ``tri``; by default built
            here (and kept for the last few ``tri`` seen).
        pos_gradient_boost: multiplier of the gradient reaching ``pos``.

    Returns:
        ``[B, H, W, C]`` like ``color``, row 0 at the bottom.
    """
    for name, x in (("color", color), ("rast", rast), ("pos", pos), ("tri", tri)):
        _is_tensor(name, x)
    func = "antialias_fwd"
    _same_device(func, color=color, rast=rast, pos=pos, tri=tri)
    _float(func, color=color, rast=rast, pos=pos)
    _int32(func, tri=tri)
    _require(color.dim() == 4 and min(color.shape) > 0,
             f"color must have shape[>0, >0, >0, >0] (got {list(color.shape)})")
    _require(rast.dim() == 4 and rast.shape[3] == 4, f"rast must have shape[>0, >0, >0, 4] (got {list(rast.shape)})")
    _tri_shape(tri)
    _require(color.shape[:3] == rast.shape[:3], f"color and rast must have the same dimensions "
             f"(got {list(color.shape)} and {list(rast.shape)})")
    if pos.dim() == 3:
        _require(pos.shape[0] > 0 and pos.shape[1] > 0 and pos.shape[2] == 4 and pos.shape[0] == rast.shape[0],
                 f"instance mode - pos must have shape [{rast.shape[0]}, >0, 4] (got {list(pos.shape)})")
    else:
        _require(pos.dim() == 2 and pos.shape[0] > 0 and pos.shape[1] == 4,
                 f"range mode - pos must have shape [>0, 4] (got {list(pos.shape)})")
    checks.faces(tri, pos.shape[-2], "tri")
    try:
        boost = float(pos_gradient_boost)
    except (TypeError, ValueError):
        raise NvdiffrastArgumentError(f"pos_gradient_boost: expected a number, got {pos_gradient_boost!r}") from None
    if topology_hash is None:
        topology_hash = cached_topology(tri)
    _require(isinstance(topology_hash, TopologyHash), "topology_hash: expected the result of "
             f"antialias_construct_topology_hash(), got {type(topology_hash).__name__}", NvdiffrastArgumentError)
    _require(topology_hash.num_faces == tri.shape[0], f"topology_hash was built for {topology_hash.num_faces} "
             f"triangles, but tri has {tri.shape[0]}")
    kernels = cpu_kernels() if color.device.type == "cpu" else None
    return _antialias(color, rast.detach(), pos, tri, topology_hash.to(color.device), boost, kernels)


def _antialias(color, rast, pos, tri, topology, boost, kernels):
    """:func:`antialias` past its checks: compiled (``csrc/nvdr_antialias.cpp``) where ``kernels`` is the
    CPU module and ``color``, ``rast`` and ``pos`` share a dtype, else :func:`analytic.edge_blend` (the
    reference; the tests pass ``kernels=None`` to compare the two). Raises where a pixel pair's
    triangle id is out of range (ids elsewhere are never read)."""
    if kernels is not None and rast.dtype == color.dtype and pos.dtype == color.dtype:
        out, largest = _AntialiasKernel.apply(color, pos.contiguous(), rast.contiguous(),  # (color: any layout)
                                              tri.contiguous(), topology.opposite.contiguous(), boost, kernels)
        _check_largest_id(largest, tri)
        return out
    ids = rast.reshape(-1, 4)[:, 3]
    pairs = discontinuities(ids, rast.shape[1], rast.shape[2])
    _check_largest_id(float(torch.cat([ids[pairs[0]], ids[pairs[1]]]).max()) if pairs[0].numel() else 0, tri)
    clip = _ScaleGradient.apply(pos, boost) if boost != 1.0 else pos
    return edge_blend(color, rast, clip, tri, topology, pairs)


def _check_largest_id(largest: float, tri) -> None:
    """Raise unless ``largest`` (the largest triangle id + 1 in a pixel pair) is one of ``tri``'s."""
    if largest > tri.shape[0]:
        raise NvdiffrastValueError(f"rast refers to triangle {int(largest) - 1}, but tri has {tri.shape[0]}")


class _AntialiasKernel(torch.autograd.Function):
    """:func:`analytic.edge_blend` compiled: the same image and gradients (``pos``'s times ``boost``).

    Returns the image and the largest triangle id + 1 found in a pixel pair (a float; the kernel
    leaves pairs with ids above ``F`` alone, and the caller raises).
    """

    @staticmethod
    def forward(ctx, color, pos, rast, tri, opposite, boost, kernels):
        out, work, largest = kernels.nvdr_antialias_forward(color, rast, pos, tri, opposite, analytic._EDGE_EPS)
        ctx.save_for_backward(color, pos, work)
        ctx.boost, ctx.dy_eps, ctx.kernels = boost, analytic._DY_EPS, kernels
        return out, largest

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out, _):
        color, pos, work = ctx.saved_tensors
        want_color, want_pos = ctx.needs_input_grad[:2]
        grad_color, grad_pos = ctx.kernels.nvdr_antialias_backward(grad_out, color, pos, work, want_color,
                                                                   want_pos, ctx.boost, ctx.dy_eps)
        return (grad_color if want_color else None, grad_pos if want_pos else None) + (None,) * 5


def antialias_construct_topology_hash(tri):
    """nvdiffrast's topology hash of ``tri`` (int32 ``[F, 3]``), for :func:`antialias` when ``tri`` stays constant.

    Returns:
        a :class:`glsplat.nvdiffrast.analytic.TopologyHash`: the vertex across each triangle edge.
    """
    _is_tensor("tri", tri)
    _int32("antialias_construct_topology_hash", tri=tri)
    _tri_shape(tri)
    _require(bool((tri >= 0).all()), "tri: vertex indices must be >= 0")
    return construct_topology(tri)
