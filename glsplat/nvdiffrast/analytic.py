"""nvdiffrast's analytic antialias, in torch: the maths behind :func:`glsplat.nvdiffrast.antialias`.

The method is nvdiffrast's (``csrc/common/antialias.cu``), written again in vectorized torch so that
it runs on any device, in float32 or float64, and lets autograd derive its gradients. On the CPU,
:func:`glsplat.nvdiffrast.antialias` runs it compiled (``glsplat/csrc/nvdr_antialias.cpp``: the same
operations in the same order, one pass over the rows; the image agrees bit for bit); this module is
that kernel's reference and the path on other devices.

1. **Topology** (:func:`construct_topology`, once per triangle list): for each triangle edge, the
   vertex opposite it in the other triangle sharing that edge (-1 on a boundary edge).
2. **Discontinuities**: each pair of horizontally or vertically adjacent pixels whose triangle ids
   differ (nvdiffrast's work items; the only pixels the method touches).
3. **Analysis** of each pair, from the front triangle's side (the nearer z/w; a covered pixel beats
   an empty one), in pixel units relative to that pixel's center, y up (``rast``'s row order): its
   silhouette edges are those whose opposite vertex lies on the same side of the edge as the
   triangle's own third vertex (the two triangles fold over each other in screen space), or that
   have no neighbor triangle (the areas' signs do not depend on the origin, so they are found
   once per front triangle here; in float32 they can differ from nvdiffrast's, taken relative to
   each pixel center, only on edges seen almost exactly edge-on). On the line through the two
   pixel centers, the edge of the front triangle that the line leaves it by toward the other pixel
   is taken if it is a silhouette edge more vertical than horizontal (for a horizontal pair; the
   roles of x and y swap for a vertical pair); ``dc``, where it crosses as a fraction of the way
   to the other pixel's center, must lie within [-1/16, 1 + 1/16].
4. **Blend**: ``alpha = ds (1/2 - clamp(dc, 0, 1))`` (``ds`` +1 when the front triangle is the
   first pixel's, -1 when the second's) and the pixel the edge is nearer to, the first when
   ``alpha > 0``, gains ``alpha (color1 - color0)``: the part of it the other side covers, in a
   box-filter model of a pixel one unit wide. All pairs add to the input image.

Gradients: to ``color`` through the blend, to ``pos`` through ``dc`` (the crossing point moves with
the edge's two vertices), zero where ``dc`` was clamped. As in nvdiffrast, the derivative of
``1 / dy`` (the edge's extent across the line) is taken at ``dy + 1e-3 px`` (signed), which bounds
it on edges nearly along the line; the value uses ``dy`` itself.
"""
from __future__ import annotations

import torch

_EDGE_EPS = 1.0 / 16  # nvdiffrast's tolerance: a crossing up to 1/16 px outside the pair still counts
_DY_EPS = 1e-3  # px added to an edge's extent across the line in the derivative of 1 / dy (nvdiffrast's)
_NO_CROSSING = float(torch.finfo(torch.float32).max)  # nvdiffrast's -F32_MAX sentinel


class TopologyHash:
    """The topology :func:`glsplat.nvdiffrast.antialias` needs (nvdiffrast's opaque topology hash).

    Attributes:
        opposite: int64 ``[F, 3]``: for edge ``i`` of triangle ``f`` (from its corner ``i + 1`` to
            ``i + 2``, mod 3), the vertex index of the other triangle's corner across that edge,
            or -1 where the edge has no other triangle (a boundary; also an edge of a degenerate
            triangle, and a third or later triangle on a non-manifold edge).
        num_faces: ``F``.
    """

    def __init__(self, opposite: torch.Tensor):
        self.opposite = opposite
        self.num_faces = opposite.shape[0]

    def to(self, device) -> "TopologyHash":
        """This topology on ``device`` (itself when already there)."""
        return self if self.opposite.device == torch.device(device) else TopologyHash(self.opposite.to(device))

    def __repr__(self) -> str:
        return f"TopologyHash({self.num_faces} triangles)"


