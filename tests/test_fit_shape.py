"""Shape fitting: mesh metrics and regularizers with known answers, and demos/fit_shape.py at a tiny size."""
import math

import pytest
import torch
import trimesh

from glsplat.fitting.metrics import (edge_length_loss, face_adjacency, face_normal_loss, laplacian_loss, mesh_edges,
                                     sample_surface, surface_distance)
from glsplat.fitting.shape import icosphere, subdivide
from conftest import load_script


def as_tensors(mesh: trimesh.Trimesh):
    return torch.as_tensor(mesh.vertices, dtype=torch.float32), torch.as_tensor(mesh.faces, dtype=torch.int64)


def square(angle_degrees: float = 0.0):
    """The unit square in the xy-plane, turned by ``angle_degrees`` about the x axis."""
    verts = torch.tensor([[-0.5, -0.5, 0.0], [0.5, -0.5, 0.0], [0.5, 0.5, 0.0], [-0.5, 0.5, 0.0]])
    a = math.radians(angle_degrees)
    rotation = torch.tensor([[1.0, 0.0, 0.0], [0.0, math.cos(a), -math.sin(a)], [0.0, math.sin(a), math.cos(a)]])
    return verts @ rotation.T, torch.tensor([[0, 1, 2], [0, 2, 3]])


def test_samples_lie_on_the_surface_in_proportion_to_area():
    verts = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [2, 0, 0], [5, 0, 0], [2, 2, 0]])
    faces = torch.tensor([[0, 1, 2], [3, 4, 5]])  # areas 0.5 and 3
    points, normals = sample_surface(verts, faces, 20000, torch.Generator().manual_seed(0))
    in_second = (points[:, 0] >= 2).float().mean()
    assert abs(in_second - 3 / 3.5) < 0.01
    first = points[points[:, 0] < 2]
    assert (first >= 0).all() and (first[:, 0] + first[:, 1] <= 1 + 1e-6).all()
    assert torch.allclose(normals, torch.tensor([0.0, 0.0, 1.0]).expand_as(normals))


def test_chamfer_of_a_sphere_to_itself_and_to_a_scaled_copy():
    """Concentric spheres of radius 1 and 1.2: every point is 0.2 from the other surface."""
    verts, faces = as_tensors(trimesh.creation.icosphere(subdivisions=5, radius=1.0))
    same, same_normals = surface_distance((verts, faces), (verts, faces))
    # Two independent samplings of one surface: the floor 0.5 / sqrt(10000 / (4 pi)) = 0.018.
    assert same < 0.025
    assert same_normals > 0.999
    scaled, scaled_normals = surface_distance((verts, faces), (1.2 * verts, faces))
    assert scaled == pytest.approx(0.2, rel=0.02)
    assert scaled_normals > 0.999
    assert surface_distance((verts, faces), (verts + torch.tensor([0.3, 0.0, 0.0]), faces))[0] > 0.1


def test_normal_consistency_of_tilted_squares_is_the_cosine():
    for angle in (30.0, 60.0):
        _, consistency = surface_distance(square(), square(angle), samples=2000)
        assert consistency == pytest.approx(math.cos(math.radians(angle)), abs=1e-5)


def test_laplacian_of_an_octahedron_is_its_radius():
    """Each vertex's four neighbors average to the center, so its offset is the radius."""
    verts = torch.tensor([[1.0, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]]) * 0.7
    faces = torch.tensor([[0, 2, 4], [2, 1, 4], [1, 3, 4], [3, 0, 4], [2, 0, 5], [1, 2, 5], [3, 1, 5], [0, 3, 5]])
    shift = torch.tensor([3.0, -1.0, 2.0])
    for method in ("uniform", "cotangent"):
        assert laplacian_loss(verts, faces, method).item() == pytest.approx(0.7, rel=1e-5)
        assert laplacian_loss(verts + shift, faces, method).item() == pytest.approx(0.7, rel=1e-5)


def test_squared_laplacian_of_a_triangle():
    """Each corner's neighbors are the other two: offsets from their midpoints, squared, are
    0.5, 1.25 and 1.25 for the unit right triangle."""
    verts = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    faces = torch.tensor([[0, 1, 2]])
    assert laplacian_loss(verts, faces, squared=True).item() == pytest.approx(1.0, rel=1e-6)
    assert laplacian_loss(verts, faces).item() == pytest.approx((0.5 ** 0.5 + 2 * 1.25 ** 0.5) / 3, rel=1e-6)


