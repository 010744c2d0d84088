"""Mesh loading (OBJ/PLY/GLB, the built-in Spot), normalization and vertex normals."""
import numpy as np
import pytest
import torch
import trimesh
from PIL import Image

import glsplat
from conftest import shared_mesh


def undirected_edge_counts(faces: np.ndarray) -> np.ndarray:
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    _, counts = np.unique(np.sort(edges, axis=1), axis=0, return_counts=True)
    return counts


def match_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """For each row of ``a``, the index of the (unique) equal row of ``b`` (to float tolerance)."""
    dist = np.abs(a[:, None, :] - b[None, :, :]).max(-1)
    index = dist.argmin(1)
    assert np.all(dist[np.arange(len(a)), index] < 1e-6)
    return index


# --- The built-in example -------------------------------------------------------------------

def test_spot_example_sizes():
    mesh = glsplat.load_example("spot")
    assert mesh.verts.shape == (2930, 3) and mesh.verts.dtype == torch.float32
    assert mesh.faces.shape == (5856, 3)
    assert mesh.uvs.shape == (3225, 2)
    assert mesh.uv_faces.shape == (5856, 3)
    assert mesh.texture.shape == (1024, 1024, 3)
    assert mesh.texture.min() >= 0 and mesh.texture.max() <= 1
    assert mesh.texture.std() > 0.05  # a real image, not a constant
    assert mesh.faces.min() == 0 and mesh.faces.max() == 2929
    assert mesh.uv_faces.min() == 0 and mesh.uv_faces.max() == 3224
    assert mesh.uvs.min() > -0.1 and mesh.uvs.max() < 1.1  # the file has a few just outside [0, 1]
    assert mesh.colors is None


def test_spot_is_welded_watertight_and_keeps_uv_seams():
    mesh = glsplat.load_example("spot")
    faces = mesh.faces.numpy()
    # Welded by position: no two vertices coincide.
    assert len(np.unique(mesh.verts.numpy(), axis=0)) == len(mesh.verts)
    # Closed: every edge is shared by exactly two faces ...
    counts = undirected_edge_counts(faces)
    assert np.all(counts == 2)
    # ... with consistent (outward, counter-clockwise) orientation: each directed edge once.
    directed = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    assert len(np.unique(directed, axis=0)) == len(directed)
    # Euler characteristic of a sphere (Spot has genus 0).
    assert len(mesh.verts) - len(counts) + len(faces) == 2
    # The UV seams live on in uv_faces: some welded vertex has several UV indices.
    pairs = np.unique(np.stack([faces.reshape(-1), mesh.uv_faces.numpy().reshape(-1)], 1), axis=0)
    uvs_per_vertex = np.bincount(pairs[:, 0], minlength=len(mesh.verts))
    assert uvs_per_vertex.min() >= 1
    assert uvs_per_vertex.max() > 1
    assert (uvs_per_vertex > 1).sum() > 50  # a seam is a curve of vertices, not one stray point


def test_spot_outward_normals():
    """Counter-clockwise faces seen from outside: vertex normals point away from the center."""
    mesh = glsplat.load_example("spot").normalized()
    normals = glsplat.vertex_normals(mesh.verts, mesh.faces)
    # Signed volume from the divergence theorem is positive for outward-facing triangles.
    corners = mesh.verts[mesh.faces]
    volume = torch.linalg.det(corners).sum() / 6
    assert volume > 0
    outward = (normals * (mesh.verts - mesh.verts.mean(0))).sum(-1) > 0
    assert outward.float().mean() > 0.8


# --- Files: procedural ones, and the optional shared mesh folder ---------------------------

