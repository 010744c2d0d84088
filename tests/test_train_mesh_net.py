"""demos/train_mesh_net.py at a tiny size: training with the rendering loss lowers held-out Chamfer."""

import torch

from conftest import load_script


def test_deformations_are_normalized_and_differ():
    demo = load_script("demos/train_mesh_net.py")
    spot = demo.load("spot")
    generator = torch.Generator().manual_seed(0)
    first, second = demo.deform(spot, generator), demo.deform(spot, generator)
    for mesh in (first, second):
        extent = mesh.verts.max(0).values - mesh.verts.min(0).values
        assert abs(extent.max().item() - 1.0) < 1e-5
    assert (first.verts - second.verts).abs().max() > 0.05


def test_untrained_network_predicts_the_template():
    demo = load_script("demos/train_mesh_net.py")
    net = demo.MeshNet(162)
    assert torch.equal(net(torch.rand(3, 32, 32, 4)), torch.zeros(3, 162, 3))


def test_training_lowers_held_out_chamfer(tmp_path):
    demo = load_script("demos/train_mesh_net.py")
    result = demo.main(["--out", str(tmp_path), "--size", "32", "--views", "4", "--level", "2",
                        "--train-per-mesh", "6", "--test-per-mesh", "2", "--epochs", "6", "--batch", "6",
                        "--lr", "3e-3", "--samples", "1000", "--meshes", "spot", "blob", "capsule", "torus",
                        "--no-unseen-mesh"])
    rows = result["rows"]
    before, after = rows[0]["unseen deformations"], rows[-1]["unseen deformations"]
    assert after < 0.6 * before, rows
    assert after < result["baselines"]["template sphere"]["unseen deformations"]
    assert "| before training |" in (tmp_path / "mesh_net_table.md").read_text()
    assert (tmp_path / "mesh_net.png").stat().st_size > 1000
