"""certbot, unchanged, against the live ACME server: account registration with external
account binding, http-01 (standalone), a wildcard through dns-01 (manual hooks), renewal
and revocation, each result checked by OpenSSL, the REST API, OCSP and the webhook."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path

import httpx
from cryptography import x509

from tests.acme.conftest import (
    AcmeStack,
    Certbot,
    Eab,
    certbot_eab,
    certificates_in,
    check_issued,
    check_revoked,
    random_base,
    rest_certificate,
)
from tests.conftest import Customer, unique_email


def standalone(stack: AcmeStack, name: str) -> list[str]:
    """certonly with certbot's own http-01 server, where the validator looks."""
    return [
        "certonly",
        "--standalone",
        "--http-01-address",
        "127.0.0.1",
        "--http-01-port",
        str(stack.http_port),
        "-d",
        name,
        "--cert-name",
        name,
    ]


def dns_manual(run_certbot: Certbot, auth: str = "auth") -> list[str]:
    return [
        "certonly",
        "--manual",
        "--preferred-challenges",
        "dns",
        "--manual-auth-hook",
        run_certbot.hook(auth),
        "--manual-cleanup-hook",
        run_certbot.hook("cleanup"),
    ]


def live_dir(root: Path, name: str) -> Path:
    return root / "config" / "live" / name


def test_register_with_external_account_binding(
    run_certbot: Certbot, eab: Eab, acme_customer: Customer, tmp_path: Path
) -> None:
    key_id, hmac_key = eab(acme_customer)
    result = run_certbot(
        ["register", *certbot_eab(key_id, hmac_key), "-m", acme_customer.email],
        tmp_path,
    )
    assert "Account registered" in result.stdout + result.stderr
    # The account as the server keeps it (POST-as-GET on the account URL).
    shown = run_certbot(["show_account"], tmp_path)
    assert acme_customer.email in shown.stdout, shown.stdout


def test_update_account_then_unregister(
    run_certbot: Certbot, certbot_root: Path, acme_customer: Customer
) -> None:
    other = unique_email("certbot")
    run_certbot(["update_account", "-m", other], certbot_root)
    shown = run_certbot(["show_account"], certbot_root)
    assert other in shown.stdout and acme_customer.email not in shown.stdout, shown.stdout
    run_certbot(["unregister"], certbot_root)
    assert not list((certbot_root / "config").glob("accounts/*/*/*/*/regr.json"))


def test_register_without_external_account_binding_is_refused(
    run_certbot: Certbot, acme_customer: Customer, tmp_path: Path
) -> None:
    result = run_certbot(["register", "-m", acme_customer.email], tmp_path, check=False)
    assert result.returncode != 0
    assert "external account" in (result.stdout + result.stderr).lower(), result.stderr
    assert not list((tmp_path / "config").glob("accounts/*/*/*/*/regr.json"))


def test_the_same_binding_does_not_register_a_second_account(
    run_certbot: Certbot, eab: Eab, acme_customer: Customer, tmp_path: Path
) -> None:
    key_id, hmac_key = eab(acme_customer)
    register = ["register", *certbot_eab(key_id, hmac_key)]
    run_certbot([*register, "-m", acme_customer.email], tmp_path / "first")
    again = run_certbot([*register, "-m", acme_customer.email], tmp_path / "second", check=False)
    assert again.returncode != 0, again.stdout


def test_certonly_standalone_http01(
    acme_live: AcmeStack, run_certbot: Certbot, certbot_root: Path, acme_customer: Customer
) -> None:
    name = f"www.{random_base()}"
    run_certbot(standalone(acme_live, name), certbot_root)
    live = live_dir(certbot_root, name)
    item = check_issued(acme_live, acme_customer, live / "cert.pem", {name})
    assert item["common_name"] == name
    assert item["has_private_key"] is False  # the key stayed with certbot
    # The certificate URL answered leaf then intermediate: certbot split them accordingly.
    issuer = certificates_in(acme_live.ca_dir / "issuer.pem")[0]
    assert certificates_in(live / "chain.pem")[0] == issuer
    assert certificates_in(live / "fullchain.pem")[:2] == [
        certificates_in(live / "cert.pem")[0],
        issuer,
    ]


