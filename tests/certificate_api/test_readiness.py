"""/readyz answers for the connections the routes really use."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from certificate_api.main import create_app
from tests.conftest import certificate_settings, postgres_only


@postgres_only
def test_readyz_is_503_when_the_async_pool_cannot_serve(database_url: str, var_dir: Path) -> None:
    """The certificate and OCSP routes run on the async pool: with it gone they all answer
    503, so readiness must too, although the SQLAlchemy pool still works."""
    with TestClient(create_app(certificate_settings(database_url, var_dir))) as certs:
        assert certs.get("/readyz").status_code == 200
        runtime = certs.app.state.runtime  # type: ignore[attr-defined]
        assert certs.portal is not None
        certs.portal.call(runtime.db.close)
        ready = certs.get("/readyz")
        assert ready.status_code == 503
        assert ready.headers["content-type"] == "application/problem+json"
        assert certs.get("/api/ca/certificates").status_code == 200  # the other pool serves
