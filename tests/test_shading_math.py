"""The shaders' fast replacements for torch's normalize and pow agree with them, values and gradients."""
import pytest
import torch
import torch.nn.functional as F

from glsplat.mesh import normalize
from glsplat.shading import power


def test_normalize_matches_torch_and_keeps_zero_vectors():
    x = torch.randn(50, 3, dtype=torch.float64)
    x[7] = 0
    x.requires_grad_()
    ours, ref = normalize(x), F.normalize(x, dim=-1, eps=1e-12)
    assert torch.allclose(ours, ref, atol=1e-12)
    assert (ours[7] == 0).all()
    g = torch.randn_like(ref)
    (g_ours,) = torch.autograd.grad(ours, x, g)
    (g_ref,) = torch.autograd.grad(ref, x, g)
    assert torch.allclose(g_ours[torch.arange(50) != 7], g_ref[torch.arange(50) != 7], atol=1e-10)


@pytest.mark.parametrize("exponent", [1, 2, 5, 32, 33.0, 2.5, 300])
def test_power_matches_pow(exponent):
    x = torch.rand(40, 1, dtype=torch.float64, requires_grad=True)
    ours, ref = power(x, exponent), x**exponent
    assert torch.allclose(ours, ref, rtol=1e-12, atol=1e-300)
    g = torch.randn_like(ref)
    assert torch.allclose(torch.autograd.grad(ours, x, g)[0], torch.autograd.grad(ref, x, g)[0], rtol=1e-10)
