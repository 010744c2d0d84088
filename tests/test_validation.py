"""Bad input gets a TypeError/ValueError naming the argument; odd but valid input renders."""
import moderngl
import pytest
import torch

import glsplat

SIZE = (16, 16)
TRI = torch.tensor([[-0.5, -0.5, 0.0], [0.5, -0.5, 0.0], [0.0, 0.5, 0.0]])
FACES = torch.tensor([[0, 1, 2]])


@pytest.fixture(scope="module")
def cam():
    return glsplat.Camera.look_at(eye=(0.0, 0.0, 3.0), image_size=SIZE, near=1.0, far=5.0)


def render(ctx, cam, verts=TRI, faces=FACES, **kwargs):
    return glsplat.render(ctx, verts, faces, cam, **kwargs)


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
        glsplat.render(ctx, TRI.expand(3, 3, 3), FACES, cams)


def test_a_batch_of_zero_views_is_refused(ctx, cam):
    """An empty batch (an empty selection upstream, usually a bug) names itself instead of dividing by zero."""
    no_eyes = glsplat.Camera.look_at(eye=torch.zeros(0, 3) + torch.tensor([0.0, 0.0, 3.0]), image_size=SIZE)
    with pytest.raises(ValueError, match=r"mesh.verts: a batch of 0 views.*0 meshes"):
        glsplat.render(ctx, TRI.expand(0, 3, 3), FACES, cam)
    with pytest.raises(ValueError, match=r"camera: a batch of 0 views.*0 cameras"):
        glsplat.render(ctx, TRI, FACES, no_eyes)
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


def test_render_needs_a_camera_object(ctx):
    with pytest.raises(TypeError, match="camera: a glsplat.Camera is required, got Tensor"):
        glsplat.render(ctx, TRI, FACES, torch.eye(4))
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
    with pytest.raises(ValueError, match=r"mesh.colors: one colour per vertex \(3\)"):
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