def construct_topology(tri: torch.Tensor) -> TopologyHash:
    """The :class:`TopologyHash` of int ``[F, 3]`` triangles of vertex indices >= 0.

    As nvdiffrast's edge hash: each undirected edge records the first two distinct opposite
    vertices of the non-degenerate triangles using it (in triangle order here; GPU order there);
    a triangle's edge then reads the recorded one that is not its own corner.
    """
    tri = tri.to(torch.long)
    first, second = tri[:, [1, 2, 0]], tri[:, [2, 0, 1]]  # edge i runs from corner i + 1 to corner i + 2
    low, high = torch.minimum(first, second), torch.maximum(first, second)
    key = low * (int(tri.max()) + 1) + high  # [F, 3], one value per undirected edge
    proper = (tri != tri[:, [1, 2, 0]]).all(1)  # no repeated corner
    entry_key, entry_vertex = key[proper].reshape(-1), tri[proper].reshape(-1)  # in triangle order
    count = entry_key.shape[0]
    opposite = torch.full_like(tri, -1)
    if count:
        # Distinct (edge, opposite vertex) pairs, in order of first appearance within each edge.
        pairs, inverse = torch.unique(torch.stack([entry_key, entry_vertex], 1), dim=0, return_inverse=True)
        appears = torch.full((pairs.shape[0],), count, dtype=torch.long, device=tri.device)
        appears = appears.scatter_reduce(0, inverse, torch.arange(count, device=tri.device), "amin")
        order = appears.argsort()
        order = order[pairs[order, 0].argsort(stable=True)]
        edge, vertex = pairs[order, 0], pairs[order, 1]
        rank = torch.arange(edge.shape[0], device=tri.device) - torch.searchsorted(edge, edge)
        edges = edge[rank == 0]  # sorted, one per undirected edge
        group = torch.searchsorted(edges, edge)
        one = vertex[rank == 0]
        other = torch.full_like(one, -1).index_put_((group[rank == 1],), vertex[rank == 1])
        at = torch.searchsorted(edges, key).clamp(max=edges.shape[0] - 1)
        found = (edges[at] == key) & (low != high)
        one, other = one[at], other[at]
        opposite = torch.where(found & (one == tri), other, torch.where(found & (other == tri), one, opposite))
    return TopologyHash(opposite)


_TOPOLOGIES: list[tuple[torch.Tensor, TopologyHash]] = []
_TOPOLOGIES_KEPT = 4


def cached_topology(tri: torch.Tensor) -> TopologyHash:
    """:func:`construct_topology`, once per topology: the last few ``tri`` seen are kept (compared by value)."""
    for known, topology in _TOPOLOGIES:
        if known.device == tri.device and known.shape == tri.shape and torch.equal(known, tri):
            return topology
    topology = construct_topology(tri)
    _TOPOLOGIES.insert(0, (tri.clone(), topology))
    del _TOPOLOGIES[_TOPOLOGIES_KEPT:]
    return topology


