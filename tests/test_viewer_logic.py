"""The viewer's window-free logic: camera control, probed render, gradients, arrows, panels, worker, CLI."""
import dataclasses
import math
import time

import numpy as np
import pytest
import torch
from PIL import Image

import glsplat
import glsplat.images
from glsplat.cli import main, orbit_camera
from glsplat.viewer import (PANELS, FitProblem, ImageTarget, OrbitController, OrbitView, PoseTarget, Request,
                            Worker, compose, vertex_arrows)
from glsplat.viewer.arrows import to_pixels
from glsplat.viewer.panels import dimmed, image_heat_panel, position_heat_panel
from glsplat.viewer.probe import probed_render

SIZE = (64, 64)


@pytest.fixture(scope="module")
def camera():
    return OrbitView().camera(SIZE)


@pytest.fixture(scope="module")
def shifted(ctx, spot):
    """Target = Spot moved 0.1 along world +x, which the home view sees as moving left."""
    return FitProblem(spot, PoseTarget(0.0, 0.0, (0.1, 0.0, 0.0)), SIZE, ctx=ctx)


def test_home_view_is_glsplat_renders_first_view():
    home = OrbitView().camera((32, 32))
    reference = orbit_camera(0.0, 15.0, (32, 32))
    assert torch.allclose(home.full_matrix(), reference.full_matrix(), atol=1e-5)


def test_orbit_pan_zoom_reset():
    control = OrbitController(viewport_height=400)
    eye = control.view.eye()
    control.orbit(100, 0)
    assert control.view.azimuth == pytest.approx(math.radians(40))
    assert control.view.eye().norm().item() == pytest.approx(eye.norm().item(), rel=1e-5)
    control.orbit(0, 1e6)
    assert control.view.elevation == pytest.approx(math.radians(89))

    control.reset()
    camera = control.camera((400, 400))
    control.pan(40, 0)
    # Dragging right moves the scene right: the target slides to the camera's left, in its image plane.
    shift = torch.tensor(control.view.target)
    assert (shift @ camera.R[0, 0].float()) < 0
    assert abs(shift @ camera.R[0, 2].float()) < 1e-6
    # ... and the point under the cursor follows it: the origin moves 40 pixels right.
    moved = to_pixels(control.camera((400, 400)), torch.zeros(1, 3))[0]
    assert moved[0].item() == pytest.approx(200 + 40, abs=0.5)

    control.zoom(2)
    assert control.view.distance == pytest.approx(2.5 * 0.81)
    control.reset()
    assert control.view == OrbitView()


def test_probed_render_is_glsplats_render(ctx, spot, camera):
    shader = glsplat.PhongShader()
    probe = probed_render(ctx, spot, camera, shader, layers=2)
    expected = glsplat.render(ctx, spot, camera=camera, shader=shader, layers=2)
    # The same up to rounding: the probe frames the interpolated points for the guard band, the
    # render the clip-space corners before interpolating.
    torch.testing.assert_close(probe.image, expected, rtol=0, atol=1e-5)
    assert probe.buffers.back[..., 3].max() > 0  # two layers: samples behind the surface exist


def test_vertex_gradients_and_arrows_follow_finite_differences(shifted, camera):
    snapshot = shifted.evaluate(camera)
    # Under a pose, dLoss/dtranslation is the sum of the vertex gradients; compare it with
    # central differences of the loss itself.
    step = 0.02

    def loss(t):
        shifted.params[1].data[:] = t
        return shifted.evaluate(camera).loss

    fd = torch.tensor([(loss(step * e) - loss(-step * e)) / (2 * step) for e in torch.eye(3)])
    shifted.params[1].data.zero_()
    assert fd[0] < 0  # the target lies along +x
    total = snapshot.vert_grad.sum(0)
    assert torch.nn.functional.cosine_similarity(total, fd, 0) > 0.95

    arrows = vertex_arrows(camera, snapshot.verts, snapshot.vert_grad, snapshot.visible)
    assert 50 < len(arrows.start) <= 300
    center = snapshot.verts.mean(0, keepdim=True)
    expected = (to_pixels(camera, center - 1e-3 * fd / fd.norm()) - to_pixels(camera, center))[0]
    assert expected[0] < 0  # world +x is screen left from the home view
    drawn = arrows.end - arrows.start
    # With edge-glued silhouettes (the default) a silhouette's gradient sits on its contour edges'
    # vertices, each along its edge's normal: fewer arrows (137 vs 288), which sum less exactly to
    # the translation than the vertex gradients do (cosine 0.90, strength agreeing 0.56; with
    # silhouette="splat" 0.9999 and 0.74; the vertex gradients' sum above: 0.9997 either way).
    assert torch.nn.functional.cosine_similarity(drawn.sum(0), expected, 0) > 0.85
    agreeing = ((drawn @ expected > 0).float() * arrows.strength).sum() / arrows.strength.sum()
    assert agreeing > 0.5
    lengths = drawn.norm(dim=-1)
    assert lengths.max().item() == pytest.approx(0.08 * 64, rel=1e-4)


