"""Edge-glued silhouette splats (glsplat.silhouette): the glue, its gradient, and pose gradients against FD.

The pose gradients are scored against central finite differences of an 8 x 8 supersampled hard
render (tests/edge_glue_check.py), checked at two step sizes, by the cosine and the least-squares
slope over stacked components (per-component ratios mean nothing for small true components).
"""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh

import glsplat
from glsplat.kernels import cpu_kernels
from glsplat.raster import clip_to_pixels
from glsplat.silhouette import Glue, contour_edges, find_glue, find_glue_torch, glue_offsets

sys.path.insert(0, str(Path(__file__).resolve().parent))
from edge_glue_check import PoseLoss, score, shapes, weights  # noqa: E402

SHAPES = shapes()


def _raster(ctx, verts, faces, size, base_rotation, layers=1):
    loss = PoseLoss(ctx, verts, faces, size, base_rotation=base_rotation)
    clip = loss.camera.project(loss.posed(torch.zeros(6, dtype=torch.float64))[None])
    rast = glsplat.rasterize(ctx, clip, faces, (size, size), layers=layers, border=1)
    return rast.framed(clip).detach(), rast


def _sphere_over_plane():
    """A sphere (r 0.3) 0.6 in front of a plane that fills the view: its contour is an occlusion one."""
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.3)
    plane = trimesh.creation.box(extents=(4.0, 4.0, 0.01))
    plane.vertices[:, 2] -= 0.6
    verts = torch.as_tensor(np.concatenate([sphere.vertices, plane.vertices]), dtype=torch.float64)
    faces = torch.as_tensor(np.concatenate([sphere.faces, plane.faces + len(sphere.vertices)]))
    return verts, faces, len(sphere.vertices), len(sphere.faces)


def test_contour_edges_follow_gl_culling(ctx):
    """The faces called front-facing are the ones GL draws (with culling), and a closed mesh's contour is closed."""
    verts, faces = SHAPES["spot"]
    clip, rast = _raster(ctx, verts, faces, 64, (0.3, 0.5, 0.1))
    front = glsplat.silhouette.front_facing(clip, faces)[0]
    drawn = torch.zeros(len(faces), dtype=torch.bool)
    drawn[rast.tri_id[rast.mask].long() - 1] = True
    assert not (drawn & ~front).any()  # GL never drew a face called back-facing
    edges = contour_edges(clip, faces, 1)
    assert len(edges) > 50
    # every vertex of a closed contour is entered as often as left
    starts = torch.bincount(edges[:, 1], minlength=len(verts))
    ends = torch.bincount(edges[:, 2], minlength=len(verts))
    assert torch.equal(starts, ends)


@pytest.mark.skipif(cpu_kernels() is None, reason="no compiled CPU kernels")
@pytest.mark.parametrize("case", ["spot", "box", "occlusion-2-layers", "spot-batch", "crossing-frame"])
def test_kernel_finds_the_reference_glue(ctx, case):
    """csrc/edges.cpp's find_glue gives exactly find_glue_torch's samples, edges and parameters."""
    if case == "occlusion-2-layers":
        verts, faces, _, _ = _sphere_over_plane()
        clip, rast = _raster(ctx, verts, faces, 48, (0.0, 0.0, 0.0), layers=2)
    elif case == "spot-batch":
        verts, faces = SHAPES["spot"]
        clips, rasts = zip(*(_raster(ctx, verts, faces, 40, r) for r in [(0.3, 0.5, 0.1), (-0.5, 1.0, 0.2)]))
        clip = torch.cat(clips)
        rast = glsplat.rasterize(ctx, clip, faces, (42, 42))  # already framed: the band's size, no band
    elif case == "crossing-frame":
        verts, faces = SHAPES["ellipsoid"]
        clip, rast = _raster(ctx, verts * 2.5, faces, 40, (0.2, 0.3, 0.0))
    else:
        verts, faces = SHAPES[case]
        clip, rast = _raster(ctx, verts, faces, 56, (0.3, 0.5, 0.1))
    glue = find_glue(clip, faces, rast)
    edges = contour_edges(clip, faces, rast.tri_id.shape[0])
    assert torch.equal(edges, glsplat.silhouette.contour_edges_torch(clip, faces, rast.tri_id.shape[0]))
    if case.startswith("spot"):  # enough edges for the compiled search to split them between threads
        assert len(edges) >= 256
    reference = find_glue_torch(clip, edges, rast)
    assert len(glue.sample) > 20
    assert torch.equal(glue.sample, reference.sample)
    assert torch.equal(glue.edge, reference.edge)
    assert torch.equal(glue.t, reference.t)
    assert torch.equal(glue.row, reference.row)
    assert torch.equal(rast.index[glue.row], glue.sample)


