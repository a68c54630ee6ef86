"""The train stage's memory policy: freed blocks of a megabyte and more leave the process at once."""

import subprocess
import sys

import pytest

# Raise glibc's dynamic threshold (a freed 16 MiB block), then allocate 4 MiB blocks between small ones that stay
# alive, free the big ones and print how far the resident set came back down.
CHILD = """
import sys
from pathlib import Path
from stages.core.memory import return_freed_memory

def rss():
    line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024

if sys.argv[1] == "on":
    assert return_freed_memory()
block = bytearray(16 << 20)
del block
before = rss()
big, small = [], []
for _ in range(64):
    big.append(bytearray(4 << 20))
    small.append(bytearray(2000))
grown = rss() - before
del big
print(grown, rss() - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator and /proc")
@pytest.mark.parametrize("policy", ["on", "off"])
def test_freed_blocks_leave_the_process(policy):
    out = subprocess.run([sys.executable, "-c", CHILD, policy], capture_output=True, text=True, check=True)
    grown, kept = map(float, out.stdout.split())
    assert grown > 200  # 256 MiB were live
    if policy == "on":
        assert kept < 32
    else:  # the unset policy keeps them: what the setting is for
        assert kept > 200
