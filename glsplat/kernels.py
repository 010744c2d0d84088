"""Compiled kernels, built on first use with torch's JIT extension loader.

CPU (C++/OpenMP): interpolate and the splat. CUDA: the splat (interpolate on CUDA is torch's
own gather). A build needs a compiler (and nvcc for CUDA) and ninja (a Python dependency); it
takes about a minute once per machine and is cached (``TORCH_EXTENSIONS_DIR``, by default
``~/.cache/torch_extensions``). Where one cannot be built, glsplat warns once and uses its
pure-torch implementation instead.
"""
from __future__ import annotations

import functools
import hashlib
import platform
import warnings
from pathlib import Path

CSRC = Path(__file__).resolve().parent / "csrc"
HEADERS = [CSRC / "kernels.h", CSRC / "splat.h", CSRC / "splat_cpu.h", CSRC / "splat_torch.h"]
CPU_SOURCES = [CSRC / "bindings.cpp", CSRC / "interpolate.cpp", CSRC / "splat.cpp"]
CUDA_SOURCES = [CSRC / "bindings_cuda.cpp", CSRC / "splat_cuda.cu"]


def _build(kind: str, sources: list[Path], **flags):
    try:
        from torch.utils.cpp_extension import load

        # The name carries a hash of the sources, their folder, the flags and the CPU (what
        # -march=native builds for), so that two checkouts, versions or kinds of machine sharing
        # one cache each keep their own build instead of rebuilding over (or crashing in) another's.
        digest = hashlib.sha1(str(CSRC).encode() + b"".join(s.read_bytes() for s in sources + HEADERS)
                              + repr(sorted(flags.items())).encode() + _cpu_signature()).hexdigest()
        return load(name=f"glsplat_{kind}_{digest[:10]}", sources=[str(s) for s in sources], **flags)
    except Exception as error:  # a missing compiler or ninja surfaces as various exception types
        warnings.warn(f"glsplat: the {kind} kernels could not be built ({error}); "
                      "falling back to the slower pure-torch path", RuntimeWarning, stacklevel=3)
        return None


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


@functools.cache
def cuda_kernels():
    """The compiled CUDA module, or None where it cannot be built."""
    return _build("cuda", CUDA_SOURCES, extra_cflags=["-O3"], extra_cuda_cflags=["-O3"])


def kernels_for(device) -> object | None:
    """The compiled module for tensors on ``device`` (a torch.device), or None."""
    if device.type == "cpu":
        return cpu_kernels()
    if device.type == "cuda":
        return cuda_kernels()
    return None
