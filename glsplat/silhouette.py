"""Edge-glued silhouette splats: silhouette gradients that are right for rotations too.

The splat moves each covered sample with the surface point it was rasterized from. On a
silhouette that point lies a depth ``b`` in front of the contour edge that bounds the image region
(``b ~ sqrt(2 R delta)`` on a smooth surface of radius ``R``, ``delta`` the pixel's distance inside
the edge), and a rotation moves it differently from the edge: rotation gradients carry an error of
5-10% of their scale (translations are right). The polyhedral silhouette derivative (what
nvdiffrast's antialias differentiates) moves the region's boundary with its contour edge instead.

So a *glued* sample, one within ``REACH`` pixels of something deeper (background, or a surface
behind) and within ``BAND`` pixels of a visible contour edge, gets a zero-valued image-space offset

    d = m m^T [(q - q.detach()) - (p - p.detach())]

with ``p`` its own image position, ``q`` the closest point of the edge at a fixed
perspective-correct parameter and ``m`` the edge's unit image normal: the image-normal part of the
sample's motion becomes the edge's. The forward image does not change.

Finding the glue (constant, no gradient) is :func:`find_glue`: the contour edges in GL's culling
convention (:func:`contour_edges`, adjacency cached per topology), then per edge the samples within
``BAND`` of it (``csrc/edges.cpp``, ``csrc/edges_cuda.cu`` on CUDA, linear in pixels and faces;
:func:`find_glue_torch` is the reference they are tested against and the path where no kernel is
built). The splat's compiled backward passes add ``d``'s gradient themselves (``Splat::glued`` in
``csrc/splat.h``); :func:`glue_offsets` makes ``d`` in torch ops, for the pure-torch splat and as
their reference.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from .checks import stamp, unchanged
from .kernels import cpu_kernels, kernels_for
from .raster import Raster, clip_to_pixels

BAND = 2.5
"""A sample is glued to a contour edge whose closest point is at most this far (pixels) from its center."""
REACH = 2
"""...and only if a pixel at most this many rows and columns away (a 5 x 5 window) is deeper."""
OUTSIDE = 1.5
"""The edge has something deeper on its outer side: at this distance (pixels) from ``q`` along ``m``."""
DEPTH_TOLERANCE = 0.02
"""Deeper means by more than this fraction of the distance to the camera: in window depth ``z``, by
more than ``DEPTH_TOLERANCE * (1 - z)`` (for a perspective projection with a far plane far away,
``1 - z`` is nearly proportional to 1 / distance, so this is a relative depth difference)."""


GLUE_BORDER = 5
"""The guard band (pixels) that :func:`glsplat.render` rasterizes with ``silhouette="edge"``: the glue
of the samples up to one pixel outside the image (the ones the splat takes) looks up pixels up to
``BAND + OUTSIDE`` = 4 px from them, so with this band it is the glue a wider frame gives."""


class Glue(NamedTuple):
    """The glued samples of a raster (constant): ``G`` of them, ascending by ``sample``.

    Attributes:
        sample: int64 ``[G]`` flat indices into ``[B, K, H, W]`` (as :attr:`Raster.index`).
        edge: int64 ``[G, 2]`` vertex indices ``(a, b)`` of each one's contour edge.
        t: float64 ``[G]`` the closest point's perspective-correct parameter on the edge:
            ``q = (1 - t) clip[a] + t clip[b]`` in clip space.
        row: int64 ``[G]`` each one's row in the packed order of covered samples
            (:attr:`Raster.index`): where its offset goes.
    """

    sample: torch.Tensor
    edge: torch.Tensor
    t: torch.Tensor
    row: torch.Tensor


def _kernels(device: torch.device):
    """The compiled glue kernels for tensors on ``device`` (CPU or CUDA), or None: the torch path.
    (This module's ``cpu_kernels`` on the CPU, which a test turns off to reach the torch path.)"""
    return cpu_kernels() if device.type == "cpu" else kernels_for(device)


# ---------------------------------------------------------------------------------------------
# Contour edges


_ADJACENCY: list[tuple[tuple | None, torch.Tensor, torch.Tensor]] = []  # (stamp, faces, edge ids)
_ADJACENCY_KEPT = 4


def edge_ids(faces: torch.Tensor) -> torch.Tensor:
    """int64 ``[F * 3]`` on the CPU: the undirected edge of each half-edge ``3 f + c`` (corner c to c + 1).

    Computed once per topology: the last few ``faces`` seen are kept, found again as the same
    unmodified tensor (:func:`glsplat.checks.unchanged`) or by value.
    """
    for seen, _, ids in _ADJACENCY:
        if unchanged(faces, seen):
            return ids
    values = faces.to(device="cpu", dtype=torch.long)
    for i, (_, known, ids) in enumerate(_ADJACENCY):
        if known.shape == values.shape and torch.equal(known, values):
            _ADJACENCY[i] = (stamp(faces), known, ids)
            return ids
    known = values.clone() if values is faces else values
    ends = torch.stack([known, known.roll(-1, 1)], -1).reshape(-1, 2)
    key = ends.min(1).values * (int(known.max()) + 1) + ends.max(1).values
    ids = torch.unique(key, return_inverse=True)[1]
    _ADJACENCY.insert(0, (stamp(faces), known, ids))
    del _ADJACENCY[_ADJACENCY_KEPT:]
    return ids


def front_facing(clip: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """bool ``[Bc, F]``: faces whose corners run counter-clockwise in NDC (what GL does not cull).

    The sign of det[x, y, w] of the three clip-space corners: the NDC area's sign where all w > 0.
    """
    x, y, w = (clip[..., i].index_select(1, faces.reshape(-1)).view(clip.shape[0], -1, 3).unbind(-1) for i in (0, 1, 3))
    return (x[0] * (y[1] * w[2] - y[2] * w[1]) - y[0] * (x[1] * w[2] - x[2] * w[1])
            + w[0] * (x[1] * y[2] - x[2] * y[1])) > 0


def contour_edges(clip: torch.Tensor, faces: torch.Tensor, batch: int) -> torch.Tensor:
    """:func:`contour_edges_torch`, compiled (``csrc/edges.cpp``, ``csrc/edges_cuda.cu``)."""
    kernels = _kernels(clip.device)
    if kernels is None or faces.shape[0] == 0:
        return contour_edges_torch(clip, faces, batch)
    faces = faces.to(device=clip.device, dtype=torch.long).contiguous()
    return kernels.contour_edges(clip.detach().double().contiguous(), faces, edge_ids(faces).to(clip.device), batch)


def contour_edges_torch(clip: torch.Tensor, faces: torch.Tensor, batch: int) -> torch.Tensor:
    """int64 ``[M, 3]``: ``(image, a, b)`` for each contour edge, ``a -> b`` in its front face's winding.

    A contour edge is a half-edge of a front face that no other front face shares: the two faces
    of the edge differ in facing, or the edge is a boundary. Edges with an end at w <= 0 (behind
    the camera) are left out. ``clip`` is ``[1 or B, V, 4]``; ``batch`` is B.
    """
    faces = faces.to(device=clip.device, dtype=torch.long)
    if faces.shape[0] == 0:
        return torch.zeros((0, 3), dtype=torch.long, device=clip.device)
    ids = edge_ids(faces).to(clip.device)
    front = front_facing(clip, faces).expand(batch, -1)  # [B, F]
    front_half = front.repeat_interleave(3, 1)  # [B, 3F]
    count = torch.zeros((batch, int(ids.max()) + 1), dtype=torch.int32, device=clip.device)
    count.index_add_(1, ids, front_half.to(torch.int32))
    a = faces.reshape(-1)
    b = faces.roll(-1, 1).reshape(-1)
    ahead = clip[..., 3].expand(batch, -1) > 0  # [B, V]
    contour = front_half & (count[:, ids] == 1) & ahead[:, a] & ahead[:, b]
    image, half = contour.nonzero(as_tuple=True)
    return torch.stack([image, a[half], b[half]], 1)


# ---------------------------------------------------------------------------------------------
# Finding the glue


def find_glue(clip: torch.Tensor, faces: torch.Tensor, rast: Raster) -> Glue:
    """The glued samples of ``rast``, which was rasterized from ``clip`` ``[1 or B, V, 4]`` (its frame).

    Compiled on the CPU and CUDA (``csrc/edges.cpp``, ``csrc/edges_cuda.cu``: the contour edges
    and the search in one call), :func:`find_glue_torch` elsewhere; the same answer.
    """
    clip = clip.detach().double()
    clip = (clip if clip.dim() == 3 else clip[None]).contiguous()
    kernels = _kernels(clip.device)
    if kernels is None or faces.shape[0] == 0:
        return find_glue_torch(clip, contour_edges(clip, faces, rast.tri_id.shape[0]), rast)
    faces = faces.to(device=clip.device, dtype=torch.long).contiguous()
    return Glue(*kernels.find_glue(clip, faces, edge_ids(faces).to(clip.device), rast.tri_id.contiguous(), rast.depth,
                                   rast.index, BAND, REACH, OUTSIDE, DEPTH_TOLERANCE))


def find_glue_torch(clip: torch.Tensor, edges: torch.Tensor, rast: Raster) -> Glue:
    """:func:`find_glue` in torch ops, from the contour ``edges`` (:func:`contour_edges`).

    Each edge is sampled every half pixel; every pixel of the 7 x 7 windows around the samples
    (which hold all pixels within ``BAND`` of the edge) is a candidate, tested as the kernel does:
    the pixel center on the edge's inner side and within ``BAND`` of it, and for each layer: the
    layer covers it, not deeper than the edge point ``q``, with something deeper than ``q`` at
    ``OUTSIDE`` px outside the edge and something deeper than itself in its 5 x 5 window. Each
    sample keeps its nearest edge (the first one listed among equals).
    """
    batch, layers, height, width = rast.tri_id.shape
    device = rast.tri_id.device
    clip = clip.double()
    tri_id, depth = rast.tri_id, rast.depth.double()
    none = torch.zeros(0, dtype=torch.long, device=device)
    empty = Glue(none, none.view(0, 2), none.double(), none)
    if edges.shape[0] == 0:
        return empty
    image, va, vb = edges.unbind(1)
    ci = image if clip.shape[0] > 1 else torch.zeros_like(image)
    ca, cb = clip[ci, va], clip[ci, vb]  # [M, 4]
    pa, pb = clip_to_pixels(ca, height, width), clip_to_pixels(cb, height, width)

    # Candidate (edge, pixel) pairs: the part of each edge near the frame (Liang-Barsky), sampled.
    along = pb - pa
    lo = torch.tensor([-BAND - 1, -BAND - 1], dtype=torch.float64, device=device)
    hi = torch.tensor([width + BAND + 1, height + BAND + 1], dtype=torch.float64, device=device)
    flat = along == 0
    step_lo, step_hi = (lo - pa) / along, (hi - pa) / along
    s0 = torch.where(flat, 0.0, torch.minimum(step_lo, step_hi)).amax(1).clamp(min=0)
    s1 = torch.where(flat, 1.0, torch.maximum(step_lo, step_hi)).amin(1).clamp(max=1)
    near = (s0 <= s1) & ~(flat & ((pa < lo) | (pa > hi))).any(1)
    count = torch.where(near, ((s1 - s0) * along.norm(dim=1) / 0.5).ceil().long() + 1, 0)
    edge = torch.repeat_interleave(torch.arange(len(edges), device=device), count)
    step = torch.arange(len(edge), device=device) - torch.repeat_interleave(count.cumsum(0) - count, count)
    s = s0[edge] + (s1 - s0)[edge] * step.double() / (count[edge] - 1).clamp(min=1).double()
    point = pa[edge] + s[:, None] * along[edge]
    window = torch.arange(-3, 4, device=device)
    row = (point[:, 1].floor().long()[:, None, None] + window[:, None]).expand(-1, 7, 7).reshape(len(edge), -1)
    col = (point[:, 0].floor().long()[:, None, None] + window[None, :]).expand(-1, 7, 7).reshape(len(edge), -1)
    edge = edge[:, None].expand_as(row)
    keep = (row >= 0) & (row < height) & (col >= 0) & (col < width)
    key = torch.unique((edge[keep] * height + row[keep]) * width + col[keep])
    edge, pixel = key // (height * width), key % (height * width)
    row, col = pixel // width, pixel % width

    # The kernel's tests, in the same order of operations.
    ax, ay, bx, by = pa[edge, 0], pa[edge, 1], pb[edge, 0], pb[edge, 1]
    abx, aby = bx - ax, by - ay
    l2 = abx * abx + aby * aby
    px, py = col.double() + 0.5, row.double() + 0.5
    apx, apy = px - ax, py - ay
    s = ((apx * abx + apy * aby) / l2).clamp(0, 1)
    qx = torch.where(s <= 0, ax, torch.where(s >= 1, bx, ax + s * abx))
    qy = torch.where(s <= 0, ay, torch.where(s >= 1, by, ay + s * aby))
    dx, dy = px - qx, py - qy
    dist2 = dx * dx + dy * dy
    cross = abx * apy - aby * apx
    ok = (l2 > 0) & (dist2 <= BAND * BAND) & (cross <= 0)
    norm = l2.sqrt()
    ox, oy = -aby / norm, abx / norm
    out_row = (qy + oy * OUTSIDE).floor()
    out_col = (qx + ox * OUTSIDE).floor()
    wa, wb = ca[edge, 3], cb[edge, 3]
    t = s * wa / (s * wa + (1 - s) * wb)  # perspective-correct
    ndc_a, ndc_b = ca[:, 2] / ca[:, 3], cb[:, 2] / cb[:, 3]  # NDC depth: affine in the image along the edge
    q_depth = ((1 - s) * ndc_a[edge] + s * ndc_b[edge] + 1) * 0.5
    q_deeper = q_depth + DEPTH_TOLERANCE * (1 - q_depth)
    b = image[edge]

    padded = F.pad(depth, (REACH, REACH, REACH, REACH), value=1.0)
    deepest = F.max_pool2d(padded, 2 * REACH + 1, stride=1)  # [B, K, H, W]
    inside_out = ((out_row >= 0) & (out_row < height) & (out_col >= 0) & (out_col < width))
    orow, ocol = out_row.clamp(0, height - 1).long(), out_col.clamp(0, width - 1).long()

    found_sample, found_edge, found_dist, found_t = [], [], [], []
    for k in range(layers):
        covered = tri_id[b, k, row, col] > 0
        d_p = depth[b, k, row, col]
        d_out = torch.where(inside_out, depth[b, k, orow, ocol], torch.ones_like(d_p))
        glued = (ok & covered & (d_p <= q_deeper) & (d_out > q_deeper)
                 & (deepest[b, k, row, col] > d_p + DEPTH_TOLERANCE * (1 - d_p)))
        found_sample.append(((b * layers + k) * height + row) * width + col)
        found_edge.append(edge)
        found_dist.append(torch.where(glued, dist2, torch.full_like(dist2, float("inf"))))
        found_t.append(t)
    sample, edge, dist2, t = (torch.cat(x) for x in (found_sample, found_edge, found_dist, found_t))
    keep = dist2.isfinite()
    sample, edge, dist2, t = sample[keep], edge[keep], dist2[keep], t[keep]
    if len(sample) == 0:
        return empty
    nearest = torch.full((batch * layers * height * width,), float("inf"), dtype=torch.float64, device=device)
    nearest.scatter_reduce_(0, sample, dist2, "amin")
    best = dist2 == nearest[sample]
    first = torch.full_like(nearest, len(edges), dtype=torch.long)
    first.scatter_reduce_(0, sample[best], edge[best], "amin")
    pick = best & (edge == first[sample])
    order = sample[pick].argsort()
    sample, edge, t = sample[pick][order], edge[pick][order], t[pick][order]
    return Glue(sample, edges[edge, 1:], t, torch.searchsorted(rast.index, sample))


# ---------------------------------------------------------------------------------------------
# The offsets


def glue_offsets(clip: torch.Tensor, faces: torch.Tensor, rast: Raster, glue: Glue) -> torch.Tensor:
    """``[G, 2]`` image-space offsets (x right, y down, pixels) of the glued samples; zero in value.

    ``d = m m^T [(q - q.detach()) - (p - p.detach())]``: ``p`` the sample's image position (its
    face's clip-space corners blended with its barycentrics, divided by w), ``q`` its edge's point
    at the parameter ``glue.t``, ``m`` the edge's unit image normal. Added to the samples' splat
    positions, the image-normal part of their motion becomes the edge's. Differentiable in
    ``clip`` ``[1 or B, V, 4]`` (the raster's frame), in its dtype.
    """
    batch, layers, height, width = rast.tri_id.shape
    clip = clip if clip.dim() == 3 else clip[None]
    image = glue.sample // (layers * height * width)
    ci = image if clip.shape[0] > 1 else torch.zeros_like(image)
    at = (image, glue.sample // (height * width) % layers, glue.sample // width % height, glue.sample % width)
    face = faces.to(device=clip.device, dtype=torch.long)[rast.tri_id[at].long() - 1]  # [G, 3]
    b01 = rast.bary[at].to(clip.dtype)  # (the G-buffers are strided views: no reshape of whole frames)
    bary = torch.cat([b01, 1 - b01.sum(1, keepdim=True)], 1)  # [G, 3]
    p = clip_to_pixels((clip[ci[:, None], face] * bary[..., None]).sum(1), height, width)
    t = glue.t.to(clip.dtype)[:, None]
    q = clip_to_pixels((1 - t) * clip[ci, glue.edge[:, 0]] + t * clip[ci, glue.edge[:, 1]], height, width)
    ends = clip_to_pixels(clip[ci[:, None], glue.edge].detach(), height, width)  # [G, 2 ends, 2]
    along = ends[:, 1] - ends[:, 0]
    m = torch.stack([-along[:, 1], along[:, 0]], 1) / along.norm(dim=1, keepdim=True)
    motion = (q - q.detach()) - (p - p.detach())
    return m * (m * motion).sum(1, keepdim=True)