def test_heat_maps_are_hot_exactly_where_the_gradient_is(shifted, camera):
    snapshot = shifted.evaluate(camera)
    base = dimmed(snapshot)
    for panel, values in ((image_heat_panel, snapshot.image_grad.norm(dim=-1)),
                          (position_heat_panel, snapshot.position_grad.norm(dim=-1))):
        pixels = panel(snapshot).pixels
        changed = np.abs(pixels - base).max(-1) > 1e-6
        assert values.count_nonzero() > 20
        assert np.array_equal(changed, values.numpy() > 0)


def test_optimizing_lowers_the_loss(ctx, spot, camera):
    for mode in ("pose", "vertices"):
        problem = FitProblem(spot, PoseTarget(0.0, 0.0, (0.1, 0.0, 0.0)), SIZE, mode=mode, ctx=ctx)
        losses = []
        for _ in range(8):
            losses.append(problem.evaluate(camera).loss)
            problem.step()
        assert losses[-1] < 0.85 * losses[0], mode
        problem.reset()
        assert problem.evaluate(camera).loss == pytest.approx(losses[0])


def test_every_panel_composes(shifted, camera):
    snapshot = shifted.evaluate(camera)
    frames = []
    for panel in PANELS:
        frame = compose(panel.make(snapshot), (96, 128), panel.name, ["status"], [0.3, 0.2, 0.1])
        assert frame.shape == (96, 128, 3) and frame.dtype == np.uint8
        frames.append(frame)
    assert len({frame.tobytes() for frame in frames}) == len(PANELS)
    arrows = next(panel for panel in PANELS if panel.name == "arrows").make(snapshot)
    plain = dataclasses.replace(arrows, arrows=None)
    assert (compose(arrows, (96, 96), "", [], []) != compose(plain, (96, 96), "", [], [])).any()


def test_loss_plot_leaves_the_buffer_grids_alpha_edge_tile_alone(shifted, camera):
    snapshot = shifted.evaluate(camera)
    for panel in PANELS:
        image = panel.make(snapshot)
        with_plot = compose(image, (192, 192), "", [], [0.3, 0.2, 0.1])
        without = compose(image, (192, 192), "", [], [])
        corner = (with_plot[150:, 140:] != without[150:, 140:]).any()
        assert corner == (panel.name != "buffers"), panel.name


def test_image_target(tmp_path, ctx, spot, camera):
    with torch.no_grad():
        render = glsplat.render(ctx, spot, camera=camera, shader=glsplat.PhongShader(), layers=2)
    rgba = render[0].clamp(0, 1)
    straight = torch.cat([rgba[..., :3] / rgba[..., 3:].clamp(min=1e-6), rgba[..., 3:]], -1)
    Image.fromarray((straight * 255 + 0.5).byte().numpy(), "RGBA").save(tmp_path / "rgba.png")
    opaque = glsplat.over_background(render, (1.0, 1.0, 1.0))[0, ..., :3].clamp(0, 1)
    Image.fromarray((opaque * 255 + 0.5).byte().numpy()).resize((128, 128)).save(tmp_path / "rgb.png")

    for name in ("rgba.png", "rgb.png"):
        target = ImageTarget.load(tmp_path / name, SIZE)
        problem = FitProblem(spot, target, SIZE, ctx=ctx)
        assert problem.evaluate(camera).loss < 2e-3, name  # the render of the same pose matches
    assert ImageTarget.load(tmp_path / "rgb.png", SIZE).image.shape == (*SIZE, 3)
    with pytest.raises(FileNotFoundError, match="no such target image"):
        ImageTarget.load(tmp_path / "missing.png", SIZE)


