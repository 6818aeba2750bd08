"""The token route: OAuth2 password grant (form) or JSON credentials."""

from __future__ import annotations

from flask import Response, request
from flask_openapi3.blueprint import APIBlueprint
from flask_openapi3.models.tag import Tag
from pydantic import BaseModel, ValidationError

from account_api.accounts import service
from account_api.auth.current import BEARER_SECURITY, current_account
from account_api.auth.schemas import TokenForm, TokenJson, TokenOut
from account_api.errors import ApiError, validation_problem
from account_api.extensions import session
from account_api.runtime import client, runtime
from account_api.schemas import no_content, problem_responses

bp = APIBlueprint(
    "auth",
    __name__,
    url_prefix="/api/auth",
    abp_tags=[Tag(name="auth", description="Access tokens")],
)

_REQUEST_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {"schema": TokenForm.model_json_schema()},
            "application/json": {"schema": TokenJson.model_json_schema()},
        },
    }
}


class UnsupportedMediaType(ApiError):
    status, title = 415, "Unsupported Media Type"


def _credentials() -> tuple[str, str]:
    model: type[BaseModel]
    if request.mimetype == "application/x-www-form-urlencoded":
        model, data = TokenForm, request.form.to_dict()
    elif request.mimetype == "application/json":
        model, data = TokenJson, request.get_json()
    else:
        raise UnsupportedMediaType(
            "send application/x-www-form-urlencoded (OAuth2 password grant) or application/json"
        )
    parsed = model.model_validate(data)
    if isinstance(parsed, TokenForm):
        return parsed.username, parsed.password
    assert isinstance(parsed, TokenJson)
    return parsed.email, parsed.password


@bp.post(
    "/token",
    summary="Get an access token",
    responses={200: TokenOut, **problem_responses(400, 401, 408, 413, 415, 422, 429)},
    openapi_extensions=_REQUEST_BODY,
)
def issue_token() -> Response:
    """Exchange email and password for a bearer token; repeated failures are throttled."""
    try:
        email, password = _credentials()
    except ValidationError as exc:
        return validation_problem(exc.errors(include_input=False, include_url=False))
    rt = runtime()
    limits = service.login_limits(rt.settings)
    login = service.Login(email, password, client())
    account = service.authenticate(session(), rt.passwords, limits, login)
    token = rt.minter.mint(account.id, account.token_generation)
    out = TokenOut(access_token=token, expires_in=rt.minter.ttl_seconds)
    response = Response(out.model_dump_json(), mimetype="application/json")
    # RFC 6749 §5.1: token responses are never cached.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


@bp.post(
    "/logout",
    summary="Sign out everywhere",
    security=BEARER_SECURITY,
    responses={204: None, **problem_responses(401)},
)
def logout() -> Response:
    """Refuse every token of the calling account issued up to now, in both services."""
    service.sign_out_everywhere(session(), current_account())
    return no_content()