def test_quads_with_normals_are_triangulated(tmp_path):
    """A cube of 6 quads with ``vn`` normals, as modelling tools write OBJ files: 12 triangles."""
    cube = trimesh.creation.box()
    corners = {tuple(v): i + 1 for i, v in enumerate(cube.vertices.tolist())}
    quads = []
    for axis in range(3):
        for side in (-0.5, 0.5):
            ring = [v for v in corners if v[axis] == side]
            center = np.mean(ring, 0)
            u, w = [a for a in range(3) if a != axis]
            # counter-clockwise seen from outside
            ring.sort(key=lambda v: np.arctan2(v[w] - center[w], v[u] - center[u]) * (1 if (side > 0) == (axis != 1) else -1))
            quads.append(f"f {' '.join(f'{corners[v]}//{axis * 2 + (side > 0) + 1}' for v in ring)}")
    normals = [f"vn {' '.join(str(float(side) * (a == axis)) for a in range(3))}" for axis in range(3) for side in (-1, 1)]
    lines = [f"v {x} {y} {z}" for x, y, z in cube.vertices.tolist()] + normals + quads
    (tmp_path / "cube.obj").write_text("\n".join(lines) + "\n")
    mesh = glsplat.load_mesh(tmp_path / "cube.obj")
    assert mesh.faces.shape == (12, 3) and mesh.faces.dtype == torch.long and len(mesh.verts) == 8
    f = mesh.faces
    assert bool(((f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2])).all())
    assert len(torch.unique(f)) == 8
    # The triangulation keeps the quads' area (6) and their winding (outward normals).
    area = torch.linalg.cross(mesh.verts[f[:, 1]] - mesh.verts[f[:, 0]], mesh.verts[f[:, 2]] - mesh.verts[f[:, 0]], dim=-1)
    torch.testing.assert_close(area.norm(dim=-1).sum() / 2, torch.tensor(6.0))
    assert bool(((area * mesh.verts[f].mean(1)).sum(-1) > 0).all())


def test_suzanne_quads_are_triangulated():
    """suzanne.obj has 468 quads and 32 triangles (and vertex normals): 968 triangles."""
    mesh = glsplat.load_mesh(shared_mesh("suzanne.obj"))
    assert mesh.faces.shape == (968, 3)
    assert mesh.faces.dtype == torch.long
    assert mesh.faces.min() >= 0 and mesh.faces.max() < len(mesh.verts)
    assert len(mesh.verts) > 400
    # No degenerate triangle (repeated corner) came out of the triangulation.
    f = mesh.faces
    assert bool(((f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2])).all())
    # Every vertex is used.
    assert len(torch.unique(f)) == len(mesh.verts)


def off_center(name: str) -> glsplat.Mesh:
    if name.endswith(".obj"):  # fandisk sits far off the origin (y in [12.6, 17.9]); teapot is not centered
        return glsplat.load_mesh(shared_mesh(name))
    mesh = glsplat.load_example(name)
    return mesh.replace(verts=mesh.verts * torch.tensor([3.0, 5.0, 2.0]) + torch.tensor([1.0, 14.0, -2.0]))


@pytest.mark.parametrize("name", ["blob", "torus", "teapot.obj", "fandisk.obj"])
def test_normalized_bbox(name):
    mesh = off_center(name)
    lo, hi = mesh.verts.min(0).values, mesh.verts.max(0).values
    assert ((lo + hi) / 2).abs().max() > 0.1  # the test means something: off-center to start with
    norm = mesh.normalized()
    nlo, nhi = norm.verts.min(0).values, norm.verts.max(0).values
    torch.testing.assert_close((nlo + nhi) / 2, torch.zeros(3), atol=1e-6, rtol=0)
    assert abs((nhi - nlo).max().item() - 1) < 1e-6
    # A similarity transform: the shape is kept (extent ratios and relative distances).
    torch.testing.assert_close(nhi - nlo, (hi - lo) / (hi - lo).max(), atol=1e-6, rtol=0)
    torch.testing.assert_close(norm.faces, mesh.faces)
    d_before = (mesh.verts[1:50] - mesh.verts[0]).norm(dim=-1) / (hi - lo).max()
    d_after = (norm.verts[1:50] - norm.verts[0]).norm(dim=-1)
    torch.testing.assert_close(d_after, d_before, atol=1e-5, rtol=1e-5)


