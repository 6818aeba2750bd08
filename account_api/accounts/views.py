"""HTTP routes of accounts: parse, call the service, shape the reply."""

from __future__ import annotations

from flask import Response
from flask_openapi3.blueprint import APIBlueprint
from flask_openapi3.models.tag import Tag

from account_api.accounts import service, signup_rate
from account_api.accounts.schemas import AccountCreate, AccountOut, AccountPath, PasswordChange
from account_api.auth.current import BEARER_SECURITY, current_account
from account_api.errors import PROBLEM
from account_api.extensions import session
from account_api.runtime import client, runtime
from account_api.schemas import ProblemOut, no_content, problem_responses
from schema.base import utcnow

bp = APIBlueprint(
    "accounts",
    __name__,
    url_prefix="/api/accounts",
    abp_tags=[Tag(name="accounts", description="Sign up, read and delete accounts")],
)


def _reply(account: object, status: int = 200) -> Response:
    body = AccountOut.model_validate(account).model_dump_json()
    return Response(body, status=status, mimetype="application/json")


@bp.post(
    "",
    summary="Sign up",
    responses={201: AccountOut, **problem_responses(400, 408, 409, 413, 415, 422, 429)},
)
def create_account(body: AccountCreate) -> Response:
    """Create a customer account. The email is unique in any letter case. At most
    SIGNUP_RATE_PER_HOUR sign-ups an hour from one client address (429 past it)."""
    settings = runtime().settings
    signup_rate.count_signup(session(), client(), settings.signup_rate_per_hour, utcnow())
    new = service.NewAccount(str(body.email), body.password, body.name)
    account = service.create_account(session(), runtime().passwords, new)
    response = _reply(account, 201)
    response.headers["Location"] = f"/api/accounts/{account.id}"
    return response


@bp.get(
    "/me",
    summary="The calling account",
    security=BEARER_SECURITY,
    responses={200: AccountOut, **problem_responses(401)},
)
def read_me() -> Response:
    """The account the bearer token belongs to."""
    return _reply(current_account())


@bp.post(
    "/me/password",
    summary="Change the password",
    security=BEARER_SECURITY,
    responses={204: None, **problem_responses(400, 401, 403, 413, 415, 422, 429)},
)
def change_password(body: PasswordChange) -> Response:
    """Set a new password; the current one is required (403 when wrong). Every token issued
    before, the caller's included, is refused by both services from then on."""
    rt = runtime()
    service.change_password(
        session(),
        rt.passwords,
        service.login_limits(rt.settings),
        account := current_account(),
        service.Login(account.email, body.current_password, client(), body.new_password),
    )
    return no_content()


@bp.get(
    "/<id>",
    summary="Read an account",
    security=BEARER_SECURITY,
    responses={200: AccountOut, **problem_responses(401, 404, 422)},
)
def read_account(path: AccountPath) -> Response:
    """The account itself, or any account for an admin; another's is 404."""
    actor = current_account()
    return _reply(service.get_visible(session(), path.id, actor))


@bp.delete(
    "/<id>",
    summary="Delete an account",
    security=BEARER_SECURITY,
    responses={204: None, **problem_responses(401, 404, 422)},
)
def delete_account(path: AccountPath) -> Response:
    """Delete the account: its tokens stop working, its certificates are revoked
    (`cessationOfOperation`) with their stored keys destroyed, and events are sent."""
    actor = current_account()
    account = service.get_visible(session(), path.id, actor)
    service.delete_account(session(), account, actor_id=actor.id)
    return no_content()


__all__ = ["PROBLEM", "ProblemOut", "bp"]
