"""The expiry gauges on /metrics, and the alert rules that read them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from tests.conftest import Customer

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


def samples(certs: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = certs.get("/metrics")
    assert response.status_code == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def expiring(values: dict[Any, float], window: str) -> float:
    return values[("certificates_expiring", (("within", window),))]


def ca_end(values: dict[Any, float], role: str) -> float:
    return values[("ca_not_after_timestamp_seconds", (("role", role),))]


def test_expiring_gauges_count_active_certificates_by_window(
    certs: Any, make_customer: Any, issue: Any
) -> None:
    customer: Customer = make_customer()
    before = samples(certs)
    issue(customer, validity_days=5)
    issue(customer, validity_days=20)
    issue(customer, validity_days=60)
    held = issue(customer, validity_days=5)
    patched = certs.patch(
        f"/api/certificates/{held['id']}", json={"is_active": False}, headers=customer.auth
    )
    assert patched.status_code == 200
    after = samples(certs)
    assert expiring(after, "7d") - expiring(before, "7d") == 1
    assert expiring(after, "30d") - expiring(before, "30d") == 2


def test_ca_gauges_are_the_not_after_of_root_intermediate_and_responder(
    certs: Any, make_customer: Any, issue: Any, engine: Any
) -> None:
    body = issue(make_customer())
    intermediate, root = x509.load_pem_x509_certificates(body["chain_pem"].encode())
    leaf = x509.load_pem_x509_certificate(body["certificate_pem"].encode())
    request = ocsp.OCSPRequestBuilder().add_certificate(leaf, intermediate, hashes.SHA256())
    answer = certs.post(
        "/api/ocsp",
        content=request.build().public_bytes(serialization.Encoding.DER),
        headers={"Content-Type": "application/ocsp-request"},
    )
    assert ocsp.load_der_ocsp_response(answer.content).certificates
    assert certs.get("/api/ca/root.crl").status_code == 200
    values = samples(certs)
    assert ca_end(values, "root") == root.not_valid_after_utc.timestamp()
    assert ca_end(values, "intermediate") == intermediate.not_valid_after_utc.timestamp()
    # The intermediate's current responder in the database (other tests of the suite renew
    # it, and a process answers with the one it holds until that is due).
    with engine.connect() as conn:
        (pem,) = conn.execute(
            text(
                "SELECT r.certificate_pem FROM certificate_authorities r"
                " JOIN certificate_authorities i ON i.id = r.parent_id"
                " WHERE r.role = 'ocsp_responder' AND r.is_current AND i.serial_number = :serial"
            ),
            {"serial": format(intermediate.serial_number, "x")},
        ).scalars()
    responder = x509.load_pem_x509_certificate(pem.encode())
    responder.verify_directly_issued_by(intermediate)
    assert ca_end(values, "ocsp_responder") == responder.not_valid_after_utc.timestamp()
    root_crl = x509.load_der_x509_crl(certs.get("/api/ca/root.crl").content)
    assert root_crl.next_update_utc is not None
    assert (
        values[("ca_root_crl_next_update_timestamp_seconds", ())]
        == root_crl.next_update_utc.timestamp()
    )


def test_alert_rules_are_valid_and_fire_on_their_unit_tests(certs: Any) -> None:
    promtool = shutil.which("promtool")
    if promtool is not None:
        for command in (("check", "rules", "alerts.yml"), ("test", "rules", "alerts.test.yml")):
            result = subprocess.run(
                [promtool, *command], cwd=RULES, capture_output=True, text=True, check=False
            )
            assert result.returncode == 0, result.stdout + result.stderr
    # Whether or not promtool is here: every rule is complete and reads a metric we serve
    # (the root CRL's gauge once there is one).
    assert certs.get("/api/ca/root.crl").status_code == 200
    served = {name for name, _labels in samples(certs)}
    rules = yaml.safe_load((RULES / "alerts.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            assert {"alert", "expr", "labels", "annotations"} <= rule.keys(), rule
            assert rule["labels"]["severity"] in {"warning", "critical"}
            assert any(name in rule["expr"] for name in served), rule["expr"]
