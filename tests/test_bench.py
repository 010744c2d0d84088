"""benchmarks/bench.py without the optional shared meshes: absent meshes are skipped, results kept."""
from conftest import load_script


def test_absent_mesh_rows_are_skipped_and_the_results_file_is_left_alone(tmp_path, monkeypatch, capsys):
    bench = load_script("benchmarks/bench.py")
    monkeypatch.setitem(bench.MESHES, "bunny", str(tmp_path / "absent" / "stanford-bunny.obj"))
    out = tmp_path / "results.md"
    out.write_text("the last good table")
    assert bench.main(["--meshes", "bunny", "--sizes", "64", "--layers", "1", "--batch", "1", "--out", str(out)]) == 2
    assert "skipping the bunny rows" in capsys.readouterr().out
    assert out.read_text() == "the last good table"


def test_a_failed_row_does_not_overwrite_the_results(tmp_path, monkeypatch):
    bench = load_script("benchmarks/bench.py")
    monkeypatch.setattr(bench, "run_worker", lambda config, timeout: {"config": config, "error": "worker died"})
    out = tmp_path / "results.md"
    out.write_text("the last good table")
    assert bench.main(["--meshes", "spot", "--sizes", "64", "--layers", "1", "--batch", "1", "--out", str(out)]) == 1
    assert out.read_text() == "the last good table"
