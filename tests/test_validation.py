"""Bad input gets a TypeError/ValueError naming the argument; odd but valid input renders."""
import warnings

import moderngl
import pytest
import torch
from PIL import Image

import glsplat

SIZE = (16, 16)
TRI = torch.tensor([[-0.5, -0.5, 0.0], [0.5, -0.5, 0.0], [0.0, 0.5, 0.0]])
FACES = torch.tensor([[0, 1, 2]])


@pytest.fixture(scope="module")
def cam():
    return glsplat.Camera.look_at(eye=(0.0, 0.0, 3.0), image_size=SIZE, near=1.0, far=5.0)


def render(ctx, cam, verts=TRI, faces=FACES, **kwargs):
    return glsplat.render(ctx, verts, cam, faces=faces, **kwargs)


def assert_image(img, batch=1):
    assert img.shape == (batch, *SIZE, 4)
    assert torch.isfinite(img).all()
    assert (img[..., 3] >= 0).all() and (img[..., 3] <= 1 + 1e-5).all()


# --- Faces -----------------------------------------------------------------------------------

@pytest.mark.parametrize("faces, error, match", [
    (torch.tensor([[0, 1, 3]]), ValueError, r"faces: indices must lie in 0\.\.2"),
    (torch.tensor([[0, 1, -1]]), ValueError, r"faces: indices must lie in 0\.\.2"),
    (FACES.float(), TypeError, "faces: expected an integer dtype"),
    (FACES.bool(), TypeError, "faces: expected an integer dtype"),
    (torch.tensor([0, 1, 2]), ValueError, r"faces: expected shape \[F, 3\]"),
    (torch.tensor([[0, 1, 2, 0]]), ValueError, r"faces: expected shape \[F, 3\]"),
    ([[0, 1, 2]], TypeError, "faces: expected an integer torch.Tensor"),
])
def test_bad_faces(ctx, cam, faces, error, match):
    with pytest.raises(error, match=match):
        render(ctx, cam, faces=faces)
    if isinstance(faces, torch.Tensor):
        with pytest.raises(error, match=match):
            glsplat.rasterize(ctx, cam.project(TRI), faces, SIZE)


def test_int32_and_non_contiguous_faces_work(ctx, cam):
    reference = render(ctx, cam)
    torch.testing.assert_close(render(ctx, cam, faces=FACES.int()), reference)
    strided = torch.tensor([[0, 9, 1, 9, 2, 9]])[:, ::2]
    assert not strided.is_contiguous()
    torch.testing.assert_close(render(ctx, cam, faces=strided), reference)


def test_non_contiguous_vertices_work(ctx, cam):
    wide = torch.zeros(3, 6)
    wide[:, ::2] = TRI
    verts = wide[:, ::2]
    assert not verts.is_contiguous()
    torch.testing.assert_close(render(ctx, cam, verts=verts), render(ctx, cam))


# --- Vertices --------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_vertices_are_refused(ctx, cam, bad):
    verts = TRI.clone()
    verts[1, 0] = bad
    with pytest.raises(ValueError, match="clip: .*NaN or infinite"):
        render(ctx, cam, verts=verts)


def test_non_finite_vertex_outside_every_face_is_harmless(ctx, cam):
    verts = torch.cat([TRI, torch.tensor([[float("nan")] * 3])])
    assert_image(render(ctx, cam, verts=verts))


@pytest.mark.parametrize("verts, error, match", [
    (TRI[:, :2], ValueError, r"verts: expected shape \[V, 3\]"),
    (TRI.long(), TypeError, "verts: expected float32 or float64"),
    (TRI.half(), TypeError, "verts: expected float32 or float64"),
    (TRI[None, None], ValueError, r"verts: expected shape"),
])
def test_bad_vertices(ctx, cam, verts, error, match):
    with pytest.raises(error, match=match):
        render(ctx, cam, verts=verts)


def test_float64_vertices_work(ctx, cam):
    img = render(ctx, cam, verts=TRI.double())
    assert img.dtype == torch.float64
    assert_image(img)


def test_mixed_devices_are_refused(ctx, cam):
    """The meta device stands in for a GPU: the check runs before any data is touched."""
    with pytest.raises(ValueError, match="different devices: camera on cpu, verts on meta"):
        render(ctx, cam, verts=TRI.to("meta"))
    rast = glsplat.rasterize(ctx, cam.project(TRI), FACES, SIZE)
    with pytest.raises(ValueError, match="different devices"):
        glsplat.interpolate(torch.rand(3, 2, device="meta"), rast, FACES)


