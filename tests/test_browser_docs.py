"""A tester can work from the browser alone: both /docs pages, driven in a real chromium.

Sign up on the account service's /docs, then on the certificate service's /docs press
"Authorize" (the OAuth2 password form posts cross-origin to the account service), issue a
certificate, list it and put it on hold, all through Swagger UI's "Try it out". Every request
the browser makes must stay on 127.0.0.1 and no resource may fail to load.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest

from tests.conftest import LiveServices

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "browser-passw0rd"
TIMEOUT_MS = 20_000
# What chromium logs when a fetch, script, stylesheet or image cannot be had.
FAILED_RESOURCE = re.compile(
    r"failed to load resource|net::ERR_|blocked by CORS|CORS policy|failed to fetch",
    re.IGNORECASE,
)


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def require(condition: bool, why: str) -> None:
    """Missing browser tooling: a hard failure in CI, a skip on a developer's machine."""
    if condition:
        return
    if in_ci():
        pytest.fail(f"{why} (CI=true, so this is a failure, not a skip)", pytrace=False)
    pytest.skip(why)


@dataclass
class Traffic:
    """Everything the browser asked for and everything it complained about."""

    requests: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def off_machine(self) -> list[str]:
        """Requests to any host but 127.0.0.1 (data: and blob: URLs have no host)."""
        return [
            url
            for url in self.requests
            if urlparse(url).scheme not in ("data", "blob", "about")
            and urlparse(url).hostname != "127.0.0.1"
        ]

    def resource_errors(self) -> list[str]:
        return [m for m in self.console_errors if FAILED_RESOURCE.search(m)]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    require(CHROMIUM.exists(), f"{CHROMIUM} not found: install Debian's chromium package")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - playwright is a dev dependency
        require(False, "the playwright package is not installed (pip install -e '.[dev]')")
        raise
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def watched(browser: Any) -> Iterator[tuple[Any, Traffic]]:
    """A fresh browser page whose every request and complaint is recorded."""
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    traffic = Traffic()
    context.on("request", lambda request: traffic.requests.append(request.url))
    context.on(
        "requestfailed",
        lambda request: traffic.failed.append(f"{request.url}: {request.failure}"),
    )
    page = context.new_page()
    page.on(
        "console",
        lambda msg: traffic.console_errors.append(msg.text) if msg.type == "error" else None,
    )
    page.on("pageerror", lambda exc: traffic.page_errors.append(str(exc)))
    try:
        yield page, traffic
    finally:
        context.close()


def operation(page: Any, method: str, path: str) -> Any:
    """The Swagger UI block of one operation, expanded and in "Try it out" mode."""
    block = page.locator(f".opblock.opblock-{method}").filter(
        has=page.locator(f'.opblock-summary-path[data-path="{path}"]')
    )
    block.locator(".opblock-summary").first.click()
    block.get_by_role("button", name="Try it out").click()
    return block


def execute(page: Any, block: Any, method: str, url: str) -> tuple[int, Any]:
    """Press "Execute"; return the status Swagger UI shows and the JSON the service sent."""
    with page.expect_response(
        lambda r: r.request.method == method.upper() and r.url.split("?")[0] == url
    ) as caught:
        block.get_by_role("button", name="Execute").click()
    response = caught.value
    shown = block.locator(".live-responses-table .response .response-col_status").first
    shown.wait_for()
    return int(shown.inner_text().strip()), response.json()


def patch_route(base: str) -> tuple[str, str]:
    """PATCH /api/certificates/{...} as the spec spells it, and its path parameter's name."""
    paths = httpx.get(f"{base}/openapi.json", timeout=10).json()["paths"]
    for path, operations in paths.items():
        found = re.fullmatch(r"/api/certificates/\{([^}]+)\}", path)
        if found and "patch" in operations:
            return path, found.group(1)
    raise AssertionError(f"no PATCH /api/certificates/{{id}} in {sorted(paths)}")


def fill_body(block: Any, body: dict[str, Any]) -> None:
    block.locator("textarea.body-param__text").fill(json.dumps(body))


