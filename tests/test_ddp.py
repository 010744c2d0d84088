"""demos/train_ddp.py under torchrun (2 CPU processes, gloo) against the same run in one process."""
import json
import os
import subprocess
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
ARGS = ["--size", "32", "--steps", "12", "--lr", "0.02"]


def run(tmp_path, name, launcher, views):
    out = tmp_path / f"{name}.json"
    # The demo must import this checkout's glsplat, whatever is installed.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    command = [*launcher, str(ROOT / "demos" / "train_ddp.py"), *ARGS, "--views-per-rank", str(views), "--out", str(out)]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return json.loads(out.read_text())


def test_two_ranks_stay_in_step_and_learn_like_one_process(tmp_path):
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    two = run(tmp_path, "ddp", torchrun, views=2)
    one = run(tmp_path, "single", [sys.executable], views=4)
    assert two["world_size"] == 2 and one["world_size"] == 1
    assert two["param_spread"] == 0.0  # DDP's averaged gradients keep the ranks identical
    losses, reference = two["losses"], one["losses"]
    assert losses[-1] < 0.3 * losses[0]
    for step, (a, b) in enumerate(zip(losses, reference)):
        assert abs(a - b) <= 0.02 * b + 1e-6, f"step {step}: 2 ranks {a}, 1 process {b}"
