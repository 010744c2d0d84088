"""Measures of triangle meshes in torch: distances between two surfaces, and roughness of one.

The distances (:func:`surface_distance`: Chamfer distance and normal consistency) evaluate a reconstruction
against a reference; they sample both surfaces and use no gradients. The roughness terms
(:func:`laplacian_loss`, :func:`edge_length_loss`, :func:`face_normal_loss`) are differentiable
regularizers for deforming a template, averaged over a batch too. Meshes are ``verts``
``[V, 3]`` (the regularizers also take ``[B, V, 3]``) float and ``faces`` ``[F, 3]`` int64,
counter-clockwise seen from outside.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def face_normals(verts: torch.Tensor, faces: torch.Tensor, unit: bool = True) -> torch.Tensor:
    """``[..., F, 3]`` face normals; with ``unit=False`` their length is twice the face's area."""
    corners = verts[..., faces, :]
    normals = torch.cross(corners[..., 1, :] - corners[..., 0, :], corners[..., 2, :] - corners[..., 0, :], dim=-1)
    return F.normalize(normals, dim=-1, eps=1e-12) if unit else normals


def sample_surface(verts: torch.Tensor, faces: torch.Tensor, count: int,
                   generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` points uniform over the surface's area, and the unit normals of their faces.

    Returns ``points`` ``[count, 3]`` and ``normals`` ``[count, 3]``.
    """
    scaled = face_normals(verts, faces, unit=False)
    areas = scaled.norm(dim=-1)
    face = torch.multinomial(areas, count, replacement=True, generator=generator)
    u, v = torch.rand(2, count, 1, generator=generator, dtype=verts.dtype)
    # Reflecting the points of the unit square above its diagonal keeps them uniform on the triangle.
    flip = (u + v) > 1
    u, v = torch.where(flip, 1 - u, u), torch.where(flip, 1 - v, v)
    corners = verts[faces[face]]
    points = corners[:, 0] + u * (corners[:, 1] - corners[:, 0]) + v * (corners[:, 2] - corners[:, 0])
    return points, F.normalize(scaled[face], dim=-1, eps=1e-12)


def nearest(query: torch.Tensor, points: torch.Tensor, chunk: int = 2048) -> tuple[torch.Tensor, torch.Tensor]:
    """For each of ``query`` ``[N, 3]``, the distance ``[N]`` to and index ``[N]`` of its nearest in ``points``.

    Brute force with ``torch.cdist`` over chunks of the queries, so memory stays
    ``chunk x len(points)``.
    """
    distances, indices = [], []
    for start in range(0, len(query), chunk):
        d, i = torch.cdist(query[start:start + chunk], points).min(dim=1)
        distances.append(d)
        indices.append(i)
    return torch.cat(distances), torch.cat(indices)


def _samples(mesh, count: int, seed: int):
    verts, faces = (mesh.verts, mesh.faces) if hasattr(mesh, "verts") else mesh
    generator = torch.Generator().manual_seed(seed)
    return sample_surface(verts.detach().float().cpu(), faces.cpu(), count, generator)


@torch.no_grad()
def surface_distance(mesh_a, mesh_b, samples: int = 10000, seed: int = 0) -> tuple[float, float]:
    """``(chamfer_distance, normal_consistency)`` of two surfaces from one nearest-point search.

    ``mesh_a`` and ``mesh_b`` are :class:`glsplat.Mesh` (unbatched) or ``(verts, faces)`` pairs.
    Each surface is sampled with ``samples`` area-uniform points (fixed by ``seed``).

    * Chamfer distance: the mean Euclidean distance from a point of one surface to the nearest
      point of the other, averaged over both directions,
      ``(mean_a min_b |a - b| + mean_b min_a |a - b|) / 2``. Not squared, so for meshes
      normalized to a longest side of 1 it reads as a fraction of the object's size. Sampling
      leaves a floor of about ``0.5 / sqrt(samples / area)`` for identical surfaces.
    * Normal consistency: the mean ``|cos|`` between the face normals of those nearest-point
      pairs, over both directions; 1 for identical surfaces. The absolute value ignores
      orientation, so only tilted faces count, not flipped ones.
    """
    points_a, normals_a = _samples(mesh_a, samples, seed)
    points_b, normals_b = _samples(mesh_b, samples, seed + 1)
    dist_ab, near_ab = nearest(points_a, points_b)
    dist_ba, near_ba = nearest(points_b, points_a)
    chamfer = (dist_ab.mean() + dist_ba.mean()) / 2
    cos_ab = (normals_a * normals_b[near_ab]).sum(-1).abs()
    cos_ba = (normals_b * normals_a[near_ba]).sum(-1).abs()
    return float(chamfer), float((cos_ab.mean() + cos_ba.mean()) / 2)


def chamfer_distance(mesh_a, mesh_b, samples: int = 10000, seed: int = 0) -> float:
    """Symmetric Chamfer distance (mean, not squared); see :func:`surface_distance`."""
    return surface_distance(mesh_a, mesh_b, samples, seed)[0]


def normal_consistency(mesh_a, mesh_b, samples: int = 10000, seed: int = 0) -> float:
    """Mean ``|cos|`` of nearest-point normals, both directions; see :func:`surface_distance`."""
    return surface_distance(mesh_a, mesh_b, samples, seed)[1]


def mesh_edges(faces: torch.Tensor) -> torch.Tensor:
    """``[E, 2]`` unique undirected edges (smaller index first)."""
    edges = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    return torch.unique(edges.sort(dim=1).values, dim=0)


def edge_length_loss(verts: torch.Tensor, faces: torch.Tensor, target: float | torch.Tensor = 0.0,
                     edges: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared deviation of edge lengths from ``target`` (a scalar, or ``[E]`` per edge).

    With ``target=0`` it is the mean squared edge length, which pulls vertices together evenly;
    with the template's own lengths it keeps the triangles' sizes. ``edges`` from
    :func:`mesh_edges` can be passed to skip recomputing them every step.
    """
    edges = mesh_edges(faces) if edges is None else edges
    lengths = (verts[..., edges[:, 0], :] - verts[..., edges[:, 1], :]).norm(dim=-1)
    return ((lengths - target) ** 2).mean()


def _cotangent_weights(verts: torch.Tensor, faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Directed edges ``[2, 6F]`` and weights ``[..., 6F]``: half the cotangent of the opposite angle."""
    corners = verts[..., faces, :]
    weights, rows, cols = [], [], []
    for k in range(3):
        i, j, o = k, (k + 1) % 3, (k + 2) % 3
        a, b = corners[..., i, :] - corners[..., o, :], corners[..., j, :] - corners[..., o, :]
        cot = (a * b).sum(-1) / torch.cross(a, b, dim=-1).norm(dim=-1).clamp(min=1e-12)
        # Obtuse angles give negative weights; clamping keeps the operator a smoothing one.
        w = 0.5 * cot.clamp(min=0)
        rows += [faces[:, i], faces[:, j]]
        cols += [faces[:, j], faces[:, i]]
        weights += [w, w]
    return torch.stack([torch.cat(rows), torch.cat(cols)]), torch.cat(weights, -1)


def laplacian_loss(verts: torch.Tensor, faces: torch.Tensor, method: str = "uniform",
                   edges: torch.Tensor | None = None, squared: bool = False) -> torch.Tensor:
    """Mean norm of each vertex's offset from the weighted mean of its neighbors.

    ``method="uniform"``: all neighbors weigh the same (smooths, and also evens out the vertex
    spacing); ``"cotangent"``: cotangent weights, computed from the current positions without
    gradient (as PyTorch3D does), which measure curvature rather than irregular sampling.
    ``edges`` (uniform only) as for :func:`edge_length_loss`. ``squared``: the mean squared norm
    instead, whose pull fades as the offsets shrink (the viewer smooths per-vertex displacements
    with it: ``verts`` may be any per-vertex vectors).
    """
    if method == "uniform":
        edges = mesh_edges(faces) if edges is None else edges
        index = torch.cat([edges, edges.flip(1)]).T
        weights = torch.ones(index.shape[1], dtype=verts.dtype, device=verts.device)
    elif method == "cotangent":
        with torch.no_grad():
            index, weights = _cotangent_weights(verts, faces)
    else:
        raise ValueError(f"method: 'uniform' or 'cotangent', not {method!r}")
    count = verts.shape[-2]
    total = weights.new_zeros(*weights.shape[:-1], count).index_add(-1, index[0], weights)
    neighbors = torch.zeros_like(verts).index_add(-2, index[0], weights[..., None] * verts[..., index[1], :])
    mean = neighbors / total.clamp(min=1e-12)[..., None]
    return ((mean - verts).square().sum(-1) if squared else (mean - verts).norm(dim=-1)).mean()


def face_adjacency(faces: torch.Tensor) -> torch.Tensor:
    """``[P, 2]`` pairs of faces sharing an edge (edges shared by more than two faces are skipped)."""
    edges = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]).sort(dim=1).values
    face_ids = torch.arange(len(faces), device=faces.device).repeat(3)
    _, edge_ids, counts = torch.unique(edges, dim=0, return_inverse=True, return_counts=True)
    manifold = counts[edge_ids] == 2
    order = torch.argsort(edge_ids[manifold], stable=True)
    # After sorting by edge, each manifold edge's two faces sit next to each other.
    return face_ids[manifold][order].reshape(-1, 2)


def face_normal_loss(verts: torch.Tensor, faces: torch.Tensor, pairs: torch.Tensor | None = None) -> torch.Tensor:
    """Mean ``1 - cos`` of the angle between the normals of adjacent faces (0 for a plane).

    ``pairs`` from :func:`face_adjacency` can be passed to skip recomputing them every step.
    """
    pairs = face_adjacency(faces) if pairs is None else pairs
    normals = face_normals(verts, faces)
    return (1 - (normals[..., pairs[:, 0], :] * normals[..., pairs[:, 1], :]).sum(-1)).mean()
