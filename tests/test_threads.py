"""A Context works from any thread (serialized by a lock); across fork it raises instead of hanging.

DataLoader workers: with 'spawn' each worker re-creates the dataset's context (a Context pickles
as its settings); with 'fork' after the parent made a context, the workers raise a clear error
(Mesa's llvmpipe would hang: its threads do not survive the fork); with 'fork' from a parent
that never made one (but ran torch's intra-op threads, as a training loop does), each worker makes
its own: DataLoader runs its workers with one torch thread. Other forked processes hang in torch's
own ops once the parent used those threads, hence the README's advice: 'spawn'.
"""
import os
import pickle
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

import glsplat

ROOT = Path(__file__).resolve().parents[1]
SIZE = (12, 12)
TRI = torch.tensor([[-0.5, -0.5, 0.0], [0.5, -0.5, 0.0], [0.0, 0.5, 0.0]])
FACES = torch.tensor([[0, 1, 2]])


def camera(step: int = 0) -> glsplat.Camera:
    return glsplat.Camera.look_at(eye=(0.1 * step, 0.0, 3.0), image_size=SIZE, near=1.0, far=5.0)


class Views(Dataset):
    """Renders of a triangle from a few eyes; the context travels with the dataset."""

    def __init__(self, ctx):
        self.ctx = ctx

    def __len__(self):
        return 4

    def __getitem__(self, i):
        return glsplat.render(self.ctx, TRI, camera(i), faces=FACES)[0].detach(), os.getpid()


def test_threads_share_one_context(ctx):
    expected = [glsplat.render(ctx, TRI, camera(i), faces=FACES) for i in range(4)]
    results, errors = {}, []

    def work(i):
        try:
            for _ in range(3):
                results[i] = glsplat.render(ctx, TRI, camera(i), faces=FACES)
        except Exception as error:  # re-raised below, in the test's thread
            errors.append(error)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for i in range(4):
        assert results[i][..., 3].sum() > 0
        torch.testing.assert_close(results[i], expected[i])
    torch.testing.assert_close(glsplat.render(ctx, TRI, camera(0), faces=FACES), expected[0])


def test_context_pickles_as_its_settings(ctx):
    copy = pickle.loads(pickle.dumps(ctx))
    assert copy is not ctx and copy.device == ctx.device
    torch.testing.assert_close(glsplat.render(copy, TRI, camera(), faces=FACES), glsplat.render(ctx, TRI, camera(), faces=FACES))
    copy.release()


def test_forked_dataloader_workers_raise_instead_of_hanging(ctx):
    loader = DataLoader(Views(ctx), batch_size=2, num_workers=2, multiprocessing_context="fork", timeout=60)
    with pytest.raises(RuntimeError, match="does not survive fork.*multiprocessing_context='spawn'"):
        list(loader)


def test_spawned_dataloader_workers_get_their_own_context(ctx):
    loader = DataLoader(Views(ctx), batch_size=2, num_workers=2, multiprocessing_context="spawn", timeout=120)
    batches = list(loader)
    images = torch.cat([batch for batch, _ in batches])
    pids = torch.cat([pid for _, pid in batches])
    assert os.getpid() not in pids.tolist()
    for i in range(4):
        torch.testing.assert_close(images[i], glsplat.render(ctx, TRI, camera(i), faces=FACES)[0])


def test_forked_workers_of_a_parent_without_a_context_make_their_own():
    """Needs a fresh interpreter: this test process already holds contexts. The parent first runs
    ops large enough for torch's intra-op threads, as a training step would."""
    script = textwrap.dedent("""
        import os, sys, torch
        from torch.utils.data import DataLoader
        sys.path.insert(0, os.path.join(sys.argv[1], "tests"))
        import test_threads as t
        import glsplat

        assert torch.get_num_threads() > 1 or os.cpu_count() == 1
        (torch.rand(1024, 1024) @ torch.rand(1024, 1024)).exp().sum()

        class Lazy(t.Views):
            def __getitem__(self, i):
                if self.ctx is None:
                    self.ctx = glsplat.Context()
                return super().__getitem__(i)

        loader = DataLoader(Lazy(None), batch_size=2, num_workers=2, multiprocessing_context="fork", timeout=60)
        images = torch.cat([batch for batch, _ in loader])
        assert (images[..., 3].sum((1, 2)) > 0).all()
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", script, str(ROOT)], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.stdout.strip().endswith("ok"), result.stderr[-2000:]
