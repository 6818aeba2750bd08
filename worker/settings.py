"""Settings of the delivery worker."""

from __future__ import annotations

from pydantic import Field

from schema.settings import CommonSettings


class WorkerSettings(CommonSettings):
    """How events are claimed, sent and retried."""

    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    webhook_backoff_base_seconds: float = Field(default=1.0, gt=0)
    webhook_backoff_cap_seconds: float = Field(default=3600.0, gt=0)
    # Retried for at least this long before the event is marked failed.
    webhook_retry_for_seconds: float = Field(default=26 * 3600.0, gt=0)
    webhook_poll_seconds: float = Field(default=0.2, gt=0)
    webhook_batch_size: int = Field(default=64, ge=1)
    webhook_concurrency: int = Field(default=16, ge=1)
    # A claimed event is the worker's until then; a killed worker's events come back after it.
    webhook_lease_seconds: float | None = Field(default=None, gt=0)
    webhook_metrics_port: int = Field(default=0, ge=0, description="0: no metrics endpoint")

    # Retention (0 keeps that kind forever). Pending and failed events are never deleted;
    # idempotency keys go once past IDEMPOTENCY_TTL_HOURS.
    retain_delivered_events_days: int = Field(default=30, ge=0)
    retain_login_failures_days: int = Field(default=7, ge=0)
    prune_interval_seconds: float = Field(default=3600.0, gt=0)
    prune_batch_size: int = Field(default=1000, ge=1)

    # `certificate.expiring`: recorded this long before notAfter (fractions allowed); each
    # worker looks every EXPIRY_CHECK_SECONDS and claims at most EXPIRY_BATCH_SIZE at a time.
    expiry_notice_days: float = Field(default=14, gt=0)
    expiry_check_seconds: float = Field(default=60.0, gt=0)
    expiry_batch_size: int = Field(default=500, ge=1)

    @property
    def lease_seconds(self) -> float:
        """The claim lease: longer than an attempt can take."""
        return self.webhook_lease_seconds or self.webhook_timeout_seconds * 2 + 5
