"""Pre-generated private keys, so RSA issuance does not wait for key generation.

RSA key generation costs tens to hundreds of milliseconds and holds the GIL, so a thread
would slow every other request of the process. The pool refills in separate, lower-priority
processes instead; a request takes a finished key (each key is handed out once and then
forgotten) or, when the pool is empty, generates one itself exactly as without a pool.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import multiprocessing
import os
import queue
import signal
import sys
import threading
from collections.abc import Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from cryptography.hazmat.primitives import serialization
from prometheus_client import Counter, Gauge

from certificate_api.pki.keys import KeyType, PrivateKey, generate_private_key

log = logging.getLogger(__name__)
AVAILABLE = Gauge(
    "key_pool_available", "Pre-generated keys ready", ["key_type"], multiprocess_mode="livesum"
)
TAKEN = Counter(
    "key_pool_taken_total",
    "Keys handed out, from the pool or made on demand",
    ["key_type", "source"],
)


def _generate_der(key_type: str) -> bytes:
    """Run in a refill process: one key, as unencrypted PKCS#8 DER (it never leaves the host)."""
    key = generate_private_key(KeyType(key_type))
    return key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


_PR_SET_PDEATHSIG = 1


def _start_refill_process(owner: int) -> None:
    """Refill processes yield the CPU to request handling, leave Ctrl-C to the service (it
    shuts the pool down, and they exit after the key in hand), and on Linux die with the
    service process however it ends, so none outlives it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(OSError):
        os.nice(10)
    if sys.platform == "linux":
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != owner:  # the owner died before we got here
        os._exit(0)


class KeyPool:
    """Keys of some types, kept topped up to a target size per type."""

    def __init__(self, sizes: Mapping[KeyType, int], workers: int) -> None:
        self.sizes = {key_type: size for key_type, size in sizes.items() if size > 0}
        self.ready: dict[KeyType, queue.SimpleQueue[bytes]] = {
            key_type: queue.SimpleQueue() for key_type in self.sizes
        }
        self.pending = dict.fromkeys(self.sizes, 0)
        self.workers = workers
        self.lock = threading.Lock()
        self.executor: ProcessPoolExecutor | None = None
        self.closed = False
        self.hits = dict.fromkeys(self.sizes, 0)  # keys served from the pool, per type

    def take(self, key_type: KeyType) -> PrivateKey:
        """A key never handed out before: from the pool if one is ready, else made now."""
        ready = self.ready.get(key_type)
        if ready is None:
            return generate_private_key(key_type)
        try:
            der = ready.get_nowait()
        except queue.Empty:
            self.refill(key_type)
            TAKEN.labels(key_type.value, "on_demand").inc()
            return generate_private_key(key_type)
        self.refill(key_type)  # after taking, so the pool is topped back up to its size
        AVAILABLE.labels(key_type.value).dec()
        TAKEN.labels(key_type.value, "pool").inc()
        with self.lock:
            self.hits[key_type] += 1
        # We made this key ourselves a moment ago: skip the costly RSA consistency check.
        key = serialization.load_der_private_key(der, None, unsafe_skip_rsa_key_validation=True)
        return key  # type: ignore[return-value]

    def refill(self, key_type: KeyType) -> None:
        """Start generating as many keys as the pool is short of (no-op when full).

        Never fails the caller: if a refill process died (the OOM killer, say), the broken
        executor is dropped, a new one is made next time, and requests meanwhile make their
        keys themselves.
        """
        with self.lock:
            if self.closed:
                return
            short = self.sizes[key_type] - self.ready[key_type].qsize() - self.pending[key_type]
            if short <= 0:
                return
            if self.executor is None:
                # spawn, not fork: the service process has threads and open connections.
                self.executor = ProcessPoolExecutor(
                    max_workers=self.workers,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_start_refill_process,
                    initargs=(os.getpid(),),
                )
            try:
                for _ in range(short):
                    future = self.executor.submit(_generate_der, key_type.value)
                    self.pending[key_type] += 1
                    future.add_done_callback(functools.partial(self._arrived, key_type))
            except BrokenProcessPool:
                log.warning("key pool refill processes died; starting new ones on next use")
                broken, self.executor = self.executor, None
                self.pending = dict.fromkeys(self.sizes, 0)
                broken.shutdown(wait=False, cancel_futures=True)

    def _arrived(self, key_type: KeyType, future: Future[bytes]) -> None:
        with self.lock:
            self.pending[key_type] = max(0, self.pending[key_type] - 1)
        if future.cancelled():
            return
        error = future.exception()
        if error is not None:
            log.warning("key pool refill failed", extra={"error": repr(error)})
            return
        self.ready[key_type].put(future.result())
        AVAILABLE.labels(key_type.value).inc()

    def fill(self) -> None:
        """Start filling every type now (at startup) rather than on first use."""
        for key_type in self.sizes:
            self.refill(key_type)

    def available(self, key_type: KeyType) -> int:
        """Keys ready now."""
        ready = self.ready.get(key_type)
        return ready.qsize() if ready is not None else 0

    def close(self) -> None:
        """Stop refilling; keys still in memory are dropped."""
        with self.lock:
            self.closed = True
            executor, self.executor = self.executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