def test_certonly_rsa_key(
    acme_live: AcmeStack, run_certbot: Certbot, certbot_root: Path, acme_customer: Customer
) -> None:
    name = f"rsa.{random_base()}"
    run_certbot([*standalone(acme_live, name), "--key-type", "rsa"], certbot_root)
    item = check_issued(acme_live, acme_customer, live_dir(certbot_root, name) / "cert.pem", {name})
    assert item["key_type"] == "rsa-2048", item


def test_certonly_for_an_ip_address(
    acme_live: AcmeStack, run_certbot: Certbot, certbot_root: Path, acme_customer: Customer
) -> None:
    # RFC 8738: an "ip" identifier, http-01 checked at the address itself. certbot reads a
    # subject common name as a DNS name: a certificate carrying the address there breaks it.
    run_certbot(
        [
            "certonly",
            "--standalone",
            "--http-01-address",
            "127.0.0.1",
            "--http-01-port",
            str(acme_live.http_port),
            "--ip-address",
            "127.0.0.1",
            "--cert-name",
            "loopback",
        ],
        certbot_root,
    )
    cert = live_dir(certbot_root, "loopback") / "cert.pem"
    item = check_issued(acme_live, acme_customer, cert, {"127.0.0.1"})
    assert item["ip_addresses"] == ["127.0.0.1"], item
    assert item["dns_names"] == [], item


def test_wildcard_through_dns01_manual_hooks(
    acme_live: AcmeStack, run_certbot: Certbot, certbot_root: Path, acme_customer: Customer
) -> None:
    base = random_base()
    record = f"_acme-challenge.{base}"
    run_certbot(
        [*dns_manual(run_certbot), "-d", f"*.{base}", "-d", base, "--cert-name", base],
        certbot_root,
    )
    # Two values at one name (the wildcard's and the base name's), both withdrawn since.
    assert len(set(acme_live.dns.control.added(record))) == 2
    assert record not in acme_live.dns.zone.txt
    item = check_issued(
        acme_live, acme_customer, live_dir(certbot_root, base) / "cert.pem", {f"*.{base}", base}
    )
    assert item["key_type"] == "ec-p256", item


def test_a_wrong_dns_answer_fails_the_order(
    acme_live: AcmeStack, run_certbot: Certbot, certbot_root: Path, acme_customer: Customer
) -> None:
    name = f"wrong.{random_base()}"
    result = run_certbot(
        [*dns_manual(run_certbot, "auth-wrong"), "-d", name, "--cert-name", name],
        certbot_root,
        check=False,
    )
    told = result.stdout + result.stderr
    assert result.returncode != 0, told
    # certbot reports the challenge's error (RFC 8555 section 8: "unauthorized" or "dns").
    assert "urn:ietf:params:acme:error:" in Certbot.log_tail(certbot_root, 400), told
    assert "unauthorized" in told.lower() or "dns" in told.lower(), told
    assert not live_dir(certbot_root, name).exists()
    # The failed proof gave the customer no authorization: the name is still refused.
    refused = httpx.post(
        f"{acme_live.certificate_url}/api/certificates",
        json={"common_name": name},
        headers=acme_customer.auth,
        timeout=30,
    )
    assert refused.status_code == 403, refused.text
    assert [e["msg"] for e in refused.json()["errors"]] == ["not authorized"], refused.text


def test_a_wildcard_under_a_public_suffix_is_rejected(
    run_certbot: Certbot, certbot_root: Path
) -> None:
    result = run_certbot(
        [*dns_manual(run_certbot), "-d", "*.test", "--cert-name", "suffix"],
        certbot_root,
        check=False,
    )
    assert result.returncode != 0, result.stdout
    assert "rejectedIdentifier" in Certbot.log_tail(certbot_root, 400), result.stderr


