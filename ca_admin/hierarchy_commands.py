"""CA hierarchy commands: rotate and revoke intermediates, sign the root CRL, take the root
offline. Those that sign with the root take `--root-key FILE` when its key is kept offline."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO

import click

from ca_admin.ca_commands import _context

ROOT_KEY = click.option(
    "--root-key",
    "root_key_file",
    type=click.File("rb"),
    default=None,
    help="the root's private key (PEM) when it is kept offline; default: sealed in the database",
)


def _read(root_key_file: BinaryIO | None) -> bytes | None:
    return root_key_file.read() if root_key_file is not None else None


@click.command("rotate-intermediate")
@ROOT_KEY
def rotate_intermediate(root_key_file: BinaryIO | None) -> None:
    """Issue a new intermediate under the current root; new leaves are signed by it.

    Running services switch to it within CA_REFRESH_SECONDS, without a restart. Leaves of
    the previous intermediates keep their own CRL and OCSP answers."""
    from certificate_api.authority import rotation

    settings, sessions, keyring = _context()
    with sessions() as session:
        try:
            root_key = rotation.RootKey(
                keyring, _read(root_key_file), timedelta(days=settings.root_crl_validity_days)
            )
            ca = rotation.rotate_intermediate(
                session,
                root_key,
                settings.ca_name,
                settings.ca_intermediate_key_type,
                settings.public_base_url,
            )
        except rotation.HierarchyError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(
        f"issuing with {ca.certificate.subject.rfc4514_string()} (serial {ca.serial_number}); "
        f"running services pick it up within {settings.ca_refresh_seconds:g} s"
    )


@click.command("revoke-intermediate")
@click.argument("serial")
@click.option(
    "--reason",
    default="superseded",
    show_default=True,
    help="unspecified, cACompromise, affiliationChanged, superseded, cessationOfOperation",
)
@ROOT_KEY
def revoke_intermediate(serial: str, reason: str, root_key_file: BinaryIO | None) -> None:
    """Revoke a former intermediate (serial in hex): the root's CRL lists it from now on."""
    from certificate_api.authority import rotation

    settings, sessions, keyring = _context()
    with sessions() as session:
        try:
            root_key = rotation.RootKey(
                keyring, _read(root_key_file), timedelta(days=settings.root_crl_validity_days)
            )
            row = rotation.revoke_intermediate(session, root_key, serial, reason)
        except rotation.HierarchyError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"revoked {row.subject} ({reason}); the root CRL now lists it")


@click.command("sign-root-crl")
@ROOT_KEY
def sign_root_crl(root_key_file: BinaryIO | None) -> None:
    """Re-sign the root's CRL. With an offline root, do it before the CRL's next update
    (the ca_root_crl_next_update_timestamp_seconds gauge; ROOT_CRL_VALIDITY_DAYS)."""
    from certificate_api.authority import rotation

    settings, sessions, keyring = _context()
    with sessions() as session:
        try:
            root_key = rotation.RootKey(
                keyring, _read(root_key_file), timedelta(days=settings.root_crl_validity_days)
            )
            crl = rotation.sign_root_crl(session, root_key)
        except rotation.HierarchyError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"root CRL {crl.number} signed, valid until {crl.next_update.isoformat()}")


@click.command("export-root-key")
@click.option("--out", "out", type=click.Path(path_type=Path), required=True)
@click.option("--remove", is_flag=True, help="then erase the sealed copy from the database")
def export_root_key(out: Path, remove: bool) -> None:
    """Write the root's private key (PEM) to a new file, to keep offline; with --remove, the
    database keeps no copy and root-signing commands need --root-key."""
    from certificate_api.authority import rotation

    _settings, sessions, keyring = _context()
    with sessions() as session:
        try:
            pem = rotation.export_root_key(session, keyring)
            # A new file only, readable by its owner only: never overwrite another key.
            fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as file:
                file.write(pem)
            if remove:
                rotation.erase_root_key(session, out.read_bytes())
        except FileExistsError:
            raise click.ClickException(f"{out} exists: choose a new file") from None
        except rotation.HierarchyError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"root key written to {out}" + ("; erased from the database" if remove else ""))


COMMANDS = (rotate_intermediate, revoke_intermediate, sign_root_crl, export_root_key)
