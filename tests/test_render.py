"""`render` and `Renderer` end to end: batches, hard mode, backgrounds, shaders, errors, Spot."""
import math

import moderngl
import pytest
import torch
import torch.nn.functional as F

import glsplat
from glsplat.transforms import axis_angle_to_matrix

SPOT_EYES = torch.tensor([[0.0, 0.5, -2.5], [2.0, 0.5, 1.0], [-1.0, 1.0, 2.0]])


def spot_camera(eye, size=48):
    return glsplat.Camera.look_at(eye, fov_y=30.0, image_size=(size, size), near=0.5, far=5.0)


def near_background(alpha: torch.Tensor, radius: int) -> torch.Tensor:
    """[B, H, W] True where a (2 radius + 1)^2 neighborhood holds a pixel with coverage < 1."""
    uncovered = (alpha < 0.5).float()[:, None]
    return F.max_pool2d(uncovered, 2 * radius + 1, stride=1, padding=radius)[:, 0] > 0


def premultiplied(straight: torch.Tensor) -> torch.Tensor:
    return torch.cat([straight[..., :3] * straight[..., 3:], straight[..., 3:]], -1)


# --- Batches --------------------------------------------------------------------------------

def test_batch_of_cameras_equals_single_renders(ctx, spot):
    shader = glsplat.PhongShader()
    batch = glsplat.render(ctx, spot, camera=spot_camera(SPOT_EYES), shader=shader)
    assert batch.shape == (3, 48, 48, 4)
    for b in range(3):
        single = glsplat.render(ctx, spot, camera=spot_camera(SPOT_EYES[b]), shader=shader)
        assert single.shape == (1, 48, 48, 4)
        torch.testing.assert_close(batch[b], single[0], atol=1e-5, rtol=0)
    # The three views really differ (the batch isn't one camera repeated).
    assert (batch[0] - batch[1]).abs().max() > 0.5


@pytest.mark.parametrize("layers", [1, 2])
def test_batch_of_meshes_equals_single_renders(ctx, spot, layers):
    turn = axis_angle_to_matrix(torch.tensor([0.0, 0.7, 0.0]))
    verts = torch.stack([spot.verts, spot.verts @ turn.T + torch.tensor([0.1, 0.0, 0.0])])
    camera = spot_camera(SPOT_EYES[0])
    shader = glsplat.PhongShader()
    batch = glsplat.render(ctx, spot.replace(verts=verts), camera=camera, shader=shader, layers=layers)
    assert batch.shape == (2, 48, 48, 4)
    for b in range(2):
        single = glsplat.render(ctx, spot.replace(verts=verts[b]), camera=camera, shader=shader, layers=layers)
        torch.testing.assert_close(batch[b], single[0], atol=1e-5, rtol=0)
    assert (batch[0] - batch[1]).abs().max() > 0.5
    # Plain vertex tensors + faces take the same path.
    plain = glsplat.render(ctx, verts, camera, faces=spot.faces, layers=layers)
    plain0 = glsplat.render(ctx, verts[0], camera, faces=spot.faces, layers=layers)
    torch.testing.assert_close(plain[0], plain0[0], atol=1e-5, rtol=0)


def test_batch_of_meshes_with_batch_of_cameras_pairs_them(ctx, spot):
    verts = torch.stack([spot.verts, spot.verts * 0.8])
    cameras = spot_camera(SPOT_EYES[:2])
    batch = glsplat.render(ctx, spot.replace(verts=verts), camera=cameras, layers=2)
    assert batch.shape == (2, 48, 48, 4)
    for b in range(2):
        single = glsplat.render(ctx, spot.replace(verts=verts[b]), camera=spot_camera(SPOT_EYES[b]), layers=2)
        torch.testing.assert_close(batch[b], single[0], atol=1e-5, rtol=0)


# --- hard=True ------------------------------------------------------------------------------

def test_hard_is_the_shaded_raster(ctx, spot):
    camera = spot_camera(SPOT_EYES[1])
    shader = glsplat.PhongShader()
    hard = glsplat.render(ctx, spot, camera=camera, shader=shader, hard=True)
    clip = camera.project(spot.verts)
    rast = glsplat.rasterize(ctx, clip, spot.faces, camera.image_size)
    frags = glsplat.Fragments(rast, spot.replace(verts=spot.verts[None]), camera)
    colors = shader(frags)
    assert colors.shape == (int(rast.mask.sum()), 4)  # one row per covered sample
    torch.testing.assert_close(hard, premultiplied(frags.scatter(colors)[:, 0]), atol=1e-6, rtol=0)
    # A hard render has binary alpha, exactly the raster's coverage.
    assert torch.equal(hard[..., 3], rast.mask[:, 0].float())
    # More layers change nothing in hard mode (it shows layer 0).
    torch.testing.assert_close(glsplat.render(ctx, spot, camera=camera, shader=shader, hard=True, layers=3), hard)


