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


# What a render holds per pixel of its raster (guard band included) at its peak, a floor of what
# was measured (resource.getrusage, 1024^2 vs 2048^2, Spot, forward: 107 bytes at 1 layer, 177 at
# 2): OpenGL's targets (a float RGBA array and a depth array, kept for the next render of that
# size) 20 bytes, and a second RGBA array when peeling 16 more; the G-buffers read back 16 per
# layer, the face ids 4 per layer, the image 16, and the splat's and the shader's work. A backward
# pass adds ~60 bytes, and dense coverage more.
BYTES_PER_PIXEL = 44
BYTES_PER_PIXEL_LAYER = 56
BYTES_PER_PIXEL_PEELING = 16


def available_bytes() -> int | None:
    """Memory this process can still take: /proc/meminfo's MemAvailable, less where the address-space
    limit (RLIMIT_AS) leaves less room above the current size. ``None`` where neither is known."""
    import resource

    limits = []
    try:
        with open("/proc/meminfo") as meminfo:
            limits += [int(line.split()[1]) * 1024 for line in meminfo if line.startswith("MemAvailable:")]
    except OSError:
        pass
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        try:
            with open("/proc/self/status") as status:
                used = [int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:")]
            limits.append(soft - used[0])
        except (OSError, IndexError):
            pass
    return min(limits) if limits else None


def check_render_fits(batch: int, size: tuple[int, int], layers: int, border: int) -> None:
    """Refuse, before allocating anything, a render whose per-pixel buffers cannot fit in memory."""
    height, width = size
    per_pixel = BYTES_PER_PIXEL + BYTES_PER_PIXEL_LAYER * layers + (BYTES_PER_PIXEL_PEELING if layers > 1 else 0)
    need = batch * (height + 2 * border) * (width + 2 * border) * per_pixel
    if need < 2**28:  # not worth reading /proc on every small render
        return
    free = available_bytes()
    if free is not None and need > free:
        raise ValueError(f"size: rendering {batch} x {height} x {width} pixels with {layers} layer(s) needs at least "
                         f"{need / 1e9:.1f} GB (about {need // (batch * height * width)} bytes a pixel), "
                         f"but only {max(free, 0) / 1e9:.1f} GB are available (MemAvailable, RLIMIT_AS); "
                         "render smaller images, fewer views at once, or fewer layers")