def test_camera_and_mesh_batches_must_broadcast(ctx):
    cams = glsplat.Camera.look_at(eye=torch.tensor([[0.0, 0.0, 3.0]] * 2), image_size=SIZE)
    with pytest.raises(ValueError, match="camera: a batch of 2 cameras"):
        glsplat.render(ctx, TRI.expand(3, 3, 3), cams, faces=FACES)


def test_a_batch_of_zero_views_is_refused(ctx, cam):
    """An empty batch (an empty selection upstream, usually a bug) names itself instead of dividing by zero."""
    no_eyes = glsplat.Camera.look_at(eye=torch.zeros(0, 3) + torch.tensor([0.0, 0.0, 3.0]), image_size=SIZE)
    with pytest.raises(ValueError, match=r"mesh.verts: a batch of 0 views.*0 meshes"):
        glsplat.render(ctx, TRI.expand(0, 3, 3), cam, faces=FACES)
    with pytest.raises(ValueError, match=r"camera: a batch of 0 views.*0 cameras"):
        glsplat.render(ctx, TRI, no_eyes, faces=FACES)
    with pytest.raises(ValueError, match=r"clip: a batch of 0 views \(\[0, V, 4\]\)"):
        glsplat.rasterize(ctx, torch.zeros(0, 3, 4), FACES, SIZE)


# --- Empty and degenerate meshes -------------------------------------------------------------

def test_empty_mesh_renders_background_with_zero_gradients(ctx, cam):
    for verts in (TRI, torch.zeros(0, 3)):
        verts = verts.clone().requires_grad_(True)
        img = render(ctx, cam, verts=verts, faces=torch.zeros(0, 3, dtype=torch.long), layers=2)
        assert_image(img)
        assert (img == 0).all()
        img.sum().backward()
        assert verts.grad is not None and (verts.grad == 0).all()


def test_degenerate_triangles_give_finite_images_and_gradients(ctx, cam):
    """Zero-area (repeated corners, collinear, edge-on) triangles next to a visible one."""
    verts = torch.tensor([
        [-0.5, -0.5, 0.0], [0.5, -0.5, 0.0], [0.0, 0.5, 0.0],  # visible
        [0.0, 0.0, 0.5], [0.0, 0.0, 0.5], [0.0, 0.0, 0.5],  # a point
        [-0.5, 0.0, 0.2], [0.0, 0.0, 0.2], [0.5, 0.0, 0.2],  # collinear
        [0.0, -0.5, 0.3], [0.0, 0.5, 0.3], [0.0, 0.0, 0.1],  # edge-on to the camera
    ], requires_grad=True)
    faces = torch.tensor([[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10, 11], [0, 0, 1], [2, 2, 2]])
    for shader in (None, glsplat.PhongShader()):
        img = render(ctx, cam, verts=verts, faces=faces, shader=shader, layers=2)
        assert_image(img)
        grad, = torch.autograd.grad(img.square().sum(), verts)
        assert torch.isfinite(grad).all() and grad[:3].abs().sum() > 0


# --- Sizes, layers, cameras ------------------------------------------------------------------

@pytest.mark.parametrize("size, error", [
    ((0, 16), ValueError), ((16, -3), ValueError), ((16, 10**6), ValueError),
    ((16.0, 16), TypeError), (16, TypeError), ((16, 16, 1), TypeError),
])
def test_bad_sizes(ctx, cam, size, error):
    with pytest.raises(error, match="size"):
        glsplat.rasterize(ctx, cam.project(TRI), FACES, size)


def test_size_above_the_gl_limit_names_the_limit(ctx, cam):
    with pytest.raises(ValueError, match=f"1..{ctx.max_size} .*GL_MAX_TEXTURE_SIZE"):
        glsplat.rasterize(ctx, cam.project(TRI), FACES, (16, ctx.max_size + 1))
    with pytest.raises(ValueError, match=f"1..{ctx.max_size - 2} .*GL_MAX_TEXTURE_SIZE.*less the guard band of 1 px"):
        glsplat.rasterize(ctx, cam.project(TRI), FACES, (16, ctx.max_size - 1), border=1)


