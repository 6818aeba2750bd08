"""ACME routes (RFC 8555): parse the JWS, call core/acme, shape the reply.

Every POST is a flattened JWS (`signed`): its form is checked on the event loop; the nonce
is redeemed, the signer's account looked up and the signature verified in one thread hop
with one database session, which then runs the route's rule. Certificates are issued and
revoked by the core's async calls, as for the REST API. Every answer gets a fresh
`Replay-Nonce` (certificate_api/acme/edge.py).
"""

from __future__ import annotations

import uuid
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import Response
from josepy.jwk import JWK
from sqlalchemy.orm import Session

from certificate_api.acme import shapes
from certificate_api.acme.errors import from_domain
from certificate_api.acme.finalize import issue_request
from certificate_api.acme.shapes import PREFIX, Urls
from certificate_api.acme.signed import Signed, json_reply, resource_id, signed, urls_of
from certificate_api.deps import RuntimeDep
from core import revocation
from core.acme import accounts, finalization, orders
from core.acme import revocation as acme_revocation
from core.acme.problems import AcmeProblem, malformed, not_found, unauthorized
from core.errors import Conflict, DomainError
from core.idempotency import Idempotency
from core.issuance import issue_certificate
from schema.acme import OrderStatus
from schema.base import rfc3339, utcnow
from schema.certificates import Certificate

router = APIRouter(prefix=PREFIX, include_in_schema=False)
PEM_CHAIN = "application/pem-certificate-chain"
POLL_SECONDS = "1"  # Retry-After on resources still pending or processing


# --- directory, nonces --------------------------------------------------------------------------


@router.get("/directory")
async def directory(runtime: RuntimeDep) -> Response:
    """Where everything is (RFC 8555 section 7.1.1)."""
    return json_reply(urls_of(runtime).directory())


@router.head("/new-nonce")
async def new_nonce_head() -> Response:
    """A fresh nonce in Replay-Nonce (added on the way out), 200 for HEAD."""
    return Response(status_code=200, headers={"Cache-Control": "no-store"})


@router.get("/new-nonce")
async def new_nonce_get() -> Response:
    """A fresh nonce in Replay-Nonce, 204 for GET."""
    return Response(status_code=204, headers={"Cache-Control": "no-store"})


# --- accounts -----------------------------------------------------------------------------------


@router.post("/new-account")
async def new_account(request: Request, runtime: RuntimeDep) -> Response:
    """Register with an external account binding, or find the account of this key."""
    urls = urls_of(runtime)

    def rule(session: Session, req: Signed) -> tuple[dict[str, Any], str, bool]:
        if req.account is not None:  # RFC 8555 section 6.2: newAccount is signed with jwk
            raise malformed("newAccount takes a JWS with jwk (the account key), not kid")
        account, created = accounts.register(session, runtime.keyring, req.jws, req.key)
        return shapes.account(urls, account), urls.account(account.id), created

    body, location, created = await signed(runtime, request, rule, jwk=True)
    return json_reply(body, 201 if created else 200, {"Location": location})


@router.post("/acct/{account_id}")
async def account(account_id: str, request: Request, runtime: RuntimeDep) -> Response:
    """POST-as-GET an account, update its contacts, or deactivate it."""
    urls = urls_of(runtime)

    def rule(session: Session, req: Signed) -> dict[str, Any]:
        account = req.acting
        if account.id != resource_id(account_id, "account"):
            raise unauthorized("an account can only be read or changed by its own key")
        payload = req.jws.json()
        if payload is not None:
            accounts.update_account(session, account, payload)
        return shapes.account(urls, account)

    return json_reply(await signed(runtime, request, rule))


@router.post("/acct/{account_id}/orders")
async def account_orders(account_id: str, request: Request, runtime: RuntimeDep) -> Response:
    """The account's orders (RFC 8555 section 7.1.2.1), newest first."""
    urls = urls_of(runtime)

    def rule(session: Session, req: Signed) -> dict[str, Any]:
        if req.acting.id != resource_id(account_id, "account"):
            raise unauthorized("an account's orders are read with its own key")
        return {"orders": [urls.order(o) for o in orders.account_orders(session, req.acting)]}

    return json_reply(await signed(runtime, request, rule))


