"""How the process hands freed memory back, for stages whose tensors come and go by the gigabyte."""

from __future__ import annotations

import ctypes
import ctypes.util

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter (malloc.h)
MMAP_THRESHOLD = 1 << 20


def return_freed_memory() -> bool:
    """Make glibc serve blocks of 1 MiB and more from their own mappings, so freeing one gives it back at once.

    glibc raises its threshold as big blocks are freed (up to 32 MiB), after which a training step's activations
    and gradients come from the heap and stay in the process, fragmented, once freed: the peak resident set then
    carries a step's worth of dead memory. Setting the threshold also stops that adjustment. False where the C
    library is not glibc (nothing changes there)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