@pytest.mark.parametrize("layers, error", [(0, ValueError), (-1, ValueError), (1.5, TypeError), (True, TypeError)])
def test_bad_layers(ctx, cam, layers, error):
    with pytest.raises(error, match="layers"):
        render(ctx, cam, layers=layers)


@pytest.mark.parametrize("near, far", [(0.0, 1.0), (-1.0, 1.0), (2.0, 2.0), (3.0, 1.0), (0.1, float("inf"))])
def test_bad_clip_planes(near, far):
    with pytest.raises(ValueError, match="near, far"):
        glsplat.Camera.look_at(eye=(0.0, 0.0, 3.0), near=near, far=far)
    with pytest.raises(ValueError, match="near, far"):
        glsplat.Camera.from_intrinsics(torch.eye(3), (8, 8), near=near, far=far)


def test_bad_cameras():
    with pytest.raises(ValueError, match="eye must differ from target"):
        glsplat.Camera.look_at(eye=(0.0, 0.0, 0.0))
    with pytest.raises(ValueError, match="up must not be parallel"):
        glsplat.Camera.look_at(eye=(0.0, 3.0, 0.0), up=(0.0, 1.0, 0.0))
    with pytest.raises(ValueError, match="fov_y"):
        glsplat.Camera.look_at(eye=(0.0, 0.0, 3.0), fov_y=180.0)
    with pytest.raises(ValueError, match="image_size"):
        glsplat.Camera.look_at(eye=(0.0, 0.0, 3.0), image_size=(0, 8))
    with pytest.raises(ValueError, match="K: expected"):
        glsplat.Camera.from_intrinsics(torch.eye(4), (8, 8))


def test_camera_shapes_are_checked_at_construction():
    """Before: accepted, then a matmul error naming no argument at the first render; K = 0 rendered blank."""
    eye3, zero3, proj = torch.eye(3), torch.zeros(3), torch.eye(4)
    for kwargs, match in [
        (dict(R=torch.eye(4), t=zero3, projection=proj), r"R: expected \[3, 3\] or \[B, 3, 3\], got \[1, 4, 4\]"),
        (dict(R=eye3, t=torch.zeros(4), projection=proj), r"t: expected \[3\] or \[B, 3\], got \[1, 4\]"),
        (dict(R=eye3, t=zero3, projection=torch.eye(3)), r"projection: expected \[4, 4\] or \[B, 4, 4\], got \[1, 3, 3\]"),
        (dict(R=eye3.expand(2, 3, 3), t=torch.zeros(3, 3), projection=proj), r"R, t, projection: batches of \[2, 3, 1\]"),
    ]:
        with pytest.raises(ValueError, match=match):
            glsplat.Camera(image_size=SIZE, **kwargs)
    camera = glsplat.Camera(eye3.expand(2, 3, 3), zero3, proj, SIZE)  # 1 broadcasts against 2
    assert camera.batch_size == 2
    K = torch.tensor([[20.0, 0.0, 7.5], [0.0, 20.0, 7.5], [0.0, 0.0, 1.0]])
    with pytest.raises(ValueError, match=r"K: expected finite intrinsics with non-zero focal lengths .* got fx, fy = \[\[0.0, 0.0\]\]"):
        glsplat.Camera.from_intrinsics(torch.zeros(3, 3), SIZE)
    with pytest.raises(ValueError, match="K: expected finite intrinsics"):
        glsplat.Camera.from_intrinsics(K.expand(2, 3, 3) * torch.tensor([[[1.0]], [[float("nan")]]]), SIZE)
    with pytest.raises(ValueError, match=r"R: expected \[3, 3\] or \[B, 3, 3\], got \[1, 3, 4\]"):
        glsplat.Camera.from_intrinsics(K, SIZE, R=torch.eye(3, 4))
    with pytest.raises(ValueError, match=r"t: expected \[3\] or \[B, 3\]"):
        glsplat.Camera.from_intrinsics(K, SIZE, t=torch.zeros(2))


def test_render_needs_a_camera_object(ctx):
    with pytest.raises(TypeError, match="camera: a glsplat.Camera is required, got Tensor"):
        glsplat.render(ctx, TRI, torch.eye(4), faces=FACES)
    with pytest.raises(TypeError, match="ctx: expected a glsplat.Context"):
        glsplat.rasterize(None, TRI, FACES, SIZE)


