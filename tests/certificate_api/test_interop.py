"""Independent tools agree: OpenSSL verifies the chain, a real TLS handshake works, pkilint is
clean on the root, the intermediate and every kind of leaf."""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.certificate_api.conftest import KEY_TYPES, Issued

BIN = Path(sys.executable).parent
OPENSSL = shutil.which("openssl")


def openssl(*args: str | Path) -> subprocess.CompletedProcess[str]:
    assert OPENSSL, "openssl is needed for this test"
    return subprocess.run([OPENSSL, *map(str, args)], capture_output=True, text=True, check=False)


def pkilint(tool: str, *files: Path) -> list[tuple[str, str]]:
    """(code, message) of every pkilint finding at WARNING and above."""
    command = [str(BIN / tool), "lint", "-s", "WARNING", "-f", "JSON", *map(str, files)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.stderr == "", result.stderr
    findings = [
        (finding["code"], finding["message"])
        for node in json.loads(result.stdout)["results"]
        for finding in node["finding_descriptions"]
    ]
    # The exit code counts the findings: the two must agree, or we parsed the wrong thing.
    assert result.returncode == len(findings), result.stdout
    return findings


def wildcard_syntax(finding: tuple[str, str]) -> bool:
    """RFC 5280's preferred name syntax has no `*`, so pkilint's PKIX layer flags every
    wildcard SAN; wildcards are in the contract and in every browser (RFC 6125, CA/B BRs)."""
    code, message = finding
    return code == "pkix.invalid_domain_name_syntax" and message.startswith(
        'Invalid domain name syntax: "*.'
    )


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_openssl_verifies_leaf_against_root_via_intermediate(
    by_key_type: dict[str, Issued], ca_files: tuple[Path, Path], tmp_path: Path, key_type: str
) -> None:
    root, intermediate = ca_files
    leaf, _, _ = by_key_type[key_type].write(tmp_path / key_type)
    result = openssl(
        "verify",
        "-x509_strict",
        "-purpose",
        "sslserver",
        "-CAfile",
        root,
        "-untrusted",
        intermediate,
        leaf,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == f"{leaf}: OK"


def test_openssl_refuses_leaf_without_the_intermediate(
    by_key_type: dict[str, Issued], ca_files: tuple[Path, Path], tmp_path: Path
) -> None:
    root, _ = ca_files
    leaf, _, _ = by_key_type["ec-p256"].write(tmp_path)
    result = openssl("verify", "-CAfile", root, leaf)
    assert result.returncode != 0


def test_ca_chain_is_intermediate_then_root_and_openssl_verifies_it(
    ca_chain: list[x509.Certificate], ca_files: tuple[Path, Path]
) -> None:
    assert len(ca_chain) == 2
    intermediate, root = ca_chain
    assert root.subject == root.issuer  # self-signed, last
    assert intermediate.issuer == root.subject
    for cert, path_length in ((intermediate, 0), (root, 1)):
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
        assert constraints.critical and constraints.value.ca
        assert constraints.value.path_length == path_length
    root_file, intermediate_file = ca_files
    result = openssl("verify", "-x509_strict", "-CAfile", root_file, intermediate_file)
    assert result.returncode == 0 and result.stdout.strip() == f"{intermediate_file}: OK", (
        result.stdout + result.stderr
    )


def _serve_once(
    context: ssl.SSLContext, listener: socket.socket, errors: list[BaseException]
) -> None:
    try:
        conn, _ = listener.accept()
        with context.wrap_socket(conn, server_side=True) as tls:
            tls.sendall(b"hello over tls\n")
    except (OSError, ssl.SSLError) as exc:
        errors.append(exc)


def handshake(issued: Issued, root_pem: Path, tmp_path: Path, server_hostname: str) -> bytes:
    """Serve the leaf, key and chain on 127.0.0.1; connect trusting only the root."""
    leaf, chain, key = issued.write(tmp_path)
    full_chain = tmp_path / "fullchain.pem"
    full_chain.write_text(leaf.read_text() + chain.read_text())
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(full_chain, key)
    client_context = ssl.create_default_context(cafile=str(root_pem))
    assert client_context.check_hostname and client_context.verify_mode == ssl.CERT_REQUIRED
    errors: list[BaseException] = []
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(30)
        port = listener.getsockname()[1]
        server = threading.Thread(target=_serve_once, args=(server_context, listener, errors))
        server.start()
        try:
            with (
                socket.create_connection(("127.0.0.1", port), timeout=30) as raw,
                client_context.wrap_socket(raw, server_hostname=server_hostname) as tls,
            ):
                presented = tls.getpeercert(binary_form=True)
                assert presented is not None
                assert presented == issued.leaf.public_bytes(serialization.Encoding.DER)
                return tls.recv(100)
        finally:
            server.join(timeout=30)


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_tls_handshake_trusting_only_the_root(
    by_key_type: dict[str, Issued], ca_files: tuple[Path, Path], tmp_path: Path, key_type: str
) -> None:
    root, _ = ca_files
    received = handshake(by_key_type[key_type], root, tmp_path, "localhost.example.com")
    assert received == b"hello over tls\n"


def test_tls_handshake_matches_wildcard_and_ip_names(
    by_key_type: dict[str, Issued], ca_files: tuple[Path, Path], tmp_path: Path
) -> None:
    root, _ = ca_files
    issued = by_key_type["ec-p256"]
    for i, name in enumerate(("v1.api.example.com", "127.0.0.1")):
        assert handshake(issued, root, tmp_path / str(i), name) == b"hello over tls\n"


def test_tls_handshake_refuses_a_name_not_in_the_certificate(
    by_key_type: dict[str, Issued], ca_files: tuple[Path, Path], tmp_path: Path
) -> None:
    root, _ = ca_files
    with pytest.raises(ssl.SSLCertVerificationError, match="match"):
        handshake(by_key_type["ec-p256"], root, tmp_path, "other.example.org")


def _pem_file(cert: x509.Certificate, path: Path) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


@pytest.mark.parametrize("which", ["root", "intermediate"])
def test_pkilint_finds_nothing_in_the_ca_certificates(
    ca_chain: list[x509.Certificate], tmp_path: Path, which: str
) -> None:
    cert = ca_chain[-1] if which == "root" else ca_chain[0]
    assert pkilint("lint_pkix_cert", _pem_file(cert, tmp_path / f"{which}.pem")) == []


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_pkilint_finds_nothing_in_the_leaf(
    by_key_type: dict[str, Issued], tmp_path: Path, key_type: str
) -> None:
    leaf, _, _ = by_key_type[key_type].write(tmp_path)
    findings = pkilint("lint_pkix_cert", leaf)
    assert [f for f in findings if not wildcard_syntax(f)] == []


def test_pkilint_finds_nothing_in_issuer_subject_pairs(
    by_key_type: dict[str, Issued], ca_chain: list[x509.Certificate], tmp_path: Path
) -> None:
    intermediate = _pem_file(ca_chain[0], tmp_path / "intermediate.pem")
    root = _pem_file(ca_chain[-1], tmp_path / "root.pem")
    leaf, _, _ = by_key_type["rsa-2048"].write(tmp_path / "leaf")
    for issuer, subject in ((root, intermediate), (intermediate, leaf)):
        assert pkilint("lint_pkix_signer_signee_cert_chain", issuer, subject) == []


@pytest.mark.parametrize(
    "names",
    [
        {"common_name": "plain.example.com", "ip_addresses": ["192.0.2.1", "2001:db8::1"]},
        {"common_name": "b" * 63 + ".example.com"},  # no CN in the subject, SAN critical
        {"common_name": "198.51.100.7"},
    ],
    ids=["dns-and-ips", "long-common-name", "ip-common-name"],
)
def test_pkilint_finds_nothing_in_a_leaf_without_wildcards(
    certs: Any, make_customer: Any, issue: Any, tmp_path: Path, names: dict[str, Any]
) -> None:
    body = issue(make_customer(), **names)
    leaf = tmp_path / "leaf.pem"
    leaf.write_text(body["certificate_pem"])
    assert pkilint("lint_pkix_cert", leaf) == []
