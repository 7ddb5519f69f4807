"""Loaded into zfw by ``bench/http_proxy.py --million`` (through PYTHONPATH), nowhere else.

On SIGUSR2: collect garbage, count the blocks Python's allocator holds
(live objects), hand freed heap memory back to the system (``malloc_trim``)
and write ``blocks rss_kib`` to the file named by ZFW_MEMPROBE. Live memory
that grows per request shows in the block count; memory the C allocator
merely keeps after it was freed shows as RSS that the trim gives back.
"""

import os

_OUT = os.environ.get("ZFW_MEMPROBE")

if _OUT:
    import ctypes
    import gc
    import signal
    import sys

    _libc = ctypes.CDLL("libc.so.6")

    def _probe(_signum, _frame):
        gc.collect()
        blocks = sys.getallocatedblocks()
        _libc.malloc_trim(0)
        with open("/proc/self/status") as f:
            rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        with open(_OUT, "a") as f:
            f.write(f"{blocks} {rss}\n")

    signal.signal(signal.SIGUSR2, _probe)