# --- interpolate, splat, textures -------------------------------------------------------------

def test_shader_output_must_be_one_rgba_row_per_covered_sample(ctx, cam):
    full_frames = lambda frags: frags.scatter(torch.cat([frags.normals, frags.mask], -1))  # [B, K, H, W, 4]
    with pytest.raises(ValueError, match=r"shader: expected straight RGBA \[N, 4\]"):
        render(ctx, cam, shader=full_frames)
    with pytest.raises(ValueError, match="shader"):
        render(ctx, cam, shader=lambda frags: frags.normals)  # RGB, no alpha
    assert_image(render(ctx, cam, shader=lambda frags: torch.cat([frags.normals * 0.5 + 0.5, frags.mask], -1)))


def test_bad_interpolate_and_splat_arguments(ctx, cam):
    clip = cam.project(TRI)
    rast = glsplat.rasterize(ctx, clip, FACES, SIZE)
    with pytest.raises(TypeError, match="attr: expected float32 or float64"):
        glsplat.interpolate(torch.ones(3, 2, dtype=torch.long), rast, FACES)
    with pytest.raises(ValueError, match=r"attr: expected shape \[B, V, C\]"):
        glsplat.interpolate(torch.ones(3), rast, FACES)
    with pytest.raises(ValueError, match=r"faces: indices must lie in 0\.\.1"):
        glsplat.interpolate(torch.ones(2, 3), rast, FACES)
    colors = torch.rand(1, 1, *SIZE, 4)
    with pytest.raises(ValueError, match=r"colors: expected shape \[1, 1, 16, 16, 4\]"):
        glsplat.splat(colors[..., :3], clip, rast, FACES)
    with pytest.raises(ValueError, match=r"colors: expected shape"):
        glsplat.splat(torch.rand(2, 1, *SIZE, 4), clip, rast, FACES)
    with pytest.raises(ValueError, match="clip: batch of 2"):
        glsplat.splat(colors, clip.expand(2, -1, -1), rast, FACES)
    with pytest.raises(TypeError, match="colors: expected float32 or float64"):
        glsplat.splat(colors.long(), clip, rast, FACES)


@pytest.mark.parametrize("bad, match", [
    ("nan", "clip: NaN or infinite corners on faces that the raster covers"),
    ("inf", "clip: NaN or infinite corners on faces that the raster covers"),
    ("w0", r"clip: w <= 0 at \d+ covered samples"),
])
@pytest.mark.parametrize("batch", [1, 2])
def test_splat_refuses_clip_that_is_not_finite_or_visible_where_covered(ctx, cam, bad, match, batch):
    """The kernels' -ffinite-math-only turned these into a near-blank finite image."""
    clip = cam.project(TRI).expand(batch, -1, -1).clone()
    rast = glsplat.rasterize(ctx, clip, FACES, SIZE, border=1)
    colors = torch.ones(rast.index.shape[0], 4)
    broken = clip.clone()
    if bad == "w0":
        broken[-1, :, 3] = 0.0
    else:
        broken[-1, 1, 0] = float(bad)
    with pytest.raises(ValueError, match=match):
        glsplat.splat(colors, broken, rast, FACES)
    with pytest.raises(ValueError, match=match):
        glsplat.splat_buffers(colors, broken, rast, FACES)


def test_splat_takes_faces_crossing_the_camera_plane_and_unused_bad_vertices(ctx, cam):
    """A corner behind the camera (w < 0) is fine where the covered samples are in front; a NaN
    vertex that no face uses is ignored, as in rasterize."""
    verts = torch.tensor([[-0.5, -0.5, 0.0], [0.5, -0.5, 0.0], [0.0, 0.5, 5.0], [float("nan"), 0.0, 0.0]])
    clip = cam.project(verts)
    assert clip[0, 2, 3] < 0
    rast = glsplat.rasterize(ctx, clip, FACES, SIZE)
    assert rast.mask.sum() > 5
    image = glsplat.splat(torch.ones(rast.index.shape[0], 4), clip, rast, FACES)
    assert torch.isfinite(image).all() and image[..., 3].max() > 0.5