@router.post("/key-change")
async def key_change(request: Request, runtime: RuntimeDep) -> Response:
    """Roll the account over to a new key (RFC 8555 section 7.3.5)."""
    urls = urls_of(runtime)

    def rule(session: Session, req: Signed) -> dict[str, Any] | str:
        changed = accounts.change_key(session, req.acting, str(req.jws.kid), req.jws)
        return changed if isinstance(changed, str) else shapes.account(urls, changed)

    result = await signed(runtime, request, rule)
    if isinstance(result, str):
        raise AcmeProblem(  # RFC 8555 section 7.3.5: 409 with the other account's URL
            "malformed",
            "another account already has this key",
            status=409,
            headers={"Location": urls.account(result)},
        )
    return json_reply(result)


# --- orders, authorizations, challenges ----------------------------------------------------------


def _order_reply(
    session: Session, urls: Urls, order_row: Any, status: int = 200
) -> tuple[dict[str, Any], int, dict[str, str]]:
    authzs = orders.order_authorizations(session, order_row.id)
    headers = {"Location": urls.order(order_row.id)}
    if order_row.status in (OrderStatus.PENDING, OrderStatus.PROCESSING):
        headers["Retry-After"] = POLL_SECONDS
    return shapes.order(urls, order_row, authzs), status, headers


@router.post("/new-order")
async def new_order(request: Request, runtime: RuntimeDep) -> Response:
    """An order for DNS names and IP addresses (RFC 8555 section 7.4, RFC 8738)."""
    urls = urls_of(runtime)

    def rule(session: Session, req: Signed) -> tuple[dict[str, Any], int, dict[str, str]]:
        payload = req.jws.json()
        if payload is None:
            raise malformed("newOrder needs a payload with identifiers")
        row, _authzs = orders.new_order(
            session, req.acting, payload, runtime.names.policy, runtime.acme_limits
        )
        return _order_reply(session, urls, row, 201)

    body, status, headers = await signed(runtime, request, rule)
    return json_reply(body, status, headers)


@router.post("/order/{order_id}")
async def order(order_id: str, request: Request, runtime: RuntimeDep) -> Response:
    """POST-as-GET an order."""
    urls = urls_of(runtime)

    def rule(session: Session, req: Signed) -> tuple[dict[str, Any], int, dict[str, str]]:
        row = orders.owned_order(session, req.acting, resource_id(order_id, "order"))
        return _order_reply(session, urls, row)

    body, status, headers = await signed(runtime, request, rule)
    return json_reply(body, status, headers)


@router.post("/order/{order_id}/finalize")
async def finalize(order_id: str, request: Request, runtime: RuntimeDep) -> Response:
    """Sign the order's CSR through the core's issuance (RFC 8555 section 7.4)."""
    urls = urls_of(runtime)
    wanted = resource_id(order_id, "order")

    def begin(session: Session, req: Signed) -> tuple[Any, dict[str, Any], uuid.UUID, JWK]:
        payload = req.jws.json()
        # Before the order is taken: a request without a CSR leaves the order ready.
        if payload is None or not isinstance(payload.get("csr"), str):
            raise malformed("finalize needs a payload with the CSR, DER in base64url")
        started = finalization.begin_finalize(session, req.acting, wanted)
        return started, payload, req.acting.account_id, req.key

    started, payload, customer, account_key = await signed(runtime, request, begin)
    certificate_id, problem = None, None

    def end() -> tuple[dict[str, Any], int, dict[str, str]]:
        with runtime.sessions() as session:
            row = finalization.end_finalize(session, started.id, certificate_id, problem)
            return _order_reply(session, urls, row)

    try:
        wanted_names = [ident["value"] for ident in started.identifiers]
        issued = await issue_certificate(
            runtime.issuer,
            accounts.claims_of(customer),
            issue_request(payload, wanted_names, account_key),
            idempotency_key=f"acme-order:{started.id}",
        )
        certificate_id = issued.certificate.id
    except AcmeProblem as exc:
        problem = exc
    except DomainError as exc:
        problem = from_domain(exc, csr=True)
    except Exception:
        # Whatever failed, the order goes back to ready (not processing until it is stale):
        # the client's next finalize may succeed.
        problem = AcmeProblem("serverInternal", "the finalization failed", status=500)
        await anyio.to_thread.run_sync(end)
        raise

    body, status, headers = await anyio.to_thread.run_sync(end)
    if problem is not None:
        raise problem
    return json_reply(body, status, headers)


