"""CA and key commands: init-ca, import-ca, rotate-master-key, new-master-key."""

from __future__ import annotations

from typing import TYPE_CHECKING, BinaryIO

import click

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from certificate_api.pki.sealing import Keyring
    from certificate_api.settings import CertificateSettings


def _context() -> tuple[CertificateSettings, sessionmaker[Session], Keyring]:
    from certificate_api.runtime import keyring_from
    from certificate_api.settings import CertificateSettings
    from schema.db import make_engine, make_sessionmaker

    settings = CertificateSettings()
    engine = make_engine(settings.effective_database_url)
    return settings, make_sessionmaker(engine), keyring_from(settings)


@click.command("init-ca")
@click.option("--force", is_flag=True, help="make a new root and intermediate even if one exists")
def init_ca(force: bool) -> None:
    """Create the root and issuing intermediate CA (also done on first start)."""
    from certificate_api.authority import service as authority
    from certificate_api.revocation.service import ensure_crl_state

    settings, sessions, keyring = _context()
    with sessions() as session:
        existing = authority.load(session, keyring)
        if existing is not None and not force:
            click.echo(
                f"CA exists: {existing.certificate.subject.rfc4514_string()} "
                "(--force makes a new one)"
            )
            return
        ca = authority.create(
            session,
            keyring,
            authority.CaSpec(
                settings.ca_name,
                settings.ca_root_key_type,
                settings.ca_intermediate_key_type,
                settings.public_base_url,
            ),
        )
        ensure_crl_state(session, ca.id)  # holds of its leaves reach its CRL from the first
    click.echo(
        f"created {ca.certificate.subject.rfc4514_string()} under "
        f"{ca.root_certificate.subject.rfc4514_string()}"
    )


@click.command("import-ca")
@click.option(
    "--certificate",
    "cert_file",
    type=click.File("rb"),
    required=True,
    help="the issuing CA certificate (PEM)",
)
@click.option(
    "--key",
    "key_file",
    type=click.File("rb"),
    required=True,
    help="its private key (PEM, unencrypted; it is sealed on import)",
)
@click.option(
    "--root",
    "root_file",
    type=click.File("rb"),
    required=True,
    help="the root certificate that issued it (PEM)",
)
def import_ca(cert_file: BinaryIO, key_file: BinaryIO, root_file: BinaryIO) -> None:
    """Make an existing CA the issuer instead of a generated one."""
    from certificate_api.authority import service as authority
    from certificate_api.pki.ca import CaImportError
    from certificate_api.revocation.service import ensure_crl_state

    _settings, sessions, keyring = _context()
    with sessions() as session:
        try:
            ca = authority.import_ca(
                session, keyring, cert_file.read(), key_file.read(), root_file.read()
            )
        except CaImportError as exc:
            raise click.ClickException(str(exc)) from None
        ensure_crl_state(session, ca.id)
    click.echo(
        f"imported {ca.certificate.subject.rfc4514_string()}; running services issue with it "
        f"within {_settings.ca_refresh_seconds:g} s"
    )


@click.command("rotate-master-key")
@click.option(
    "--generate",
    is_flag=True,
    help="development: put a new key first in var/master-keys before re-sealing",
)
@click.option("--batch-size", default=500, show_default=True)
def rotate_master_key(generate: bool, batch_size: int) -> None:
    """Re-seal every stored private key under the current (first) master key."""
    from certificate_api import keystore
    from certificate_api.pki.sealing import format_master_key, new_master_key
    from certificate_api.runtime import keyring_from
    from schema.keyfiles import MASTER_KEY_FILE

    settings, sessions, keyring = _context()
    if generate:
        if settings.master_keys or settings.master_keys_file:
            raise click.ClickException(
                "--generate only edits var/master-keys; with MASTER_KEYS(_FILE) configured, put "
                "a new key first there (`ca-admin new-master-key` prints one) and run again"
            )
        path = settings.var_dir / MASTER_KEY_FILE
        path.write_text(format_master_key(new_master_key()) + "\n" + path.read_text())
        keyring = keyring_from(settings)
    with sessions() as session:
        total = keystore.stale_count(session, keyring)
        click.echo(f"re-sealing {total} keys under {keyring.current.key_id}")
        with click.progressbar(length=total, label="re-sealed", show_pos=True) as bar:
            for done in keystore.rotate(session, keyring, batch_size):
                bar.update(done)
    click.echo("done; older master keys can now be removed from the configuration")


@click.command("new-master-key")
def new_master_key_command() -> None:
    """Print a new master key (`id:base64`) to put first in MASTER_KEYS."""
    from certificate_api.pki.sealing import format_master_key, new_master_key

    click.echo(format_master_key(new_master_key()))


COMMANDS = (init_ca, import_ca, rotate_master_key, new_master_key_command)
