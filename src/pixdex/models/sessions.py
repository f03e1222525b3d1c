"""ONNX Runtime session settings shared by every model pixdex runs (classifier, detectors, text).

One place decides how a session uses the cores and memory, so the models cannot drift apart:
threads per session, no spin-waiting, and one memory arena for the whole process.
"""

from __future__ import annotations

import logging
import os
import threading

import onnxruntime as ort

log = logging.getLogger(__name__)


def session_options(threads: int = 0) -> ort.SessionOptions:
    """Intra-op threads = ``threads`` or every core this process may use; one inter-op thread
    (the graph is a chain, there is nothing to run in parallel); all graph optimisations; no
    spin-waiting: idle ONNX Runtime threads otherwise busy-wait and take the CPU from the
    threads decoding the next batch (docs/benchmarks.md, "Speed" under "Label model
    inference")."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads if threads > 0 else available_cores()
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # The same integers on every x86 CPU: without VNNI (AVX2 only: AMD, older Intel), ONNX
    # Runtime's int8 kernels add pairs of u8 x s8 products in 16 bits, which saturates; this
    # makes them use exact u8 x u8 arithmetic there (VNNI CPUs compute exactly either way).
    opts.add_session_config_entry("session.x64quantprecision", "1")
    if _share_cpu_arena():
        opts.add_session_config_entry("session.use_env_allocators", "1")
    return opts


_arena_lock = threading.Lock()
_arena_shared: bool | None = None


def _share_cpu_arena() -> bool:
    """One CPU memory arena for every session in the process (registered once, on first use).

    Each session otherwise keeps its own arena, grown to its own peak and never given back, so
    the process holds the sum of every model's peak working memory although an analysis thread
    runs its models one after the other. Shared, it holds the peak of what runs at the same
    time, which is less memory for the same CPU time (docs/benchmarks.md, "One memory arena for
    every model"). False where this ONNX Runtime cannot register one (each session then keeps
    its own, as before)."""
    global _arena_shared
    with _arena_lock:
        if _arena_shared is None:
            try:
                info = ort.OrtMemoryInfo(
                    "Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT
                )
                # extend strategy 0 (next power of two, ONNX Runtime's default): requested-size
                # chunks (1) saved no memory for the default analyzers, so the default is kept
                cfg = ort.OrtArenaCfg({"arena_extend_strategy": 0})
                ort.create_and_register_allocator(info, cfg)
                _arena_shared = True
            except (AttributeError, RuntimeError, TypeError) as exc:
                _arena_shared = False
                log.debug("no shared ONNX Runtime arena: %s", exc)
        return _arena_shared


def available_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)