@pytest.mark.parametrize("texture, uv, match", [
    (torch.rand(4, 4), torch.rand(1, 5, 2), "texture: expected shape"),
    (torch.rand(1, 1, 4, 4, 3), torch.rand(1, 5, 2), "texture: expected shape"),
    (torch.rand(4, 4, 3), torch.rand(1, 5, 3), r"uv: expected shape \[\.\.\., 2\]"),
    (torch.rand(3, 4, 4, 3), torch.rand(2, 5, 2), "texture: batch of 3"),
])
def test_bad_textures(texture, uv, match):
    with pytest.raises(ValueError, match=match):
        glsplat.sample_texture(texture, uv)


def test_mesh_fields_are_checked_against_each_other(ctx, cam):
    mesh = glsplat.Mesh(TRI, FACES, uvs=torch.rand(4, 2), uv_faces=torch.tensor([[0, 1, 4]]),
                        texture=torch.rand(4, 4, 3))
    with pytest.raises(ValueError, match=r"mesh.uv_faces: indices must lie in 0\.\.3"):
        glsplat.render(ctx, mesh, camera=cam)
    with pytest.raises(ValueError, match="mesh.texture: expected shape"):
        glsplat.render(ctx, mesh.replace(uv_faces=FACES, texture=torch.rand(4, 4)), camera=cam)
    with pytest.raises(ValueError, match=r"mesh.colors: one color per vertex \(3\)"):
        glsplat.render(ctx, glsplat.Mesh(TRI, FACES, colors=torch.rand(4, 3)), camera=cam)


# --- Files and the context --------------------------------------------------------------------

@pytest.mark.parametrize("name, content", [
    ("empty.obj", b""),
    ("points.obj", b"v 0 0 0\nv 1 0 0\nv 0 1 0\n"),
    ("short.obj", b"v 1 2\nf 1 2 9\n"),
    ("words.obj", b"v a b c\nv 1 1 1\nv 0 0 0\nf 1 2 3\n"),
    ("nan.obj", b"v nan 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n"),
    ("truncated.ply", b"ply\nformat binary_little_endian 1.0\nelement vertex 3\nproperty float x\nend_header\n\x00"),
    ("noise.stl", bytes(range(256)) * 3),
])
def test_malformed_mesh_files(tmp_path, name, content):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ValueError, match=name):
        glsplat.load_mesh(tmp_path / name)


PLY_HEADER = (b"ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\n"
              b"element face 1\nproperty list uchar int vertex_indices\nend_header\n0 0 0\n1 0 0\n0 1 0\n")
UV_TRIANGLE = b"v 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nvt 1 0\nvt 0 1\n"


@pytest.mark.parametrize("name, content, match", [
    ("minus_one.ply", PLY_HEADER + b"3 0 1 -1\n", r"face indices must lie in 0\.\.2 \(there are 3 vertices\), got indices from -1"),
    ("past_end.ply", PLY_HEADER + b"3 0 1 5\n", r"face indices must lie in 0\.\.2 .* from 0 to 5"),
    ("zero_based.obj", UV_TRIANGLE + b"f 0 1 2\n", r"line 7: face corner '0' refers to v 0, but 3 v lines"),
    ("bad_vt.obj", UV_TRIANGLE + b"f 1/1 2/2 3/9\n", r"line 7: face corner '3/9' refers to vt 9, but 3 vt lines"),
    ("huge.obj", b"v 0 0 0\nv 1e39 0 0\nv 0 1 0\nf 1 2 3\n", r"vertex coordinates reach 1e\+39, beyond torch.float32"),
    ("binary.obj", b"\xff\xfe\x00\x81garbage\x9d" * 200, "not UTF-8 text"),
])
def test_mesh_files_with_bad_indices_or_values(tmp_path, name, content, match):
    """Each loaded wrong without a word: -1 wrapped, UVs dropped, inf vertices, a bare IndexError, a missing module."""
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ValueError, match=f"{name}.*{match}"):
        glsplat.load_mesh(tmp_path / name)


def write_textured_obj(folder, library=b"m.mtl", image=b"m.png"):
    (folder / "m.obj").write_bytes(b"mtllib " + library + b"\nusemtl m\n" + UV_TRIANGLE + b"f 1/1 2/2 3/3\n")
    (folder / "m.mtl").write_bytes(b"newmtl m\nKd 1 1 1\nmap_Kd " + image + b"\n")
    Image.new("RGB", (4, 3), (255, 0, 0)).save(folder / "m.png")
    (folder / "broken.png").write_bytes(b"not an image")
    return folder / "m.obj"


