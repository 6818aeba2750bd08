"""The pre-generated key pool: refilled in the background, each key handed out once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from certificate_api.pki.keypool import KeyPool
from certificate_api.pki.keys import KeyType
from tests.conftest import Customer
from tests.test_run import alive, descendants


def wait_for(pool: KeyPool, key_type: KeyType, count: int, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while pool.available(key_type) < count:
        assert time.monotonic() < deadline, f"pool has {pool.available(key_type)} of {count}"
        time.sleep(0.05)


def test_pool_fills_in_the_background_and_never_repeats_a_key() -> None:
    pool = KeyPool({KeyType.RSA_2048: 4}, workers=1)
    try:
        assert pool.available(KeyType.RSA_2048) == 0
        pool.fill()
        wait_for(pool, KeyType.RSA_2048, 4)
        keys = [pool.take(KeyType.RSA_2048) for _ in range(12)]  # more than the pool holds
        assert all(isinstance(k, rsa.RSAPrivateKey) and k.key_size == 2048 for k in keys)
        moduli = {k.public_key().public_numbers().n for k in keys}  # type: ignore[union-attr]
        assert len(moduli) == 12
        wait_for(pool, KeyType.RSA_2048, 4)  # topped up again after being drained
    finally:
        pool.close()


def test_types_without_a_pool_are_made_on_demand() -> None:
    pool = KeyPool({KeyType.RSA_2048: 0}, workers=1)
    try:
        key = pool.take(KeyType.EC_P256)
        assert key.public_key() is not None
        assert pool.executor is None  # nothing was started for it
    finally:
        pool.close()


def test_issuance_uses_pooled_keys(certs: Any, make_customer: Any) -> None:
    customer: Customer = make_customer()
    pool = certs.app.state.runtime.key_pool
    pool.fill()
    wait_for(pool, KeyType.RSA_2048, 2)
    before = pool.hits[KeyType.RSA_2048]
    body = certs.post(
        "/api/certificates",
        json={"common_name": "pooled.example.com", "key_type": "rsa-2048"},
        headers=customer.auth,
    ).json()
    assert pool.hits[KeyType.RSA_2048] == before + 1
    cert = x509.load_pem_x509_certificate(body["certificate_pem"].encode())
    key = serialization.load_pem_private_key(body["private_key_pem"].encode(), None)
    assert cert.public_key() == key.public_key()


POOL_OWNER = """
import sys, time
from certificate_api.pki.keypool import KeyPool
from certificate_api.pki.keys import KeyType
pool = KeyPool({KeyType.RSA_2048: 64}, workers=2)
pool.fill()
print("filling", flush=True)
time.sleep(600)
"""


def test_refill_processes_die_with_the_process_that_owns_the_pool() -> None:
    owner = subprocess.Popen([sys.executable, "-c", POOL_OWNER], stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout is not None and owner.stdout.readline().strip() == "filling"
        deadline = time.monotonic() + 30
        refillers: set[int] = set()
        while len(refillers) < 2 and time.monotonic() < deadline:
            refillers = descendants(owner.pid)  # the spawn helpers and resource tracker too
            time.sleep(0.1)
        assert refillers, "no refill process started"
        owner.kill()  # no chance to shut the pool down
        owner.wait()
        while any(alive(pid) for pid in refillers) and time.monotonic() < deadline + 30:
            time.sleep(0.1)
        left = [Path(f"/proc/{pid}/cmdline").read_bytes()[:90] for pid in refillers if alive(pid)]
        assert not left, left
    finally:
        if owner.poll() is None:
            owner.kill()


def test_a_killed_refill_process_does_not_break_issuance() -> None:
    pool = KeyPool({KeyType.RSA_2048: 2}, workers=1)
    try:
        pool.fill()
        wait_for(pool, KeyType.RSA_2048, 2)
        assert pool.executor is not None
        for pid in list(pool.executor._processes):  # the OOM killer, say
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        keys = []
        while len(keys) < 8 and time.monotonic() < deadline:
            keys.append(pool.take(KeyType.RSA_2048))  # pooled or made on demand, never an error
        assert len({k.public_key().public_numbers().n for k in keys}) == 8  # type: ignore[union-attr]
        wait_for(pool, KeyType.RSA_2048, 2)  # new refill processes took over
    finally:
        pool.close()