def test_renew_with_force_renewal(
    acme_live: AcmeStack, run_certbot: Certbot, certbot_root: Path, acme_customer: Customer
) -> None:
    name = f"renew.{random_base()}"
    run_certbot(standalone(acme_live, name), certbot_root)
    live = live_dir(certbot_root, name)
    first = check_issued(acme_live, acme_customer, live / "cert.pem", {name})

    # Without a terminal, certbot would first sleep for up to eight minutes.
    run_certbot(
        ["renew", "--force-renewal", "--no-random-sleep-on-renew", "--cert-name", name],
        certbot_root,
    )
    second = check_issued(acme_live, acme_customer, live / "cert.pem", {name})
    assert second["id"] != first["id"]
    assert second["serial_number"] != first["serial_number"]
    # The first one is still the customer's, untouched.
    leaf = x509.load_pem_x509_certificate(first["certificate_pem"].encode())
    assert rest_certificate(acme_live, acme_customer, leaf.serial_number)["status"] == "active"


def test_revoke_with_the_account_key_for_key_compromise(
    acme_live: AcmeStack, run_certbot: Certbot, certbot_root: Path, acme_customer: Customer
) -> None:
    name = f"revoke.{random_base()}"
    run_certbot(standalone(acme_live, name), certbot_root)
    cert = live_dir(certbot_root, name) / "cert.pem"
    check_issued(acme_live, acme_customer, cert, {name})

    run_certbot(
        [
            "revoke",
            "--cert-path",
            str(cert),
            "--reason",
            "keycompromise",
            "--no-delete-after-revoke",
        ],
        certbot_root,
    )
    check_revoked(acme_live, acme_customer, cert, "keyCompromise")


def test_revoke_signed_with_the_certificate_key(
    acme_live: AcmeStack, run_certbot: Certbot, certbot_root: Path, acme_customer: Customer
) -> None:
    name = f"bykey.{random_base()}"
    run_certbot(standalone(acme_live, name), certbot_root)
    live = live_dir(certbot_root, name)
    check_issued(acme_live, acme_customer, live / "cert.pem", {name})

    # With --key-path, certbot signs the request with the certificate's key (a JWS with
    # that "jwk"), not with its account's.
    run_certbot(
        [
            "revoke",
            "--cert-path",
            str(live / "cert.pem"),
            "--key-path",
            str(live / "privkey.pem"),
            "--reason",
            "unspecified",
            "--no-delete-after-revoke",
        ],
        certbot_root,
    )
    check_revoked(acme_live, acme_customer, live / "cert.pem", "unspecified")


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def renewal_info(stack: AcmeStack, cert: x509.Certificate) -> tuple[datetime, datetime]:
    """GET renewalInfo (RFC 9773) for the certificate: its suggested window."""
    keyid = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert keyid.key_identifier is not None
    serial = cert.serial_number.to_bytes((cert.serial_number.bit_length() + 8) // 8, "big")
    directory = httpx.get(stack.directory_url).json()
    url = f"{directory['renewalInfo']}/{b64(keyid.key_identifier)}.{b64(serial)}"
    response = httpx.get(url)
    assert response.status_code == 200, f"GET {url} -> {response.status_code} {response.text}"
    assert response.headers.get("retry-after"), response.headers  # RFC 9773 section 4.2
    window = response.json()["suggestedWindow"]
    return datetime.fromisoformat(window["start"]), datetime.fromisoformat(window["end"])


def test_renewal_info_and_certbot_renew_without_force(
    acme_live: AcmeStack, run_certbot: Certbot, certbot_root: Path, acme_customer: Customer
) -> None:
    name = f"ari.{random_base()}"
    run_certbot(standalone(acme_live, name), certbot_root)
    cert_path = live_dir(certbot_root, name) / "cert.pem"
    check_issued(acme_live, acme_customer, cert_path, {name})
    cert = certificates_in(cert_path)[0]
    start, end = renewal_info(acme_live, cert)
    validity = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert cert.not_valid_before_utc + validity * 2 / 3 <= start < end <= cert.not_valid_after_utc

    # certbot asks renewalInfo itself: a fresh certificate is not due.
    result = run_certbot(["renew", "--no-random-sleep-on-renew", "--cert-name", name], certbot_root)
    assert "not yet due for renewal" in result.stdout + result.stderr, result.stdout
    assert certificates_in(cert_path)[0] == cert

    # Revoked: the window has begun.
    run_certbot(["revoke", "--cert-path", str(cert_path), "--no-delete-after-revoke"], certbot_root)
    check_revoked(acme_live, acme_customer, cert_path, "unspecified")
    start, end = renewal_info(acme_live, cert)
    assert start <= datetime.now(UTC) < end
