"""The ``glsplat`` command line: render, fit-pose, and one-line errors for user mistakes.

Commands that render run as subprocesses of the installed console script: each makes its own
OpenGL context, and a process must not mix two (the tests' session context is in this one).
Mistakes caught before any rendering run in-process through ``glsplat.cli.main``.
"""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from glsplat.cli import main

GLSPLAT = Path(sys.executable).with_name("glsplat")


def glsplat(*args, cwd):
    return subprocess.run([str(GLSPLAT), *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=300)


def rotation_degrees(pose_file: Path) -> float:
    rotation = np.array(json.loads(pose_file.read_text())["rotation"])
    return float(np.degrees(np.arccos(np.clip((np.trace(rotation) - 1) / 2, -1, 1))))


@pytest.fixture
def untextured_obj(tmp_path) -> Path:
    """A plain OBJ as users have them: no UVs, no colors; a box with a capsule off one corner, so
    every turn changes its silhouette."""
    import trimesh

    box = trimesh.creation.box(extents=(0.6, 0.4, 0.3))
    capsule = trimesh.creation.capsule(height=0.4, radius=0.12, count=(12, 12))
    capsule.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, (1, 0, 0)))
    capsule.apply_translation((0.3, 0.3, 0.1))
    path = tmp_path / "thing.obj"
    trimesh.util.concatenate([box, capsule]).export(path)
    return path


