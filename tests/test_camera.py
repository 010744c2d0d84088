"""Camera helpers: orbit cameras, batches made, indexed and moved."""
import math

import pytest
import torch

import glsplat


def test_orbit_places_the_eye_on_the_sphere_looking_at_the_target():
    azimuth = torch.tensor([0.0, 90.0, 200.0])
    camera = glsplat.Camera.orbit(azimuth, 30.0, 3.0, target=(0.5, 0.0, -1.0), image_size=(16, 24))
    assert camera.batch_size == 3 and camera.image_size == (16, 24)
    offset = camera.center - torch.tensor([0.5, 0.0, -1.0])
    torch.testing.assert_close(offset.norm(dim=-1), torch.full((3,), 3.0))
    torch.testing.assert_close(offset[:, 1], torch.full((3,), 3.0 * math.sin(math.radians(30))))
    # Azimuth 0 looks from -z, 90 from +x.
    assert offset[0, 2] < 0 and abs(offset[0, 0]) < 1e-5
    assert offset[1, 0] > 0 and abs(offset[1, 2]) < 1e-5
    # The target projects to the image center.
    clip = camera.project(torch.tensor([[0.5, 0.0, -1.0]]).expand(3, 1, 3))
    torch.testing.assert_close(clip[..., :2] / clip[..., 3:], torch.zeros(3, 1, 2), atol=1e-5, rtol=0)


def test_orbit_is_differentiable_in_its_angles():
    azimuth = torch.tensor(20.0, requires_grad=True)
    camera = glsplat.Camera.orbit(azimuth, 10.0)
    camera.center[0, 0].backward()
    # d/d(az) of 2.5 sin(az) cos(el), per degree
    expected = 2.5 * math.cos(math.radians(20)) * math.cos(math.radians(10)) * math.pi / 180
    assert azimuth.grad.item() == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("kwargs, name", [({"elevation": 90.0}, "elevation"), ({"elevation": -95.0}, "elevation"),
                                          ({"azimuth": float("nan")}, "azimuth"), ({"distance": 0.0}, "distance")])
def test_orbit_refuses_bad_angles_naming_them(kwargs, name):
    with pytest.raises(ValueError, match=name):
        glsplat.Camera.orbit(**kwargs)


def test_cat_index_and_len_round_trip(ctx):
    one = glsplat.Camera.orbit(0.0, 15.0, image_size=(20, 20))
    two = glsplat.Camera.orbit(torch.tensor([90.0, 180.0]), 15.0, image_size=(20, 20))
    both = glsplat.Camera.cat([one, two])
    assert len(both) == 3
    for i, single in enumerate([one, two[0], two[1]]):
        torch.testing.assert_close(both[i].full_matrix(), single.full_matrix())
    torch.testing.assert_close(both[1:].full_matrix(), two.full_matrix())
    # A stacked batch renders as the separate cameras do.
    tri = torch.tensor([[-0.3, -0.3, 0.0], [0.3, -0.3, 0.0], [0.0, 0.3, 0.0]])
    faces = torch.tensor([[0, 1, 2]])
    images = glsplat.render(ctx, tri, both, faces=faces, cull_backfaces=False)
    torch.testing.assert_close(images[2:], glsplat.render(ctx, tri, two[1], faces=faces, cull_backfaces=False))
    with pytest.raises(ValueError, match="one image size"):
        glsplat.Camera.cat([one, glsplat.Camera.orbit(image_size=(8, 8))])
    assert "batch_size=3" in repr(both)


@pytest.mark.parametrize("size", [(24, 28), (30, 20)])
def test_look_at_is_the_centered_pinhole_of_from_intrinsics(size):
    """look_at's projection is from_intrinsics' for K with focal H / (2 tan(fov_y / 2)) and the image
    center; and it is the textbook perspective matrix (cot(fov/2) / aspect, cot(fov/2), near/far terms)."""
    height, width = size
    fov_y, near, far = 40.0, 0.3, 7.0
    eye = torch.tensor([0.4, 0.3, 2.0], dtype=torch.float64)
    look = glsplat.Camera.look_at(eye, fov_y=fov_y, image_size=size, near=near, far=far)
    focal = height / (2 * math.tan(math.radians(fov_y) / 2))
    K = torch.tensor([[focal, 0.0, (width - 1) / 2], [0.0, focal, (height - 1) / 2], [0.0, 0.0, 1.0]], dtype=torch.float64)
    # The same camera pose, in OpenCV's frame (y down, looking down +z).
    flip = torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64))
    pinhole = glsplat.Camera.from_intrinsics(K, size, flip @ look.R, (flip @ look.t[..., None])[..., 0], near=near, far=far)
    torch.testing.assert_close(look.projection, pinhole.projection, rtol=0, atol=1e-12)
    torch.testing.assert_close(look.full_matrix(), pinhole.full_matrix(), rtol=0, atol=1e-12)
    cot = 1 / math.tan(math.radians(fov_y) / 2)
    expected = torch.tensor([[cot * height / width, 0, 0, 0], [0, cot, 0, 0],
                             [0, 0, -(far + near) / (far - near), -2 * far * near / (far - near)], [0, 0, -1, 0]],
                            dtype=torch.float64)
    torch.testing.assert_close(look.projection[0], expected, rtol=0, atol=1e-12)