def test_laplacian_smoothing_removes_noise():
    verts, faces = as_tensors(trimesh.creation.icosphere(subdivisions=3))
    noisy = (verts + 0.05 * torch.randn_like(verts)).requires_grad_()
    for method in ("uniform", "cotangent"):
        assert laplacian_loss(noisy, faces, method) > 3 * laplacian_loss(verts, faces, method)
    optimizer = torch.optim.Adam([noisy], lr=0.005)
    radii = noisy.detach().norm(dim=-1)
    spread_before = (radii - radii.mean()).abs().mean()
    for _ in range(30):
        optimizer.zero_grad()
        laplacian_loss(noisy, faces).backward()
        optimizer.step()
    # Smoothing without a data term also shrinks the sphere: compare the spread of the radii.
    radii = noisy.detach().norm(dim=-1)
    assert (radii - radii.mean()).abs().mean() < 0.5 * spread_before


def test_edge_length_and_face_normal_losses():
    assert len(mesh_edges(torch.as_tensor(trimesh.creation.icosphere(subdivisions=0).faces))) == 30
    verts, faces = as_tensors(trimesh.creation.box(extents=(2.0, 2.0, 2.0)))
    lengths = (verts[mesh_edges(faces)[:, 0]] - verts[mesh_edges(faces)[:, 1]]).norm(dim=-1)
    assert edge_length_loss(verts, faces, lengths).item() == pytest.approx(0.0, abs=1e-10)
    assert edge_length_loss(verts, faces).item() == pytest.approx((lengths ** 2).mean().item())
    # A cube: 12 creases at 90 degrees (1 - cos = 1) and 6 flat diagonals (0), 18 face pairs.
    assert len(face_adjacency(faces)) == 18
    assert face_normal_loss(verts, faces).item() == pytest.approx(12 / 18, rel=1e-5)
    plane_verts, plane_faces = square(40.0)
    assert face_normal_loss(plane_verts, plane_faces).item() == pytest.approx(0.0, abs=1e-6)
    batch = torch.stack([verts, 2 * verts])
    assert face_normal_loss(batch, faces).item() == pytest.approx(12 / 18, rel=1e-5)


def test_icosphere_and_subdivision_keep_the_surface():
    sphere = icosphere(2, radius=0.5)
    assert sphere.verts.shape == (162, 3) and sphere.faces.shape == (320, 3)
    assert torch.allclose(sphere.verts.norm(dim=-1), torch.tensor(0.5))
    finer = subdivide(sphere)
    assert finer.verts.shape == (642, 3) and finer.faces.shape == (1280, 3)
    assert surface_distance(sphere, finer)[0] < 0.01


def test_demo_improves_chamfer_at_least_fourfold(tmp_path):
    demo = load_script("demos/fit_shape.py")
    (row,) = demo.main(["--mesh", "spot", "--out", str(tmp_path), "--size", "48", "--views", "8",
                        "--steps", "100", "--samples", "3000"])
    assert row["chamfer_after"] < 0.25 * row["chamfer_before"], row
    assert row["normal_after"] > row["normal_before"] + 0.1, row
    table = (tmp_path / "fit_shape_table.md").read_text()
    assert f"| spot | 8 | 48 | {row['vertices']} |" in table
    for name in ("fit_shape_spot.png", "fit_shape_losses.png", "fit_shape_spot.obj"):
        assert (tmp_path / name).stat().st_size > 1000


def test_a_users_own_shape_fit_with_the_public_regularizers(ctx):
    """A hand-written loop, as a user writes one: vertex offsets of an icosphere, fitted to the
    silhouettes of an untextured mesh it was not tuned on, with glsplat.fitting's regularizers."""
    import glsplat
    from glsplat import fitting

    target = glsplat.load_example("blob").normalized()
    cameras = fitting.view_cameras(8, (48, 48))
    with torch.no_grad():
        target_alpha = glsplat.render(ctx, target, cameras)[..., 3]
    sphere = fitting.icosphere(2, radius=0.4)
    topology = fitting.Topology(sphere)
    weights = fitting.ShapeWeights()
    offsets = torch.zeros_like(sphere.verts, requires_grad=True)
    optimizer = torch.optim.Adam([offsets], lr=0.01)
    for _ in range(80):
        verts = sphere.verts + offsets
        alpha = glsplat.render(ctx, verts, cameras, faces=sphere.faces)[..., 3]
        terms = fitting.regularizers(verts, topology, weights)
        loss = ((alpha - target_alpha) ** 2).mean() + sum(getattr(weights, k) * v for k, v in terms.items())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    fitted = sphere.replace(verts=(sphere.verts + offsets).detach())
    before = fitting.chamfer_distance(sphere, target, 3000)
    after = fitting.chamfer_distance(fitted, target, 3000)
    assert after < 0.5 * before, (before, after)
    assert fitting.laplacian_loss(fitted.verts, fitted.faces) < 0.05  # still a smooth surface
