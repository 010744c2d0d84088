"""Compiled CPU kernels, built on first use with torch's JIT C++ extension loader.

The build needs a C++ compiler and ninja (a Python dependency); it takes about a minute once
per machine and is cached (``TORCH_EXTENSIONS_DIR``, by default ``~/.cache/torch_extensions``).
Where it cannot be built, glsplat warns once and uses its pure-torch implementation.
"""
from __future__ import annotations

import functools
import hashlib
import warnings
from pathlib import Path

CSRC = Path(__file__).resolve().parent / "csrc"
SOURCES = [CSRC / "bindings.cpp", CSRC / "interpolate.cpp", CSRC / "splat.cpp"]


@functools.cache
def cpu_kernels():
    """The compiled module, or None where it cannot be built."""
    try:
        from torch.utils.cpp_extension import load

        # The name carries a hash of the sources and their folder so that two checkouts (or
        # versions) of glsplat sharing one cache each keep their own build instead of
        # rebuilding over each other.
        digest = hashlib.sha1(str(CSRC).encode() + b"".join(s.read_bytes() for s in SOURCES + [CSRC / "kernels.h"]))
        digest = digest.hexdigest()
        return load(name=f"glsplat_cpu_{digest[:10]}", sources=[str(s) for s in SOURCES],
                    extra_cflags=["-O3", "-fopenmp", "-fno-math-errno"], extra_ldflags=["-fopenmp"])
    except Exception as error:  # a missing compiler or ninja surfaces as various exception types
        warnings.warn(f"glsplat: the C++ kernels could not be built ({error}); "
                      "falling back to the slower pure-torch interpolate and splat", RuntimeWarning, stacklevel=2)
        return None