def test_textured_obj_loads_its_texture(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mesh = glsplat.load_mesh(write_textured_obj(tmp_path))
    assert mesh.texture.shape == (3, 4, 3) and mesh.uvs.shape == (3, 2)
    assert mesh.texture[..., 0].min() == 1.0 and mesh.texture[..., 1:].max() == 0.0


@pytest.mark.parametrize("library, image, match", [
    (b"gone.mtl", b"m.png", "material library 'gone.mtl' not found"),
    (b"m.mtl", b"gone.png", "texture image 'gone.png' of material library 'm.mtl' cannot be read"),
    (b"m.mtl", b"broken.png", "texture image 'broken.png' of material library 'm.mtl' cannot be read"),
])
def test_obj_whose_texture_is_missing_loads_untextured_with_a_warning(tmp_path, library, image, match):
    """Before: a gray 2x2 placeholder texture (missing .mtl) or no texture, without a word."""
    path = write_textured_obj(tmp_path, library, image)
    with pytest.warns(UserWarning, match=f"m.obj: {match}.*loading it untextured"):
        mesh = glsplat.load_mesh(path)
    assert mesh.texture is None and mesh.uvs.shape == (3, 2)
    with warnings.catch_warnings():  # a texture of one's own replaces the material's: nothing lost
        warnings.simplefilter("error")
        assert glsplat.load_mesh(path, texture_file=tmp_path / "m.png").texture.shape == (3, 4, 3)


def test_obj_without_material_has_no_texture(tmp_path):
    (tmp_path / "plain.obj").write_bytes(UV_TRIANGLE + b"f 1/1 2/2 3/3\n")
    mesh = glsplat.load_mesh(tmp_path / "plain.obj")
    assert mesh.texture is None and mesh.uvs.shape == (3, 2)  # before: trimesh's gray 2x2 placeholder


def test_directory_and_degenerate_mesh_say_so(tmp_path):
    (tmp_path / "folder.obj").mkdir()
    with pytest.raises(ValueError, match="folder.obj is a directory, not a mesh file"):
        glsplat.load_mesh(tmp_path / "folder.obj")
    (tmp_path / "point.obj").write_bytes(b"v 1 2 3\nv 1 2 3\nv 1 2 3\nf 1 2 3\n")
    with pytest.raises(ValueError, match=r"mesh: cannot normalize a mesh of zero extent \(all 1 vertices at one point"):
        glsplat.load_mesh(tmp_path / "point.obj").normalized()


def test_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.obj"):
        glsplat.load_mesh(tmp_path / "nope.obj")
    with pytest.raises(FileNotFoundError, match="nope.png"):
        glsplat.load_texture(tmp_path / "nope.png")


@pytest.mark.parametrize("content", [b"", b"not an image", b"\x89PNG\r\n\x1a\n\x00\x00"])
def test_malformed_texture_files(tmp_path, content):
    (tmp_path / "bad.png").write_bytes(content)
    with pytest.raises(ValueError, match="bad.png"):
        glsplat.load_texture(tmp_path / "bad.png")


@pytest.mark.parametrize("device", [-1, 1.0, "0"])
def test_bad_context_device(device):
    with pytest.raises(ValueError, match="device"):
        glsplat.Context(device=device)


def test_missing_egl_or_mesa_names_what_to_install(monkeypatch):
    def no_mesa(*args, **kwargs):
        raise Exception("eglInitialize failed (0x3001)")  # what a box with libEGL but no Mesa driver says

    monkeypatch.setattr(moderngl, "create_standalone_context", no_mesa)
    with pytest.raises(RuntimeError, match="apt-get install -y libegl1 libegl-mesa0 libgl1-mesa-dri") as info:
        glsplat.Context()
    assert "0x3001" in str(info.value) and "libEGL_nvidia" in str(info.value)


def test_released_context_says_so(cam):
    with glsplat.Context() as ctx:
        glsplat.rasterize(ctx, cam.project(TRI), FACES, SIZE)
    with pytest.raises(RuntimeError, match="released"):
        glsplat.rasterize(ctx, cam.project(TRI), FACES, SIZE)
