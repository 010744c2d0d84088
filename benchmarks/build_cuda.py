#!/usr/bin/env python
"""Compile glsplat's CUDA kernels, GPU or not, to prove they build (not run by the tests).

    CUDA_HOME=/usr/local/cuda TORCH_CUDA_ARCH_LIST=9.0 /path/to/cuda-venv/bin/python benchmarks/build_cuda.py

(CUDA_HOME: torch guesses it from where ``nvcc`` is, /usr/local for a /usr/local/bin/nvcc link.)

The running Python needs a CUDA build of torch (``pip install torch==2.14.1`` in a separate
virtualenv: several GB) and ninja; the machine needs ``nvcc`` (CUDA_HOME or /usr/local/cuda). It
reads only ``glsplat/kernels.py`` (the sources and flags glsplat builds with), not the rest of
glsplat, so the virtualenv needs nothing else. The extension is built into a scratch folder
(``--build-dir``, default a fresh temporary one) and loaded; exit status 0 and "built" on success,
the compiler's errors otherwise.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path

KERNELS = Path(__file__).resolve().parents[1] / "glsplat" / "kernels.py"


def wheel_headers(cuda_home: str | None) -> list[str]:
    """The CUDA libraries' headers that pip installed with torch (``nvidia/*/include``), where the
    toolkit lacks them: a bare nvcc install has no cuSPARSE or cuBLAS headers, which torch's
    CUDA headers include."""
    if cuda_home and (Path(cuda_home) / "include" / "cusparse.h").is_file():
        return []
    spec = importlib.util.find_spec("nvidia")
    roots = [Path(p) for p in (spec.submodule_search_locations or [])] if spec else []
    return sorted(str(d) for root in roots for d in root.glob("*/include") if d.is_dir())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build-dir", type=Path, default=None, help="where to build (default: a new temporary folder)")
    args = parser.parse_args()
    import torch
    from torch.utils.cpp_extension import CUDA_HOME, load

    spec = importlib.util.spec_from_file_location("glsplat_kernels", KERNELS)
    kernels = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(kernels)
    print(f"torch {torch.__version__} (CUDA {torch.version.cuda}), CUDA_HOME {CUDA_HOME}, "
          f"TORCH_CUDA_ARCH_LIST={os.environ.get('TORCH_CUDA_ARCH_LIST', '(unset: the visible GPUs)')}, "
          f"GPU available: {torch.cuda.is_available()}", flush=True)
    if torch.version.cuda is None:
        print("this torch is a CPU build: nothing to compile the CUDA kernels with", file=sys.stderr)
        return 1
    directory = args.build_dir or Path(tempfile.mkdtemp(prefix="glsplat_cuda_build_"))
    directory.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    module = load(name="glsplat_cuda_check", sources=[str(s) for s in kernels.CUDA_SOURCES],
                  build_directory=str(directory), verbose=True, extra_include_paths=wheel_headers(CUDA_HOME),
                  **kernels.CUDA_FLAGS)
    names = sorted(n for n in dir(module) if not n.startswith("_"))
    print(f"built in {time.monotonic() - start:.0f} s into {directory}: {', '.join(names)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