def test_render_then_fit_pose_round_trip_on_an_untextured_mesh(tmp_path, untextured_obj):
    """render's default PNG keeps alpha, so fit-pose recovers the pose of a gray untextured mesh."""
    done = glsplat("render", untextured_obj, "--out", "target.png", "--size", "64", "64", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    target = np.asarray(Image.open(tmp_path / "target.png"))
    assert target.shape == (64, 64, 4) and 0.1 < (target[..., 3] > 127).mean() < 0.6
    done = glsplat("fit-pose", untextured_obj, "--target", "target.png", "--init-rotation", "0", "30", "0",
                   "--steps", "100", "--lr", "0.05", "--out", "pose.json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert rotation_degrees(tmp_path / "pose.json") < 2.0
    assert "silhouette IoU" in done.stdout


def test_render_options(tmp_path):
    done = glsplat("render", "spot", "--out", "a.jpg", "--size", "32", "32", "--azimuth", "90", "--no-cull",
                   "--views", "2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    side, back = (np.asarray(Image.open(tmp_path / f"a_{i}.jpg")).astype(float) for i in range(2))
    assert side.shape == (32, 32, 3)  # JPEG: composited over white
    done = glsplat("render", "spot", "--out", "b.png", "--size", "32", "32", "--azimuth", "90",
                   "--background", "black", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    black = np.asarray(Image.open(tmp_path / "b.png")).astype(float)
    assert black.shape == (32, 32, 3) and black[0, 0].max() == 0
    inside = black.min(-1) > 120  # well inside Spot, where the background does not show
    assert inside.mean() > 0.1
    assert np.abs(side[inside] - black[inside]).mean() < 20  # the same view: azimuth 90 either way
    assert np.abs(side - back).mean() > 5


def test_render_and_fit_pose_to_the_render(tmp_path):
    """fit-pose recovers the identity from a 20-degree start, given glsplat render's RGB image."""
    done = glsplat("render", "spot", "--out", "target.png", "--size", "48", "40", "--background", "white", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    target = np.asarray(Image.open(tmp_path / "target.png"))
    assert target.shape == (48, 40, 3)
    assert (target < 250).any(axis=-1).mean() > 0.1  # Spot covers a good part of the white image

    done = glsplat("fit-pose", "spot", "--target", "target.png", "--init-rotation", "0", "20", "0",
                   "--steps", "60", "--out", "pose.json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    pose = json.loads((tmp_path / "pose.json").read_text())
    rotation = np.array(pose["rotation"])
    angle = np.degrees(np.arccos(np.clip((np.trace(rotation) - 1) / 2, -1, 1)))
    assert angle < 3.0
    assert pose["final_loss"] < 0.25 * pose["initial_loss"]
    assert np.asarray(Image.open(tmp_path / "pose.png")).shape == (48, 3 * 40, 3)


def test_fit_pose_to_a_target_pose(tmp_path):
    done = glsplat("fit-pose", "spot", "--target-rotation", "0", "-25", "10", "--target-translation", "0.05", "0", "0",
                   "--size", "48", "48", "--steps", "60", "--out", "out/pose.json", "--image", "cmp.png", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    pose = json.loads((tmp_path / "out" / "pose.json").read_text())
    assert pose["rotation_error_degrees"] < 3.0
    assert pose["translation_error"] < 0.02
    assert (tmp_path / "cmp.png").is_file()
    assert "rotation error" in done.stdout


def test_fit_pose_never_writes_its_picture_over_the_target(tmp_path, untextured_obj):
    """--out t.json next to --target t.png: the default picture t.png would destroy the target."""
    assert glsplat("render", untextured_obj, "--out", "t.png", "--size", "32", "32", cwd=tmp_path).returncode == 0
    before = (tmp_path / "t.png").read_bytes()
    done = glsplat("fit-pose", untextured_obj, "--target", "t.png", "--out", "t.json", cwd=tmp_path)
    assert done.returncode == 2
    assert "would overwrite the target" in done.stderr
    assert (tmp_path / "t.png").read_bytes() == before
    assert not (tmp_path / "t.json").exists()


def test_console_script_reports_a_missing_file_in_one_line(tmp_path):
    done = glsplat("fit-pose", "nope.obj", "--target-rotation", "0", "0", "0", "--out", "p.json", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["glsplat: error: no such mesh file: nope.obj"]


@pytest.fixture
def files(tmp_path):
    (tmp_path / "bad.obj").write_text("this is not\na mesh\n")
    (tmp_path / "bad.ply").write_bytes(b"\x00\x01garbage")
    (tmp_path / "notimage.png").write_text("not a png")
    Image.new("RGB", (30, 20), "white").save(tmp_path / "t.png")
    Image.new("RGBA", (1, 1)).save(tmp_path / "dot.png")
    (tmp_path / "folder").mkdir()
    return tmp_path


@pytest.mark.parametrize("argv, message", [
    (["render", "{d}/missing.obj", "--out", "{d}/x.png"], "no such mesh file"),
    (["render", "{d}/bad.obj", "--out", "{d}/x.png"], "bad.obj"),
    (["render", "{d}/bad.ply", "--out", "{d}/x.png"], "bad.ply"),
    (["render", "spot", "--out", "{d}/x.png", "--size", "0", "64"], "--size"),
    (["fit-pose", "{d}/bad.obj", "--target-rotation", "0", "0", "0", "--out", "{d}/p.json"], "bad.obj"),
    (["fit-pose", "spot", "--target", "{d}/missing.png", "--out", "{d}/p.json"], "no such target image"),
    (["fit-pose", "spot", "--target", "{d}/notimage.png", "--out", "{d}/p.json"], "could not read an image"),
    (["fit-pose", "spot", "--target", "{d}/t.png", "--size", "64", "64", "--out", "{d}/p.json"], "does not match"),
    (["fit-pose", "spot", "--target-rotation", "0", "0", "0", "--size", "4", "64", "--out", "{d}/p.json"], "--size"),
    (["fit-pose", "spot", "--target-rotation", "0", "0", "0", "--steps", "0", "--out", "{d}/p.json"], "--steps"),
    (["fit-pose", "spot", "--target-rotation", "0", "0", "0", "--lr", "-1", "--out", "{d}/p.json"], "--lr"),
    (["fit-pose", "spot", "--target-rotation", "0", "0", "0", "--layers", "0", "--out", "{d}/p.json"], "--layers"),
    # Each was a traceback or a message that did not name the option.
    (["render", "spot", "--out", "{d}/folder"], "--out: {d}/folder is a directory"),
    (["fit-pose", "spot", "--target-rotation", "0", "0", "0", "--out", "{d}/folder"], "--out: {d}/folder is a directory"),
    (["fit-shape", "spot", "--out", "{d}/folder"], "--out: {d}/folder is a directory"),
    (["render", "spot", "--out", "{d}/x"], "--out: {d}/x: the name has no file extension; use .png"),
    (["fit-pose", "spot", "--target-rotation", "0", "0", "0", "--out", "{d}/p.json", "--image", "{d}/c.xyz"], "--image"),
    (["render", "spot", "--out", "{d}/x.png", "--elevation", "90"], "--elevation must be strictly between"),
    (["fit-pose", "spot", "--target-rotation", "0", "0", "0", "--elevation", "-90", "--out", "{d}/p.json"], "--elevation"),
    (["fit-pose", "spot", "--target", "{d}/dot.png", "--out", "{d}/p.json"], "--target: {d}/dot.png is 1 x 1 pixels"),
    (["render", "spot", "--out", "{d}/x.jpg", "--background", "transparent"], "no alpha channel"),
    (["render", "spot", "--out", "{d}/x.png", "--background", "nope"], "--background"),
])
def test_user_mistakes_give_one_line_and_status_2(files, capsys, argv, message):
    status = main([arg.format(d=files) for arg in argv])
    err = capsys.readouterr().err
    assert status == 2
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("glsplat: error: ") and message.format(d=files) in err, err
    assert not (files / "p.json").exists()


def test_fit_pose_needs_a_target(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit-pose", "spot", "--out", "p.json"])
    assert exit_info.value.code == 2
    assert "--target" in capsys.readouterr().err


def test_python_dash_m_glsplat_is_the_command_line():
    done = subprocess.run([sys.executable, "-m", "glsplat", "render", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "--out" in done.stdout


def test_version_is_the_installed_distributions():
    import importlib.metadata

    import glsplat

    assert glsplat.__version__ == importlib.metadata.version("glsplat")


FIT_POSE_SMALL = ["fit-pose", "spot", "--target-rotation", "0", "-3", "0", "--size", "32", "32", "--steps", "4",
                  "--out", "p.json"]


def test_quiet_prints_only_the_results(tmp_path):
    done = glsplat(*FIT_POSE_SMALL, "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].startswith("loss ") and "silhouette IoU" in done.stdout
    assert done.stderr == ""


def run_in_a_terminal(args, cwd) -> str:
    """The console script's output (stdout and stderr) as a terminal would show it."""
    import fcntl
    import os
    import pty
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 24 x 100 characters
    process = subprocess.Popen([str(GLSPLAT), *args], cwd=cwd, stdin=follower, stdout=follower, stderr=follower)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    process.wait(timeout=300)
    os.close(leader)
    return b"".join(chunks).decode(errors="replace")


def test_progress_bar_on_a_terminal(tmp_path):
    shown = run_in_a_terminal(FIT_POSE_SMALL, tmp_path)
    assert "fit-pose" in shown and "4/4" in shown and "loss=" in shown, shown
    shown = run_in_a_terminal([*FIT_POSE_SMALL, "--quiet"], tmp_path)
    assert "4/4" not in shown and "loss " in shown, shown


def test_fit_pose_warns_when_the_mesh_matches_an_rgb_targets_background(capsys):
    from glsplat.cli.fit_pose import warn_if_mesh_matches_background

    image = torch.zeros(1, 8, 8, 4)
    image[:, 2:6, 2:6] = torch.tensor([0.95, 0.95, 0.95, 1.0])  # a near-white mesh, premultiplied
    warn_if_mesh_matches_background(image, (1.0, 1.0, 1.0))
    err = capsys.readouterr().err
    assert err.startswith("glsplat: warning: --target has no alpha") and err.count("\n") == 1
    image[..., :3] *= 0.6  # a gray mesh: no warning
    warn_if_mesh_matches_background(image, (1.0, 1.0, 1.0))
    assert capsys.readouterr().err == ""
