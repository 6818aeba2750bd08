"""ACME errors (RFC 8555 section 6.7): a type under `urn:ietf:params:acme:error:`, an HTTP
status, a detail a client's operator can act on and, for an order refused name by name,
one subproblem per identifier."""

from __future__ import annotations

from typing import Any

ERROR_NS = "urn:ietf:params:acme:error:"

# The status each error type is answered with (RFC 8555 section 6.7 leaves it to the server;
# these are Boulder's and Pebble's, which clients are tested against).
_STATUS = {
    "accountDoesNotExist": 400,
    "alreadyRevoked": 400,
    "badCSR": 400,
    "badNonce": 400,
    "badPublicKey": 400,
    "badRevocationReason": 400,
    "badSignatureAlgorithm": 400,
    "caa": 403,
    "compound": 400,
    "connection": 400,
    "dns": 400,
    "externalAccountRequired": 401,
    "incorrectResponse": 400,
    "invalidContact": 400,
    "malformed": 400,
    "orderNotReady": 403,
    "rateLimited": 429,
    "rejectedIdentifier": 400,
    "serverInternal": 500,
    "tls": 400,
    "unauthorized": 403,
    "unsupportedContact": 400,
    "unsupportedIdentifier": 400,
    "userActionRequired": 403,
    "conflict": 409,
    "notFound": 404,
}


class AcmeProblem(Exception):
    """An ACME error; the edge answers it as problem+json with a fresh Replay-Nonce."""

    def __init__(
        self,
        kind: str,
        detail: str,
        *,
        status: int | None = None,
        headers: dict[str, str] | None = None,
        subproblems: list[dict[str, Any]] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.status = status or _STATUS.get(kind, 400)
        self.headers = headers or {}
        self.subproblems = subproblems
        self.extra = extra

    def body(self) -> dict[str, Any]:
        """The problem document."""
        document: dict[str, Any] = {
            "type": ERROR_NS + self.kind,
            "detail": self.detail,
            "status": self.status,
            **self.extra,
        }
        if self.subproblems:
            document["subproblems"] = self.subproblems
        return document


def malformed(detail: str) -> AcmeProblem:
    """The request is not what the resource takes."""
    return AcmeProblem("malformed", detail)


def unauthorized(detail: str) -> AcmeProblem:
    """The account may not do this."""
    return AcmeProblem("unauthorized", detail)


def not_found(what: str) -> AcmeProblem:
    """No such resource, or another account's (never revealed)."""
    return AcmeProblem("malformed", f"no such {what}", status=404)


def rate_limited(detail: str, retry_after: int) -> AcmeProblem:
    """Past a limit; `Retry-After` says when to try again."""
    return AcmeProblem("rateLimited", detail, headers={"Retry-After": str(retry_after)})


def identifier_problem(kind: str, identifier: dict[str, str], detail: str) -> dict[str, Any]:
    """A subproblem naming the identifier it is about (RFC 8555 section 6.7.1)."""
    return {"type": ERROR_NS + kind, "detail": detail, "identifier": identifier}
