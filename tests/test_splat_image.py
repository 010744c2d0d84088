"""What the splat does to the image: interior fidelity and the silhouette's alpha profile."""
import pytest
import torch

import glsplat


def straight_rgba(rgb: torch.Tensor, rast: glsplat.Raster) -> torch.Tensor:
    mask = rast.mask[..., None].to(rgb.dtype)
    return torch.cat([rgb * mask, mask], -1)


def hard_image(colors: torch.Tensor) -> torch.Tensor:
    """The plainly rasterized, shaded layer 0, premultiplied."""
    front = colors[:, 0]
    return torch.cat([front[..., :3] * front[..., 3:], front[..., 3:]], -1)


def one_surface(tri_id: torch.Tensor) -> torch.Tensor:
    """[B, H, W] True where the 3x3 neighborhood is covered by layer 0 of one face."""
    ids = tri_id[:, 0]
    padded = torch.nn.functional.pad(ids, (1, 1, 1, 1), value=0)
    height, width = ids.shape[-2:]
    same = ids > 0
    for dy in range(3):
        for dx in range(3):
            same &= padded[:, dy:dy + height, dx:dx + width] == ids
    return same


@pytest.mark.parametrize("layers", [1, 3])
def test_interior_equals_raster_for_flat_faces(ctx, layers):
    """Random overlapping perspective triangles, each one color: interiors keep it exactly.

    The faces sit at distinct depths, further apart than their depth changes across a pixel:
    depth matching (DESIGN step 7) cannot tell apart layers closer than that.
    """
    gen = torch.Generator().manual_seed(1)
    faces_n = 12
    xy = torch.rand(faces_n, 1, 2, generator=gen) * 1.6 - 0.8 + (torch.rand(faces_n, 3, 2, generator=gen) - 0.5)
    w = 1 + torch.rand(faces_n, 3, 1, generator=gen)
    z = torch.linspace(-0.6, 0.6, faces_n)[torch.randperm(faces_n, generator=gen)].view(-1, 1, 1)
    z = z + 0.01 * torch.rand(faces_n, 3, 1, generator=gen)
    clip = torch.cat([xy * w, z * w, w], -1).reshape(1, -1, 4)
    faces = torch.arange(faces_n * 3).reshape(-1, 3)
    faces = torch.where(torch.cross(torch.nn.functional.pad(xy[:, 1] - xy[:, 0], (0, 1)),
                                    torch.nn.functional.pad(xy[:, 2] - xy[:, 0], (0, 1)), dim=-1)[:, 2:] > 0,
                        faces, faces.flip(-1))  # all counter-clockwise, so none is culled
    face_rgb = torch.rand(faces_n, 3, generator=gen)
    rast = glsplat.rasterize(ctx, clip, faces, (48, 64), layers=layers)
    colors = straight_rgba(face_rgb[(rast.tri_id.long() - 1).clamp(min=0)], rast)
    out = glsplat.splat(colors, clip, rast, faces)
    interior = one_surface(rast.tri_id)
    assert interior.sum() > 200
    assert (out - hard_image(colors))[interior].abs().max() < 1e-5


def test_interior_equals_raster_for_affine_colors(ctx):
    """A screen-parallel quad with a color ramp: the splat's blur leaves affine color untouched."""
    clip = torch.tensor([[-0.7, -0.6, 0.1, 1.0], [0.8, -0.6, 0.1, 1.0], [0.8, 0.7, 0.1, 1.0], [-0.7, 0.7, 0.1, 1.0]])
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    rgb = torch.tensor([[0.1, 0.9, 0.2], [0.7, 0.5, 0.0], [1.0, 0.0, 0.6], [0.4, 0.4, 0.8]])
    rast = glsplat.rasterize(ctx, clip, faces, (40, 56))
    colors = straight_rgba(glsplat.interpolate(rgb, rast, faces), rast)
    out = glsplat.splat(colors, clip, rast, faces)
    covered = rast.mask[:, 0].float()[:, None]
    interior = torch.nn.functional.max_pool2d(1 - covered, 3, 1, 1)[:, 0] == 0  # 3x3 all covered
    assert interior.sum() > 600
    assert (out - hard_image(colors))[interior].abs().max() < 1e-5


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("axis", ["vertical", "horizontal"])
def test_straight_silhouette_alpha_profile(ctx, layers, axis):
    """Edge on a pixel boundary: alpha ~0.94 in the last row/column inside, ~0.11 just outside."""
    height, width = 32, 40
    # Covers ndc x < 0.2 (vertical edge at x = 24 px) or ndc y > -0.25 (horizontal edge at y = 20 px).
    if axis == "vertical":
        quad = [[-3.0, -3.0], [0.2, -3.0], [0.2, 3.0], [-3.0, 3.0]]
    else:
        quad = [[-3.0, -0.25], [3.0, -0.25], [3.0, 3.0], [-3.0, 3.0]]
    clip = torch.tensor([[x, y, 0.0, 1.0] for x, y in quad])
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    rast = glsplat.rasterize(ctx, clip, faces, (height, width), layers=layers)
    colors = straight_rgba(torch.ones(*rast.shape, 3), rast)
    alpha = glsplat.splat(colors, clip, rast, faces)[0, ..., 3]
    if axis == "horizontal":
        alpha = alpha.T  # rows 0..19 covered: inside is the "left"
    edge = 24 if axis == "vertical" else 20
    profile = alpha[4:-4].mean(0)  # away from the image's own border along the edge
    assert profile[edge - 1] == pytest.approx(0.938, abs=0.01)
    assert profile[edge] == pytest.approx(0.112, abs=0.01)
    assert profile[edge - 3] == pytest.approx(1.0, abs=1e-6)
    assert profile[edge + 2] == 0.0