def test_normalized_keeps_batches_and_gradients():
    verts = (torch.rand(2, 10, 3, dtype=torch.float64) * 5 + 3).requires_grad_(True)
    mesh = glsplat.Mesh(verts, torch.tensor([[0, 1, 2]])).normalized()
    assert mesh.verts.shape == (2, 10, 3)
    mesh.verts.sum().backward()
    assert verts.grad is not None and torch.isfinite(verts.grad).all()


# --- Files written here with trimesh --------------------------------------------------------

def test_ply_vertex_colors(tmp_path):
    source = trimesh.creation.icosphere(subdivisions=1)
    rgba = np.random.default_rng(0).integers(0, 256, (len(source.vertices), 4)).astype(np.uint8)
    rgba[:, 3] = 255
    source.visual = trimesh.visual.ColorVisuals(source, vertex_colors=rgba)
    path = tmp_path / "colored.ply"
    source.export(path)

    mesh = glsplat.load_mesh(path)
    assert mesh.colors is not None and mesh.colors.shape == (len(source.vertices), 3)
    assert mesh.uvs is None and mesh.texture is None
    assert mesh.faces.shape == (len(source.faces), 3)
    # Colors follow their vertices (the loader may reorder vertices when welding).
    index = match_rows(mesh.verts.numpy().astype(np.float64), np.asarray(source.vertices))
    np.testing.assert_allclose(mesh.colors.numpy(), rgba[index, :3] / 255, atol=1e-6)
    # Faces describe the same triangles, same orientation.
    old_faces = index[mesh.faces.numpy()]
    key = lambda f: {tuple(np.roll(t, -np.argmin(t))) for t in f}  # noqa: E731
    assert key(old_faces) == key(np.asarray(source.faces))


def test_glb_texture(tmp_path):
    verts = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0.0]])
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    uv = np.array([[0, 0], [1, 0], [1, 1], [0, 1.0]])
    pixels = np.random.default_rng(1).integers(0, 256, (4, 6, 3)).astype(np.uint8)
    visual = trimesh.visual.TextureVisuals(uv=uv, image=Image.fromarray(pixels))
    path = tmp_path / "textured.glb"
    trimesh.Trimesh(verts, faces, visual=visual, process=False).export(path)

    mesh = glsplat.load_mesh(path)
    assert mesh.texture is not None and mesh.texture.shape == (4, 6, 3)
    # Row 0 of the texture is row 0 of the image (the top), no flip.
    np.testing.assert_allclose(mesh.texture.numpy(), pixels / 255, atol=1e-6)
    assert mesh.uvs is not None and mesh.uv_faces is not None
    assert mesh.uv_faces.shape == (2, 3)
    # Each face corner keeps its UV: corner position -> UV as written.
    index = match_rows(mesh.verts.numpy().astype(np.float64), verts)
    corner_pos = index[mesh.faces.numpy()].reshape(-1)
    corner_uv = mesh.uvs.numpy()[mesh.uv_faces.numpy().reshape(-1)]
    np.testing.assert_allclose(corner_uv, uv[corner_pos], atol=1e-6)


def test_texture_file_override(tmp_path):
    image = np.zeros((2, 3, 3), np.uint8)
    image[0, 0] = (255, 0, 0)
    Image.fromarray(image).save(tmp_path / "tex.png")
    mesh = glsplat.load_mesh(glsplat.mesh.ASSETS / "spot" / "spot_triangulated.obj", texture_file=tmp_path / "tex.png")
    assert mesh.texture.shape == (2, 3, 3)
    assert mesh.texture[0, 0].tolist() == [1.0, 0.0, 0.0]


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.obj"):
        glsplat.load_mesh(tmp_path / "nope.obj")