def test_hard_differs_from_splat_only_near_silhouettes(ctx, spot):
    """With a constant color the splat changes only pixels that see the background nearby."""
    camera = spot_camera(SPOT_EYES[0], size=64)
    shader = glsplat.UnlitShader(albedo=(0.9, 0.6, 0.3))
    hard = glsplat.render(ctx, spot, camera=camera, shader=shader, hard=True)
    soft = glsplat.render(ctx, spot, camera=camera, shader=shader)
    differs = (hard - soft).abs().amax(-1) > 1e-5
    assert differs.sum() > 50  # the soft edge exists ...
    assert not (differs & ~near_background(hard[..., 3], 1)).any()  # ... and only there

    # Textured and lit, the interior changes a little (the splat's blur), the silhouette a lot.
    shader = glsplat.PhongShader()
    hard = glsplat.render(ctx, spot, camera=camera, shader=shader, hard=True)
    soft = glsplat.render(ctx, spot, camera=camera, shader=shader)
    band = near_background(hard[..., 3], 1) & (hard[..., 3] + soft[..., 3] > 0)
    alpha_diff = (hard - soft)[..., 3].abs()
    assert alpha_diff[~band].max() < 1e-5
    assert alpha_diff[band].mean() > 0.05
    rgb_diff = (hard - soft)[..., :3].abs().amax(-1)
    assert rgb_diff[~band].mean() < 0.3 * rgb_diff[band].mean()


# --- Backgrounds ----------------------------------------------------------------------------

def test_background_color_and_image(ctx, spot):
    camera = spot_camera(SPOT_EYES[0])
    rgba = glsplat.render(ctx, spot, camera=camera)
    rgb, alpha = rgba[..., :3], rgba[..., 3:]

    color = torch.tensor([0.2, 0.5, 0.9])
    out = glsplat.render(ctx, spot, camera=camera, background=color)
    assert out.shape == (1, 48, 48, 4)
    assert torch.all(out[..., 3] == 1)
    torch.testing.assert_close(out[..., :3], rgb + (1 - alpha) * color, atol=1e-6, rtol=0)
    assert torch.equal(out[0, 0, 0, :3], color)  # a far background pixel is the color

    image = torch.rand(48, 48, 3)
    out = glsplat.render(ctx, spot, camera=camera, background=image)
    assert torch.all(out[..., 3] == 1)
    torch.testing.assert_close(out[..., :3], rgb + (1 - alpha) * image, atol=1e-6, rtol=0)
    assert torch.equal(out[0, 0, 0, :3], image[0, 0])

    # One background image per camera.
    images = torch.rand(3, 48, 48, 3)
    batch = glsplat.render(ctx, spot, camera=spot_camera(SPOT_EYES), background=images)
    plain = glsplat.render(ctx, spot, camera=spot_camera(SPOT_EYES))
    torch.testing.assert_close(batch[..., :3], plain[..., :3] + (1 - plain[..., 3:]) * images, atol=1e-6, rtol=0)


def test_default_keeps_alpha(ctx, spot):
    camera = spot_camera(SPOT_EYES[0])
    out = glsplat.render(ctx, spot, camera=camera)
    alpha = out[..., 3]
    rast = glsplat.rasterize(ctx, camera.project(spot.verts), spot.faces, camera.image_size)
    far = ~near_background(1 - rast.mask[:, 0].float(), 2)  # no covered pixel within 2 px
    assert far.sum() > 500
    assert torch.all(alpha[far] == 0) and torch.all(out[far] == 0)
    assert alpha.max() > 0.999 and alpha.max() < 1 + 1e-5
    assert 0 < alpha.mean() < 1  # not composited over anything


# --- Renderer module ------------------------------------------------------------------------

def test_renderer_module_matches_render_and_passes_gradients(ctx, spot):
    camera = spot_camera(SPOT_EYES[0])
    shader = glsplat.PhongShader()
    renderer = glsplat.Renderer(camera, shader=shader, layers=2, ctx=ctx)
    assert isinstance(renderer, torch.nn.Module)
    expected = glsplat.render(ctx, spot, camera=camera, shader=shader, layers=2)
    torch.testing.assert_close(renderer(spot), expected, atol=0, rtol=0)
    torch.testing.assert_close(renderer(spot.verts, spot.faces),
                               glsplat.render(ctx, spot.verts, camera, faces=spot.faces, shader=shader, layers=2),
                               atol=0, rtol=0)

    target = glsplat.render(ctx, spot.replace(verts=spot.verts + torch.tensor([0.05, 0.0, 0.0])),
                            camera=camera, shader=shader, layers=2).detach()
    verts = spot.verts.clone().requires_grad_(True)
    loss = ((renderer(spot.replace(verts=verts)) - target) ** 2).sum()
    loss.backward()
    assert torch.isfinite(verts.grad).all()
    assert (verts.grad.abs().sum(-1) > 0).sum() > 50

    with_bg = glsplat.Renderer(camera, shader=shader, background=(1.0, 1.0, 1.0), ctx=ctx)(spot)
    torch.testing.assert_close(with_bg, glsplat.over_background(glsplat.render(ctx, spot, camera=camera, shader=shader),
                                                                (1.0, 1.0, 1.0)))


