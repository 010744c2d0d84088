"""The pose-network demo: its rotation helpers, and training by the rendering loss at a tiny size."""

import torch

import glsplat
from glsplat.transforms import axis_angle_to_matrix, rotation_angle
from conftest import load_script


def test_6d_gives_rotations_and_keeps_its_first_rows():
    demo = load_script("demos/train_pose_net.py")
    R = axis_angle_to_matrix(torch.randn(20, 3))
    assert torch.allclose(demo.rotation_6d_to_matrix(R[:, :2].reshape(20, 6)), R, atol=1e-5)
    M = demo.rotation_6d_to_matrix(torch.randn(20, 6))
    assert torch.allclose(M @ M.transpose(1, 2), torch.eye(3).expand(20, 3, 3), atol=1e-5)
    assert torch.allclose(torch.linalg.det(M), torch.ones(20), atol=1e-5)


def test_rotations_lie_within_the_range_and_the_untrained_net_predicts_near_canonical():
    demo = load_script("demos/train_pose_net.py")
    rotations = demo.sample_rotations(500, 45.0, torch.Generator().manual_seed(0))
    angles = rotation_angle(rotations, demo.CANONICAL.expand(500, 3, 3))
    assert angles.max() <= 45.01 and angles.median() > 30.0  # uniform in the ball: mostly near its edge
    net = demo.PoseNet(32)
    with torch.no_grad():
        predicted = net(torch.rand(4, 32, 32, 4))
    assert rotation_angle(predicted, demo.CANONICAL.expand(4, 3, 3)).max() < 10.0


def test_render_loss_alone_teaches_the_network(ctx, tmp_path):
    """No labels: the held-out median error falls well below the untrained network's."""
    demo = load_script("demos/train_pose_net.py")
    history = demo.main(ctx=ctx, argv=["--out", str(tmp_path), "--size", "32", "--train", "128", "--test", "32",
                                       "--epochs", "4", "--max-angle", "30"])
    untrained, trained = history["render loss"][0], history["render loss"][-1]
    assert trained < 0.7 * untrained, history
    assert history["supervised"][-1] < 0.8 * untrained, history
    assert "| 4 |" in (tmp_path / "pose_net_table.md").read_text()
    assert (tmp_path / "pose_net.png").stat().st_size > 1000
