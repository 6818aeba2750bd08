"""Rotating the issuing CA keeps revocation working, as OpenSSL and pkilint see it; the
root's CRL revokes an intermediate, with the root's key given from a file."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from tests.lifecycle.conftest import PEM, Operated, ca_admin

OPENSSL = shutil.which("openssl") or "openssl"
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


def openssl(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [OPENSSL, *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )


def serial(cert: x509.Certificate) -> str:
    return format(cert.serial_number, "x")


def crl_url(cert: x509.Certificate) -> str:
    points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    (url,) = [name.value for point in points for name in point.full_name or []]
    return str(url)


def fetch_crl(party: Operated, url: str, name: str) -> tuple[x509.CertificateRevocationList, Path]:
    """The CRL at `url`, parsed and written as PEM (for openssl)."""
    response = httpx.get(url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pkix-crl"
    crl = x509.load_der_x509_crl(response.content)
    party.write(f"{name}.der", response.content)
    return crl, party.write(f"{name}.pem", crl.public_bytes(PEM))


def wait_for_new_intermediate(party: Operated, old: x509.Certificate) -> x509.Certificate:
    """The service's issuing CA once it is no longer `old` (CA_REFRESH_SECONDS is 0.5): the
    running service switches without a restart."""
    deadline = time.monotonic() + 30
    while (current := party.chain()[0]) == old:
        assert time.monotonic() < deadline, "the service never switched to the new intermediate"
        time.sleep(0.2)
    return current


def ocsp_output(party: Operated, issuer: Path, leaf: Path, ca_file: Path) -> str:
    result = openssl(
        "ocsp", "-issuer", issuer, "-cert", leaf, "-url", f"{party.url}/api/ocsp",
        "-CAfile", ca_file,
    )  # fmt: skip
    return result.stdout + result.stderr


def lint_crl(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "lint_crl"), "lint", "-t", "CRL", "-p", "PKIX", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


def leaf_of(body: dict[str, Any]) -> x509.Certificate:
    return x509.load_pem_x509_certificate(body["certificate_pem"].encode())


def test_rotation_keeps_revocation_of_older_leaves_and_the_root_revokes_an_intermediate(
    operated: Operated,
) -> None:
    party = operated
    old_inter, root = party.chain()
    root_pem = party.write("root.pem", root.public_bytes(PEM))
    old_pem = party.write("old-intermediate.pem", old_inter.public_bytes(PEM))
    old_chain = party.write("old-chain.pem", old_inter.public_bytes(PEM) + root.public_bytes(PEM))
    victim, bystander = party.issue(), party.issue()
    victim_pem = party.write("victim.pem", victim["certificate_pem"])
    bystander_pem = party.write("bystander.pem", bystander["certificate_pem"])

    rotated = ca_admin(party.live, "rotate-intermediate")
    assert rotated.returncode == 0, rotated.stderr
    new_inter = wait_for_new_intermediate(party, old_inter)
    assert new_inter != old_inter and serial(new_inter) in rotated.stdout
    new_inter.verify_directly_issued_by(root)
    assert new_inter.subject != old_inter.subject
    # The new intermediate names the root's CRL and certificate.
    root_crl_url = crl_url(new_inter)
    assert root_crl_url == f"{party.url}/api/ca/crl/{serial(root)}"

    fresh = party.issue()
    fresh_leaf = leaf_of(fresh)
    fresh_leaf.verify_directly_issued_by(new_inter)
    assert x509.load_pem_x509_certificates(fresh["chain_pem"].encode())[0] == new_inter
    assert crl_url(fresh_leaf) == f"{party.url}/api/ca/crl/{serial(new_inter)}"
    # An older leaf is still shown with its own issuer's chain.
    got = httpx.get(f"{party.url}/api/certificates/{victim['id']}", headers=party.customer.auth)
    assert x509.load_pem_x509_certificates(got.json()["chain_pem"].encode())[0] == old_inter

    # Hold the old leaf: OCSP for the old intermediate says revoked (certificateHold).
    held = httpx.patch(
        f"{party.url}/api/certificates/{victim['id']}",
        json={"is_active": False},
        headers=party.customer.auth,
    )
    assert held.status_code == 200, held.text
    output = ocsp_output(party, old_pem, victim_pem, root_pem)
    assert f"{victim_pem}: revoked" in output, output
    assert "Certificate Hold" in output or "certificateHold" in output, output
    assert "Response verify OK" in output, output

    # Then revoke it for good.
    revoked = httpx.post(
        f"{party.url}/api/certificates/{victim['id']}/revoke",
        json={"reason": "keyCompromise"},
        headers=party.customer.auth,
    )
    assert revoked.status_code == 200, revoked.text
    output = ocsp_output(party, old_pem, victim_pem, root_pem)
    assert f"{victim_pem}: revoked" in output and "keyCompromise" in output, output
    # The answer is signed by a responder of the old intermediate.
    request = ocsp.OCSPRequestBuilder().add_certificate(leaf_of(victim), old_inter, hashes.SHA1())
    answer = ocsp.load_der_ocsp_response(
        httpx.post(
            f"{party.url}/api/ocsp",
            content=request.build().public_bytes(serialization.Encoding.DER),
            headers={"Content-Type": "application/ocsp-request"},
        ).content
    )
    (responder,) = answer.certificates
    responder.verify_directly_issued_by(old_inter)

    # The old intermediate's CRL (named in the leaf) lists it and verifies.
    old_crl, old_crl_pem = fetch_crl(party, crl_url(leaf_of(victim)), "old-intermediate-crl")
    assert old_crl.get_revoked_certificate_by_serial_number(leaf_of(victim).serial_number)
    checked = openssl("crl", "-in", old_crl_pem, "-CAfile", old_chain, "-noout")
    assert "verify OK" in checked.stdout + checked.stderr, checked.stdout + checked.stderr
    verdict = openssl(
        "verify", "-crl_check", "-CAfile", root_pem, "-untrusted", old_pem,
        "-CRLfile", old_crl_pem, victim_pem,
    )  # fmt: skip
    assert verdict.returncode != 0 and "certificate revoked" in verdict.stdout + verdict.stderr
    good = openssl(
        "verify", "-crl_check", "-CAfile", root_pem, "-untrusted", old_pem,
        "-CRLfile", old_crl_pem, bystander_pem,
    )  # fmt: skip
    assert good.returncode == 0, good.stdout + good.stderr

    # The new intermediate's CRL (also /api/ca/crl) does not list it.
    new_crl, new_crl_pem = fetch_crl(party, crl_url(fresh_leaf), "new-intermediate-crl")
    assert new_crl.issuer == new_inter.subject
    assert new_crl.get_revoked_certificate_by_serial_number(leaf_of(victim).serial_number) is None
    current = x509.load_der_x509_crl(httpx.get(f"{party.url}/api/ca/crl").content)
    assert current.issuer == new_inter.subject

    # Take the root offline, then revoke the old intermediate with its key from the file.
    key_file = party.dir / "root-key.pem"
    exported = ca_admin(party.live, "export-root-key", "--out", str(key_file), "--remove")
    assert exported.returncode == 0, exported.stderr
    refused = ca_admin(party.live, "revoke-intermediate", serial(old_inter))
    assert refused.returncode != 0 and "--root-key" in refused.stderr
    current_refused = ca_admin(
        party.live, "revoke-intermediate", serial(new_inter), "--root-key", str(key_file)
    )
    assert current_refused.returncode != 0 and "rotate" in current_refused.stderr
    done = ca_admin(
        party.live,
        "revoke-intermediate", serial(old_inter), "--reason", "cACompromise",
        "--root-key", str(key_file),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr

    # Re-signing the root CRL needs the key too; each one gets the next number.
    assert ca_admin(party.live, "sign-root-crl").returncode != 0
    resigned = ca_admin(party.live, "sign-root-crl", "--root-key", str(key_file))
    assert resigned.returncode == 0, resigned.stderr

    root_crl, root_crl_pem = fetch_crl(party, root_crl_url, "root-crl")
    number = root_crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert f"root CRL {number} signed" in resigned.stdout
    assert root_crl.issuer == root.subject
    entry = root_crl.get_revoked_certificate_by_serial_number(old_inter.serial_number)
    assert entry is not None
    assert root_crl.get_revoked_certificate_by_serial_number(new_inter.serial_number) is None
    assert (
        httpx.get(f"{party.url}/api/ca/root.crl").content
        == (party.dir / "root-crl.der").read_bytes()
    )
    checked = openssl("crl", "-in", root_crl_pem, "-CAfile", root_pem, "-noout")
    assert "verify OK" in checked.stdout + checked.stderr, checked.stdout + checked.stderr

    # With every CRL of the path checked, the old intermediate's leaves are rejected...
    rejected = openssl(
        "verify", "-crl_check_all", "-CAfile", root_pem, "-untrusted", old_pem,
        "-CRLfile", root_crl_pem, "-CRLfile", old_crl_pem, bystander_pem,
    )  # fmt: skip
    assert rejected.returncode != 0, rejected.stdout
    assert "certificate revoked" in rejected.stdout + rejected.stderr
    # ...and the new intermediate's are not.
    new_pem = party.write("new-intermediate.pem", new_inter.public_bytes(PEM))
    fresh_pem = party.write("fresh.pem", fresh["certificate_pem"])
    accepted = openssl(
        "verify", "-crl_check_all", "-CAfile", root_pem, "-untrusted", new_pem,
        "-CRLfile", root_crl_pem, "-CRLfile", new_crl_pem, fresh_pem,
    )  # fmt: skip
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr

    # pkilint: no finding at all (not even a notice) on the root CRL and each intermediate CRL.
    for path in (root_crl_pem, old_crl_pem, new_crl_pem):
        der = path.with_suffix(".der")
        result = lint_crl(der)
        assert (result.returncode, result.stdout.strip()) == (0, ""), result.stdout + result.stderr
    # And the leaves and the new intermediate stay clean.
    for path in (fresh_pem, new_pem):
        result = subprocess.run(
            [str(BIN / "lint_pkix_cert"), "lint", "-s", "WARNING", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert (result.returncode, result.stdout.strip()) == (0, ""), result.stdout
