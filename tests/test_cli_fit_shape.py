"""``glsplat fit-shape``: a tiny fit end to end, and user mistakes reported in one line with exit status 2."""
import re

import pytest
import trimesh

from glsplat.cli import main
from glsplat.mesh import ASSETS


def test_fit_shape_writes_a_closer_mesh_and_a_picture(tmp_path, capsys):
    out = tmp_path / "fits" / "spot_fit.obj"
    status = main(["fit-shape", "spot", "--out", str(out), "--views", "6", "--size", "40", "40", "--steps", "60"])
    assert status == 0
    printed = capsys.readouterr().out
    before, after = map(float, re.search(r"Chamfer distance: ([\d.]+) -> ([\d.]+)", printed).groups())
    assert after < 0.5 * before, printed
    fitted = trimesh.load(out, process=False)
    assert len(fitted.faces) == 1280  # level 2, subdivided once half way
    # Written in the input's coordinates: Spot's own bounding box, not the unit one.
    spot = trimesh.load(ASSETS / "spot" / "spot_triangulated.obj", force="mesh")
    assert abs(fitted.extents.max() - spot.extents.max()) < 0.25 * spot.extents.max()
    assert out.with_suffix(".png").stat().st_size > 1000


@pytest.mark.parametrize("options, message", [
    (["missing.obj", "--out", "fit.obj"], "no such mesh file"),
    (["spot", "--out", "fit.obj", "--views", "0"], "--views"),
    (["spot", "--out", "fit.obj", "--size", "4", "64"], "--size"),
    (["spot", "--out", "fit.obj", "--steps", "0"], "--steps"),
    (["spot", "--out", "fit.obj", "--lr", "-1"], "--lr"),
    (["spot", "--out", "fit.txt"], "cannot write .txt"),
])
def test_user_mistakes_are_one_line_errors(tmp_path, monkeypatch, capsys, options, message):
    monkeypatch.chdir(tmp_path)
    assert main(["fit-shape", *options]) == 2
    err = capsys.readouterr().err
    assert err.startswith("glsplat: error: ") and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "fit.obj").exists()


def test_unreadable_mesh_is_a_one_line_error(tmp_path, capsys):
    bad = tmp_path / "bad.ply"
    bad.write_text("this is not a mesh\n")
    assert main(["fit-shape", str(bad), "--out", str(tmp_path / "fit.obj")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("glsplat: error: ") and "bad.ply" in err and "Traceback" not in err, err
