"""What requests share, built once in the lifespan: database, keys, the issuing CA."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from dataclasses import dataclass, field
from datetime import timedelta

import anyio.to_thread
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from certificate_api.authority import service as authority
from certificate_api.authority.directory import Authorities
from certificate_api.authority.service import IssuingCa
from certificate_api.database import open_database
from certificate_api.pki.keypool import KeyPool
from certificate_api.pki.keys import KeyType
from certificate_api.pki.sealing import Keyring, parse_keyring
from certificate_api.revocation.service import CrlCache, ResponderKeeper, ensure_crl_state
from certificate_api.settings import CertificateSettings
from core.acme.limits import AcmeLimits
from core.acme.nonces import Nonces
from core.issuance import IssuerContext
from core.name_check import NameRules
from core.orders import Limits
from core.rates import IssuanceRate, SlowKeyGate
from core.statements import Database
from schema import keyfiles
from schema.db import make_engine, make_sessionmaker
from schema.tokens import VerifiedTokens, load_verify_key, verify_access_token

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """One app's shared state."""

    settings: CertificateSettings
    engine: Engine
    sessions: sessionmaker[Session]
    tokens: VerifiedTokens
    keyring: Keyring
    authorities: Authorities
    crl_cache: CrlCache
    responder: ResponderKeeper
    key_pool: KeyPool
    slow_keys: SlowKeyGate
    db: Database  # async, for the hot routes; opened by the app's lifespan
    names: NameRules  # who may have which names, checked at issuance
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def issuer(self) -> IssuerContext:
        """What issuance needs, with the issuing CA as it is now."""
        settings = self.settings
        return IssuerContext(
            db=self.db,
            ca=self.ca,
            keyring=self.keyring,
            key_pool=self.key_pool,
            public_base_url=settings.public_base_url,
            limits=Limits(settings.default_validity_days, settings.max_validity_days),
            idempotency_ttl=timedelta(hours=settings.idempotency_ttl_hours),
            names=self.names,
            rate=IssuanceRate(settings.issuance_rate_per_minute),
            slow_keys=self.slow_keys,
        )

    @functools.cached_property
    def nonces(self) -> Nonces:
        """ACME's nonces: every process derives the same key from the master key."""
        return Nonces.from_master_key(self.keyring.current.key)

    @functools.cached_property
    def acme_limits(self) -> AcmeLimits:
        """The per-account ACME limits."""
        return AcmeLimits(
            self.settings.acme_orders_per_hour, self.settings.acme_failed_validations_per_hour
        )

    @property
    def ca(self) -> IssuingCa:
        """The current issuing CA: new leaves are signed by it."""
        return self.authorities.current

    def start(self) -> None:
        """Start the background refresh of the CA rows (call inside the event loop)."""
        self.tasks.append(asyncio.create_task(self._refresh_authorities()))

    async def _refresh_authorities(self) -> None:
        while True:
            await asyncio.sleep(self.settings.ca_refresh_seconds)
            try:
                await anyio.to_thread.run_sync(self.refresh_authorities)
            except Exception:  # a database outage must not end the loop
                log.warning("could not re-read the CA rows", exc_info=True)

    def refresh_authorities(self) -> bool:
        """Pick up a rotated intermediate: see `Authorities.refresh`."""
        with self.sessions() as session:
            return self.authorities.refresh(session)

    async def close(self) -> None:
        """Stop the background tasks and key pool's refills, release the connection pools."""
        for task in self.tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.key_pool.close()
        self.crl_cache.close()
        await self.db.close()
        self.engine.dispose()


def keyring_from(settings: CertificateSettings) -> Keyring:
    """The master keys from settings, or generated into var/ on first start."""
    configured = settings.master_keys.get_secret_value() if settings.master_keys else None
    return parse_keyring(
        keyfiles.master_keys_text(settings.var_dir, configured, settings.master_keys_file)
    )


def _token_verifier(settings: CertificateSettings) -> VerifiedTokens:
    key = load_verify_key(keyfiles.token_verify_key(settings))
    return VerifiedTokens(
        lambda token: verify_access_token(
            token, key, settings.token_issuer, settings.token_audience
        )
    )


async def build_runtime(settings: CertificateSettings) -> Runtime:
    """Connect, read keys, load the CA (creating it on first start)."""
    engine = make_engine(
        settings.effective_database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout,
    )
    sessions = make_sessionmaker(engine)
    keyring = keyring_from(settings)
    with sessions() as session:
        ca = authority.ensure(
            session,
            keyring,
            authority.CaSpec(
                settings.ca_name,
                settings.ca_root_key_type,
                settings.ca_intermediate_key_type,
                settings.public_base_url,
            ),
        )
        ensure_crl_state(session, ca.id)
        authorities = Authorities(keyring, ca)
        authorities.refresh(session)
    key_pool = KeyPool(
        {KeyType(name): size for name, size in settings.key_pool_sizes.items()},
        settings.key_pool_workers,
    )
    if settings.key_pool_fill_on_start:
        key_pool.fill()
    runtime = Runtime(
        names=NameRules(settings, engine.dialect.name),
        db=await open_database(engine, settings.db_pool_size, settings.db_pool_timeout),
        settings=settings,
        engine=engine,
        sessions=sessions,
        tokens=_token_verifier(settings),
        keyring=keyring,
        authorities=authorities,
        crl_cache=CrlCache(settings.effective_database_url),
        key_pool=key_pool,
        slow_keys=SlowKeyGate(settings.max_slow_key_generations),
        responder=ResponderKeeper(
            keyring,
            KeyType(settings.ocsp_responder_key_type),
            settings.ocsp_responder_validity_days,
            timedelta(hours=settings.ocsp_validity_hours),
        ),
    )
    runtime.start()
    return runtime
