"""Arguments are checked once, at the door: one render looks at a mesh's face indices once.

The public entry points (render, rasterize, interpolate, splat) check; what they call inside
does not check again. Index ranges (the one check that needs a pass over the data: the compiled
kernels index without bounds checks) are found once per tensor and remembered until the tensor
is modified in place. Here every pass over an index tensor is counted.
"""
import collections

import pytest
import torch

import glsplat
import glsplat.checks


@pytest.fixture
def scans(monkeypatch):
    """Each pass over an index tensor, by the tensor's id."""
    counted = collections.Counter()
    scan = glsplat.checks._scan

    def counting(x):
        counted[id(x)] += 1
        return scan(x)

    monkeypatch.setattr(glsplat.checks, "_scan", counting)
    return counted


def fresh(mesh: glsplat.Mesh) -> glsplat.Mesh:
    """The mesh with index tensors that no check has seen."""
    return mesh.replace(faces=mesh.faces.clone(), uv_faces=mesh.uv_faces.clone())


@pytest.mark.parametrize("shader", [None, glsplat.PhongShader()], ids=["lambert", "phong"])
def test_one_render_looks_at_the_faces_once(ctx, spot, scans, shader):
    """Spot has faces and face-varying uv_faces; the shaders interpolate normals, UVs and
    positions. Before, one render scanned the faces seven times and the face ids four."""
    mesh = fresh(spot)
    mesh = mesh.replace(verts=mesh.verts.clone().requires_grad_(True))
    camera = glsplat.Camera.look_at(eye=(0.0, 0.5, 2.0), image_size=(48, 48))
    glsplat.render(ctx, mesh, camera, shader=shader, layers=2).sum().backward()
    assert scans.pop(id(mesh.faces)) == 1 and scans.pop(id(mesh.uv_faces)) == 1
    assert sum(scans.values()) <= 1, "more than one pass over the raster's face ids"
    scans.clear()  # the next step of a training loop: the same faces, no look at them
    glsplat.render(ctx, mesh.replace(verts=mesh.verts * 1.01), camera, shader=shader, layers=2)
    assert id(mesh.faces) not in scans and id(mesh.uv_faces) not in scans
    assert sum(scans.values()) <= 1


def test_the_functional_ops_look_at_the_faces_once(ctx, scans):
    clip = torch.tensor([[-0.5, -0.5, 0.5, 1.0], [0.5, -0.5, 0.5, 1.0], [0.0, 0.5, 0.5, 1.0], [0.9, 0.9, 0.5, 1.0]])
    faces = torch.tensor([[0, 1, 2], [1, 3, 2]])
    rast = glsplat.rasterize(ctx, clip, faces, (16, 16), layers=2)
    colors = glsplat.interpolate(torch.rand(4, 4), rast, faces)
    glsplat.splat(colors, clip, rast, faces)
    assert scans.pop(id(faces)) == 1
    assert not scans  # rasterize knows its face ids lie in 0..F


def test_a_face_count_below_the_rasterized_one_still_passes_when_the_ids_fit(ctx):
    """rasterize remembers a bound (its F) on the face ids, not their largest: fewer faces than
    were rasterized are fine when the raster refers to none beyond them (a second look tells)."""
    clip = torch.tensor([[-0.5, -0.5, 0.5, 1.0], [0.5, -0.5, 0.5, 1.0], [0.0, 0.5, 0.5, 1.0], [5.0, 5.0, 0.5, 1.0]])
    faces = torch.tensor([[0, 1, 2], [3, 3, 3]])  # face 1 is degenerate: never drawn
    rast = glsplat.rasterize(ctx, clip, faces, (8, 8))
    assert int(rast.tri_id.max()) == 1
    colors = torch.ones(rast.index.shape[0], 4)
    image = glsplat.splat(colors, clip, rast, faces[:1])
    torch.testing.assert_close(image, glsplat.splat(colors, clip, rast, faces))
    with pytest.raises(ValueError, match="the raster refers to face 0, but only 0 faces were given"):
        glsplat.interpolate(clip, rast, faces[:0])


def test_faces_changed_in_place_after_a_render_are_looked_at_again(ctx, spot):
    mesh = fresh(spot)
    camera = glsplat.Camera.look_at(eye=(0.0, 0.5, 2.0), image_size=(16, 16))
    glsplat.render(ctx, mesh, camera)
    mesh.faces[7, 1] = mesh.verts.shape[0] + 4
    with pytest.raises(ValueError, match=f"mesh.faces: indices must lie in 0..{mesh.verts.shape[0] - 1}"):
        glsplat.render(ctx, mesh, camera)
    mesh.faces[7, 1] = 0
    glsplat.render(ctx, mesh, camera)
    view = mesh.faces[3:]  # through a view: the same version counter
    view[0, 0] = -1
    with pytest.raises(ValueError, match="got indices from -1"):
        glsplat.render(ctx, mesh, camera)


def test_inference_tensors_are_checked_every_time(ctx, scans):
    """Inference tensors keep no version counter, so their ranges are not remembered: each use
    looks again, and a change in place is caught."""
    verts = torch.tensor([[-0.5, -0.5, 0.0], [0.5, -0.5, 0.0], [0.0, 0.5, 0.0]])
    camera = glsplat.Camera.look_at(eye=(0.0, 0.0, 3.0), image_size=(8, 8), near=1.0, far=5.0)
    with torch.inference_mode():
        faces = torch.tensor([[0, 1, 2]])
        first = glsplat.render(ctx, verts, camera, faces=faces)
        second = glsplat.render(ctx, verts, camera, faces=faces)
        faces[0, 2] = 3
        with pytest.raises(ValueError, match="got indices from 0 to 3"):
            glsplat.render(ctx, verts, camera, faces=faces)
    assert torch.equal(first, second) and first[..., 3].amax() > 0.9
    assert scans[id(faces)] >= 3  # each render looked (its door, and the steps inside)
