"""glsplat.keep_freed_memory: large tensors come from the heap, not from a fresh mmap each."""
import platform
import subprocess
import sys
import textwrap

import pytest

import glsplat

# In a fresh interpreter: the call is process-wide and would change the allocator of the tests.
PROBE = textwrap.dedent("""
    import ctypes, torch, glsplat

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
    took = glsplat.keep_freed_memory()
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
        glsplat.keep_freed_memory(top_pad=-1)
