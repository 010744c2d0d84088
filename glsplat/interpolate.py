"""`interpolate`: per-vertex attributes to per-pixel attributes, differentiable in the attributes."""
from __future__ import annotations

import torch

from . import checks
from .kernels import cpu_kernels
from .raster import Raster


def barycentrics(rast: Raster, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``[B, K, H, W, 3]`` weights of the three corners, all zero on background."""
    b01 = rast.bary.to(dtype)
    b2 = 1 - b01.sum(-1, keepdim=True)
    return torch.cat([b01, b2], -1) * rast.mask[..., None]


def corner_indices(rast: Raster, faces: torch.Tensor) -> torch.Tensor:
    """int64 ``[B, K, H, W, 3]``: the indices (into ``faces``' index space) of each pixel's corners.

    Background pixels get face 0's corners; their barycentric weights are zero.
    """
    face = (rast.tri_id.long() - 1).clamp_(min=0)
    return faces.to(device=face.device, dtype=torch.long)[face]


def interpolate_torch(attr: torch.Tensor, rast: Raster, faces: torch.Tensor) -> torch.Tensor:
    """:func:`interpolate` in plain torch ops (any device); ``attr`` is ``[1 or B, V, C]``."""
    batch = rast.tri_id.shape[0]
    idx = corner_indices(rast, faces)
    if attr.shape[0] != 1:
        idx = idx + torch.arange(batch, device=idx.device).view(batch, 1, 1, 1, 1) * attr.shape[1]
    # index_select's backward adds with atomics; advanced indexing's sorts the many repeated
    # indices first, which on CUDA is over ten times slower.
    corners = attr.reshape(-1, attr.shape[-1]).index_select(0, idx.reshape(-1)).view(*idx.shape, -1)
    return torch.einsum("bkhwnc,bkhwn->bkhwc", corners, barycentrics(rast, attr.dtype))


class _InterpolateCPU(torch.autograd.Function):
    """:func:`interpolate_torch` as one compiled gather forward and one scatter backward."""

    @staticmethod
    def forward(ctx, attr, tri_id, bary, faces):
        ctx.save_for_backward(attr, tri_id, bary, faces)
        return cpu_kernels().interpolate_forward(attr, tri_id, bary, faces)

    @staticmethod
    def backward(ctx, grad_out):
        return cpu_kernels().interpolate_backward(grad_out, *ctx.saved_tensors), None, None, None


def interpolate(attr: torch.Tensor, rast: Raster, faces: torch.Tensor) -> torch.Tensor:
    """Blend per-vertex attributes with the raster's barycentrics.

    Args:
        attr: float ``[B, V, C]`` or ``[V, C]`` (shared by the batch), any of float32/float64.
            Differentiable.
        rast: the :class:`Raster` (constant: no gradient flows into barycentrics).
        faces: integer ``[F, 3]`` indices into ``attr``'s ``V`` axis. These need not be the
            faces that were rasterized, only have the same ``F``: face-varying attributes (UVs
            with their own index, as in OBJ files) pass their own index here.

    Returns:
        ``[B, K, H, W, C]`` in ``attr``'s dtype; 0 on background.
    """
    batch = rast.tri_id.shape[0]
    checks.tensor(attr, "attr", dims=(2, 3), what="[B, V, C] or [V, C]")
    checks.same_device(attr=attr, rast=rast.tri_id)
    if attr.dim() == 2:
        attr = attr[None]
    if attr.shape[0] not in (1, batch):
        raise ValueError(f"attr: batch of {attr.shape[0]} for a raster of {batch} images")
    checks.raster_faces(faces, rast.tri_id, attr.shape[1])
    return _interpolate(attr, rast, faces)


def _interpolate(attr: torch.Tensor, rast: Raster, faces: torch.Tensor) -> torch.Tensor:
    """:func:`interpolate` after its checks: ``attr`` float ``[1 or B, V, C]`` on the raster's
    device, ``faces`` integer ``[F, 3]`` in ``0..V - 1``, every face id of ``rast`` at most ``F``
    (the compiled kernels index without bounds checks)."""
    if attr.device.type == "cpu" and cpu_kernels() is not None:
        faces = faces.to(device="cpu", dtype=torch.long).contiguous()
        return _InterpolateCPU.apply(attr.contiguous(), rast.tri_id.contiguous(), rast.bary.contiguous(), faces)
    return interpolate_torch(attr, rast, faces)
