"""Random shapes and values thrown at the public API: a correct image, or a documented error.

An oracle says which inputs are valid; valid ones must render (finite, alpha in [0, 1], right
shape, finite gradients), invalid ones must raise TypeError/ValueError naming the argument.
"""
import math

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import glsplat

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
ARGUMENT_NAMES = ("mesh.", "faces", "layers", "size", "clip", "camera", "colors", "attr", "texture", "uv")
VALUES = st.one_of(st.floats(-2.0, 2.0), st.sampled_from([0.0, 1e-7, float("nan"), float("inf")]))


@st.composite
def scenes(draw):
    num_verts = draw(st.integers(0, 6))
    num_faces = draw(st.integers(0, 5))
    batch = draw(st.integers(1, 2))
    face_dtype = draw(st.sampled_from([torch.int64, torch.int32, torch.float32]))
    vert_dtype = draw(st.sampled_from([torch.float32, torch.float64, torch.int64]))
    faces = draw(st.lists(st.lists(st.integers(-1, num_verts), min_size=3, max_size=3),
                          min_size=num_faces, max_size=num_faces))
    verts = draw(st.lists(VALUES, min_size=batch * num_verts * 3, max_size=batch * num_verts * 3))
    size = (draw(st.integers(-1, 9)), draw(st.integers(-1, 9)))
    layers = draw(st.integers(0, 3))
    faces = torch.tensor(faces, dtype=torch.int64).reshape(num_faces, 3).to(face_dtype)
    verts = torch.tensor(verts, dtype=torch.float64).reshape(batch, num_verts, 3)
    if vert_dtype == torch.int64:
        verts = verts.nan_to_num(0, 0, 0)
    return verts.to(vert_dtype), faces, size, layers


def is_valid(verts, faces, size, layers):
    if faces.is_floating_point() or not verts.is_floating_point():
        return False
    if min(size) < 1 or layers < 1:
        return False
    if faces.numel() and (faces.min() < 0 or faces.max() >= verts.shape[1]):
        return False
    return bool(torch.isfinite(verts[:, faces.long().reshape(-1)]).all())


@given(scene=scenes(), shader=st.sampled_from(["lambert", "phong", "unlit"]), hard=st.booleans())
@SETTINGS
def test_render_gives_an_image_or_a_documented_error(ctx, scene, shader, hard):
    verts, faces, size, layers = scene
    if min(size) >= 1:
        camera = glsplat.Camera.look_at(eye=(0.3, 0.2, 3.0), image_size=size, near=1.0, far=5.0)
    else:
        camera = glsplat.Camera.look_at(eye=(0.3, 0.2, 3.0), image_size=(4, 4), near=1.0, far=5.0)
        camera.image_size = size  # bypass look_at's own check to reach rasterize's
    shaders = {"lambert": glsplat.LambertShader(), "phong": glsplat.PhongShader(),
               "unlit": glsplat.UnlitShader(albedo=(0.2, 0.5, 0.9))}
    if verts.is_floating_point():
        verts = verts.clone().requires_grad_(True)
    try:
        img = glsplat.render(ctx, verts, camera, faces=faces, shader=shaders[shader], layers=layers, hard=hard)
    except (TypeError, ValueError) as error:
        assert not is_valid(verts.detach(), faces, size, layers), f"valid input refused: {error}"
        assert str(error).startswith(ARGUMENT_NAMES), f"the message names no argument: {error}"
        return
    assert is_valid(verts.detach(), faces, size, layers)
    assert img.shape == (verts.shape[0], *size, 4)
    assert torch.isfinite(img).all()
    assert (img[..., 3] >= 0).all() and (img[..., 3] <= 1 + 1e-5).all()
    assert (img[..., :3] >= -1e-6).all()
    if img.requires_grad:  # not with hard=True and a constant-color shader
        grad, = torch.autograd.grad(img.square().sum(), verts, allow_unused=True)
        assert grad is None or torch.isfinite(grad).all()


@given(texture_shape=st.lists(st.integers(0, 3), min_size=1, max_size=5),
       uv_shape=st.lists(st.integers(0, 3), min_size=1, max_size=4),
       value=VALUES)
@SETTINGS
def test_sample_texture_gives_texels_or_a_documented_error(texture_shape, uv_shape, value):
    texture = torch.rand(texture_shape)
    uv = torch.full(uv_shape, value)
    try:
        out = glsplat.sample_texture(texture, uv)
    except (TypeError, ValueError) as error:
        assert str(error).startswith(("texture", "uv")), str(error)
        return
    except RuntimeError as error:
        # grid_sample on zero-sized textures: torch's own error, an empty input is not a texture.
        assert 0 in texture_shape, str(error)
        return
    assert out.shape == (*uv.shape[:-1], texture.shape[-1])
    if math.isfinite(value):
        assert torch.isfinite(out).all()