def test_tester_signs_up_authorizes_issues_lists_and_holds_from_docs(
    live: LiveServices, watched: tuple[Any, Traffic], tmp_path: Path
) -> None:
    page, traffic = watched
    email = f"browser-{uuid.uuid4().hex[:10]}@example.com"

    # 1. Sign up on the account service's own /docs.
    page.goto(f"{live.account_url}/docs")
    signup = operation(page, "post", "/api/accounts")
    fill_body(signup, {"email": email, "password": PASSWORD, "name": "Browser Tester"})
    status, account = execute(page, signup, "post", f"{live.account_url}/api/accounts")
    assert status == 201, account
    assert account["email"] == email

    # 2. On the certificate service's /docs, "Authorize" with email and password. Swagger UI
    #    posts the OAuth2 password form to ACCOUNT_API_URL/api/auth/token: cross-origin.
    page.goto(f"{live.certificate_url}/docs")
    page.locator(".scheme-container button.authorize").click()
    dialog = page.locator(".modal-ux")
    dialog.locator("#oauth_username").fill(email)
    dialog.locator("#oauth_password").fill(PASSWORD)
    token_url = f"{live.account_url}/api/auth/token"
    with page.expect_request(lambda r: r.url == token_url and r.method == "POST") as sent:
        # Swagger UI's accessible names: "Authorize" and "Logout" carry these aria-labels.
        dialog.get_by_role("button", name="Apply given OAuth2 credentials").click()
    token_response = sent.value.response()  # None when the browser refused it (CORS)
    assert token_response is not None, (
        f"the browser did not complete POST {token_url} from {live.certificate_url}/docs: "
        f"{sent.value.failure}; console: {traffic.console_errors}"
    )
    assert token_response.status == 200, token_response.text()
    dialog.get_by_role("button", name="Remove authorization").wait_for()  # now authorized
    dialog.get_by_role("button", name="Close", exact=True).click()

    # 3. Issue a certificate.
    certificates_url = f"{live.certificate_url}/api/certificates"
    common_name = f"browser-{uuid.uuid4().hex[:8]}.example.com"
    issue = operation(page, "post", "/api/certificates")
    fill_body(issue, {"common_name": common_name, "key_type": "ec-p256", "validity_days": 30})
    status, created = execute(page, issue, "post", certificates_url)
    assert status == 201, created
    assert created["common_name"] == common_name
    assert created["account_id"] == account["id"]
    assert created["status"] == "active" and created["is_active"] is True
    assert "BEGIN PRIVATE KEY" in created["private_key_pem"]
    assert "BEGIN CERTIFICATE" in issue.locator(".live-responses-table").inner_text()
    shot = tmp_path / "docs-issued.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000  # a rendered page, not an empty one

    # 4. The list shows it.
    listing = operation(page, "get", "/api/certificates")
    status, listed = execute(page, listing, "get", certificates_url)
    assert status == 200, listed
    assert created["id"] in [item["id"] for item in listed["items"]]
    assert created["id"] in listing.locator(".live-responses-table").inner_text()

    # 5. Put it on hold.
    hold_path, id_param = patch_route(live.certificate_url)
    hold = operation(page, "patch", hold_path)
    hold.locator(f'tr[data-param-name="{id_param}"] input').fill(created["id"])
    fill_body(hold, {"is_active": False})
    status, held = execute(page, hold, "patch", f"{certificates_url}/{created['id']}")
    assert status == 200, held
    assert held["id"] == created["id"]
    assert held["is_active"] is False and held["status"] == "inactive"
    # The hold is stored, not just echoed: read it back outside the browser.
    token = token_response.json()["access_token"]
    again = httpx.get(
        f"{certificates_url}/{created['id']}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert again.status_code == 200, again.text
    assert again.json()["status"] == "inactive"

    # 6. Nothing left the machine and nothing failed to load.
    assert token_url in traffic.requests and f"{live.account_url}/docs" in traffic.requests
    assert traffic.off_machine() == [], traffic.off_machine()
    assert traffic.failed == [], traffic.failed
    assert traffic.resource_errors() == [], traffic.console_errors
    assert traffic.page_errors == [], traffic.page_errors
