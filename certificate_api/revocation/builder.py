"""Big CRLs are built in a process of their own.

Reading 100,000 entries and signing the CRL takes about a second of CPU that holds the GIL:
in the serving process it would stall the event loop, and with it every other customer's
request, once per rebuild (docs/performance.md). Past `OFFLOAD_ENTRIES` entries the rebuild
runs in one helper process instead (spawned on first need, lower priority), which reads the
rows, builds, signs and publishes exactly as the serving process would; the request that
asked for it waits in its thread without holding the GIL. Small CRLs are built in place:
a process is not worth it for them.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from concurrent.futures import ProcessPoolExecutor
from datetime import timedelta
from multiprocessing import get_context
from typing import TYPE_CHECKING, Any, NamedTuple

from cryptography.hazmat.primitives import serialization

if TYPE_CHECKING:
    from certificate_api.authority.service import IssuingCa

OFFLOAD_ENTRIES = 10_000
_sessions: Any = None  # the helper process's sessionmaker, made on its first build


def _lower_priority() -> None:
    with contextlib.suppress(OSError):
        os.nice(10)


class _CaKeys(NamedTuple):
    """The issuing CA as it crosses to the helper: its id, certificate and key (PEM)."""

    ca_id: uuid.UUID
    cert_pem: bytes
    key_pem: bytes


def _build_in_helper(url: str, keys: _CaKeys, state: Any, validity: timedelta) -> Any:
    """Runs in the helper: the serving process's `_build`, on a connection of its own."""
    global _sessions  # noqa: PLW0603 - one engine per helper process, made once
    from sqlalchemy.orm import sessionmaker

    from certificate_api.authority.service import IssuingCa
    from certificate_api.pki.ca import load_signer
    from certificate_api.revocation.service import _build
    from schema.db import make_engine

    if _sessions is None:
        _sessions = sessionmaker(make_engine(url), expire_on_commit=False)
    issuer = load_signer(keys.cert_pem, keys.key_pem)
    ca = IssuingCa(keys.ca_id, issuer, issuer.certificate, "")
    with _sessions() as session:
        return _build(session, ca, state, validity)


class CrlProcess:
    """The helper process of one serving process."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.executor: ProcessPoolExecutor | None = None

    def build(self, ca: IssuingCa, state: Any, validity: timedelta) -> Any:
        """Build and publish in the helper; what `_build` returns (the Crl, or None when
        another builder published first)."""
        if self.executor is None:
            self.executor = ProcessPoolExecutor(
                1, mp_context=get_context("spawn"), initializer=_lower_priority
            )
        cert_pem = ca.certificate.public_bytes(serialization.Encoding.PEM)
        key_pem = ca.issuer.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        keys = _CaKeys(ca.id, cert_pem, key_pem)
        future = self.executor.submit(_build_in_helper, self.database_url, keys, state, validity)
        return future.result()

    def close(self) -> None:
        """Stop the helper, if one was started."""
        if self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=True)
            self.executor = None
