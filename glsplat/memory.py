"""Opt-in tuning of the C allocator for rendering large batches on a CPU."""
from __future__ import annotations

import ctypes

# mallopt parameters, from glibc's malloc.h
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_INT_MAX = 2**31 - 1


def keep_freed_memory(top_pad: int = 512 << 20) -> bool:
    """Make this process's ``malloc`` keep freed memory for reuse rather than return it to the OS.

    glibc serves every allocation of 32 MiB or more with a fresh ``mmap`` and unmaps it again
    when it is freed. A batch of 8 RGBA float32 images at 512x512 is exactly 32 MiB, and so is
    every intermediate and gradient of a loss on it. Each such tensor therefore page-faults all
    its pages in, zero-filled by the kernel, every time it is made. On a CPU that costs as much
    as the arithmetic on the tensor, and it can make one render of 8 views slower than 8
    renders of one view (see the README's Performance section).

    After this call large blocks come from the heap, and freed memory stays there for the next
    tensor; the heap grows in steps of at least ``top_pad`` bytes. The price is that the process's
    resident memory stays near its peak. The call is process-wide (it applies to all later
    allocations of every library) and lasts for the life of the process. Starting Python with
    ``MALLOC_MMAP_THRESHOLD_=2147483647 MALLOC_TRIM_THRESHOLD_=2147483647 MALLOC_TOP_PAD_=536870912``
    in the environment does the same.

    Returns True where it took effect (glibc, i.e. Linux), False elsewhere.
    """
    if not 0 <= top_pad <= _INT_MAX:
        raise ValueError(f"top_pad: expected 0..{_INT_MAX} bytes, got {top_pad}")
    try:
        libc = ctypes.CDLL(None)
        mallopt, _ = libc.mallopt, libc.gnu_get_libc_version  # glibc only: musl's mallopt does nothing
    except (AttributeError, OSError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return all(mallopt(param, value) == 1 for param, value in
               ((_M_MMAP_THRESHOLD, _INT_MAX), (_M_TRIM_THRESHOLD, _INT_MAX), (_M_TOP_PAD, top_pad)))
