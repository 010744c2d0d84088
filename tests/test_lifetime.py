"""Hundreds of renders with changing meshes and sizes keep GL objects and memory flat.

The loop is benchmarks/lifetime.py's (which runs the 10,000-render version).
"""
import gc

import glsplat
from conftest import load_script

lifetime = load_script("benchmarks/lifetime.py")

WARMUP, RENDERS = 100, 300
# Allocator noise over 200 small renders is well under this; a leaked G-buffer pair per
# render would be ~200 x 2 x 48 x 48 x 16 bytes = 15 MiB, a leaked context 4 MiB each.
RSS_SLACK_MB = 6.0


def test_gl_objects_and_memory_stay_flat():
    with glsplat.Context() as ctx:
        samples = {}
        for done in lifetime.renders(ctx, RENDERS):
            if done in (WARMUP, RENDERS):
                gc.collect()
                samples[done] = (lifetime.live_gl_objects(), lifetime.rss_mb())
    (objects_warm, rss_warm), (objects_end, rss_end) = samples[WARMUP], samples[RENDERS]
    assert objects_end == objects_warm
    assert rss_end - rss_warm < RSS_SLACK_MB, f"RSS grew from {rss_warm:.1f} to {rss_end:.1f} MiB"


def test_contexts_created_and_dropped_free_their_memory():
    def make_and_drop():
        ctx = glsplat.Context()
        for _ in lifetime.renders(ctx, 1):
            pass

    make_and_drop()
    gc.collect()
    before = lifetime.rss_mb()
    for _ in range(10):
        make_and_drop()
    gc.collect()
    assert lifetime.rss_mb() - before < 10.0  # was ~4 MiB per context before Context.release
