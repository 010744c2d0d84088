"""glsplat.transforms: rotations with known answers, and their gradients."""
import math

import pytest
import torch

from glsplat.transforms import axis_angle_to_matrix, rotation_6d_to_matrix, rotation_angle


def test_axis_angle_quarter_turn_about_z():
    R = axis_angle_to_matrix(torch.tensor([0.0, 0.0, math.pi / 2], dtype=torch.float64))
    expected = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    torch.testing.assert_close(R, expected, rtol=0, atol=1e-15)


def test_axis_angle_gradient_at_and_near_the_identity():
    for start in ([0.0, 0.0, 0.0], [1e-5, -2e-5, 0.0], [0.3, -0.2, 0.5]):
        x = torch.tensor(start, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(axis_angle_to_matrix, (x,))


def test_rotation_angle_of_a_known_turn_and_of_itself():
    R = axis_angle_to_matrix(torch.tensor([[0.0, math.radians(40.0), 0.0], [0.1, 0.2, 0.3]]))
    assert rotation_angle(R[0], torch.eye(3)).item() == pytest.approx(40.0, abs=1e-3)
    assert rotation_angle(R[1], R[1]).item() == pytest.approx(0.0, abs=0.05)  # arccos near 1 in float32


def test_6d_gives_rotations_and_keeps_its_first_rows():
    R = axis_angle_to_matrix(torch.randn(20, 3, generator=torch.Generator().manual_seed(0)))
    torch.testing.assert_close(rotation_6d_to_matrix(R[:, :2].reshape(20, 6)), R, atol=1e-5, rtol=0)
    M = rotation_6d_to_matrix(torch.randn(4, 5, 6, generator=torch.Generator().manual_seed(1)))
    assert M.shape == (4, 5, 3, 3)
    torch.testing.assert_close(M @ M.transpose(-1, -2), torch.eye(3).expand(4, 5, 3, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.linalg.det(M), torch.ones(4, 5), atol=1e-5, rtol=0)
    d6 = torch.randn(3, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(2), requires_grad=True)
    assert torch.autograd.gradcheck(rotation_6d_to_matrix, (d6,))