@pytest.mark.parametrize("name, content", [
    ("empty.obj", b""),
    ("garbage.obj", b"hello world\nthis is not a mesh\n"),
    ("points.obj", b"v 0 0 0\nv 1 0 0\nv 0 1 0\n"),
    ("garbage.ply", b"\x00\x01garbage" * 10),
    ("garbage.glb", b"\x00\x01garbage" * 10),
])
def test_unreadable_file_raises_value_error(tmp_path, name, content):
    """A file with no triangles, or one trimesh cannot parse, raises ValueError naming the file."""
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ValueError, match=name):
        glsplat.load_mesh(path)


# --- Vertex normals -------------------------------------------------------------------------

def test_vertex_normals_of_sphere():
    sphere = trimesh.creation.icosphere(subdivisions=3)
    verts = torch.as_tensor(sphere.vertices, dtype=torch.float32)
    faces = torch.as_tensor(sphere.faces)
    normals = glsplat.vertex_normals(verts, faces)
    assert normals.shape == verts.shape
    torch.testing.assert_close(normals.norm(dim=-1), torch.ones(len(verts)), atol=1e-5, rtol=0)
    # On a unit sphere the normal is the position (outward: trimesh's faces are CCW from outside).
    assert ((normals * verts).sum(-1) > 0.999).all()
    # Flipping the winding flips the normals.
    flipped = glsplat.vertex_normals(verts, faces.flip(-1))
    torch.testing.assert_close(flipped, -normals)
    # Batched vertices give per-batch normals.
    batch = torch.stack([verts, 2 * verts + 1])
    torch.testing.assert_close(glsplat.vertex_normals(batch, faces), torch.stack([normals, normals]),
                               atol=1e-5, rtol=0)


def test_vertex_normals_ccw_triangle():
    """A triangle counter-clockwise seen from +z has normal +z at its corners."""
    verts = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    normals = glsplat.vertex_normals(verts, torch.tensor([[0, 1, 2]]))
    torch.testing.assert_close(normals, torch.tensor([[0.0, 0.0, 1.0]]).expand(3, 3))


def test_vertex_normals_area_weighted():
    """A vertex shared by a big and a small face leans towards the big face's normal."""
    verts = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0],      # big face in z=0, normal +z
                          [0, 0, 0.1], [0, -0.1, 0]])               # small face in x=0, normal +x
    faces = torch.tensor([[0, 1, 2], [0, 3, 4]])
    normals = glsplat.vertex_normals(verts, faces)
    small = torch.cross(verts[3] - verts[0], verts[4] - verts[0], dim=0)
    big = torch.cross(verts[1] - verts[0], verts[2] - verts[0], dim=0)  # twice the area, like small
    torch.testing.assert_close(normals[0], torch.nn.functional.normalize(big + small, dim=0))


def test_vertex_normals_gradcheck():
    """Differentiable in the vertices: float64 gradcheck on a perturbed tetrahedron."""
    verts = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=torch.float64)
    verts = (verts + 0.1 * torch.rand(4, 3, dtype=torch.float64)).requires_grad_(True)
    faces = torch.tensor([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    assert torch.autograd.gradcheck(lambda v: glsplat.vertex_normals(v, faces), (verts,))
    # And in a batch.
    batch = (verts.detach()[None] + 0.05 * torch.rand(2, 4, 3, dtype=torch.float64)).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: glsplat.vertex_normals(v, faces), (batch,))


@pytest.mark.parametrize("name", ["blob", "capsule", "torus"])
def test_procedural_examples_are_closed_untextured_and_outward(name):
    mesh = glsplat.load_example(name)
    assert mesh.uvs is None and mesh.texture is None and mesh.colors is None
    shape = trimesh.Trimesh(mesh.verts.numpy(), mesh.faces.numpy(), process=False)
    assert shape.is_watertight and shape.volume > 0  # positive volume: faces wind outward


def test_unknown_example_lists_the_names():
    with pytest.raises(ValueError, match="blob"):
        glsplat.load_example("teapot")


def test_mesh_repr_is_one_line_of_shapes(spot):
    text = repr(spot)
    assert "\n" not in text and len(text) < 300
    assert "verts=float32 [2930, 3]" in text and "texture=float32 [1024, 1024, 3]" in text and "colors=None" in text
