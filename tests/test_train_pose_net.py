"""The pose-network demo: its rotation sampling, and training by the rendering loss at a tiny size."""

import torch

from glsplat.transforms import rotation_angle
from conftest import load_script


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
