"""Development secrets generated on first start: many starters at once agree on one."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from schema import keyfiles


def test_concurrent_first_starts_all_read_the_same_whole_secret(tmp_path: Path) -> None:
    for round_ in range(20):  # a race: give it many chances to show
        first_start(tmp_path / f"var{round_}" / "secret")


def first_start(path: Path) -> None:
    start = threading.Barrier(32)
    seen: list[bytes] = []

    def starter() -> None:
        start.wait()
        seen.append(keyfiles._read_or_create(path, os.urandom(64)))

    threads = [threading.Thread(target=starter) for _ in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 32
    assert len(set(seen)) == 1 and len(seen[0]) == 64  # one winner, never an empty read
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert [p.name for p in path.parent.iterdir()] == ["secret"]  # no staging files left


def test_a_new_sqlite_database_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    from account_api import create_app
    from schema.migrate import upgrade
    from tests.conftest import account_settings

    settings = account_settings("", tmp_path / "var")
    upgrade(settings.effective_database_url)
    create_app(settings)
    files = sorted((tmp_path / "var").glob("tessera.db*"))
    assert files and files[0].name == "tessera.db"
    for path in files:  # the database and its WAL journal
        assert oct(path.stat().st_mode & 0o777) == "0o600", path.name


def test_the_account_service_checks_tokens_with_its_configured_signing_key(
    tmp_path: Path,
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from account_api import create_app
    from tests.conftest import account_settings

    private_pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key_file = tmp_path / "token-signing-key.pem"
    key_file.write_bytes(private_pem)
    database = f"sqlite:///{tmp_path / 'accounts.db'}"
    from schema.migrate import upgrade

    upgrade(database)
    # Only the private key is given (as the account container gets it): no public key file.
    app = create_app(account_settings(database, tmp_path / "var", token_private_key_file=key_file))
    client = app.test_client()
    body = {"email": "keys@example.com", "password": "long enough pw", "name": "Keys"}
    assert client.post("/api/accounts", json=body).status_code == 201
    token = client.post(
        "/api/auth/token", json={"email": body["email"], "password": body["password"]}
    ).json["access_token"]
    me = client.get("/api/accounts/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    assert not (tmp_path / "var" / keyfiles.TOKEN_PRIVATE_KEY_FILE).exists()