# --- Shaders on a screen-facing quad with known answers -------------------------------------

QUAD_SIZE = 33  # odd: the center pixel's center is the quad's center
QUAD_CAMERA = glsplat.Camera.look_at((0.0, 0.0, 3.0), fov_y=30.0, image_size=(QUAD_SIZE, QUAD_SIZE), near=1.0, far=5.0)
HALF_HEIGHT = 3.0 * math.tan(math.radians(15.0))  # half the view's height at the quad (z = 0)
ALBEDO = torch.tensor([0.6, 0.4, 0.2])
AMBIENT = 0.25
CENTER = QUAD_SIZE // 2


def make_quad(**extra) -> glsplat.Mesh:
    """[-0.5, 0.5]^2 at z = 0, counter-clockwise seen from the camera on +z: normal +z."""
    verts = torch.tensor([[-0.5, -0.5, 0.0], [0.5, -0.5, 0.0], [0.5, 0.5, 0.0], [-0.5, 0.5, 0.0]])
    return glsplat.Mesh(verts, torch.tensor([[0, 1, 2], [0, 2, 3]]), **extra)


def render_quad(ctx, shader, mesh=None, size=QUAD_SIZE, **kwargs):
    camera = QUAD_CAMERA if size == QUAD_SIZE else glsplat.Camera.look_at(
        (0.0, 0.0, 3.0), fov_y=30.0, image_size=(size, size), near=1.0, far=5.0)
    return glsplat.render(ctx, make_quad() if mesh is None else mesh, camera=camera, shader=shader, **kwargs)[0]


def pixel_world(size=QUAD_SIZE):
    """[H, W, 2] world (x, y) on the plane z = 0 seen through each pixel's center."""
    centers = (torch.arange(size) + 0.5) / size * 2 - 1
    x = centers[None, :].expand(size, size) * HALF_HEIGHT
    y = -centers[:, None].expand(size, size) * HALF_HEIGHT
    return torch.stack([x, y], -1)


def interior(img: torch.Tensor, margin: int = 2) -> torch.Tensor:
    return ~near_background(img[None, ..., 3], margin)[0]


def lambert(direction):
    return glsplat.LambertShader([glsplat.DirectionalLight(direction=direction)], ambient=AMBIENT, albedo=ALBEDO)


def test_quad_geometry_is_as_expected(ctx):
    """The set-up the shader tests rely on: the quad covers the middle ~21 x 21 pixels."""
    img = render_quad(ctx, glsplat.UnlitShader(albedo=(1.0, 1.0, 1.0)), hard=True)
    covered = img[..., 3] > 0
    inside = (pixel_world().abs() < 0.5).all(-1)
    assert torch.equal(covered, inside)
    assert 300 < covered.sum() < 600
    assert interior(img).sum() > 200


