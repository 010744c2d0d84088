"""glsplat.memory.keep_freed_memory: large tensors come from the heap, not from a fresh mmap each."""
import platform
import re
import subprocess
import sys
import textwrap

import pytest

import glsplat
from glsplat.memory import keep_freed_memory

# In a fresh interpreter: the call is process-wide and would change the allocator of the tests.
PROBE = textwrap.dedent("""
    import ctypes, torch
    from glsplat.memory import keep_freed_memory

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in
                    ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
                     "fordblks", "keepcost")]

    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = MallInfo2

    def mmapped_by_a_large_tensor():
        before = libc.mallinfo2().hblkhd
        tensor = torch.ones(64 << 20, dtype=torch.uint8)
        grown = libc.mallinfo2().hblkhd - before
        del tensor
        return grown

    default = mmapped_by_a_large_tensor()
    took = keep_freed_memory()
    print(default, took, mmapped_by_a_large_tensor(), mmapped_by_a_large_tensor())
""")


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_keep_freed_memory_serves_large_tensors_from_the_heap():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout
    default, took, first, second = out.split()
    assert int(default) >= 64 << 20  # glibc's default: a fresh mmap for 64 MiB
    assert took == "True"
    assert int(first) == 0 and int(second) == 0


def test_keep_freed_memory_checks_top_pad():
    with pytest.raises(ValueError, match="top_pad"):
        keep_freed_memory(top_pad=-1)


LIMITED_RENDER = """
import resource, sys, torch, glsplat
ctx = glsplat.Context()
mesh = glsplat.Mesh(torch.tensor([[-0.5, -0.5, 0.0], [0.5, -0.5, 0.0], [0.0, 0.5, 0.0]]), torch.tensor([[0, 1, 2]]))
used = int([line for line in open("/proc/self/status") if line.startswith("VmSize:")][0].split()[1]) * 1024
resource.setrlimit(resource.RLIMIT_AS, (used + 2 * 2**30, resource.RLIM_INFINITY))  # 2 GiB more
for size in (64, 9000):
    camera = glsplat.Camera.look_at([0.0, 0.0, 3.0], image_size=(size, size))
    try:
        print(size, tuple(glsplat.render(ctx, mesh, camera).shape))
    except ValueError as error:
        print(size, "ValueError", error)
"""


def test_render_too_large_for_memory_is_refused_before_allocating():
    """Under a 2 GiB address-space allowance, 9000^2 (~8 GB) failed in the allocator or in GL; now it
    is refused up front with the estimate, and small renders still work."""
    result = subprocess.run([sys.executable, "-c", LIMITED_RENDER], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "64 (1, 64, 64, 4)"
    assert re.fullmatch(r"9000 ValueError size: rendering 1 x 9000 x 9000 pixels with 1 layer\(s\) needs at least "
                        r"8\.\d GB \(about 100 bytes a pixel\), but only [0-2]\.\d GB are available .*", lines[1]), lines[1]
