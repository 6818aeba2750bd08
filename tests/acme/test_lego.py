"""lego, unchanged, against the live ACME server: dns-01 (exec provider) for a wildcard,
tls-alpn-01, http-01, renewal and revocation, each
result checked by OpenSSL, the REST API, OCSP and the webhook. (lego 4.9 sends an IP
address as a "dns" identifier: IP orders are certbot's, in test_certbot.py.)"""

from __future__ import annotations

from pathlib import Path

from tests.acme.conftest import (
    AcmeStack,
    Lego,
    certificates_in,
    check_issued,
    check_revoked,
    random_base,
)
from tests.conftest import Customer


def saved(path: Path, first_name: str, kind: str = "crt") -> Path:
    """Where lego keeps a certificate: named after its first domain, `*` as `_`."""
    return path / "certificates" / f"{first_name.replace('*', '_')}.{kind}"


def http(stack: AcmeStack) -> list[str]:
    return ["--http", "--http.port", f"127.0.0.1:{stack.http_port}"]


def test_wildcard_through_dns01_exec(
    acme_live: AcmeStack, run_lego: Lego, acme_customer: Customer, tmp_path: Path
) -> None:
    base = random_base()
    record = f"_acme-challenge.{base}"
    run_lego(
        ["--key-type", "ec384", "-d", f"*.{base}", "-d", base, *run_lego.dns_args(), "run"],
        tmp_path,
    )
    assert len(set(acme_live.dns.control.added(record))) == 2
    assert record not in acme_live.dns.zone.txt  # lego cleaned up
    crt = saved(tmp_path, f"*.{base}")
    item = check_issued(acme_live, acme_customer, crt, {f"*.{base}", base})
    assert item["key_type"] == "ec-p384", item
    # lego's bundle is what the certificate URL served: leaf, then the issuing CA.
    issuer = certificates_in(acme_live.ca_dir / "issuer.pem")[0]
    assert certificates_in(crt)[1:] == [issuer]
    assert certificates_in(saved(tmp_path, f"*.{base}", "issuer.crt")) == [issuer]


def test_tls_alpn01(
    acme_live: AcmeStack, run_lego: Lego, acme_customer: Customer, tmp_path: Path
) -> None:
    name = f"tls.{random_base()}"
    run_lego(
        ["-d", name, "--tls", "--tls.port", f"127.0.0.1:{acme_live.tls_port}", "run"], tmp_path
    )
    check_issued(acme_live, acme_customer, saved(tmp_path, name), {name})


def test_http01_two_names(
    acme_live: AcmeStack, run_lego: Lego, acme_customer: Customer, tmp_path: Path
) -> None:
    base = random_base()
    names = [f"www.{base}", f"api.{base}"]
    run_lego(
        ["--key-type", "rsa2048", "-d", names[0], "-d", names[1], *http(acme_live), "run"], tmp_path
    )
    item = check_issued(acme_live, acme_customer, saved(tmp_path, names[0]), set(names))
    assert item["key_type"] == "rsa-2048", item


def test_renew(
    acme_live: AcmeStack, run_lego: Lego, acme_customer: Customer, tmp_path: Path
) -> None:
    name = f"renew.{random_base()}"
    run_lego(["-d", name, *http(acme_live), "run"], tmp_path)
    first = check_issued(acme_live, acme_customer, saved(tmp_path, name), {name})
    # --days beyond the validity: renew now.
    run_lego(
        ["-d", name, *http(acme_live), "renew", "--days", "400", "--no-random-sleep"], tmp_path
    )
    second = check_issued(acme_live, acme_customer, saved(tmp_path, name), {name})
    assert second["serial_number"] != first["serial_number"]


def test_revoke(
    acme_live: AcmeStack, run_lego: Lego, acme_customer: Customer, tmp_path: Path
) -> None:
    name = f"revoke.{random_base()}"
    run_lego(["-d", name, *http(acme_live), "run"], tmp_path)
    crt = saved(tmp_path, name)
    check_issued(acme_live, acme_customer, crt, {name})
    kept = tmp_path / "revoked.pem"
    kept.write_bytes(crt.read_bytes())  # lego archives the files it revoked

    run_lego(["-d", name, "revoke", "--reason", "5"], tmp_path)
    check_revoked(acme_live, acme_customer, kept, "cessationOfOperation")