def test_lambert_directional_facing(ctx):
    img = render_quad(ctx, lambert((0.0, 0.0, 1.0)))
    inner = interior(img)
    expected = ALBEDO * (AMBIENT + 1)
    torch.testing.assert_close(img[inner][:, :3], expected.expand(int(inner.sum()), 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(img[inner][:, 3], torch.ones(int(inner.sum())), atol=1e-5, rtol=0)


def test_lambert_directional_at_60_degrees_and_behind(ctx):
    angle = math.radians(60.0)
    for direction in [(math.sin(angle), 0.0, math.cos(angle)), (0.0, -math.sin(angle), math.cos(angle))]:
        img = render_quad(ctx, lambert(direction))
        inner = interior(img)
        torch.testing.assert_close(img[inner][:, :3], (ALBEDO * (AMBIENT + 0.5)).expand(int(inner.sum()), 3),
                                   atol=1e-5, rtol=0)
    # Not normalized by the caller: the light's direction is normalized by the shader.
    img = render_quad(ctx, lambert((2 * math.sin(angle), 0.0, 2 * math.cos(angle))))
    torch.testing.assert_close(img[CENTER, CENTER, :3], ALBEDO * (AMBIENT + 0.5), atol=1e-5, rtol=0)
    # From behind the quad: ambient only.
    for direction in [(0.0, 0.0, -1.0), (0.3, 0.0, -1.0)]:
        img = render_quad(ctx, lambert(direction))
        inner = interior(img)
        torch.testing.assert_close(img[inner][:, :3], (ALBEDO * AMBIENT).expand(int(inner.sum()), 3),
                                   atol=1e-5, rtol=0)


def test_light_color_and_several_lights(ctx):
    shader = glsplat.LambertShader([glsplat.DirectionalLight(direction=(0, 0, 1), color=(1.0, 0.5, 0.0)),
                                    glsplat.DirectionalLight(direction=(0, 0, -1), color=(9.0, 9.0, 9.0)),
                                    glsplat.DirectionalLight(direction=(0, math.sqrt(3), 1), color=(0.0, 0.0, 1.0))],
                                   ambient=AMBIENT, albedo=ALBEDO)
    img = render_quad(ctx, shader)
    expected = ALBEDO * (AMBIENT + torch.tensor([1.0, 0.5, 0.0]) + torch.tensor([0.0, 0.0, 0.5]))
    torch.testing.assert_close(img[CENTER, CENTER, :3], expected, atol=1e-5, rtol=0)


def test_point_light_headlight(ctx):
    shader = glsplat.LambertShader([glsplat.PointLight()], ambient=AMBIENT, albedo=ALBEDO)
    hard = render_quad(ctx, shader, hard=True)
    soft = render_quad(ctx, shader)
    torch.testing.assert_close(hard[CENTER, CENTER, :3], ALBEDO * (AMBIENT + 1), atol=1e-5, rtol=0)
    torch.testing.assert_close(soft[CENTER, CENTER, :3], ALBEDO * (AMBIENT + 1), atol=1e-3, rtol=0)
    # Elsewhere the light comes in at an angle: cos = distance / |surface point - camera|.
    world = pixel_world()
    cosine = 3.0 / torch.sqrt(world.square().sum(-1) + 9.0)
    covered = hard[..., 3] > 0
    torch.testing.assert_close(hard[covered][:, :3], ALBEDO * (AMBIENT + cosine[covered][:, None]), atol=1e-5, rtol=0)
    assert soft[CENTER - 6, CENTER - 6, 0] < soft[CENTER, CENTER, 0] - 1e-3  # it falls off


def test_point_light_at_a_position(ctx):
    light = torch.tensor([0.3, 0.2, 1.0])
    shader = glsplat.LambertShader([glsplat.PointLight(position=light)], ambient=AMBIENT, albedo=ALBEDO)
    hard = render_quad(ctx, shader, hard=True)
    world = pixel_world()
    to_light = torch.cat([light[:2] - world, torch.ones_like(world[..., :1])], -1)
    cosine = 1.0 / to_light.norm(dim=-1)
    covered = hard[..., 3] > 0
    torch.testing.assert_close(hard[covered][:, :3], ALBEDO * (AMBIENT + cosine[covered][:, None]), atol=1e-5, rtol=0)


def test_phong_highlight(ctx):
    world = pixel_world()
    cosine = 3.0 / torch.sqrt(world.square().sum(-1) + 9.0)  # view direction . normal
    # Reflection . view direction: the view direction itself for a light from +z; for a
    # headlight the reflection of the view direction, at twice its angle.
    for light, r_dot_v in [(glsplat.DirectionalLight(direction=(0.0, 0.0, 1.0)), cosine),
                           (glsplat.PointLight(), 2 * cosine ** 2 - 1)]:
        # specular 0.1: the brightest pixel (0.85) stays below the soft clamp's knee.
        phong = render_quad(ctx, glsplat.PhongShader([light], ambient=AMBIENT, albedo=ALBEDO, specular=0.1,
                                                     shininess=32.0), hard=True)
        plain = render_quad(ctx, glsplat.LambertShader([light], ambient=AMBIENT, albedo=ALBEDO), hard=True)
        # At the center the reflection points straight at the camera: + specular, white.
        torch.testing.assert_close(phong[CENTER, CENTER, :3] - plain[CENTER, CENTER, :3], torch.full((3,), 0.1),
                                   atol=1e-5, rtol=0)
        # Everywhere: + specular * (r . v) ** shininess, the same in every channel.
        covered = plain[..., 3] > 0
        extra = (phong - plain)[covered][:, :3]
        expected = 0.1 * r_dot_v[covered] ** 32
        torch.testing.assert_close(extra, expected[:, None].expand(-1, 3), atol=1e-5, rtol=0)
        assert expected.min() < 0.5 * expected.max()  # the highlight really falls off on the quad
    # Light at 60 degrees: the reflection points away from the camera, no highlight.
    angle = math.radians(60.0)
    light = glsplat.DirectionalLight(direction=(math.sin(angle), 0.0, math.cos(angle)))
    phong = render_quad(ctx, glsplat.PhongShader([light], ambient=AMBIENT, albedo=ALBEDO))
    plain = render_quad(ctx, glsplat.LambertShader([light], ambient=AMBIENT, albedo=ALBEDO))
    torch.testing.assert_close(phong, plain, atol=1e-6, rtol=0)
    # Light from behind: no highlight either (the surface is unlit).
    light = glsplat.DirectionalLight(direction=(0.0, 0.0, -1.0))
    phong = render_quad(ctx, glsplat.PhongShader([light], ambient=AMBIENT, albedo=ALBEDO))
    torch.testing.assert_close(phong[CENTER, CENTER, :3], ALBEDO * AMBIENT, atol=1e-6, rtol=0)


def test_unlit_constant_color(ctx):
    color = torch.tensor([0.1, 0.7, 0.3])
    img = render_quad(ctx, glsplat.UnlitShader(albedo=(0.1, 0.7, 0.3)))
    inner = interior(img)
    torch.testing.assert_close(img[inner][:, :3], color.expand(int(inner.sum()), 3), atol=1e-6, rtol=0)
    # Premultiplied: everywhere, soft edge included, rgb = color * alpha.
    torch.testing.assert_close(img[..., :3], color * img[..., 3:], atol=1e-6, rtol=0)
    assert ((img[..., 3] > 0.05) & (img[..., 3] < 0.95)).sum() > 40


def test_vertex_colors_are_the_albedo(ctx):
    """Corners: bottom-left red, bottom-right green, top-right blue, top-left white."""
    colors = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
    mesh = make_quad(colors=colors)
    size = 65
    hard = render_quad(ctx, glsplat.UnlitShader(), mesh, size=size, hard=True)
    soft = render_quad(ctx, glsplat.UnlitShader(), mesh, size=size)
    rows, cols = torch.nonzero(hard[..., 3] > 0, as_tuple=True)
    top, bottom, left, right = rows.min() + 2, rows.max() - 2, cols.min() + 2, cols.max() - 2
    for (row, col), vertex in zip([(bottom, left), (bottom, right), (top, right), (top, left)], range(4)):
        for img in (hard, soft):
            pixel = img[row, col, :3]
            assert (pixel - colors[vertex]).abs().max() < 0.2, (vertex, pixel)
            assert int((colors - pixel).norm(dim=-1).argmin()) == vertex
    # The center lies on the diagonal 0-2: the average of those two corners.
    c = size // 2
    torch.testing.assert_close(hard[c, c, :3], (colors[0] + colors[2]) / 2, atol=1e-5, rtol=0)
    # Lit shaders use them too: Lambert facing a light of 0.8 (below the soft clamp's knee), no ambient.
    lit = render_quad(ctx, glsplat.LambertShader([glsplat.DirectionalLight(direction=(0, 0, 1), color=(0.8, 0.8, 0.8))],
                                                 ambient=0.0), mesh, size=size)
    torch.testing.assert_close(lit, soft * torch.tensor([0.8, 0.8, 0.8, 1.0]), atol=1e-5, rtol=0)


def test_texture_right_way_up(ctx):
    """Texture row 0 is the top of the image; UV v = 1 is the top (OBJ's convention)."""
    gen = torch.Generator().manual_seed(3)
    texture = torch.rand(4, 4, 3, generator=gen)
    texture[0, 0] = torch.tensor([1.0, 0.0, 0.0])   # top-left: red
    texture[0, 3] = torch.tensor([0.0, 1.0, 0.0])   # top-right: green
    texture[3, 0] = torch.tensor([0.0, 0.0, 1.0])   # bottom-left: blue
    texture[3, 3] = torch.tensor([1.0, 1.0, 0.0])   # bottom-right: yellow
    # Face-varying UVs with their own (permuted) index, as OBJ files have them.
    uvs = torch.tensor([[1.0, 1.0], [0.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    uv_faces = torch.tensor([[1, 3, 0], [1, 0, 2]])  # corners BL, BR, TR / BL, TR, TL
    mesh = make_quad(uvs=uvs, uv_faces=uv_faces, texture=texture)
    size = 65
    for hard in (True, False):
        img = render_quad(ctx, glsplat.UnlitShader(), mesh, size=size, hard=hard)
        rows, cols = torch.nonzero(img[..., 3] > 0.5, as_tuple=True)
        top, bottom, left, right = rows.min() + 2, rows.max() - 2, cols.min() + 2, cols.max() - 2
        torch.testing.assert_close(img[top, left, :3], texture[0, 0], atol=1e-4, rtol=0)
        torch.testing.assert_close(img[top, right, :3], texture[0, 3], atol=1e-4, rtol=0)
        torch.testing.assert_close(img[bottom, left, :3], texture[3, 0], atol=1e-4, rtol=0)
        torch.testing.assert_close(img[bottom, right, :3], texture[3, 3], atol=1e-4, rtol=0)
    # Every texel lands where it should: the pixel nearest each texel's center shows that texel.
    hard = render_quad(ctx, glsplat.UnlitShader(), mesh, size=size, hard=True)
    flat = texture.reshape(16, 3)
    for i in range(4):
        for j in range(4):
            x, y = -0.5 + (j + 0.5) / 4, 0.5 - (i + 0.5) / 4
            col = round((x / HALF_HEIGHT + 1) / 2 * size - 0.5)
            row = round((1 - y / HALF_HEIGHT) / 2 * size - 0.5)
            assert int((flat - hard[row, col, :3]).norm(dim=-1).argmin()) == 4 * i + j


def untextured_meshes() -> dict[str, glsplat.Mesh]:
    """Procedural meshes as users have them: plain triangles, no colors, no UVs; normalized."""
    import trimesh

    made = {"icosphere": trimesh.creation.icosphere(2), "box": trimesh.creation.box((1.0, 0.6, 0.4)),
            "torus": trimesh.creation.torus(0.6, 0.25), "capsule": trimesh.creation.capsule(0.8, 0.3)}
    return {name: glsplat.Mesh(torch.tensor(m.vertices, dtype=torch.float32), torch.tensor(m.faces)).normalized()
            for name, m in made.items()}


def several_lights():
    return [glsplat.DirectionalLight((0.4, 0.8, -0.6)), glsplat.DirectionalLight((-0.5, 0.2, -1.0), (0.8, 0.6, 0.4)),
            glsplat.PointLight()]


@pytest.mark.parametrize("shader", [
    glsplat.LambertShader(), glsplat.PhongShader(), glsplat.UnlitShader(),
    glsplat.LambertShader(several_lights()), glsplat.PhongShader(several_lights(), ambient=0.5, specular=0.6),
    glsplat.UnlitShader(albedo=(1.4, 0.5, 0.0)),
], ids=["lambert", "phong", "unlit", "lambert-3-lights", "phong-3-lights", "unlit-over-1"])
def test_built_in_shaders_give_valid_premultiplied_rgba(ctx, spot, shader):
    """0 <= rgb <= alpha <= 1 everywhere, for every built-in shader, on Spot and untextured meshes."""
    for name, mesh in {"spot": spot, **untextured_meshes()}.items():
        camera = glsplat.Camera.orbit([0.0, 120.0, 240.0], 20.0, 2.5, fov_y=40.0, image_size=(48, 48))
        img = glsplat.render(ctx, mesh, camera, shader=shader, layers=2)
        rgb, alpha = img[..., :3], img[..., 3:]
        assert alpha.min() >= 0 and alpha.max() <= 1 + 1e-6, name
        assert rgb.min() >= 0, name
        assert (rgb <= alpha + 1e-6).all(), f"{name}: rgb exceeds alpha by {(rgb - alpha).max().item():.3f}"


def test_soft_clamp_is_the_identity_below_the_knee_and_keeps_a_gradient():
    x = torch.linspace(-0.5, 5.0, 1101, dtype=torch.float64, requires_grad=True)
    y = glsplat.shading.soft_clamp(x)
    below = x.detach() <= glsplat.shading.KNEE
    assert torch.equal(y[below], x[below]) and (y < 1).all()
    (grad,) = torch.autograd.grad(y.sum(), x)
    assert (grad > 0).all() and (grad <= 1).all()
    assert grad[x.detach() <= 1.5].min() > 0.02  # over-bright by half: still 1/49 of the gradient
    assert (y.diff() > 0).all()


def test_untextured_mesh_reads_over_white_by_default(ctx):
    """Gray, shaded and clearly darker than a white background; the edges darker than the middle."""
    for name, mesh in untextured_meshes().items():
        camera = glsplat.Camera.orbit(30.0, 20.0, 2.5, fov_y=40.0, image_size=(64, 64))
        img = glsplat.render(ctx, mesh, camera, shader=glsplat.PhongShader(), background=(1.0, 1.0, 1.0))[0]
        alpha = glsplat.render(ctx, mesh, camera, shader=glsplat.PhongShader())[0, ..., 3]
        gray = img[alpha > 0.99][:, :3]
        assert gray.max() <= 0.85, name          # every covered pixel stands out from white
        assert gray.std(0).min() > 0.05, name    # shading: not a flat tone
        assert (gray.std(-1) < 1e-4).all(), name  # neutral gray


def test_texture_is_differentiable(ctx):
    texture = torch.rand(4, 4, 3, requires_grad=True)
    mesh = make_quad(uvs=torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]),
                     uv_faces=torch.tensor([[0, 1, 2], [0, 2, 3]]), texture=texture)
    img = render_quad(ctx, glsplat.PhongShader(), mesh)
    img[..., :3].sum().backward()
    assert torch.isfinite(texture.grad).all()
    assert (texture.grad.abs().sum(-1) > 0).all()  # every texel is seen


def test_user_shader_shows_normals(ctx):
    """Any callable Fragments -> straight RGBA works: here normals as colors, on a tilted quad."""
    def normal_shader(frags: glsplat.Fragments) -> torch.Tensor:
        return torch.cat([(frags.normals * 0.5 + 0.5) * frags.mask, frags.mask], -1)

    turn = axis_angle_to_matrix(torch.tensor([0.0, math.radians(30.0), 0.0]))
    quad = make_quad()
    mesh = quad.replace(verts=quad.verts @ turn.T)
    img = render_quad(ctx, normal_shader, mesh)
    normal = turn @ torch.tensor([0.0, 0.0, 1.0])
    assert normal[0] > 0.4  # turned
    inner = interior(img)
    assert inner.sum() > 100
    torch.testing.assert_close(img[inner][:, :3], (normal * 0.5 + 0.5).expand(int(inner.sum()), 3), atol=1e-5, rtol=0)

    # A user shader with its own parameters gets gradients.
    tint = torch.tensor([0.2, 0.4, 0.6], requires_grad=True)
    img = render_quad(ctx, lambda frags: torch.cat([tint * frags.mask, frags.mask], -1))
    img[..., :3].sum().backward()
    torch.testing.assert_close(tint.grad, img[..., 3].sum().detach().expand(3), atol=1e-3, rtol=1e-5)


# --- The image border (guard band) ---------------------------------------------------------

FAR_QUAD = glsplat.Mesh(torch.tensor([[-50.0, -50.0, 0.0], [50.0, -50.0, 0.0], [50.0, 50.0, 0.0], [-50.0, 50.0, 0.0]]),
                        torch.tensor([[0, 1, 2], [0, 2, 3]]))


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("size", [(1, 1), (2, 3), (31, 40)])
def test_frame_filling_surface_is_opaque_to_the_edge(ctx, size, layers):
    """Edge and corner pixels get the taps of the samples outside the frame (without: 0.938, 0.838; 1x1: 0.650)."""
    camera = glsplat.Camera.look_at([0.0, 0.0, 3.0], image_size=size)
    image = glsplat.render(ctx, FAR_QUAD, camera=camera, layers=layers)
    assert image.shape == (1, *size, 4)
    torch.testing.assert_close(image[..., 3], torch.ones(1, *size), atol=1e-6, rtol=0)
    # The public pieces: a raster with the band splats the same image; one without lacks the taps.
    clip = camera.project(FAR_QUAD.verts)
    for border, edge in ((1, 1.0), (0, 0.938)):
        rast = glsplat.rasterize(ctx, clip, FAR_QUAD.faces, size, layers=layers, border=border)
        assert rast.shape[-2:] == (size[0] + 2 * border, size[1] + 2 * border) and rast.image_size == size
        colors = torch.ones(rast.index.shape[0], 4)
        alpha = glsplat.splat(colors, clip, rast, FAR_QUAD.faces)[0, ..., 3]
        assert alpha.shape == size
        if size[0] > 2:
            assert alpha[0, size[1] // 2].item() == pytest.approx(edge, abs=1e-3)


def widened(camera: glsplat.Camera, margin: int) -> glsplat.Camera:
    """The camera's frame with ``margin`` more pixels on every side (its image is the center crop)."""
    height, width = camera.image_size
    scale = torch.tensor([width / (width + 2 * margin), height / (height + 2 * margin), 1.0, 1.0])
    return glsplat.Camera(camera.R, camera.t, scale[:, None] * camera.projection,
                          (height + 2 * margin, width + 2 * margin))


@pytest.mark.parametrize("layers", [1, 2])
def test_edge_pixels_render_and_differentiate_as_interior_ones(ctx, spot, layers):
    """A close-up that crops Spot: each pixel, and the vertex gradient of a loss on the image, equal
    the same pixels inside a wider frame, edges and corners included."""
    camera = glsplat.Camera.look_at([0.3, 0.2, -1.1], fov_y=30.0, image_size=(24, 28), near=0.3, far=5.0)
    margin = 3
    weights = torch.rand(1, 24, 28, 4)
    images, grads = [], []
    for cam, crop in ((camera, slice(None)), (widened(camera, margin), slice(margin, -margin))):
        verts = spot.verts.clone().requires_grad_()
        image = glsplat.render(ctx, spot.replace(verts=verts), camera=cam, layers=layers)[:, crop, crop]
        (image * weights).sum().backward()
        images.append(image.detach())
        grads.append(verts.grad)
    alpha = images[0][0, ..., 3]
    border = torch.cat([alpha[0], alpha[-1], alpha[:, 0], alpha[:, -1]])
    assert (border == 1).sum() > 20  # Spot really crosses the frame
    torch.testing.assert_close(images[0], images[1], atol=2e-5, rtol=0)
    assert grads[0].abs().sum() > 0
    torch.testing.assert_close(grads[0], grads[1], atol=1e-4 * grads[1].abs().max().item(), rtol=1e-3)


# --- Scale: large and small coordinates ----------------------------------------------------

def scaled_render(ctx, spot, scale, dtype):
    mesh = spot.to(dtype=dtype)
    verts = (mesh.verts * scale).requires_grad_()
    eye = torch.tensor([0.0, 0.5, -2.5], dtype=dtype) * scale
    camera = glsplat.Camera.look_at(eye, fov_y=30.0, image_size=(40, 40), near=0.5 * scale, far=5.0 * scale)
    image = glsplat.render(ctx, mesh.replace(verts=verts), camera=camera, shader=glsplat.PhongShader())
    image.square().sum().backward()
    return image.detach(), verts.grad * scale  # the gradient goes as 1 / scale


@pytest.mark.parametrize("dtype, scale", [(torch.float32, 1e10), (torch.float32, 1e-12),
                                          (torch.float64, 1e19), (torch.float64, 1e20)])
def test_scaled_scene_renders_and_differentiates_the_same(ctx, spot, dtype, scale):
    """Normals from ~5e9 (and below ~1e-10) overflowed (underflowed) in float32: a dark image."""
    image, grad = scaled_render(ctx, spot, scale, dtype)
    reference, reference_grad = scaled_render(ctx, spot, 1.0, dtype)
    torch.testing.assert_close(image, reference, atol=1e-4, rtol=0)
    torch.testing.assert_close(grad, reference_grad, atol=1e-3 * reference_grad.abs().max().item(), rtol=1e-3)


@pytest.mark.parametrize("scale", [1e19, 1e20])
def test_float32_scene_beyond_its_range_is_refused(ctx, spot, scale):
    """Squared lengths overflow float32 (before: a dark image at 1e19 with NaN gradients, NaN pixels at 1e20)."""
    with pytest.raises(ValueError, match=r"clip: clip-space corners reach 3.06e\+(19|20), beyond 1e\+18"):
        scaled_render(ctx, spot, scale, torch.float32)


def test_vertex_normals_do_not_depend_on_scale():
    verts = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]])
    faces = torch.tensor([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    normals = glsplat.vertex_normals(verts, faces)
    # A batch of two sizes: each mesh is scaled on its own.
    for scale in (1e-20, 1e20, 3e37):
        both = glsplat.vertex_normals(torch.cat([verts, verts * scale]), faces)
        torch.testing.assert_close(both, torch.cat([normals, normals]), atol=1e-6, rtol=0)


# --- Errors ---------------------------------------------------------------------------------

def test_missing_egl_names_the_packages(monkeypatch):
    def no_egl(*args, **kwargs):
        raise Exception("eglGetDisplay failed (libEGL.so.1: cannot open shared object file)")

    monkeypatch.setattr(moderngl, "create_standalone_context", no_egl)
    with pytest.raises(RuntimeError) as info:
        glsplat.Context()
    message = str(info.value)
    for package in ("libegl1", "libegl-mesa0", "libgl1-mesa-dri"):
        assert package in message
    assert "libEGL.so.1" in message  # the underlying error is kept
    assert isinstance(info.value.__cause__, Exception)


def test_render_needs_a_camera_and_faces(ctx, spot):
    with pytest.raises(TypeError, match="camera"):
        glsplat.render(ctx, spot)
    camera = spot_camera(SPOT_EYES[0])
    # The camera is the third positional argument, as users write it; faces go by keyword.
    torch.testing.assert_close(glsplat.render(ctx, spot, camera), glsplat.render(ctx, spot, camera=camera))
    with pytest.raises(TypeError, match="faces go by keyword"):
        glsplat.render(ctx, spot.verts, spot.faces)
    with pytest.raises(TypeError, match="faces"):
        glsplat.render(ctx, spot.verts, camera=spot_camera(SPOT_EYES[0]))


# --- Spot end to end ------------------------------------------------------------------------

def test_spot_end_to_end(ctx, spot):
    camera = spot_camera(SPOT_EYES[0], size=64)
    # Light and material chosen so that albedo * (ambient + diffuse) + specular <= 1.
    shader = glsplat.PhongShader([glsplat.DirectionalLight(direction=(0.4, 0.8, -0.6), color=(0.7, 0.7, 0.7))],
                                 ambient=0.1, specular=0.2)
    verts = spot.verts.clone().requires_grad_(True)
    img = glsplat.render(ctx, spot.replace(verts=verts), camera=camera, shader=shader)
    assert img.shape == (1, 64, 64, 4) and img.dtype == torch.float32
    alpha = img[..., 3]
    assert 0.1 < alpha.mean() < 0.6
    assert alpha.min() >= 0 and alpha.max() <= 1 + 1e-5
    rgb = img[..., :3]
    assert rgb.min() >= 0 and rgb.max() <= 1 + 1e-5
    assert torch.all(rgb <= alpha[..., None] + 1e-5)  # premultiplied
    # The texture shows: many distinct colors, not one flat tone.
    opaque = rgb[alpha > 0.99]
    assert opaque.std(0).min() > 0.05

    target = img.detach().roll(2, dims=2)
    loss = ((img - target) ** 2).mean()
    loss.backward()
    grad = verts.grad
    assert torch.isfinite(grad).all()
    assert grad.abs().max() > 0
    assert (grad.abs().sum(-1) > 0).sum() > 100
