"""Hand freed memory back to the operating system after big requests, and keep what a server
holds for its whole life out of the cyclic garbage collector's way.

A decoded 100-megapixel image is ~300 MB; Python and Pillow free it when the request ends, but
glibc's malloc keeps freed heap pages (and one arena per thread that ever allocated) for reuse,
so a server that answered a few big requests from its thread pool keeps their peak RSS for ever.
``malloc_trim(0)`` returns the free pages; it costs a few milliseconds, so ``release_soon`` runs
it at most once per ``MIN_INTERVAL`` seconds, on a background thread. ``limit_arenas`` caps the
number of malloc arenas (glibc's default is 8 per core) before the server starts its threads.

No-ops where glibc is not the allocator (macOS, musl, Windows).

``freeze_long_lived``: Python's cyclic collector now and then walks every object the process
holds — the imported libraries, the app, an in-memory copy of the labels — in the middle of
whatever request triggered it. A long-running server freezes what it holds once started (and
again after loading something big), so those walks only see the requests' own objects and no
longer stall the slowest requests (docs/benchmarks.md, "Reading"). ``thaw`` hands it all back to
the collector when the server stops.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import os
import threading
import time

log = logging.getLogger(__name__)

MIN_INTERVAL = 1.0
_M_ARENA_MAX = -8  # mallopt parameter number in glibc's malloc.h

_libc: ctypes.CDLL | None = None
_lock = threading.Lock()
_last = 0.0
_pending = False


def _glibc() -> ctypes.CDLL | None:
    global _libc
    if _libc is None:
        name = ctypes.util.find_library("c")
        try:
            lib = ctypes.CDLL(name) if name else None
        except OSError:
            lib = None
        if lib is None or not hasattr(lib, "malloc_trim"):
            return None
        _libc = lib
    return _libc


def release() -> bool:
    """Return free heap memory to the OS now; False where that is not possible."""
    libc = _glibc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


def release_soon() -> None:
    """``release`` on a background thread, at most once per MIN_INTERVAL (coalesced)."""
    global _pending
    with _lock:
        if _pending:
            return
        _pending = True

    def run() -> None:
        global _last, _pending
        wait = _last + MIN_INTERVAL - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        with _lock:
            _pending = False
        release()
        _last = time.monotonic()

    threading.Thread(target=run, name="pixdex-trim", daemon=True).start()


def limit_arenas(count: int = 2) -> None:
    """Cap glibc malloc arenas (``MALLOC_ARENA_MAX`` in the environment wins)."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return
    libc = _glibc()
    if libc is not None and hasattr(libc, "mallopt"):
        libc.mallopt(_M_ARENA_MAX, count)


def rss_bytes(pid: int | str = "self") -> int:
    """Resident set size of a process (Linux /proc), 0 where unknown."""
    try:
        with open(f"/proc/{pid}/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def freeze_long_lived() -> None:
    """Collect the garbage there is, then move every object left into the collector's permanent
    generation: it is no longer walked (it is still freed when its references go)."""
    gc.collect()
    gc.freeze()


def thaw() -> None:
    """Undo ``freeze_long_lived`` (a stopped server's app becomes collectable garbage again)."""
    gc.unfreeze()
