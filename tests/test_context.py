"""The GL context keeps a bounded set of G-buffers and gives the same results after eviction."""
import torch

import glsplat
from glsplat.context import CACHED_SIZES


def test_framebuffer_cache_is_bounded(ctx):
    clip = torch.tensor([[-0.5, -0.5, 0.0, 1.0], [0.5, -0.5, 0.0, 1.0], [0.0, 0.5, 0.0, 1.0]])
    faces = torch.tensor([[0, 1, 2]])
    sizes = [(8, 8), (16, 12), (9, 31), (40, 40), (7, 5), (33, 6)]
    first = {size: glsplat.rasterize(ctx, clip, faces, size, layers=2) for size in sizes}
    assert len(ctx._targets) <= CACHED_SIZES
    for size in sizes:  # the early sizes were evicted and are made again
        again = glsplat.rasterize(ctx, clip, faces, size, layers=2)
        assert torch.equal(again.tri_id, first[size].tri_id)
        assert torch.equal(again.bary, first[size].bary)
        assert again.mask[:, 0].any()


def test_cache_keys_on_views_per_pass(ctx, monkeypatch):
    """Batches of different sizes need target arrays of different depths; the cache stays
    bounded and a batch rendered after its arrays were evicted comes out the same."""
    clip = torch.tensor([[-0.5, -0.5, 0.0, 1.0], [0.5, -0.5, 0.0, 1.0], [0.0, 0.5, 0.0, 1.0]])
    shifts = torch.linspace(-0.4, 0.4, 6)[:, None, None] * torch.tensor([1.0, 0.0, 0.0, 0.0])
    faces = torch.tensor([[0, 1, 2]])
    monkeypatch.setattr(ctx, "max_views", 8)
    first = {b: glsplat.rasterize(ctx, clip + shifts[:b], faces, (10, 14), layers=2) for b in range(1, 7)}
    assert len(ctx._targets) <= CACHED_SIZES < 6
    for b, rast in first.items():
        again = glsplat.rasterize(ctx, clip + shifts[:b], faces, (10, 14), layers=2)
        assert torch.equal(again.tri_id, rast.tri_id) and torch.equal(again.bary, rast.bary)
        assert not torch.equal(rast.tri_id[0], rast.tri_id[-1]) or b == 1