@router.post("/authz/{authz_id}")
async def authorization(authz_id: str, request: Request, runtime: RuntimeDep) -> Response:
    """POST-as-GET an authorization, or deactivate it."""
    urls = urls_of(runtime)

    def rule(session: Session, req: Signed) -> tuple[dict[str, Any], dict[str, str]]:
        wanted = resource_id(authz_id, "authorization")
        payload = req.jws.json()
        if payload is None:
            row = orders.owned_authorization(session, req.acting, wanted)
        else:
            row = orders.deactivate_authorization(session, req.acting, wanted, payload)
        body = shapes.authorization(
            urls, row, orders.authorization_challenges(session, row.id), utcnow()
        )
        return body, {"Retry-After": POLL_SECONDS} if body["status"] == "pending" else {}

    body, headers = await signed(runtime, request, rule)
    return json_reply(body, headers=headers)


@router.post("/chall/{challenge_id}")
async def challenge(challenge_id: str, request: Request, runtime: RuntimeDep) -> Response:
    """Answer a challenge (`{}`: check it now), or POST-as-GET it."""
    urls = urls_of(runtime)

    def rule(session: Session, req: Signed) -> tuple[dict[str, Any], dict[str, str]]:
        wanted = resource_id(challenge_id, "challenge")
        if req.jws.json() is None:
            row, authz = orders.owned_challenge(session, req.acting, wanted)
        else:
            row, authz = orders.respond(session, req.acting, wanted, runtime.acme_limits)
        headers = {"Link": f'<{urls.authz(authz.id)}>;rel="up"'}
        if row.status == "processing":
            headers["Retry-After"] = POLL_SECONDS
        return shapes.challenge(urls, row), headers

    body, headers = await signed(runtime, request, rule)
    return json_reply(body, headers=headers)


# --- certificates --------------------------------------------------------------------------------


@router.post("/cert/{certificate_id}")
async def certificate(certificate_id: str, request: Request, runtime: RuntimeDep) -> Response:
    """The certificate and the intermediate that issued it, as a PEM chain."""

    def rule(session: Session, req: Signed) -> Certificate:
        cert = session.get(Certificate, resource_id(certificate_id, "certificate"))
        if cert is None or cert.account_id != req.acting.account_id:
            raise not_found("certificate")
        return cert

    cert = await signed(runtime, request, rule)
    chain = runtime.authorities.chain_pem(cert.issuer_id)
    intermediate = chain[: chain.index("-----END CERTIFICATE-----")] + "-----END CERTIFICATE-----\n"
    return Response(cert.certificate_pem + intermediate, media_type=PEM_CHAIN)


@router.post("/revoke-cert")
async def revoke_cert(request: Request, runtime: RuntimeDep) -> Response:
    """Revoke, signed by the owner's account or by the certificate's key (section 7.6)."""

    def rule(session: Session, req: Signed) -> tuple[Certificate, str, bool]:
        payload = req.jws.json() or {}
        reason = acme_revocation.reason_name(payload.get("reason"))
        by_key = req.account is None
        cert = acme_revocation.certificate_to_revoke(
            session, payload, req.account, req.key if by_key else None
        )
        return cert, reason, by_key

    cert, reason, by_key = await signed(runtime, request, rule, jwk=True)
    try:
        await revocation.revoke(
            runtime.db,
            cert.id,
            accounts.claims_of(cert.account_id),
            # Signed by the certificate's key: possession proven, blocked for every account.
            revocation.Revocation(reason, signed_by_key=by_key),
            Idempotency.of(None, {}, runtime.issuer.idempotency_ttl),
        )
    except Conflict:
        raise AcmeProblem("alreadyRevoked", "the certificate is already revoked") from None
    except DomainError as exc:
        raise from_domain(exc) from None
    return Response(status_code=200)


@router.get("/renewal-info/{cert_id}")
async def renewal_info(cert_id: str, runtime: RuntimeDep) -> Response:
    """When to renew (RFC 9773): a window, and when to ask again."""

    def run() -> dict[str, Any]:
        with runtime.sessions() as session:
            cert = acme_revocation.certificate_by_cert_id(session, cert_id)
            start, end = acme_revocation.renewal_window(cert, utcnow())
        return {"suggestedWindow": {"start": rfc3339(start), "end": rfc3339(end)}}

    body = await anyio.to_thread.run_sync(run)
    retry = str(acme_revocation.retry_after_seconds())
    return json_reply(body, headers={"Retry-After": retry})