def test_image_target_at_its_own_pose_stays_there(ctx, tmp_path):
    """From the pose glsplat render drew, the viewer's pose optimization stays put (it drifted 6
    degrees in 150 steps, from 0: render clamped over-exposed Phong into an RGB file), and
    init_rotation starts it elsewhere, from where it heads back."""
    import trimesh

    made = trimesh.util.concatenate([trimesh.creation.box((0.6, 0.4, 0.3)),
                                     trimesh.creation.capsule(0.4, 0.12).apply_translation((0.3, 0.3, 0.1))])
    mesh = glsplat.Mesh(torch.tensor(made.vertices, dtype=torch.float32), torch.tensor(made.faces)).normalized()
    size, camera = (48, 48), OrbitView().camera((48, 48))
    with torch.no_grad():
        image = glsplat.render(ctx, mesh, camera, shader=glsplat.PhongShader())
    glsplat.images.save_image(tmp_path / "target.png", image[0])
    for start, within in [(0.0, 1.0), (15.0, 7.5)]:  # from 15 degrees: at least half way back
        problem = FitProblem(mesh, ImageTarget.load(tmp_path / "target.png", size), size, ctx=ctx,
                             init_rotation=(0.0, math.radians(start), 0.0))
        for _ in range(100 if start else 60):
            problem.evaluate(camera)
            problem.step()
        assert math.degrees(problem.params[0].detach().norm()) < within, start


def test_worker_answers_and_optimizes_off_thread(spot, camera):
    problem = FitProblem(spot, PoseTarget(0.0, 0.0, (0.1, 0.0, 0.0)), SIZE)  # its context: the worker's own
    worker = Worker(problem)
    worker.start()
    try:
        version = worker.submit(Request(camera))
        assert worker.wait(version, 60)
        snapshot, answered, losses = worker.latest()
        assert answered == version and snapshot.step == 0 and losses == []
        worker.submit(Request(camera, optimize=True))
        deadline = time.monotonic() + 60
        while len(worker.latest()[2]) < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        losses = worker.latest()[2]
        assert len(losses) >= 4 and losses[-1] < losses[0]
        version = worker.submit(Request(camera, resets=1))
        assert worker.wait(version, 60)
        snapshot, _, losses = worker.latest()
        assert snapshot.step == 0 and losses == []
    finally:
        worker.stop()
    assert worker.error is None
    # The worker's context was released on stop, through Context.release; any later use says so.
    with pytest.raises(RuntimeError, match="this context was released"):
        with problem.ctx.current():
            pass
    with pytest.raises(RuntimeError, match="this context was released"):
        problem.evaluate(camera)


def test_cli_errors_are_one_line(monkeypatch, capsys, tmp_path):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    cases = [
        (["view", str(tmp_path / "missing.obj")], "no such mesh file"),
        (["view", "spot", "--target", str(tmp_path / "missing.png")], "no such target image"),
        (["view", "spot", "--target-pose", "1", "2", "3"], "AZ EL or AZ EL TX TY TZ"),
        (["view", "spot", "--size", "32", "32"], "xvfb-run"),
        # Checked before any window opens (they were a worker's RuntimeError, an X error, a stretch).
        (["view", "spot", "--target-pose", "nan", "0"], "--target-pose takes finite numbers"),
        (["view", "spot", "--size", "100000", "100000"], "--size must be between 8 and 4096"),
        (["view", "spot", "--target", str(tmp_path / "wide.png")], "another aspect than --size 256 256"),
        (["view", "spot", "--target", str(tmp_path / "dot.png")], "--target"),
        (["view", "spot", "--init-rotation", "0", "inf", "0"], "--init-rotation"),
    ]
    Image.new("RGBA", (30, 20)).save(tmp_path / "wide.png")
    Image.new("RGBA", (1, 1)).save(tmp_path / "dot.png")
    for argv, message in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err


def test_cli_help_lists_the_keys(capsys):
    with pytest.raises(SystemExit):
        main(["view", "--help"])
    out = capsys.readouterr().out
    for key in ("Tab", "Esc / Q", "left drag", "scroll", " O ", " P ", " R "):
        assert key in out
    assert all(f"panel '{panel.name}'" in out for panel in PANELS)


def test_the_key_table_is_the_dispatch():
    """Every key keys.COMMANDS documents reaches its Viewer method (Shift its shift_action), and the
    window dispatches no key the table (or a panel) does not name. Without a window: the methods
    are recorded, not run."""
    from glsplat.viewer.app import KEY_NAMES, Viewer
    from glsplat.viewer.keys import COMMANDS

    assert set(KEY_NAMES.values()) == {key for command in COMMANDS for key in command.keys} | {p.key for p in PANELS}
    called = []
    viewer = object.__new__(Viewer)  # no window, no worker
    viewer.panel, viewer.window = 0, None
    for command in COMMANDS:
        for action in filter(None, (command.action, command.shift_action)):
            assert callable(getattr(Viewer, action)), action
            setattr(viewer, action, lambda action=action: called.append(action))
    for command in COMMANDS:
        for key in command.keys:
            for shift in (False, True):
                called.clear()
                viewer.press(key, shift=shift)
                assert called == [command.shift_action if shift and command.shift_action else command.action], key
    called.clear()
    viewer.press("KP_3")
    viewer.press("X")  # bound to nothing
    assert called == [] and PANELS[viewer.panel].key == "3"