def test_glue_sits_on_the_silhouette(ctx):
    """Glued samples are covered, within 3 px of background, within 2.5 px of their edge, on its inner side."""
    verts, faces = SHAPES["ellipsoid"]
    clip, rast = _raster(ctx, verts, faces, 64, (0.3, 0.5, 0.1))
    glue = find_glue(clip, faces, rast)
    height, width = rast.tri_id.shape[-2:]
    row, col = glue.sample // width % height, glue.sample % width
    assert rast.mask.reshape(-1)[glue.sample].all()
    background = torch.nn.functional.max_pool2d((~rast.mask[0]).float(), 7, stride=1, padding=3)[0] > 0
    assert background[row, col].all()
    a, b = clip_to_pixels(clip[0, glue.edge], height, width).unbind(1)
    t = glue.t[:, None]
    q = clip_to_pixels((1 - t) * clip[0, glue.edge[:, 0]] + t * clip[0, glue.edge[:, 1]], height, width)
    center = torch.stack([col, row], 1).double() + 0.5
    assert ((center - q).norm(dim=1) <= 2.5 + 1e-9).all()
    along, to_center = b - a, center - a
    assert (along[:, 0] * to_center[:, 1] - along[:, 1] * to_center[:, 0] <= 0).all()  # inside: left in NDC
    # almost all of the silhouette ring (within 2 px of background) is glued
    near = torch.nn.functional.max_pool2d((~rast.mask[0]).float(), 5, stride=1, padding=2)[0] > 0
    ring = int((near & rast.mask[0, 0]).sum())
    assert len(glue.sample) >= 0.9 * ring


def test_glue_offsets_gradient(ctx):
    """The offsets are zero, and their Jacobian is m m^T (dq - dp), against finite differences of q - p."""
    verts, faces = SHAPES["spot"]
    clip, rast = _raster(ctx, verts, faces, 48, (0.3, 0.5, 0.1))
    glue = find_glue(clip, faces, rast)
    glue = Glue(*(field[::7] for field in glue))  # a few, for the finite differences
    height, width = rast.tri_id.shape[-2:]
    face = faces[rast.tri_id.reshape(-1)[glue.sample].long() - 1]
    b01 = rast.bary.reshape(-1, 2)[glue.sample].double()
    bary = torch.cat([b01, 1 - b01.sum(1, keepdim=True)], 1)

    def normal_gap(c):  # m^T (q - p), m the edge's normal at the unperturbed clip (constant)
        a, b = clip_to_pixels(clip[0, glue.edge], height, width).unbind(1)
        m = torch.stack([a[:, 1] - b[:, 1], b[:, 0] - a[:, 0]], 1) / (b - a).norm(dim=1, keepdim=True)
        t = glue.t[:, None]
        q = clip_to_pixels((1 - t) * c[0, glue.edge[:, 0]] + t * c[0, glue.edge[:, 1]], height, width)
        p = clip_to_pixels((c[0][face] * bary[..., None]).sum(1), height, width)
        return m, ((q - p) * m).sum(1)

    c = clip.clone().requires_grad_(True)
    offsets = glue_offsets(c, faces, rast, glue)
    assert torch.equal(offsets, torch.zeros_like(offsets))
    weights = torch.randn(len(glue.sample), 2, dtype=torch.float64)
    (grad,) = torch.autograd.grad((offsets * weights).sum(), c)
    m, _ = normal_gap(clip)
    direction = torch.randn_like(clip)
    h = 1e-6
    fd = ((normal_gap(clip + h * direction)[1] - normal_gap(clip - h * direction)[1]) / (2 * h))
    expected = ((weights * m).sum(1) * fd).sum()
    assert float((grad * direction).sum()) == pytest.approx(float(expected), rel=1e-6)


