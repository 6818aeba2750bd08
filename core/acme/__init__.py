"""ACME (RFC 8555): the certificate service's door for certificate clients (certbot, lego,
cert-manager, Caddy). The rules live here; certificate_api/acme/ is the HTTP edge.

- `problems`: the `urn:ietf:params:acme:error:*` errors.
- `jws`: flattened JWS requests, checked and verified (josepy's keys and algorithms).
- `nonces`: HMAC-signed nonces, redeemed once in the database.
- `accounts`: external account binding keys, accounts, key rollover, deactivation.
- `orders`: orders, authorizations, challenges, finalization, on the core's issuance.
- `revocation`: revokeCert and renewalInfo (RFC 9773).
"""
