#!/usr/bin/env python
"""glsplat benchmarks: time each stage of a differentiable render and print a markdown table.

Grid: meshes (Spot, textured and Phong-lit; the Stanford bunny, Phong-lit, untextured) x image
sizes x depth layers x batch (1 view, or 8 views around the mesh in one render call). Every row
runs in its own worker process (so a crash or an out-of-memory kill costs one row, and memory
is measured from a clean slate); inside it the stages are timed in the same run, interleaved,
after warm-up. See benchmarks/README.md for the columns and how memory is measured.

    .venv/bin/python benchmarks/bench.py                 # the full grid -> benchmarks/results.md
    .venv/bin/python benchmarks/bench.py --quick         # Spot only, < 1 minute
    .venv/bin/python benchmarks/bench.py --meshes spot --sizes 512 --layers 1 3 --batch 1
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MESHES = {"spot": "built-in example (glsplat.load_example)",
          "bunny": str(HERE.parents[1] / "shared" / "meshes" / "stanford-bunny.obj")}
SIZES, LAYERS, BATCHES = (256, 512, 1024), (1, 3), (1, 8)
# --quick: the rows the time, splat and memory targets are read from (the batch target needs a
# batch-8 row, which takes longer than --quick allows on the pure-torch splat).
QUICK = [("spot", 512, 1, 1), ("spot", 512, 3, 1)]
# Rows the targets are read from: never skipped for time (only for memory), whatever the
# predictions say (a busy machine can make the small rows, and so the predictions, slow).
TARGET_ROWS = {("spot", 512, 1, 1), ("spot", 512, 3, 1), ("spot", 256, 1, 1), ("spot", 256, 1, 8)}
STAGES = ("raster", "shade", "splat_fwd", "splat_bwd", "backward", "fwd_bwd")
RESULT = "BENCH-RESULT "

# Camera: the demo's framing (Spot fills most of a 30 degree view from 2.5 units away).
DISTANCE, ELEVATION, FOV_Y = 2.5, 15.0, 30.0


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark glsplat's pipeline stage by stage; print a markdown table and write it to a file.",
        epilog="Rows whose predicted forward+backward time exceeds --max-seconds, or whose predicted memory "
               "exceeds the memory available, are listed as skipped (predictions come from the rows of the same "
               "mesh already measured; the rows the targets need are not skipped for time), and so are rows "
               "larger than one of the same mesh that failed. Set LP_NUM_THREADS / OMP_NUM_THREADS in the "
               "environment to study thread contention; they pass through to the workers.")
    parser.add_argument("--meshes", nargs="+", choices=sorted(MESHES), default=["spot", "bunny"],
                        help="meshes to render (default: spot bunny)")
    parser.add_argument("--sizes", nargs="+", type=int, default=list(SIZES),
                        help="square image sizes in pixels (default: 256 512 1024)")
    parser.add_argument("--layers", nargs="+", type=int, default=list(LAYERS),
                        help="depth layers to peel (default: 1 3)")
    parser.add_argument("--batch", nargs="+", type=int, default=list(BATCHES),
                        help="views per render call (default: 1 8)")
    parser.add_argument("--quick", action="store_true",
                        help="a small grid: Spot, 512x512, 1 and 3 layers, 1 view; 3 repeats; under a "
                             "minute. Grid options given with it filter it")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed runs per row after warm-up, at most (default: 7; 3 with --quick); slow "
                             "rows get fewer to stay within --budget, but never fewer than --min-repeats")
    parser.add_argument("--min-repeats", type=int, default=3, help="timed runs per row, at least (default: 3)")
    parser.add_argument("--warmup", type=int, default=1,
                        help="untimed render + loss + backward runs per row first (default: 1)")
    parser.add_argument("--budget", type=float, default=10.0,
                        help="seconds of timed runs per row that decide the repeat count (default: 10)")
    parser.add_argument("--max-seconds", type=float, default=4.0,
                        help="skip rows predicted to take longer than this per forward+backward; 0 = never "
                             "skip for time (default: 4)")
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="kill a row's worker after this many seconds (default: 600)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (tensors on CUDA; default: cpu)")
    parser.add_argument("--default-malloc", action="store_true",
                        help="leave glibc's malloc as it is; by default the workers call "
                             "glsplat.memory.keep_freed_memory(), as the README advises for CPU batches")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads in the workers (default: torch's own choice)")
    parser.add_argument("--out", type=Path, default=None,
                        help="markdown file to write (default: benchmarks/results.md; with --quick "
                             "benchmarks/results-quick.md, so the full table is kept)")
    parser.add_argument("--json", type=Path, default=None, help="also write the raw results as JSON here")
    parser.add_argument("--silhouette", choices=("edge", "splat"), default="edge",
                        help="the splat's silhouette option (glsplat.splat's silhouette=; default: edge)")
    parser.add_argument("--label", default="", help="a note for the header, e.g. 'baseline, pure-torch splat'")
    parser.add_argument("--strict", action="store_true", help="exit with status 1 when a target fails")
    parser.add_argument("--no-nvdiffrast", dest="nvdiffrast", action="store_false",
                        help="leave out the nvdiffrast-style row (benchmarks/nvdiffrast_bench.py: glsplat.nvdiffrast's "
                             "rasterize, interpolate, texture, antialias against glsplat.render on Spot); by default it "
                             "runs on the CPU when Spot is in the grid, at 512x512 (or the grid's size nearest it)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeats is None:
        args.repeats = 3 if args.quick else 7
    if args.out is None:
        args.out = HERE / ("results-quick.md" if args.quick else "results.md")
    args.min_repeats = max(1, min(args.min_repeats, args.repeats))
    for name in ("sizes", "layers", "batch"):
        if any(v < 1 for v in getattr(args, name)):
            parser.error(f"--{name}: values must be positive")
    return args


# ----------------------------------------------------------------------------------------------
# Worker: one row, in its own process.
# ----------------------------------------------------------------------------------------------

def rss_mb() -> tuple[float, float]:
    """(current, peak) resident set size of this process in MiB, from /proc/self/status."""
    values = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024
    return values.get("VmRSS", float("nan")), values.get("VmHWM", float("nan"))


def worker(config: dict) -> dict:
    import torch

    import glsplat
    import glsplat.memory

    device = torch.device(config["device"])
    cuda = device.type == "cuda"
    if config["threads"]:
        torch.set_num_threads(config["threads"])
    if config["keep_freed_memory"]:
        glsplat.memory.keep_freed_memory()

    def sync():
        if cuda:
            torch.cuda.synchronize(device)

    now = time.perf_counter
    ctx = glsplat.Context()
    if config["mesh"] == "spot":
        mesh = glsplat.load_example("spot").normalized()
    else:
        mesh = glsplat.load_mesh(MESHES[config["mesh"]]).normalized()
    mesh = mesh.to(device=device)
    size, layers, batch = config["size"], config["layers"], config["batch"]
    # Spot is textured (PhongShader uses the mesh's texture); the bunny has none (white albedo).
    shader = glsplat.PhongShader(lights=[glsplat.DirectionalLight(direction=(0.4, 0.8, -0.6))])
    # `batch` views evenly spaced around the mesh, one look_at with eye [B, 3]; view 0 faces Spot.
    azimuth = torch.arange(batch, dtype=torch.float32, device=device) * (360.0 / batch)
    camera = glsplat.Camera.orbit(azimuth, ELEVATION, DISTANCE, fov_y=FOV_Y, image_size=(size, size))
    verts = mesh.verts[None].clone().requires_grad_(True)  # [1, V, 3], shared by the B views
    faces = mesh.faces
    target = torch.full((batch, size, size, 4), 0.5, device=device)
    rss_base = rss_mb()[0]

    def loss_of(image):
        # torch's fused MSE (one kernel forward, one backward), as a user would write it; a
        # hand-written (image - target).square().mean() costs several full-frame passes more.
        return torch.nn.functional.mse_loss(image, target)

    def stages() -> dict:
        """One pass of the pipeline, stage by stage, with a clock between stages."""
        verts.grad = None
        marks = {}

        def mark(name):
            def hook(grad):
                sync()
                marks[name] = now()
            return hook

        sync()
        t0 = now()
        clip = camera.project(verts)  # [B, V, 4], differentiable; tiny next to the raster
        rast = glsplat.rasterize(ctx, clip, faces, (size, size), layers=layers)
        sync()
        t1 = now()
        frags = glsplat.Fragments(rast, mesh.replace(verts=verts.expand(batch, -1, -1)), camera)
        colors = shader(frags)  # [N, 4], packed: as render() hands them to the splat
        sync()
        t2 = now()
        # Identity views made just before the splat: their gradient hooks fire when the splat's
        # backward has produced the gradients of its two inputs, before the shading's backward
        # starts (autograd runs ready nodes newest first), so they split the backward in two.
        colors_in, clip_in = colors.view_as(colors), clip.view_as(clip)
        image = glsplat.splat(colors_in, clip_in, rast, faces, silhouette=config["silhouette"])
        sync()
        t3 = now()
        colors_in.register_hook(mark("colors"))
        clip_in.register_hook(mark("clip"))
        image.register_hook(mark("image"))  # the loss's backward is done: the splat's starts
        loss_of(image).backward()
        sync()
        t4 = now()
        assert verts.grad is not None, "no gradient reached the vertices"
        splat_bwd = max(marks["colors"], marks["clip"]) - marks["image"] if len(marks) == 3 else float("nan")
        return {"raster": t1 - t0, "shade": t2 - t1, "splat_fwd": t3 - t2, "splat_bwd": splat_bwd,
                "backward": t4 - t3}

    def whole() -> float:
        """The same pipeline as users call it: render + loss + backward."""
        verts.grad = None
        sync()
        t0 = now()
        image = glsplat.render(ctx, mesh.replace(verts=verts), camera=camera, shader=shader, layers=layers,
                               silhouette=config["silhouette"])
        loss_of(image).backward()
        sync()
        return now() - t0

    # The same views as `batch` separate render calls, one camera each: what a batch is compared to.
    singles = [camera[b] for b in range(batch)]

    def one_by_one() -> float:
        verts.grad = None
        sync()
        t0 = now()
        for b, single in enumerate(singles):
            image = glsplat.render(ctx, mesh.replace(verts=verts), camera=single, shader=shader, layers=layers,
                                   silhouette=config["silhouette"])
            # the same mean over the whole batch, one view's share at a time
            (torch.nn.functional.mse_loss(image, target[b:b + 1], reduction="sum") / target.numel()).backward()
        sync()
        return now() - t0

    def one_run() -> dict:
        times = stages()
        times["fwd_bwd"] = whole()
        if batch > 1:
            times["singles"] = one_by_one()
        return times

    start = now()
    # Warm-up: the whole pipeline (the stage pass runs the same code); a timed run costs about
    # twice a warm-up run, which decides how many fit in the budget.
    per_run = 0.0
    for _ in range(config["warmup"]):
        per_run = 2 * whole()
    repeats = config["repeats"]
    if per_run > 0:
        repeats = max(config["min_repeats"], min(repeats, int(config["budget"] / per_run)))
    runs = [one_run() for _ in range(repeats)]
    timed_s = now() - start

    # Memory of the splat stage, in a separate untimed pass: splat + loss + backward from inputs
    # that already exist (colors and clip as leaves that require grad), with the image's gradient
    # made beforehand: the loss's own temporaries are the caller's, not the splat's.
    with torch.no_grad():
        clip = camera.project(verts)
        rast = glsplat.rasterize(ctx, clip, faces, (size, size), layers=layers)
        frags = glsplat.Fragments(rast, mesh.replace(verts=verts.expand(batch, -1, -1)), camera)
        colors = shader(frags)  # [N, 4], packed: as render() hands them to the splat
    colors.requires_grad_(True)
    clip.requires_grad_(True)
    samples = batch * layers * size * size
    # The splat's input buffers: straight RGBA colors (4 floats), splat positions (x, y) and
    # depth (1 float) per sample, float32.
    input_bytes = samples * (4 + 2 + 1) * 4
    grad_image = torch.randn(batch, size, size, 4, device=device)
    if cuda:
        sync()
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        glsplat.splat(colors, clip, rast, faces, silhouette=config["silhouette"]).backward(grad_image)
        sync()
        peak_bytes = torch.cuda.max_memory_allocated(device) - before
        memory_method = "torch.cuda.max_memory_allocated"
    else:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            glsplat.splat(colors, clip, rast, faces, silhouette=config["silhouette"]).backward(grad_image)
        events = [e for e in prof.profiler.kineto_results.events()
                  if e.name() == "[memory]" and e.device_type() == torch.autograd.DeviceType.CPU]
        live = peak_bytes = 0
        for event in sorted(events, key=lambda e: e.start_ns()):
            live += event.nbytes()
            peak_bytes = max(peak_bytes, live)
        memory_method = "torch.profiler CPU allocator events"

    info = {"torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "interop_threads": torch.get_num_interop_threads(), "gl_renderer": ctx.renderer,
            "glsplat_file": glsplat.__file__, "device": str(device),
            "device_name": torch.cuda.get_device_name(device) if cuda else "",
            "memory_method": memory_method}
    return {"config": config, "info": info, "runs": runs, "repeats": repeats, "timed_s": timed_s,
            "faces": int(faces.shape[0]), "samples": samples, "input_bytes": input_bytes,
            "splat_peak_bytes": int(peak_bytes), "rss_base_mb": rss_base, "rss_peak_mb": rss_mb()[1]}


# ----------------------------------------------------------------------------------------------
# Parent: the grid, predictions, the table, the targets.
# ----------------------------------------------------------------------------------------------

def grid(args) -> list[tuple[str, int, int, int]]:
    product = list(itertools.product(args.meshes, args.sizes, args.layers, args.batch))
    if not args.quick:
        return product
    return [c for c in QUICK if c in product]


def mem_available_mb() -> float:
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    return float("inf")


def fit_per_view(measured: list[dict]) -> tuple[float, float]:
    """Least-squares ``a + b * pixels_x_layers`` for the forward+backward time of one view.

    Fitted to each row's fastest run, which noise from other processes disturbs least.
    """
    points = [(r["samples"] / r["config"]["batch"], minimum(r, "fwd_bwd") / r["config"]["batch"]) for r in measured]
    if len({x for x, _ in points}) < 2:
        x, y = max(points)
        return 0.0, y / x
    n = len(points)
    mx, my = sum(x for x, _ in points) / n, sum(y for _, y in points) / n
    b = sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)
    a = my - b * mx
    if b <= 0:  # noise: fall back to a line through the origin and the largest point
        x, y = max(points)
        return 0.0, y / x
    if a < 0:
        b, a = sum(x * y for x, y in points) / sum(x * x for x, _ in points), 0.0
    return a, b


def predict(config, measured: list[dict]) -> tuple[float, float] | None:
    """(seconds per forward+backward, worker peak RSS in MiB) predicted from measured rows of the mesh.

    Time: one view costs a + b * (pixels x layers), fitted to the rows measured so far; B views
    cost B times one (the batch target asks for less, so this errs on the safe side). Memory:
    the largest measured row's RSS growth above its baseline, scaled by samples.
    """
    same = [r for r in measured if r["config"]["mesh"] == config["mesh"]]
    if not same:
        return None
    a, b = fit_per_view(same)
    samples = config["batch"] * config["layers"] * config["size"] ** 2
    seconds = config["batch"] * (a + b * samples / config["batch"])
    ref = max(same, key=lambda r: r["samples"])
    growth = max(ref["rss_peak_mb"] - ref["rss_base_mb"], 0.0)
    return seconds, ref["rss_base_mb"] + growth * samples / ref["samples"]


def cpu_seconds() -> tuple[float, float]:
    """(CPU seconds all processes on this machine have used, incl. steal; those of our finished children)."""
    import resource

    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal [guest guest_nice, already in user/nice]
    busy = sum(fields[:8]) - fields[3] - fields[4]
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return busy / os.sysconf("SC_CLK_TCK"), children.ru_utime + children.ru_stime


def run_worker(config: dict, timeout: float) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(config)]
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"config": config, "error": f"timed out after {timeout:.0f} s (--timeout)"}
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT):
            return json.loads(line[len(RESULT):])
    if proc.returncode < 0:
        reason = f"killed by signal {-proc.returncode}" + (" (out of memory?)" if proc.returncode == -9 else "")
    else:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        reason = f"failed (exit {proc.returncode}): {tail[:200]}"
    return {"config": config, "error": reason}


def median(result, stage):
    return statistics.median(run[stage] for run in result["runs"])


def minimum(result, stage):
    return min(run[stage] for run in result["runs"])


def ms(seconds: float) -> str:
    value = seconds * 1000
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def mib(nbytes: float) -> str:
    value = nbytes / 2**20
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


HEAD = ("| mesh | size | layers | batch | n | raster + read-back | interp + shade | splat fwd | splat bwd "
        "| backward (all) | **fwd+bwd** | fwd+bwd min | splat in MiB | splat peak MiB | peak / in | RSS MiB | others' CPUs |")
MIN_HEAD = "| mesh | size | layers | batch | n | raster + read-back | interp + shade | splat fwd | splat bwd | backward (all) | fwd+bwd |"


def key(result):
    c = result["config"]
    return (list(MESHES).index(c["mesh"]), c["size"], c["layers"], c["batch"])


def row(result) -> str:
    c = result["config"]
    lead = f"| {c['mesh']} | {c['size']} | {c['layers']} | {c['batch']} |"
    if "runs" not in result:
        return lead + f" - | {result.get('error') or result.get('skipped')} |" + " |" * 11
    return (lead + f" {result['repeats']} | " + " | ".join(ms(median(result, s)) for s in STAGES[:5])
            + f" | **{ms(median(result, 'fwd_bwd'))}** | {ms(minimum(result, 'fwd_bwd'))}"
            + f" | {mib(result['input_bytes'])} | {mib(result['splat_peak_bytes'])}"
            + f" | {result['splat_peak_bytes'] / result['input_bytes']:.1f} | {result['rss_peak_mb']:.0f}"
            + f" | {result['others_cpus']:.2f} |")


def min_row(result) -> str | None:
    if "runs" not in result:
        return None
    c = result["config"]
    return (f"| {c['mesh']} | {c['size']} | {c['layers']} | {c['batch']} | {result['repeats']} | "
            + " | ".join(ms(minimum(result, s)) for s in STAGES) + " |")


def find(results, mesh, size, layers, batch):
    for r in results:
        c = r["config"]
        if (c["mesh"], c["size"], c["layers"], c["batch"]) == (mesh, size, layers, batch) and "runs" in r:
            return r
    return None


def targets(results, device: str) -> list[str]:
    """The issue's targets, each PASS / FAIL / n/a with the numbers it was decided on."""
    lines = []

    def verdict(ok):
        return "PASS" if ok else "FAIL"

    for layers, limit in ((1, 0.060), (3, 0.150)):
        r = find(results, "spot", 512, layers, 1)
        name = f"Spot 512x512, {layers} layer{'s' if layers > 1 else ''}, batch 1: fwd+bwd <= {limit * 1000:.0f} ms"
        if r is None:
            lines.append(f"- n/a  {name} (row not measured)")
        else:
            value = median(r, "fwd_bwd")
            lines.append(f"- {verdict(value <= limit)} {name}: {ms(value)} ms")
    r = find(results, "spot", 512, 1, 1)
    name = "Splat fwd+bwd <= GL raster + read-back (Spot 512x512, 1 layer)"
    if r is None:
        lines.append(f"- n/a  {name} (row not measured)")
    else:
        splat = median(r, "splat_fwd") + median(r, "splat_bwd")
        lines.append(f"- {verdict(splat <= median(r, 'raster'))} {name}: {ms(splat)} ms vs {ms(median(r, 'raster'))} ms")
    measured = [r for r in results if "runs" in r]
    if measured:
        ok = sum(median(r, "splat_fwd") + median(r, "splat_bwd") <= median(r, "raster") for r in measured)
        lines.append(f"  (all measured rows: {ok} of {len(measured)} meet it)")
    name = "Splat peak memory <= 3x its input buffers (Spot 512x512, 1 layer)"
    if r is None:
        lines.append(f"- n/a  {name} (row not measured)")
    else:
        ratio = r["splat_peak_bytes"] / r["input_bytes"]
        lines.append(f"- {verdict(ratio <= 3)} {name}: {ratio:.1f}x "
                     f"({mib(r['splat_peak_bytes'])} MiB vs {mib(r['input_bytes'])} MiB)")
    name = "Batch of 8 views < 8 single renders of them (Spot, 1 layer, fwd+bwd)"
    pairs = [(size, find(results, "spot", size, 1, 1), find(results, "spot", size, 1, 8)) for size in (512, 256, 1024)]
    pairs = [p for p in pairs if p[1] and p[2]]
    if not pairs:
        lines.append(f"- n/a  {name} (no size with both batch 1 and 8 measured; e.g. add a run of "
                     "--meshes spot --sizes 256 --layers 1)")
    else:
        size, one, eight = pairs[0]
        ratio = median(eight, "fwd_bwd") / median(eight, "singles")
        lines.append(f"- {verdict(ratio < 1)} {name}, at {size}x{size}: one call for the 8 views "
                     f"{ms(median(eight, 'fwd_bwd'))} ms, 8 calls of one view each {ms(median(eight, 'singles'))} ms "
                     f"({ratio:.2f}x); vs view 0 alone: {median(eight, 'fwd_bwd') / median(one, 'fwd_bwd'):.1f}x "
                     "(the other views cover more pixels)")
    name = "CUDA: Spot 1024x1024 fwd+bwd well under 5 ms"
    r = find(results, "spot", 1024, 1, 1)
    if not device.startswith("cuda"):
        lines.append(f"- n/a  {name} (run with --device cuda)")
    elif r is None:
        lines.append(f"- n/a  {name} (row not measured)")
    else:
        lines.append(f"- {verdict(median(r, 'fwd_bwd') < 0.005)} {name}: {ms(median(r, 'fwd_bwd'))} ms")
    return lines