def _to_pixels(p: torch.Tensor, center_x: torch.Tensor, center_y: torch.Tensor, half_width: float,
               half_height: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel-space (x, y) of clip-space points ``p`` ``[..., 4]``, relative to a pixel center.

    ``center_x``, ``center_y``: the center ``(px + 1/2 - W/2, py + 1/2 - H/2)``, broadcast against
    ``p[..., 0]``; pixel units, y up, origin at the image's middle.
    """
    inv_w = 1 / p[..., 3]
    return p[..., 0] * inv_w * half_width - center_x, p[..., 1] * inv_w * half_height - center_y


def _crossing(x1, y1, x2, y2) -> tuple[torch.Tensor, torch.Tensor]:
    """Where the line through (x1, y1) and (x2, y2) crosses y = 0, as ``(numerator, dy)``: x = numerator / dy."""
    dx, dy = x2 - x1, y2 - y1
    return x1 * dy - y1 * dx, dy


def _same_sign(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """nvdiffrast's sign test: equal sign bits (so +0 and -0 differ)."""
    return torch.signbit(a) == torch.signbit(b)


def _greater(n0, n1, d0, d1) -> torch.Tensor:
    """n0 / d0 > n1 / d1 without dividing (nvdiffrast's ``rational_gt``)."""
    return (n0 * d1 > n1 * d0) == _same_sign(d0, d1)


def discontinuities(tri_id: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The pixel pairs whose triangle ids differ: ``(first, second)`` int64 ``[N]`` flat pixel indices.

    ``tri_id`` ``[B * H * W]`` (any dtype; compared for equality; may be strided), the images' pixels
    in order. ``second`` is ``first``'s right neighbor (``first + 1``) or its neighbor in the next
    row (``first + W``).
    """
    right = (tri_id[1:] != tri_id[:-1]).nonzero().squeeze(1)
    right = right[right % width != width - 1]  # not across a row's end
    up = (tri_id[width:] != tri_id[:-width]).nonzero().squeeze(1)
    up = up[(up // width) % height != height - 1]  # not across an image's end
    first = torch.cat([right, up])
    return first, first + torch.cat([torch.ones_like(right), torch.full_like(up, width)])


def silhouette_edges(points: torch.Tensor, corner: torch.Tensor, across: torch.Tensor, half_width: float,
                     half_height: float) -> torch.Tensor:
    """bool ``[N, 3]``: which edges of N triangles are silhouette edges in screen space.

    ``points`` ``[P, 4]`` clip space; ``corner`` int64 ``[N, 3]`` the triangles' corners, ``across``
    ``[N, 3]`` the vertex across each edge (the corner itself where there is none: always a
    silhouette). Edge i (corner i + 1 to i + 2) is one where the vertex across it lies on the same
    side as the triangle's own corner i (its neighbor folds over it), judged by the signs of the
    two pixel-space areas (nvdiffrast's test, relative to a pixel center there; the areas do not
    depend on the origin).
    """
    zero = points.new_zeros(())
    x, y = _to_pixels(points[corner], zero, zero, half_width, half_height)
    ox, oy = _to_pixels(points[across], zero, zero, half_width, half_height)
    x1, y1, x2, y2 = x.roll(-1, 1), y.roll(-1, 1), x.roll(-2, 1), y.roll(-2, 1)  # edge i: corner i+1 -> i+2
    own = (x[:, 1] - x[:, 0]) * (y[:, 2] - y[:, 0]) - (x[:, 2] - x[:, 0]) * (y[:, 1] - y[:, 0])
    wing = (x1 - ox) * (y2 - oy) - (x2 - ox) * (y1 - oy)
    return _same_sign(wing, own[:, None])


def edge_blend(color: torch.Tensor, rast: torch.Tensor, pos: torch.Tensor, tri: torch.Tensor,
               topology: TopologyHash, pairs: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """nvdiffrast's antialias of ``color``: the input plus each discontinuity's blend (module docstring).

    Args:
        color: float ``[B, H, W, C]``. Differentiable.
        rast: float ``[B, H, W, 4]`` (u, v, z/w, triangle id + 1), row 0 at the bottom. Constant.
        pos: float clip-space vertices, ``[B, V, 4]`` (instanced) or ``[V, 4]`` (range mode). Differentiable.
        tri: int ``[F, 3]``.
        topology: :func:`construct_topology` of ``tri``, on ``color``'s device.
        pairs: :func:`discontinuities` of ``rast``'s triangle ids, which must lie in 0..F there.

    Returns:
        ``[B, H, W, C]`` in ``color``'s dtype.
    """
    batch, height, width, channels = color.shape
    half_width, half_height = width / 2, height / 2
    texels = rast.detach().reshape(-1, 4)
    first, second = pairs
    tri0, tri1 = texels[first, 3].long() - 1, texels[second, 3].long() - 1
    # The front triangle: the covered side, or the nearer of two (ties: the second pixel's).
    use1 = (tri0 < 0) | ((tri1 >= 0) & ~(texels[first, 2] < texels[second, 2]))
    face = torch.where(use1, tri1, tri0)
    center = torch.where(use1, second, first)
    image = center // (height * width)
    num_faces = tri.shape[0]
    tri = tri.to(device=color.device, dtype=torch.long)
    points = pos.detach().reshape(-1, 4)

    with torch.no_grad():
        # Silhouette edges, once per front triangle seen (and image, in instanced mode); only
        # pairs whose front triangle has one can blend.
        key, keys = (face + image * num_faces, batch * num_faces) if pos.dim() == 3 else (face, num_faces)
        seen = torch.zeros(keys, dtype=torch.bool, device=color.device)
        seen[key] = True
        seen = seen.nonzero().squeeze(1)
        corner, across = tri[seen % num_faces], topology.opposite[seen % num_faces]
        across = torch.where(across >= 0, across, corner)  # no neighbor: the vertex itself (always a silhouette)
        if pos.dim() == 3:
            offset = (seen // num_faces)[:, None] * pos.shape[1]
            corner, across = corner + offset, across + offset
        table = torch.zeros(keys, 3, dtype=torch.bool, device=color.device)
        table[seen] = silhouette_edges(points, corner, across, half_width, half_height)
        silhouette = table[key]
        candidate = silhouette.any(1).nonzero().squeeze(1)
        first, second, face, center, image, silhouette, use1 = (
            t[candidate] for t in (first, second, face, center, image, silhouette, use1))
        vertical = second - first == width  # (not != 1: one pixel wide, the vertical pairs' offset is 1)
        ds = torch.where(use1, -1.0, 1.0).to(pos.dtype)  # +1: toward the second pixel; -1: toward the first
        center_x = (center % width).to(pos.dtype) + 0.5 - half_width
        center_y = ((center // width) % height).to(pos.dtype) + 0.5 - half_height
        corner = tri[face]
        if pos.dim() == 3:
            corner = corner + image[:, None] * pos.shape[1]
        x, y = _to_pixels(points[corner], center_x[:, None], center_y[:, None], half_width, half_height)  # [N, 3]
        x1, y1, x2, y2 = x.roll(-1, 1), y.roll(-1, 1), x.roll(-2, 1), y.roll(-2, 1)  # edge i: corner i+1 -> i+2
        # Swap x and y for vertical pairs: the line through the two centers is then y = 0 too.
        swap = vertical[:, None]
        x1, y1, x2, y2 = (torch.where(swap, y1, x1), torch.where(swap, x1, y1),
                          torch.where(swap, y2, x2), torch.where(swap, x2, y2))
        numerator, dy = _crossing(x1, y1, x2, y2)
        numerator = ds[:, None] * numerator
        crosses = ~_same_sign(y1, y2)
        numerator = torch.where(crosses, numerator, -_NO_CROSSING)
        dy = torch.where(crosses, dy, 1.0)
        # The edge with the farthest crossing toward the other pixel (nvdiffrast's max_idx3).
        n0, n1, n2 = numerator.unbind(1)
        d0, d1, d2 = dy.unbind(1)
        edge = torch.where(_greater(n2, n0, d2, d0) & _greater(n2, n1, d2, d1), 2,
                           torch.where(_greater(n1, n0, d1, d0), 1, 0))[:, None]
        steep = (dy.abs() >= (x2 - x1).abs()).gather(1, edge)[:, 0]
        dc = numerator.gather(1, edge)[:, 0] / dy.gather(1, edge)[:, 0]
        blend = silhouette.gather(1, edge)[:, 0] & steep & (dc > -_EDGE_EPS) & (dc < 1 + _EDGE_EPS)
        keep = blend.nonzero().squeeze(1)

    # The blends, differentiable: dc again from the chosen edge's two vertices, of pos itself.
    first, second, ds, vertical, edge = first[keep], second[keep], ds[keep], vertical[keep], edge[keep, 0]
    ends = corner[keep].gather(1, torch.stack([edge + 1, edge + 2], 1) % 3)  # [M, 2]: the edge's two corners
    x, y = _to_pixels(pos.reshape(-1, 4)[ends], center_x[keep, None], center_y[keep, None], half_width, half_height)
    x, y = torch.where(vertical[:, None], y, x), torch.where(vertical[:, None], x, y)
    numerator, dy = _crossing(x[:, 0], y[:, 0], x[:, 1], y[:, 1])
    padded = numerator / (dy + torch.copysign(torch.full_like(dy, _DY_EPS), dy.detach()))  # nvdiffrast's derivative
    dc = ds * (numerator / dy).detach() + ds * (padded - padded.detach())
    alpha = ds * (0.5 - dc.clamp(0, 1))
    pixels = color.reshape(-1, channels)
    target = torch.where(alpha.detach() > 0, first, second)  # the pixel the edge is nearer to
    change = alpha[:, None].to(color.dtype) * (pixels[second] - pixels[first])
    return pixels.clone().index_add_(0, target, change).view(color.shape)  # (out of place: 4x slower on the CPU)
