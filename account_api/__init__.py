"""The account service: Flask app factory."""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, render_template_string, request
from flask_cors import CORS
from flask_openapi3.models.info import Info
from flask_openapi3.openapi import OpenAPI
from flask_openapi3_swagger.templates import swagger_html_string  # type: ignore[import-untyped]
from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge

from account_api import observability
from account_api.accounts.views import bp as accounts_bp
from account_api.auth.passwords import Passwords
from account_api.auth.tokens import TokenMinter
from account_api.auth.views import bp as auth_bp
from account_api.errors import ApiError, on_validation_error, register_error_handlers
from account_api.extensions import db, migrate
from account_api.runtime import Runtime
from account_api.settings import AccountSettings
from schema import keyfiles
from schema.db import engine_options, normalize_url, prepare_sqlite_file
from schema.logs import configure_logging
from schema.migrate import MIGRATIONS_DIR

SECURITY_SCHEMES: dict[str, Any] = {
    "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
    "oauth2": {
        "type": "oauth2",
        "flows": {"password": {"tokenUrl": "/api/auth/token", "scopes": {}}},
    },
}
# Bodies may come as form only where the OAuth2 password grant needs it.
FORM_ENDPOINTS = frozenset({"auth.issue_token"})
# POSTs that take no body (whatever is sent is ignored).
BODYLESS_ENDPOINTS = frozenset({"auth.logout"})


class BadJson(ApiError):
    status, title = 400, "Bad Request"


class UnsupportedMediaType(ApiError):
    status, title = 415, "Unsupported Media Type"


class BodyTimeout(ApiError):
    status, title = 408, "Request Timeout"


def _read_body() -> bytes:
    """The whole body (cached for the view), or 408 when the client sends it too slowly."""
    try:
        return request.get_data(cache=True)  # 413 above MAX_CONTENT_LENGTH
    except ClientDisconnected as exc:
        # Werkzeug reports a read that failed as a disconnection; a read that timed out
        # (gunicorn.conf.py's CLIENT_IO_TIMEOUT_SECONDS) is the client being too slow.
        if isinstance(exc.__context__, TimeoutError):
            raise BodyTimeout(
                "the request body did not arrive in time", {"Connection": "close"}
            ) from None
        raise


def _check_body() -> None:
    # Read every body within the limit, also one the answer will not use (404, 405): bytes
    # left unread on a keep-alive connection would have to be drained by the server, which
    # gives up past 64 KiB. A body over the limit raises 413 here (see gunicorn.conf.py).
    data = _read_body()
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if request.content_length is None and len(data) >= limit and request.stream.read(1):
        # A chunked body is cut at the limit rather than refused: anything after it is too much.
        raise RequestEntityTooLarge()
    if request.method not in ("POST", "PUT", "PATCH") or request.routing_exception is not None:
        return
    if request.endpoint in BODYLESS_ENDPOINTS:
        return
    if request.mimetype == "application/json":
        try:
            parsed = request.get_json(silent=True)
        except RecursionError:  # nested too deeply to decode: not JSON this service reads
            parsed = None
        if parsed is None:
            raise BadJson("request body is not valid JSON")
    elif data and request.endpoint not in FORM_ENDPOINTS:
        raise UnsupportedMediaType("request body must be application/json")
    elif not data and request.endpoint not in FORM_ENDPOINTS:
        raise UnsupportedMediaType("a JSON request body (application/json) is required")


def create_app(settings: AccountSettings | None = None) -> OpenAPI:
    """Build the account service; tests pass their own settings."""
    settings = settings or AccountSettings()
    configure_logging(settings.log_level)
    app = OpenAPI(
        __name__,
        info=Info(
            title="Tessera accounts",
            version="1.0.0",
            description=(
                "Sign up, log in for a bearer token, sign out everywhere, change the "
                "password, read and delete accounts."
            ),
        ),
        security_schemes=SECURITY_SCHEMES,
        validation_error_status=422,
        validation_error_callback=on_validation_error,
        doc_prefix="",
        doc_url="/openapi.json",
    )
    url = normalize_url(settings.effective_database_url)
    prepare_sqlite_file(url)
    app.config.update(
        SQLALCHEMY_DATABASE_URI=url,
        SQLALCHEMY_ENGINE_OPTIONS=engine_options(
            url, settings.db_pool_size, settings.db_max_overflow, settings.db_pool_timeout
        ),
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        OAUTH_CONFIG={"clientId": "docs", "usePkceWithAuthorizationCodeGrant": False},
    )
    db.init_app(app)
    migrate.init_app(app, db, directory=str(MIGRATIONS_DIR), render_as_batch=True)
    with app.app_context():
        from schema.db import install_sqlite_pragmas

        install_sqlite_pragmas(db.engine)

    private_pem = keyfiles.token_signing_key(
        settings.var_dir,
        settings.token_private_key.get_secret_value() if settings.token_private_key else None,
        settings.token_private_key_file,
    )
    minter = TokenMinter(
        private_pem, settings.token_issuer, settings.token_audience, settings.token_ttl_seconds
    )
    app.extensions["tessera"] = Runtime(
        settings=settings,
        passwords=Passwords(settings),
        minter=minter,
        verify_key=minter.verify_key,
    )

    observability.install(app)
    app.before_request(_check_body)
    register_error_handlers(app)
    app.register_api(accounts_bp)
    app.register_api(auth_bp)
    CORS(
        app,
        resources={r"/api/auth/token": {"origins": sorted(settings.allowed_origins())}},
        methods=["POST", "OPTIONS"],
        # Swagger UI sends X-Requested-With (and Basic Authorization) with its token request.
        allow_headers=["Content-Type", "Authorization", "X-Requested-With"],
    )

    @app.get("/docs", doc_ui=False)
    def docs() -> Response:
        """Swagger UI, with every asset served from this service."""
        html = render_template_string(
            swagger_html_string,
            doc_url="openapi.json",
            swagger_config={},
            oauth_config=app.config["OAUTH_CONFIG"],
        )
        return Response(html, mimetype="text/html")

    return app
