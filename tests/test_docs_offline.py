"""/docs of both services works with no internet: every asset it loads comes from the service."""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlparse

import httpx
import pytest

from tests.conftest import LiveServices

ASSET = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")
JS_URL = re.compile(r"""(?:url|openapi_url|oauth2RedirectUrl)\s*[:=]\s*['"]([^'"]+)['"]""")
CSS_URL = re.compile(r"""url\(\s*['"]?([^'")]+)['"]?\s*\)""")


def on_machine(url: str) -> bool:
    host = urlparse(url).hostname
    return host is None or host in ("127.0.0.1", "localhost")


@pytest.mark.parametrize("service", ["account_url", "certificate_url"])
def test_docs_and_its_assets_are_served_locally(live: LiveServices, service: str) -> None:
    base = getattr(live, service)
    page = httpx.get(f"{base}/docs", timeout=10)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "swagger" in page.text.lower()
    references = ASSET.findall(page.text) + JS_URL.findall(page.text)
    assets = [urljoin(f"{base}/docs", ref) for ref in references if not ref.startswith("data:")]
    assert any(a.endswith(".js") for a in assets) and any(a.endswith(".css") for a in assets)
    off_machine = [a for a in assets if not on_machine(a)]
    assert off_machine == [], off_machine
    for asset in assets:
        response = httpx.get(asset, timeout=10)
        assert response.status_code == 200, asset
        if asset.endswith(".css"):
            nested = [
                urljoin(asset, u)
                for u in CSS_URL.findall(response.text)
                if not u.startswith("data:")
            ]
            assert [u for u in nested if not on_machine(u)] == []
    spec = httpx.get(f"{base}/openapi.json", timeout=10).json()
    assert spec["openapi"].startswith("3.") and spec["paths"]


def test_account_openapi_documents_every_route(live: LiveServices) -> None:
    spec = httpx.get(f"{live.account_url}/openapi.json", timeout=10).json()
    paths = spec["paths"]
    assert {"/api/accounts", "/api/accounts/me", "/api/accounts/{id}", "/api/auth/token"} <= set(
        paths
    )
    token = paths["/api/auth/token"]["post"]
    assert {"application/x-www-form-urlencoded", "application/json"} <= set(
        token["requestBody"]["content"]
    )
    assert "429" in token["responses"] and "401" in token["responses"]
    flows = spec["components"]["securitySchemes"]["oauth2"]["flows"]
    assert flows["password"]["tokenUrl"] == "/api/auth/token"


def test_token_endpoint_allows_the_certificate_docs_origin(live: LiveServices) -> None:
    preflight = httpx.options(
        f"{live.account_url}/api/auth/token",
        headers={
            "Origin": live.certificate_url,
            "Access-Control-Request-Method": "POST",
            # What Swagger UI's OAuth2 password flow sends.
            "Access-Control-Request-Headers": "content-type,x-requested-with,authorization",
        },
        timeout=10,
    )
    assert preflight.headers.get("access-control-allow-origin") == live.certificate_url
    allowed = preflight.headers.get("access-control-allow-headers", "").lower()
    assert {"content-type", "x-requested-with", "authorization"} <= {
        h.strip() for h in allowed.split(",")
    }
    foreign = httpx.options(
        f"{live.account_url}/api/auth/token",
        headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"},
        timeout=10,
    )
    assert "access-control-allow-origin" not in foreign.headers


def test_live_health_readiness_and_metrics(live: LiveServices) -> None:
    for base in (live.account_url, live.certificate_url):
        assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
        assert httpx.get(f"{base}/readyz", timeout=5).status_code == 200
        httpx.get(f"{base}/no-such-route", timeout=5)
        metrics = httpx.get(f"{base}/metrics", timeout=5)
        assert metrics.status_code == 200
        assert "http_requests_total" in metrics.text
        assert "http_request_duration_seconds_bucket" in metrics.text