def test_forward_image_identical(ctx):
    """The option changes gradients only: the splat's image is bit for bit the same. (render's differs in
    rounding only: with "edge" it rasterizes a wider guard band, a projection scaled differently.)"""
    verts, faces = SHAPES["spot"]
    loss = PoseLoss(ctx, verts, faces, 64, base_rotation=(0.3, 0.5, 0.1))
    pose = torch.zeros(6, dtype=torch.float64, requires_grad=True)
    clip = loss.camera.project(loss.posed(pose)[None])
    rast = glsplat.rasterize(ctx, clip, faces, (64, 64), layers=2, border=glsplat.silhouette.GLUE_BORDER)
    colors = torch.rand(len(rast.index), 4, dtype=torch.float64)
    images = [glsplat.splat(colors, clip, rast, faces, silhouette=mode) for mode in ("edge", "splat")]
    assert len(find_glue(rast.framed(clip), faces, rast).sample) > 100
    assert torch.equal(images[0], images[1])
    images = [glsplat.render(ctx, loss.posed(pose), loss.camera, faces=faces, silhouette=mode, layers=2)
              for mode in ("edge", "splat")]
    torch.testing.assert_close(images[0], images[1], atol=1e-4, rtol=0)  # float32 barycentrics of another frame
    with pytest.raises(ValueError, match="silhouette"):
        glsplat.render(ctx, loss.posed(pose), loss.camera, faces=faces, silhouette="edges")


@pytest.mark.parametrize("base_rotation", [(0.3, 0.5, 0.1), (-0.6, 0.2, 0.4), (1.1, -0.7, 0.3)])
def test_sphere_turning_about_its_center(ctx, base_rotation):
    """A sphere's silhouette does not move when it turns about its center: the rotation gradient is ~0."""
    verts, faces = SHAPES["sphere"]
    loss = PoseLoss(ctx, verts, faces, 96, base_rotation=base_rotation)
    edge, splat = loss.splat_gradient("edge"), loss.splat_gradient("splat")
    assert edge[:3].norm() <= 0.02 * edge[3:].norm()
    assert splat[:3].norm() >= 0.05 * splat[3:].norm()  # what the glue fixes


# (mesh, poses): two poses each, the FD steps' rotation (rad) and translation
CASES = {"ellipsoid": [(0.3, 0.5, 0.1), (1.0, -0.3, 0.2)], "ellipsoid80": [(0.3, 0.5, 0.1), (-0.6, 0.2, 0.4)],
         "box": [(0.3, 0.5, 0.1), (-0.6, 0.2, 0.4)], "spot": [(0.3, 0.5, 0.1), (-0.6, 0.2, 0.4)]}


@pytest.mark.parametrize("name", list(CASES))
def test_pose_gradient_against_supersampled_fd(ctx, name):
    verts, faces = SHAPES[name]
    grads, splats, fds = [], [], []
    for seed, base in enumerate(CASES[name]):
        loss = PoseLoss(ctx, verts, faces, 96, base_rotation=base, seed=seed)
        fd, fd2 = loss.fd_gradient(0.01, 0.005), loss.fd_gradient(0.02, 0.01)
        assert (fd - fd2).norm() <= 0.05 * fd.norm()  # the reference is converged
        fds.append(fd)
        grads.append(loss.splat_gradient("edge"))
        splats.append(loss.splat_gradient("splat"))
    edge, splat = score(torch.stack(grads), torch.stack(fds)), score(torch.stack(splats), torch.stack(fds))
    assert edge["rot_cos"] >= 0.99
    assert 0.95 <= edge["ratio"] <= 1.05
    assert edge["trans_cos"] >= splat["trans_cos"] - 1e-3
    assert edge["rot_cos"] > splat["rot_cos"]


def test_occlusion_contour(ctx):
    """A sphere in front of a plane: its samples on the contour are glued (never the plane's), and turning
    it about its center gives almost no gradient, in layer 0 and with two layers."""
    verts, faces, sphere_verts, sphere_faces = _sphere_over_plane()
    colors = torch.zeros(len(verts), 3, dtype=torch.float64)
    colors[:sphere_verts] = 1.0

    def shader(frags):
        return torch.cat([frags.interpolate(colors), torch.ones(frags.index.shape[0], 1, dtype=torch.float64)], 1)

    camera = glsplat.Camera.look_at(torch.tensor([0.0, 0.0, 2.6], dtype=torch.float64), fov_y=30.0, image_size=(64, 64))
    weight = weights(64)
    for base, layers in [((0.3, 0.5, 0.1), 1), ((-0.6, 0.2, 0.4), 2)]:
        base = glsplat.transforms.axis_angle_to_matrix(torch.tensor(base, dtype=torch.float64))
        pose = torch.zeros(6, dtype=torch.float64, requires_grad=True)
        rotation = glsplat.transforms.axis_angle_to_matrix(pose[:3]) @ base
        moved = torch.cat([verts[:sphere_verts] @ rotation.T + pose[3:], verts[sphere_verts:]])
        grads = {}
        for mode in ("edge", "splat"):
            image = glsplat.render(ctx, moved, camera, faces=faces, shader=shader, layers=layers, silhouette=mode)
            grads[mode] = torch.autograd.grad((image[0, ..., 0] * weight).sum(), pose, retain_graph=True)[0]
        assert grads["edge"][:3].norm() <= 0.02 * grads["edge"][3:].norm()
        assert grads["splat"][:3].norm() >= 0.05 * grads["splat"][3:].norm()

        clip = camera.project(moved.detach()[None])
        rast = glsplat.rasterize(ctx, clip, faces, (64, 64), layers=layers, border=1)
        glue = find_glue(rast.framed(clip), faces, rast)
        glued_faces = rast.tri_id.reshape(-1)[glue.sample] - 1
        assert len(glue.sample) > 50
        assert (glued_faces < sphere_faces).all()  # only the sphere's samples
        assert (glue.edge < sphere_verts).all()


