"""Compiled kernels, built on first use with torch's JIT extension loader.

CPU (C++/OpenMP): interpolate, the splat, the edge glue, and glsplat.nvdiffrast's rasterize
outputs, interpolate, texture and antialias. CUDA: the splat and the edge glue (interpolate on CUDA
is torch's own gather; glsplat.nvdiffrast runs its torch code there). A build needs a compiler (and
nvcc for CUDA) and ninja (a Python dependency); it takes about a minute once per machine and is
cached (``TORCH_EXTENSIONS_DIR``, by default ``~/.cache/torch_extensions``). Where one cannot be
built, glsplat warns once and uses its pure-torch implementation instead. A build says so on stderr
when it starts and ends.
"""
from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import os
import platform
import sys
import time
import warnings
from pathlib import Path

CSRC = Path(__file__).resolve().parent / "csrc"
HEADERS = [CSRC / "kernels.h", CSRC / "splat.h", CSRC / "splat_cpu.h", CSRC / "splat_torch.h", CSRC / "edges.h"]
CPU_SOURCES = [CSRC / "bindings.cpp", CSRC / "interpolate.cpp", CSRC / "splat.cpp", CSRC / "edges.cpp",
               CSRC / "nvdr_raster.cpp", CSRC / "nvdr_texture.cpp", CSRC / "nvdr_antialias.cpp"]
CUDA_SOURCES = [CSRC / "bindings_cuda.cpp", CSRC / "splat_cuda.cu", CSRC / "edges_cuda.cu"]

# What is being compiled right now, e.g. "building the CPU kernels (first use, about a minute)",
# for a UI to show while it waits (the viewer's first frame); None otherwise.
building: str | None = None


def _build(kind: str, sources: list[Path], **flags):
    global building
    try:
        import torch
        from torch.utils.cpp_extension import get_default_build_root, include_paths, load

        # The name carries a hash of everything the binary depends on: the sources and their
        # folder, the flags, the CPU (what -march=native builds for), Python, and torch (version,
        # CUDA build, headers' location), so that two checkouts, virtualenvs, versions or kinds of
        # machine sharing one cache each keep their own build instead of rebuilding over (or
        # crashing in) another's.
        depends = [str(CSRC), sys.version, torch.__version__, str(torch.version.cuda), *include_paths(),
                   repr(sorted(flags.items()))]
        digest = hashlib.sha1("\n".join(depends).encode() + _cpu_signature()
                              + b"".join(s.read_bytes() for s in sources + HEADERS)).hexdigest()
        name = f"glsplat_{kind}_{digest[:10]}"
        directory = Path(os.environ.get("TORCH_EXTENSIONS_DIR") or get_default_build_root()) / name
        directory.mkdir(parents=True, exist_ok=True)
        library = directory / f"{name}.so"
        with _build_lock(directory, quiet=library.is_file()) as cleared:
            fresh = cleared or not library.is_file()
            if fresh:
                print(f"glsplat: compiling the {kind.upper()} kernels (first use with this source, torch, Python and "
                      f"CPU; about a minute, once) into {directory} ...", file=sys.stderr, flush=True)
            start = time.monotonic()
            building = f"building the {kind.upper()} kernels (first use, about a minute)..." if fresh else None
            try:
                module = load(name=name, sources=[str(s) for s in sources], build_directory=str(directory), **flags)
            finally:
                building = None
            if fresh:
                print(f"glsplat: {kind.upper()} kernels built in {time.monotonic() - start:.0f} s",
                      file=sys.stderr, flush=True)
            return module
    except Exception as error:  # a missing compiler or ninja surfaces as various exception types
        warnings.warn(f"glsplat: the {kind} kernels could not be built ({error}); "
                      "falling back to the slower pure-torch path", RuntimeWarning, stacklevel=3)
        return None


@contextlib.contextmanager
def _build_lock(directory: Path, quiet: bool):
    """Hold the build of ``directory``, one process at a time, and clear a lock a dead build left.

    torch's own lock is a file (``lock``) that its ``load`` creates and removes; a build killed
    without Python's clean-up (SIGKILL, a closed terminal, a scheduler's limit, the OOM killer)
    leaves it, and every later ``load`` waits for it forever. This lock is an ``flock`` on a file
    next to it, which the kernel drops when its holder dies: whoever holds it is the only glsplat
    build of this directory alive, so a ``lock`` file it finds is stale and removed. Yields whether
    it removed one. Says on stderr that it waits for another build unless ``quiet`` (the library
    is built: the other process only loads it).
    """
    with open(directory / "glsplat.lock", "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not quiet:
                print(f"glsplat: waiting for another process building the kernels in {directory} ...",
                      file=sys.stderr, flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            stale = directory / "lock"
            if stale.exists():
                warnings.warn(f"glsplat: removing {stale}, left by a kernel build that was killed; "
                              "building again", RuntimeWarning, stacklevel=4)
                stale.unlink(missing_ok=True)
                yield True
            else:
                yield False
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _cpu_signature() -> bytes:
    """The CPU's model and instruction-set flags (Linux; elsewhere what platform knows)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return f"{platform.machine()} {platform.processor()}".encode()
    return "\n".join(sorted({line for line in lines if line.startswith(("model name", "flags"))})).encode()


# The splat's row loops vectorise (AVX2 / AVX-512 on x86) only with the machine's own
# instruction set and without IEEE traps and NaN/inf special cases (no min/max or exp branches).
CPU_FLAGS = ["-O3", "-fopenmp", "-fno-math-errno", "-fno-trapping-math", "-ffinite-math-only"]
if platform.machine() in ("x86_64", "AMD64"):
    CPU_FLAGS.append("-march=native")


@functools.cache
def cpu_kernels():
    """The compiled CPU module, or None where it cannot be built."""
    return _build("cpu", CPU_SOURCES, extra_cflags=CPU_FLAGS, extra_ldflags=["-fopenmp"])


CUDA_FLAGS = {"extra_cflags": ["-O3"], "extra_cuda_cflags": ["-O3"]}


@functools.cache
def cuda_kernels():
    """The compiled CUDA module, or None where it cannot be built."""
    return _build("cuda", CUDA_SOURCES, **CUDA_FLAGS)


def kernels_for(device) -> object | None:
    """The compiled module for tensors on ``device`` (a torch.device), or None."""
    if device.type == "cpu":
        return cpu_kernels()
    if device.type == "cuda":
        return cuda_kernels()
    return None
