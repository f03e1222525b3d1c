"""Calls to a remote, metered service (Rekognition): a client-side rate limit, retries with
backoff on throttling, and counters for the end-of-run summary.

Hand-written rather than botocore's retry modes, for three reasons that matter when every call
costs money and the account has a TPS quota:
- botocore's ``standard`` mode gives up once its shared retry quota is spent (a long throttling
  spell across many threads fails photos that a patient client would have analyzed), and its
  ``adaptive`` mode only *reacts* to throttling — neither caps the rate below a known quota;
- the summary must say how often the service throttled us, which botocore's retries hide;
- every attempt, retries included, must pass the rate limit, because the quota counts them all.
botocore's own retries are therefore switched off for these clients (one attempt per call).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from pixdex.integrations.aws import error_code

T = TypeVar("T")

#: error codes that mean "slow down": retried with backoff, counted as throttled
THROTTLING_CODES = frozenset(
    {
        "ThrottlingException",
        "ProvisionedThroughputExceededException",
        "Throttling",
        "TooManyRequestsException",
        "LimitExceededException",
    }
)
#: error codes that mean "the service had a problem": retried with backoff
SERVER_CODES = frozenset({"InternalServerError", "ServiceUnavailableException", "InternalFailure"})


class RateLimiter:
    """At most ``rate`` calls per second, shared by every thread: each call takes the next free
    slot on a 1/rate grid (no bursts above the rate; a token bucket of one)."""

    def __init__(self, rate: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError("rate must be > 0 calls per second")
        self.interval = 1.0 / rate
        self._clock = clock
        self._next = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Wait for this call's slot; returns the seconds waited."""
        with self._lock:
            now = self._clock()
            slot = max(now, self._next)
            self._next = slot + self.interval
        wait = slot - now
        if wait > 0:
            time.sleep(wait)
        return wait


@dataclass
class CallStats:
    """What the calls did, for the end-of-run summary (thread-safe increments)."""

    calls: int = 0  # requests sent, retries included
    throttled: int = 0  # answers that said "slow down"
    retried: int = 0  # attempts after the first (throttling, server errors, connection errors)
    failed: int = 0  # photos the service could not analyze (after retries)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count(self, **deltas: int) -> None:
        with self._lock:
            for name, delta in deltas.items():
                setattr(self, name, getattr(self, name) + delta)

    def as_dict(self) -> dict[str, int]:
        return {
            "calls": self.calls,
            "throttled": self.throttled,
            "retried": self.retried,
            "failed": self.failed,
        }


class RetryingCaller:
    """Runs a call through the rate limit, retrying throttling, server errors and connection
    errors with exponential backoff and full jitter (AWS's recommended shape): the n-th retry
    waits a random time up to ``min(max_backoff, base * 2**n)`` seconds."""

    def __init__(
        self,
        limiter: RateLimiter,
        stats: CallStats,
        *,
        max_attempts: int = 8,
        base: float = 0.5,
        max_backoff: float = 20.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.limiter = limiter
        self.stats = stats
        self.max_attempts = max(1, max_attempts)
        self.base = base
        self.max_backoff = max_backoff
        self._sleep = sleep

    def __call__(self, call: Callable[[], T]) -> T:
        attempt = 0
        while True:
            attempt += 1
            self.limiter.acquire()
            self.stats.count(calls=1)
            try:
                return call()
            except Exception as exc:
                kind = retry_kind(exc)
                if kind == "throttled":
                    self.stats.count(throttled=1)
                if kind is None or attempt >= self.max_attempts:
                    raise
            self.stats.count(retried=1)
            cap = min(self.max_backoff, self.base * 2 ** (attempt - 1))
            self._sleep(random.uniform(0, cap))  # noqa: S311 - jitter, not cryptography


def retry_kind(exc: BaseException) -> str | None:
    """'throttled', 'server' or 'connection' when trying again may help; None otherwise."""
    code = error_code(exc)
    if code in THROTTLING_CODES:
        return "throttled"
    if code in SERVER_CODES:
        return "server"
    status = (
        (getattr(exc, "response", None) or {}).get("ResponseMetadata", {}).get("HTTPStatusCode")
    )
    if isinstance(status, int) and status >= 500:
        return "server"
    name = type(exc).__name__
    if name in {
        "EndpointConnectionError",
        "ConnectTimeoutError",
        "ReadTimeoutError",
        "ConnectionClosedError",
        "ProxyConnectionError",
    }:
        return "connection"
    return None