def machine_lines(info: dict, args) -> list[str]:
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    env = ", ".join(f"{k}={os.environ.get(k, 'unset')}" for k in ("OMP_NUM_THREADS", "LP_NUM_THREADS", "MKL_NUM_THREADS"))
    lines = [f"- CPU: {model}, {os.cpu_count()} logical CPUs ({usable} usable)",
             f"- Python {platform.python_version()}, torch {info.get('torch', '?')}, torch threads "
             f"{info.get('torch_threads', '?')} (inter-op {info.get('interop_threads', '?')}); {env}",
             f"- OpenGL renderer: {info.get('gl_renderer', '?')}",
             f"- Device: {info.get('device', args.device)}"
             f"{' (' + info['device_name'] + ')' if info.get('device_name') else ''}; "
             f"glsplat from {info.get('glsplat_file', '?')}{git_state(info.get('glsplat_file'))}"]
    lines.append("- malloc: glibc's defaults" if args.default_malloc else
                 "- malloc: freed memory kept for reuse (glsplat.memory.keep_freed_memory())")
    lines.append(f"- Silhouettes: {args.silhouette!r} (glsplat.splat's silhouette=)")
    if args.label:
        lines.append(f"- Note: {args.label}")
    return lines


def git_state(path) -> str:
    if not path:
        return ""
    folder = Path(path).resolve().parent
    try:
        commit = subprocess.run(["git", "-C", str(folder), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10)
        if commit.returncode:
            return " (not a git checkout)"
        dirty = subprocess.run(["git", "-C", str(folder), "status", "--porcelain", "--", "."], capture_output=True,
                               text=True, timeout=10).stdout.strip()
        return f" at commit {commit.stdout.strip()}" + (" with uncommitted changes in glsplat/" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return ""


def nvdiffrast_section(args, configs) -> list[str]:
    """The markdown lines of benchmarks/nvdiffrast_bench.py's table (issue 15), run in a process of its own.

    CPU only (glsplat.nvdiffrast's ops run on the tensors' device, but the script puts them on the
    CPU), when Spot is in the grid, at the grid's size nearest 512. Empty when left out; a failure
    is reported in the section, not raised.
    """
    sizes = sorted({size for mesh, size, _, _ in configs if mesh == "spot"})
    if not args.nvdiffrast or not args.device == "cpu" or not sizes:
        return []
    size = min(sizes, key=lambda s: abs(s - 512))
    command = [sys.executable, str(HERE / "nvdiffrast_bench.py"), "--size", str(size),
               "--repeats", str(max(args.repeats, args.min_repeats))]
    print(f"benchmarking the nvdiffrast-style pipeline at {size}x{size}", flush=True)
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout)
        table = done.stdout.strip() if done.returncode == 0 else f"failed (exit {done.returncode}): {done.stderr[-500:]}"
    except subprocess.TimeoutExpired:
        table = f"failed: no result within --timeout {args.timeout:g} s"
    return ["## nvdiffrast-style pipeline (issue 15)", "",
            "`benchmarks/nvdiffrast_bench.py`: the same textured Spot through glsplat.nvdiffrast's rasterize, "
            "interpolate, texture and antialias, and through glsplat.render; wall-clock ms.", "", table, ""]


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        result = worker(json.loads(args.worker))
        print(RESULT + json.dumps(result), flush=True)
        return 0

    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            print(f"--device {args.device}: CUDA is not available here (torch {torch.__version__}, "
                  f"CUDA build: {torch.version.cuda or 'no'}); nothing to benchmark, skipping.")
            return 0
    elif args.device != "cpu":
        print(f"--device: expected cpu or cuda[:N], got {args.device}", file=sys.stderr)
        return 2

    configs = grid(args)
    absent = {mesh for mesh in MESHES if mesh != "spot" and not Path(MESHES[mesh]).is_file()}
    for mesh in sorted(absent & {c[0] for c in configs}):
        print(f"skipping the {mesh} rows: {MESHES[mesh]} is absent (the optional shared mesh folder)", flush=True)
    configs = [c for c in configs if c[0] not in absent]
    if not configs:
        print("the grid is empty (check --meshes/--sizes/--layers/--batch)", file=sys.stderr)
        return 2
    # Cheapest first within each mesh, so each row is predicted from the ones measured before it.
    configs.sort(key=lambda c: (list(MESHES).index(c[0]), c[3] * c[2] * c[1] ** 2, c[3]))
    started = time.perf_counter()
    load_at_start = os.getloadavg()
    results = []
    print(f"benchmarking {len(configs)} rows on {args.device}; each row in its own process "
          f"(--max-seconds {args.max_seconds:g}, --budget {args.budget:g} s, up to {args.repeats} repeats)", flush=True)
    for mesh, size, layers, batch in configs:
        config = {"mesh": mesh, "size": size, "layers": layers, "batch": batch, "device": args.device, "silhouette": args.silhouette,
                  "keep_freed_memory": not args.default_malloc, "threads": args.threads, "warmup": args.warmup, "repeats": args.repeats,
                  "min_repeats": args.min_repeats, "budget": args.budget}
        label = f"{mesh} {size}x{size} layers={layers} batch={batch}"
        guess = predict(config, [r for r in results if "runs" in r])
        skip = None
        samples = batch * layers * size * size
        failed = [r for r in results if "error" in r and r["config"]["mesh"] == mesh
                  and r["config"]["batch"] * r["config"]["layers"] * r["config"]["size"] ** 2 <= samples]
        if failed:
            c = failed[0]["config"]
            skip = f"skipped: the smaller row {c['size']}/{c['layers']}/{c['batch']} failed"
        elif guess is not None:
            seconds, memory = guess
            if args.max_seconds > 0 and seconds > args.max_seconds and (mesh, size, layers, batch) not in TARGET_ROWS:
                skip = f"skipped: predicted {seconds:.1f} s per fwd+bwd > --max-seconds {args.max_seconds:g}"
            elif memory > 0.8 * mem_available_mb():
                skip = f"skipped: predicted {memory / 1024:.1f} GiB > 80% of the {mem_available_mb() / 1024:.1f} GiB available"
        if skip:
            print(f"  {label}: {skip}", flush=True)
            results.append({"config": config, "skipped": skip})
            continue
        t0 = time.perf_counter()
        busy0, ours0 = cpu_seconds()
        result = run_worker(config, args.timeout)
        busy1, ours1 = cpu_seconds()
        # CPUs kept busy by other processes (or taken by the hypervisor) while the row ran.
        result["others_cpus"] = max(0.0, (busy1 - busy0) - (ours1 - ours0)) / (time.perf_counter() - t0)
        results.append(result)
        if "runs" in result:
            print(f"  {label}: fwd+bwd {ms(median(result, 'fwd_bwd'))} ms median of {result['repeats']} "
                  f"(raster {ms(median(result, 'raster'))}, shade {ms(median(result, 'shade'))}, splat "
                  f"{ms(median(result, 'splat_fwd'))} + {ms(median(result, 'splat_bwd'))}, backward "
                  f"{ms(median(result, 'backward'))}) [{time.perf_counter() - t0:.0f} s]", flush=True)
        else:
            print(f"  {label}: {result['error']}", flush=True)
    failed = [r for r in results if "error" in r]
    nvdiffrast = nvdiffrast_section(args, configs) if not failed else []
    elapsed = time.perf_counter() - started

    results.sort(key=key)
    measured = [r for r in results if "runs" in r]
    info = measured[0]["info"] if measured else {}
    lines = ["# glsplat benchmarks", "",
             f"`{shlex.join(['benchmarks/bench.py', *(argv if argv is not None else sys.argv[1:])])}` "
             f"on {time.strftime('%Y-%m-%d %H:%M')}, {elapsed:.0f} s in all.", "", *machine_lines(info, args),
             f"- Load average at the start {' '.join(f'{x:.1f}' for x in load_at_start)}; this machine may be shared, "
             "so compare rows of one run rather than runs.", "",
             "Times in ms, medians of `n` timed runs after warm-up (all stages of a run measured in the same "
             "pass); memory in MiB. Columns: see benchmarks/README.md.", "",
             HEAD, "|" + "---|" * 4 + "--:|" * 13, *[row(r) for r in results], "",
             "Minimums over the same runs (ms):", "",
             MIN_HEAD, "|" + "---|" * 4 + "--:|" * 7, *filter(None, (min_row(r) for r in results)), "",
             f"Splat peak memory: {info.get('memory_method', 'n/a')}; see benchmarks/README.md.", "",
             "## Targets (issue 5)", "", *targets(results, args.device), "", *nvdiffrast]
    text = "\n".join(lines)
    print()
    print(text)
    if failed:
        # A table with failed rows is no result: the last good one stays.
        print(f"{len(failed)} row(s) failed; {args.out} is left as it was", file=sys.stderr)
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        print(f"wrote {args.out}")
    if args.json:
        args.json.write_text(json.dumps({"elapsed_s": elapsed, "results": results}, indent=1))
        print(f"wrote {args.json}")
    if failed or (args.strict and any(line.startswith("- FAIL") for line in lines)):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