@pytest.mark.skipif(cpu_kernels() is None, reason="no compiled CPU kernels")
@pytest.mark.parametrize("layers, per_image", [(1, False), (3, False), (1, True), (3, True)])
def test_compiled_splat_adds_the_glue_gradient(ctx, monkeypatch, layers, per_image):
    """The compiled splat's backward pass adds the glue's part of the clip gradient itself: the same
    gradient as the pure-torch splat given the glue as offsets (glue_offsets' autograd), in float64, one
    and several layers, one set of vertices for a batch of two or one per image."""
    verts, faces = SHAPES["spot"]
    loss = PoseLoss(ctx, verts, faces, 48, base_rotation=(0.3, 0.5, 0.1))
    poses = torch.zeros(2, 6, dtype=torch.float64)
    poses[1] = torch.tensor([0.2, -0.4, 0.1, 0.05, 0.0, 0.1]) if per_image else 0
    clip = torch.cat([loss.camera.project(loss.posed(pose)[None]) for pose in poses])
    clip = clip if per_image else clip[:1]
    rast = glsplat.rasterize(ctx, clip.expand(2, -1, -1), faces, (48, 48), layers=layers, border=1)
    generator = torch.Generator().manual_seed(layers)
    colors = torch.rand(rast.index.shape[0], 4, dtype=torch.float64, generator=generator)
    weights = torch.randn(2, 48, 48, 4, dtype=torch.float64, generator=generator)
    glue = glsplat.silhouette.find_glue(rast.framed(clip), faces, rast)
    assert len(glue.sample) > 100 and bool((glue.sample // (layers * 50 * 50) == 1).any())

    def clip_gradient():
        c = clip.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad((glsplat.splat(colors, c, rast, faces) * weights).sum(), c)
        return grad

    compiled = clip_gradient()
    monkeypatch.setattr(sys.modules["glsplat.splat"], "kernels_for", lambda device: None)
    reference = clip_gradient()
    assert torch.allclose(compiled, reference, rtol=1e-9, atol=1e-9 * float(reference.abs().max()))
    monkeypatch.undo()
    c = clip.clone().requires_grad_(True)
    (plain,) = torch.autograd.grad((glsplat.splat(colors, c, rast, faces, silhouette="splat") * weights).sum(), c)
    assert not torch.allclose(plain, compiled, rtol=1e-3)


@pytest.mark.skipif(cpu_kernels() is None, reason="no compiled CPU kernels")
def test_torch_path_gives_the_compiled_gradient(ctx, monkeypatch):
    """Where the glue kernels are not built (or on CUDA), find_glue_torch and glue_offsets' autograd give
    the same pose gradient as the compiled glue."""
    verts, faces = SHAPES["spot"]
    loss = PoseLoss(ctx, verts, faces, 64, base_rotation=(0.3, 0.5, 0.1))
    compiled = loss.splat_gradient("edge")
    monkeypatch.setattr(glsplat.silhouette, "cpu_kernels", lambda: None)
    monkeypatch.setattr(sys.modules["glsplat.splat"], "kernels_for", lambda device: None)
    reference = loss.splat_gradient("edge")
    assert torch.allclose(compiled, reference, rtol=1e-9, atol=1e-9 * float(reference.abs().max()))
    assert not torch.allclose(reference, loss.splat_gradient("splat"), rtol=1e-3)
