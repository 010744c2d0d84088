"""Pose fitting: glsplat.fitting.fit_pose and demos/fit_pose.py at a tiny size."""
import math

import torch

import glsplat
from glsplat.fitting import fit_pose, posed
from glsplat.fitting.pose import blur
from glsplat.transforms import axis_angle_to_matrix, rotation_angle
from conftest import load_script


def test_blur_keeps_flat_regions_and_mass():
    image = torch.zeros(1, 21, 21, 2)
    image[0, 10, 10] = 1.0
    out = blur(image, 1.5)
    assert torch.allclose(out.sum((1, 2)), image.sum((1, 2)), atol=1e-5)
    # A Gaussian of sigma 1.5: three pixels out it has fallen by exp(-9 / 4.5).
    assert torch.isclose(out[0, 10, 13, 0] / out[0, 10, 10, 0], torch.tensor(math.exp(-2.0)), rtol=0.02)
    flat = torch.ones(1, 21, 21, 1)
    assert torch.allclose(blur(flat, 1.5)[0, 8:13, 8:13], flat[0, 8:13, 8:13], atol=1e-5)


def test_batched_fits_are_independent(ctx, spot):
    """A fit in a batch of two ends where the same fit run alone ends."""
    camera = glsplat.Camera.look_at((0.0, 0.5, -2.5), fov_y=30, image_size=(32, 32), near=0.5, far=5.0)
    rotations = axis_angle_to_matrix(torch.tensor([[0.0, 0.3, 0.0], [0.2, -0.1, 0.1]]))
    translations = torch.tensor([[0.0, 0.0, 0.0], [0.05, 0.0, 0.0]])
    with torch.no_grad():
        target = glsplat.render(ctx, posed(spot, torch.eye(3)[None].expand(2, 3, 3), torch.zeros(2, 3)), camera=camera)
    both = fit_pose(ctx, spot, target, camera, rotations, translations, steps=8)
    alone = fit_pose(ctx, spot, target[1:], camera, rotations[1:], translations[1:], steps=8)
    assert torch.allclose(both.rotation[1], alone.rotation[0], atol=1e-4)
    assert torch.allclose(both.translation[1], alone.translation[0], atol=1e-4)
    # Started apart, they did move.
    assert rotation_angle(both.rotation[1], rotations[1]) > 1.0


def test_demo_recovers_30_degrees_where_the_plain_raster_does_not(ctx, tmp_path):
    """layers=1 brings both 30-degree trials below 5 degrees; the plain rasterizer leaves them above 10."""
    demo = load_script("demos/fit_pose.py")
    results = demo.main(ctx=ctx, argv=["--out", str(tmp_path), "--size", "48", "--steps", "60", "--trials", "2",
                         "--angles", "30", "--methods", "layers=1", "plain raster", "--no-gif"])
    trials = results["trials"]
    start = rotation_angle(trials.init_rotation, trials.target_rotation)
    assert torch.allclose(start, torch.full_like(start, 30.0), atol=0.01)
    splat_error, _, losses = results["layers=1"]
    assert (splat_error < 5.0).all(), splat_error
    assert (losses[-1] < 0.1 * losses[0]).all()
    assert (results["plain raster"][0] > 10.0).all(), results["plain raster"][0]
    table = (tmp_path / "fit_pose_table.md").read_text()
    assert "| layers=1 | 30° |" in table and "| plain raster | 30° | 0/2 |" in table
    assert (tmp_path / "fit_pose_curves.png").stat().st_size > 1000


def test_demo_gif(ctx, tmp_path):
    demo = load_script("demos/fit_pose.py")
    demo.main(ctx=ctx, argv=["--out", str(tmp_path), "--size", "24", "--steps", "7", "--trials", "1", "--angles", "15",
               "--methods", "layers=1"])
    import imageio.v2 as imageio
    frames = imageio.mimread(tmp_path / "fit_pose.gif")
    assert len(frames) == math.ceil(7 / demo.GIF_EVERY)
    assert frames[0].shape[:2] == (48, 3 * 48)
